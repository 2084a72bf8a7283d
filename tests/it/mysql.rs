//! The `mysql` module against the real MariaDB server scripts/test.sh starts: mysqljs's
//! placeholders and escaping, its result shapes (rows, OkPacket) and error shapes.

use crate::util::{expect, host_port, invocation, run, server_url, unique};
use customdb::script::Action;
use serde_json::{Value, json};

fn login(body: &str, table: &str) -> customdb::script::Invocation {
    let script = format!(
        "function login(email, password, cb) {{ const mysql = require('mysql'); const url = configuration.MYSQL_URL; const T = configuration.TABLE; {body} }}"
    );
    let mut inv = invocation(Action::Login, &script, json!(["a@example.com", "pw"]));
    inv.configuration
        .insert("MYSQL_URL".into(), server_url("CUSTOMDB_TEST_MYSQL"));
    inv.configuration.insert("TABLE".into(), table.into());
    // The server, and port 1 of loopback (nothing listens there), are on the allow-list.
    // Run as `customdb try` runs it: the test servers listen on loopback.
    inv.policy.internal = customdb::script::Internal::Listed;
    inv.policy.egress = vec![
        host_port(&server_url("CUSTOMDB_TEST_MYSQL")),
        "127.0.0.1:1".into(),
    ];
    inv
}

/// (case, script body run after `T` is created, expected subset of the Execution)
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "createConnection, SET ? and an OkPacket, as Auth0's template",
            "const c = mysql.createConnection(url); c.connect(); \
             c.query('INSERT INTO ' + T + ' SET ?', { email: email, n: 7 }, (err, r) => { c.end(); if (err) return cb(err); \
               cb(null, { user_id: r.insertId, affectedRows: r.affectedRows }); });",
            json!({"outcome": "success", "result": {"user_id": 1, "affectedRows": 1}}),
        ),
        (
            "rows with mysqljs's types",
            "const c = mysql.createConnection(url); \
             c.query(\"SELECT 1 AS a, CAST(2 AS SIGNED) AS b, 1.5 AS d, 'x' AS g, NULL AS k, CAST('2020-01-02 03:04:05' AS DATETIME) AS i, CAST('2020-01-02' AS DATE) AS l, CAST('hi' AS BINARY) AS j, 12.340 AS e\", (err, rows, fields) => { c.end(); if (err) return cb(err); const x = rows[0]; \
               cb(null, { user_id: 1, a: x.a, b: x.b, d: x.d, g: x.g, k: x.k, i: x.i instanceof Date && x.i.toISOString(), l: x.l.toISOString(), j: Buffer.isBuffer(x.j) && x.j.toString(), e: x.e, names: fields.map((f) => f.name).join() }); });",
            json!({"outcome": "success", "result": {"a": 1, "b": 2, "d": 1.5, "g": "x", "k": null, "i": "2020-01-02T03:04:05.000Z", "l": "2020-01-02T00:00:00.000Z", "j": "hi", "e": 12.34, "names": "a,b,d,g,k,i,l,j,e"}}),
        ),
        (
            "? escapes what would break out of the string, ?? quotes identifiers",
            "const c = mysql.createConnection(url); const evil = \"x' OR '1'='1\\\\\"; \
             c.query('INSERT INTO ?? (email) VALUES (?)', [T, evil], (err) => { if (err) return cb(err); \
               c.query('SELECT email FROM ?? WHERE email = ?', [T, evil], (err, rows) => { \
                 c.query('SELECT count(*) AS n FROM ?? WHERE email = ?', [T, \"nobody' OR '1'='1\"], (err2, none) => { c.end(); cb(err || err2, { user_id: 1, email: rows[0].email, injected: none[0].n }); }); }); });",
            json!({"outcome": "success", "result": {"email": "x' OR '1'='1\\", "injected": 0}}),
        ),
        (
            "UPDATE reports affected and changed rows",
            "const c = mysql.createConnection(url); \
             c.query('INSERT INTO ' + T + ' (email, n) VALUES (?), (?)', [['p@x', 1], ['q@x', 2]], (err) => { if (err) return cb(err); \
               c.query('UPDATE ' + T + ' SET n = 2 WHERE email IN (?)', [['p@x', 'q@x']], (err, r) => { c.end(); cb(err, { user_id: 1, affectedRows: r.affectedRows, changedRows: r.changedRows }); }); });",
            json!({"outcome": "success", "result": {"affectedRows": 2, "changedRows": 1}}),
        ),
        (
            "a duplicate is ER_DUP_ENTRY",
            "const p = mysql.createPool(url); p.query('INSERT INTO ' + T + ' (email) VALUES (?)', [email], () => \
               p.query('INSERT INTO ' + T + ' (email) VALUES (?)', [email], (err) => cb(null, { user_id: 1, code: err.code, errno: err.errno, sqlState: err.sqlState, message: err.message })));",
            json!({"outcome": "success", "result": {"code": "ER_DUP_ENTRY", "errno": 1062, "sqlState": "23000", "message": "~ER_DUP_ENTRY: Duplicate entry 'a@example.com'"}}),
        ),
        (
            "getConnection and release",
            "mysql.createPool(url).getConnection((err, c) => { if (err) return cb(err); \
               c.query('SELECT ? + ? AS n', [40, 2], (err, rows) => { c.release(); cb(err, { user_id: rows[0].n }); }); });",
            json!({"outcome": "success", "result": {"user_id": 42}}),
        ),
        (
            "a server that is not there is ECONNREFUSED",
            "const c = mysql.createConnection({ host: '127.0.0.1', port: 1, user: 'u', password: 'p' }); c.connect((err) => cb(null, { user_id: 1, code: err.code, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "ECONNREFUSED", "message": "connect ECONNREFUSED 127.0.0.1:1"}}),
        ),
        (
            "a server not on the allow-list is refused before connecting",
            "const c = mysql.createConnection({ host: '192.168.7.7', user: 'u', password: 'p' }); c.connect((err) => cb(null, { user_id: 1, code: err.code, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "EGRESS_DENIED", "message": "~egress to 192.168.7.7:3306 is not allowed"}}),
        ),
        (
            "a wrong password is ER_ACCESS_DENIED_ERROR",
            "const c = mysql.createConnection(url.replace(':customdb@', ':wrong@')); c.query('SELECT 1', (err) => cb(null, { user_id: 1, code: err.code }));",
            json!({"outcome": "success", "result": {"code": "ER_ACCESS_DENIED_ERROR"}}),
        ),
        (
            "a query after end is refused",
            "const c = mysql.createConnection(url); c.end(); c.query('SELECT 1', (err) => cb(null, { user_id: 1, code: err.code }));",
            json!({"outcome": "success", "result": {"code": "PROTOCOL_ENQUEUE_AFTER_QUIT"}}),
        ),
    ]
}

