//! `customdb try` as a user runs it: the built binary, real files, exit codes, both output forms.

use crate::util::customdb_exe;
use serde_json::Value;
use std::process::{Command, Output};

fn try_cmd(args: &[&str], script: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("login.js");
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new(customdb_exe());
    cmd.arg("try");
    for a in args {
        cmd.arg(a.replace("SCRIPT", path.to_str().unwrap()));
    }
    (cmd.output().unwrap(), dir)
}

const LOGIN: &str = "function login(email, password, callback) {\n  console.log('checking', email, 'with', password);\n  if (password !== configuration.PASS) return callback(new WrongUsernameOrPasswordError(email, 'wrong password'));\n  callback(null, { user_id: 7, email: email });\n}\n";

#[test]
fn human_output_shows_console_outcome_and_result_but_never_the_password() {
    let (out, _dir) = try_cmd(
        &[
            "login",
            "SCRIPT",
            "a@x.com",
            "s3cret!",
            "--config",
            "PASS=s3cret!",
        ],
        LOGIN,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("[log]   checking a@x.com with [REDACTED]"),
        "{text}"
    );
    assert!(text.contains("outcome: success"), "{text}");
    assert!(text.contains("\"user_id\": 7"), "{text}");
    assert!(
        !text.contains("s3cret!"),
        "the password must never be printed: {text}"
    );
}

#[test]
fn json_output_is_one_object_and_exit_code_one_on_error() {
    let (out, _dir) = try_cmd(
        &[
            "login", "SCRIPT", "a@x.com", "wrong-pw", "--config", "PASS=x", "--json",
        ],
        LOGIN,
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object");
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["error"]["name"], "WrongUsernameOrPasswordError");
    assert_eq!(v["error"]["user_id"], "a@x.com");
    assert!(
        v["error"]["stack"].as_str().unwrap().contains("login.js:3"),
        "{v}"
    );
    assert_eq!(v["console"][0]["level"], "log");
    for key in ["result", "warnings", "timings_ms"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn config_file_accepts_a_deploy_cli_database_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("database.json");
    std::fs::write(
        &db,
        r#"{"name": "legacy", "options": {"configuration": {"PASS": "from-file"}}}"#,
    )
    .unwrap();
    let (out, _d) = try_cmd(
        &[
            "login",
            "SCRIPT",
            "a@x.com",
            "from-file",
            "--config-file",
            db.to_str().unwrap(),
            "--json",
        ],
        LOGIN,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "success", "{v}");
}

#[test]
fn bad_arguments_exit_two_with_a_message_that_says_what_to_do() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["login", "SCRIPT", "only-one"],
            "usage: customdb try login SCRIPT IDENTIFIER PASSWORD",
        ),
        (&["frobnicate", "SCRIPT"], "unknown action 'frobnicate'"),
        (
            &["login", "/nonexistent/x.js", "a", "b"],
            "cannot read script /nonexistent/x.js",
        ),
        (
            &["create", "SCRIPT", "{not json"],
            "USER_JSON is not valid JSON",
        ),
        (
            &["change_email", "SCRIPT", "a", "b", "maybe"],
            "must be true or false",
        ),
        (
            &["login", "SCRIPT", "a", "b", "--timeout", "5"],
            "--timeout: '5' has no unit",
        ),
        (
            &["login", "SCRIPT", "a", "b", "--config", "NOEQUALS"],
            "must be KEY=VALUE",
        ),
        (
            &["login", "SCRIPT", "a", "b", "--context", "[1]"],
            "--context must be a JSON object",
        ),
    ];
    for (args, message) in cases {
        let (out, _dir) = try_cmd(args, LOGIN);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(message),
            "{args:?}: expected {message:?} in {err}"
        );
    }
}

#[test]
fn timeout_option_applies() {
    let (out, _dir) = try_cmd(
        &["login", "SCRIPT", "a", "b", "--timeout", "300ms", "--json"],
        "function login(a, b, cb) { setTimeout(() => cb(null, { user_id: 1 }), 5000); }",
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "timeout", "{v}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn try_shows_the_normalized_profile_or_why_it_is_rejected() {
    let (out, _dir) = try_cmd(
        &["login", "SCRIPT", "Ada@Example.com", "pw"],
        "function login(email, password, callback) { callback(null, { id: 7, email: email, metadata: { plan: 'pro' } }); }",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("profile: {"), "{text}");
    assert!(text.contains("\"user_id\": \"auth0|7\""), "{text}");
    assert!(text.contains("\"app_metadata\": {"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("time:"), "{text}");

    let (out, _dir) = try_cmd(
        &["login", "SCRIPT", "a", "pw", "--json"],
        "function login(email, password, callback) { callback(null, { user_id: 1, email: 'nope', app_metadata: { blocked: true } }); }",
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["profile_errors"],
        serde_json::json!([
            {"field": "email", "rule": "must be an email address"},
            {"field": "app_metadata.blocked", "rule": "is a name Auth0 reserves"}
        ])
    );
}

#[test]
fn a_refused_host_names_the_flag_that_allows_it() {
    let (out, _dir) = try_cmd(
        &["login", "SCRIPT", "a@x.com", "pw", "--json"],
        "function login(email, password, callback) { fetch('http://api.example.com:8443/users').then(() => callback(null, null), (e) => callback(e.cause)); }",
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("pass --allow-host api.example.com:8443"),
        "{v}"
    );
}
