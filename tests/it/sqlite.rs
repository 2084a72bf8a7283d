//! The `sqlite3` module against real SQLite files in a temporary data folder: node-sqlite3's
//! API and result shapes, its error shape, and the path policy that keeps scripts inside the
//! folder.

use crate::util::{expect, invocation, run};
use customdb::script::{Action, Invocation};
use serde_json::{Value, json};
use std::path::Path;

fn login(body: &str, data_dir: &Path) -> Invocation {
    let script = format!(
        "function login(email, password, cb) {{ const sqlite3 = require('sqlite3'); {body} }}"
    );
    let mut inv = invocation(Action::Login, &script, json!(["a@example.com", "pw"]));
    inv.policy.data_dirs = vec![data_dir.to_path_buf()];
    inv
}

const SETUP: &str = "const db = new sqlite3.Database('t.db'); \
    db.exec('CREATE TABLE IF NOT EXISTS u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, score REAL, note TEXT, pic BLOB)');";

/// (case, script body after SETUP, expected subset of the Execution)
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "run gives lastID and changes as this",
            "db.run('INSERT INTO u (email, score) VALUES (?, ?)', ['a@x', 1.5], function (err) { cb(err, { user_id: this.lastID, changes: this.changes }); });",
            json!({"outcome": "success", "result": {"user_id": 1, "changes": 1}}),
        ),
        (
            "values round-trip with their types",
            "db.run('INSERT INTO u (email, score, note, pic) VALUES ($e, $s, $n, $p)', { $e: 'b@x', $s: 2.25, $n: null, $p: Buffer.from('hi') }); \
             db.get('SELECT * FROM u WHERE email = ?', 'b@x', (err, row) => cb(err, { user_id: row.id, score: row.score, note: row.note, pic: Buffer.isBuffer(row.pic) && row.pic.toString() }));",
            json!({"outcome": "success", "result": {"score": 2.25, "note": null, "pic": "hi"}}),
        ),
        (
            "unique violation has node-sqlite3's shape",
            "db.run('INSERT INTO u (email) VALUES (?)', 'c@x'); db.run('INSERT INTO u (email) VALUES (?)', 'c@x', (err) => cb(null, { user_id: 1, code: err.code, errno: err.errno, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "SQLITE_CONSTRAINT", "errno": 19, "message": "SQLITE_CONSTRAINT: UNIQUE constraint failed: u.email"}}),
        ),
        (
            "get with no row gives undefined",
            "db.get('SELECT * FROM u WHERE email = ?', ['nobody'], (err, row) => cb(err, { user_id: 1, found: row !== undefined }));",
            json!({"outcome": "success", "result": {"found": false}}),
        ),
        (
            "all, each and prepare",
            "db.run('INSERT INTO u (email) VALUES (?), (?)', 'd1@x', 'd2@x'); const seen = []; \
             db.each('SELECT email FROM u WHERE email LIKE ? ORDER BY email', 'd%', (e, r) => seen.push(r.email), (e, n) => { \
               const st = db.prepare('SELECT count(*) AS n FROM u WHERE email LIKE ?'); \
               st.get('d%', (e2, r) => { st.finalize(); db.all('SELECT email FROM u WHERE email LIKE ?', ['d%'], (e3, rows) => cb(e3, { user_id: 1, seen, n, count: r.n, rows: rows.length })); }); });",
            json!({"outcome": "success", "result": {"seen": ["d1@x", "d2@x"], "n": 2, "count": 2, "rows": 2}}),
        ),
        (
            "a failed statement without a callback is an uncaught error",
            "db.run('INSERT INTO nope VALUES (1)');",
            json!({"outcome": "error", "error": {"message": "SQLITE_ERROR: no such table: nope"}}),
        ),
        (
            "ATTACH cannot reach another file",
            "db.exec(\"ATTACH DATABASE '/tmp/customdb-attach.db' AS x\", (err) => cb(null, { user_id: 1, message: err && err.message }));",
            json!({"outcome": "success", "result": {"message": "~too many attached databases"}}),
        ),
        (
            "VACUUM INTO cannot write another file",
            "db.exec(\"VACUUM INTO '/tmp/customdb-vacuum.db'\", (err) => cb(null, { user_id: 1, message: err && err.message }));",
            json!({"outcome": "success", "result": {"message": "~too many attached databases"}}),
        ),
    ]
}

#[test]
fn sqlite3_api_on_a_real_file() {
    for (name, body, expected) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let exec = run(&login(&format!("{SETUP} {body}"), dir.path()));
        expect(name, &exec, &expected);
    }
    assert!(!Path::new("/tmp/customdb-attach.db").exists());
    assert!(!Path::new("/tmp/customdb-vacuum.db").exists());
}