#[test]
fn mysql_module_against_mariadb() {
    for (name, body, expected) in cases() {
        let table = unique("my_users");
        let create = format!(
            "const setup = mysql.createConnection(url); setup.query('CREATE TABLE ' + T + ' (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE, n INT)', (e) => {{ setup.end(); if (e) return cb(e); {body} }});"
        );
        expect(name, &run(&login(&create, &table)), &expected);
    }
}

#[test]
fn mysqljs_formatting() {
    let body = "cb(null, { user_id: 1, \
        set: mysql.format('UPDATE t SET ? WHERE id = ?', [{ a: 1, b: 'x', c: null }, 5]), \
        ids: mysql.format('SELECT ?? FROM ??', [['a', 'b.c'], 'db.t']), \
        escapes: mysql.escape(\"\\0\\n\\r\\b\\t\\x1a'\\\"\\\\\"), \
        date: mysql.escape(new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6))), \
        buf: mysql.escape(Buffer.from('hi')), \
        list: mysql.format('IN (?)', [[1, 'a', true]]), \
        raw: mysql.format('SET t = ?', [mysql.raw('NOW()')]) });";
    expect(
        "format",
        &run(&login(body, "unused")),
        &json!({"outcome": "success", "result": {
            "set": "UPDATE t SET `a` = 1, `b` = 'x', `c` = NULL WHERE id = 5",
            "ids": "SELECT `a`, `b`.`c` FROM `db`.`t`",
            "escapes": "'\\0\\n\\r\\b\\t\\Z\\'\\\"\\\\'",
            "date": "'2020-01-02 03:04:05.006'",
            "buf": "X'6869'",
            "list": "IN (1, 'a', true)",
            "raw": "SET t = NOW()"
        }}),
    );
}

/// `connection.end()` after the callback (as Auth0's templates write it) still returns the
/// connection: the pool holds 20 per settings, so a leak would hang the 21st run.
#[test]
fn connections_ended_after_the_callback_go_back_to_the_pool() {
    let mut inv = login(
        "const c = mysql.createConnection(url); c.query('SELECT 1 AS n', (err, rows) => { cb(err, { user_id: rows[0].n }); c.end(); });",
        "unused",
    );
    inv.limits.timeout_ms = 5_000;
    for i in 0..30 {
        expect(
            &format!("run {i}"),
            &run(&inv),
            &json!({"outcome": "success", "result": {"user_id": 1}}),
        );
    }
}
