//! `customdb test` and `customdb init` as a user runs them: every shipped template's cases
//! pass against the real servers, and a broken case is reported (progress line, reason,
//! JUnit failure, exit code 1) rather than hidden.

use crate::util::{customdb_exe, server_url};
use std::path::Path;
use std::process::{Command, Output};

fn customdb(args: &[&str]) -> Output {
    Command::new(customdb_exe()).args(args).output().unwrap()
}

/// `customdb test` with the test servers mapped to the templates' keywords.
fn customdb_test(args: &[&str]) -> Output {
    Command::new(customdb_exe())
        .arg("test")
        .args(args)
        .env("CUSTOMDB_KW_PG_URL", server_url("CUSTOMDB_TEST_PG"))
        .env("CUSTOMDB_KW_MYSQL_URL", server_url("CUSTOMDB_TEST_MYSQL"))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_template_passes_its_cases_against_real_servers() {
    // The postgres and mysql templates read the servers through ##PG_URL## / ##MYSQL_URL##.
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let junit = tempfile::NamedTempFile::new().unwrap();
    let out = customdb_test(&[templates, "--junit", junit.path().to_str().unwrap()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    for template in [
        "sqlite-users",
        "postgres-users",
        "mysql-users",
        "rest-api-users",
        "aspnet-identity-migration",
    ] {
        assert!(
            report.contains(&format!("ok   {template} › login: ")),
            "{template}: {report}"
        );
    }
    let last = report.lines().last().unwrap_or_default();
    assert!(last.contains(" passed, 0 failed"), "{report}");
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(xml.contains("<testsuite name=\"postgres-users\""), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}

/// Edits one case of a fresh sqlite folder.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join("cases").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn failing_cases_are_reported_with_their_reasons() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("users");
    let out = customdb(&["init", dir.to_str().unwrap(), "--template", "sqlite"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("next: customdb test"), "{}", text(&out));

    // A wrong expected result, a golden transcript that no longer matches, and an `after`
    // query whose rows differ.
    edit(
        &dir,
        "get_user.json",
        "\"outcome\": \"not_found\"",
        "\"outcome\": \"success\"",
    );
    edit(
        &dir,
        "verify.json",
        "\"rows\": [\n          {\n            \"n\": \"1\"",
        "\"rows\": [\n          {\n            \"n\": \"2\"",
    );
    let golden = dir.join("cases/golden/login-right-password.json");
    let recorded = std::fs::read_to_string(&golden).unwrap();
    std::fs::write(&golden, recorded.replace("\"alice\"", "\"alicia\"")).unwrap();

    let junit = root.path().join("junit.xml");
    let out = customdb(&[
        "test",
        dir.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL users › get_user: unknown email"),
        "{report}"
    );
    assert!(
        report.contains("outcome: expected \"success\", got \"not_found\""),
        "{report}"
    );
    assert!(report.contains("golden result differs"), "{report}");
    assert!(
        report.contains("after \"SELECT count(*) AS n FROM users WHERE email = 'bob@example.com'"),
        "{report}"
    );
    assert!(
        report
            .lines()
            .last()
            .unwrap()
            .starts_with("19 passed, 3 failed"),
        "{report}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<failure").count(), 3, "{xml}");

    // --update re-records the golden file; the other two failures remain.
    let out = customdb(&[
        "test",
        dir.to_str().unwrap(),
        "--update",
        "--filter",
        "login",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&golden).unwrap(), recorded);
}

#[test]
fn unusable_input_is_exit_2_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("users");
    assert_eq!(
        customdb(&["init", dir.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let cases = [
        (
            "login.json",
            "\"action\": \"login\"",
            "\"action\": \"signin\"",
            "unknown variant `signin`, expected one of `login`",
        ),
        (
            "login.json",
            "\"expect\":",
            "\"expectation\":",
            "unknown field `expectation`",
        ),
        (
            "delete.json",
            "\"args\": [\n      \"1\"\n    ]",
            "\"args\": []",
            "delete takes 1 argument(s) (id), 0 given",
        ),
    ];
    for (file, from, to, message) in cases {
        let path = dir.join("cases").join(file);
        let original = std::fs::read_to_string(&path).unwrap();
        edit(&dir, file, from, to);
        let out = customdb(&["test", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{message}: {}", text(&out));
        assert!(text(&out).contains(message), "{message}: {}", text(&out));
        assert!(text(&out).contains(file), "{file}: {}", text(&out));
        std::fs::write(&path, original).unwrap();
    }
    // A stub route the stub could not send is refused when the case is read.
    let rest = root.path().join("rest");
    let init = customdb(&["init", rest.to_str().unwrap(), "--template", "rest-api"]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    edit(
        &rest,
        "get_user.json",
        "\"status\": 200,",
        "\"status\": 200, \"headers\": {\"bad header\": \"x\"},",
    );
    let out = customdb(&["test", rest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("\"bad header\" is not an HTTP header name"),
        "{}",
        text(&out)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = customdb(&["test", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("customdb init DIR --template sqlite"),
        "{}",
        text(&out)
    );
    let out = customdb(&["init", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("already exists and is not empty"),
        "{}",
        text(&out)
    );
}
