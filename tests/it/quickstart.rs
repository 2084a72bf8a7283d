//! The README's first commands, exactly as a newcomer runs them: from a fresh, empty current
//! folder, with default arguments and relative paths.

use crate::util::customdb_exe;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `customdb serve` with no arguments, then the `try: curl …` line it prints, run as printed.
#[test]
fn serve_with_no_arguments_prints_a_login_that_works() {
    let cwd = tempfile::tempdir().unwrap();
    let mut server = Command::new(customdb_exe())
        .arg("serve")
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(5)
        .map(Result::unwrap)
        .collect();
    let guard = KillOnDrop(server);
    assert_eq!(
        lines[0], "customdb listening on http://127.0.0.1:3000",
        "{lines:?}"
    );
    let curl = lines
        .iter()
        .find_map(|l| l.strip_prefix("try: "))
        .unwrap_or_else(|| panic!("no login example printed: {lines:?}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(curl)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(answer["access_token"].is_string(), "{answer}");
    assert!(answer["id_token"].is_string(), "{answer}");
    assert!(cwd.path().join("customdb-data/store.db").is_file());
    drop(guard);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `customdb init users --template sqlite`, `customdb test users`, then `customdb try` on the
/// folder's login script, in a fresh current folder.
#[test]
fn init_test_and_try_work_from_a_fresh_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(customdb_exe())
            .args(args)
            .current_dir(cwd.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["init", "users", "--template", "sqlite"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["test", "users"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .contains(" passed, 0 failed"),
        "{text}"
    );
    std::fs::write(
        cwd.path().join("login.js"),
        "function login(email, password, callback) {\n  console.log('checking', email, 'with', password);\n  if (password !== configuration.PASS) return callback(new WrongUsernameOrPasswordError(email));\n  callback(null, { user_id: 7, email: email });\n}\n",
    )
    .unwrap();
    let (code, text) = run(&[
        "try",
        "login",
        "login.js",
        "ada@example.com",
        "correct horse",
        "--config",
        "PASS=correct horse",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("[log]   checking ada@example.com with [REDACTED]"),
        "{text}"
    );
    assert!(text.contains("outcome: success"), "{text}");
}