#[test]
fn data_written_in_one_run_is_read_in_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let write = login(
        &format!(
            "{SETUP} db.run('INSERT INTO u (email) VALUES (?)', email, (err) => db.close(() => cb(err, {{ user_id: 1 }})));"
        ),
        dir.path(),
    );
    expect("write", &run(&write), &json!({"outcome": "success"}));
    assert!(
        dir.path().join("t.db").is_file(),
        "the file is in the data folder"
    );
    let read = login(
        "new sqlite3.Database('t.db', sqlite3.OPEN_READONLY).get('SELECT email FROM u', (err, row) => cb(err, { user_id: 1, email: row.email }));",
        dir.path(),
    );
    expect(
        "read",
        &run(&read),
        &json!({"outcome": "success", "result": {"email": "a@example.com"}}),
    );
}

#[test]
fn paths_outside_the_data_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("etc-link")).unwrap();
    // A dangling link would let SQLite create the file it points to, outside the folder.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("created-by-the-script.db");
    std::os::unix::fs::symlink(&target, dir.path().join("dangling.db")).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("plain.db-journal")).unwrap();
    let cases = [
        (
            "a dangling symbolic link",
            "dangling.db",
            "symbolic links are not allowed",
        ),
        (
            "a symbolic link as the journal",
            "plain.db",
            "symbolic links are not allowed",
        ),
        (
            "absolute path elsewhere",
            "/etc/passwd",
            "outside the connection's data folders",
        ),
        ("parent folder", "../escape.db", "'..' is not allowed"),
        (
            "symbolic link out",
            "etc-link/passwd",
            "outside the connection's data folders",
        ),
        (
            "URI",
            "file:x.db?mode=rwc",
            "URI file names are not supported",
        ),
    ];
    for (name, path, why) in cases {
        let body = format!(
            "new sqlite3.Database({path:?}, (err) => cb(null, {{ user_id: 1, code: err && err.code, message: err && err.message }}));"
        );
        expect(
            name,
            &run(&login(&body, dir.path())),
            &json!({"outcome": "success", "result": {"code": "SQLITE_CANTOPEN", "message": format!("~{why}")}}),
        );
    }
    assert!(!target.exists(), "a link led the script out of its folder");
    let mut no_folder = login(
        "new sqlite3.Database('x.db', (err) => cb(null, { user_id: 1, message: err && err.message }));",
        dir.path(),
    );
    no_folder.policy.data_dirs.clear();
    expect(
        "no data folder",
        &run(&no_folder),
        &json!({"outcome": "success", "result": {"message": "~only ':memory:'"}}),
    );
    no_folder.source = "function login(e, p, cb) { const db = new (require('sqlite3').Database)(':memory:'); db.get('SELECT 41 + 1 AS n', (err, r) => cb(err, { user_id: r.n })); }".into();
    expect(
        "memory needs no folder",
        &run(&no_folder),
        &json!({"outcome": "success", "result": {"user_id": 42}}),
    );
}

#[test]
fn a_data_folder_holds_at_most_its_quota() {
    let dir = tempfile::tempdir().unwrap();
    // Another file already takes half of the 2 MiB quota.
    std::fs::write(dir.path().join("other.bin"), vec![0u8; 1 << 20]).unwrap();
    let mut inv = login(
        "const db = new sqlite3.Database('big.db'); \
         db.exec('CREATE TABLE IF NOT EXISTS t (x BLOB)', function () { \
           var n = 0; \
           function next() { \
             db.run('INSERT INTO t VALUES (randomblob(65536))', function (err) { \
               if (err) return cb(null, { user_id: 1, rows: n, code: err.code, message: err.message }); \
               if (++n > 200) return cb(null, { user_id: 1, rows: n }); \
               next(); \
             }); \
           } \
           next(); \
         });",
        dir.path(),
    );
    inv.limits.data_folder_bytes = 2 << 20;
    let exec = run(&inv);
    expect(
        "quota",
        &exec,
        &json!({"outcome": "success", "result": {"code": "SQLITE_FULL"}}),
    );
    let result = exec.result.unwrap();
    let rows = result["rows"].as_u64().unwrap();
    assert!(
        (5..20).contains(&rows),
        "about 1 MiB of 64 KiB rows fit: {rows}"
    );
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("serve --data-folder-quota-mb"),
        "{result}"
    );
    let size = std::fs::metadata(dir.path().join("big.db")).unwrap().len();
    assert!(
        size <= (1 << 20) + 65536,
        "the database stopped at what was left: {size} bytes"
    );
}
