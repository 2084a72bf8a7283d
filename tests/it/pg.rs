//! The `pg` module against the real PostgreSQL server scripts/test.sh starts: node-postgres's
//! three ways to connect, its type conventions, result and error shapes.

use crate::util::{expect, host_port, invocation, run, server_url, unique};
use customdb::script::Action;
use serde_json::{Value, json};

fn login(body: &str, table: &str) -> customdb::script::Invocation {
    let script = format!(
        "function login(email, password, cb) {{ const pg = require('pg'); const url = configuration.PG_URL; const T = configuration.TABLE; {body} }}"
    );
    let mut inv = invocation(Action::Login, &script, json!(["a@example.com", "pw"]));
    inv.configuration
        .insert("PG_URL".into(), server_url("CUSTOMDB_TEST_PG"));
    inv.configuration.insert("TABLE".into(), table.into());
    // The server, and port 1 of loopback (nothing listens there), are on the allow-list.
    // Run as `customdb try` runs it: the test servers listen on loopback.
    inv.policy.internal = customdb::script::Internal::Listed;
    inv.policy.egress = vec![
        host_port(&server_url("CUSTOMDB_TEST_PG")),
        "127.0.0.1:1".into(),
    ];
    inv
}

/// (case, script body, expected subset of the Execution). Each case gets a fresh table `T`
/// (id serial, email text unique, n int) created by the first case's setup.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "legacy pg.connect with done, as Auth0's template",
            "pg.connect(url, function (err, client, done) { if (err) return cb(err); \
               client.query('INSERT INTO ' + T + ' (email, n) VALUES ($1, $2) RETURNING id', [email, 7], function (err, r) { done(); \
                 cb(err, { user_id: r.rows[0].id, command: r.command, rowCount: r.rowCount, fields: r.fields.map((f) => f.name) }); }); });",
            json!({"outcome": "success", "result": {"user_id": 1, "command": "INSERT", "rowCount": 1, "fields": ["id"]}}),
        ),
        (
            "node-postgres types",
            "pg.connect(url, (err, client, done) => client.query(\"SELECT 1::int2 a, 2::int4 b, 3::int8 c, 1.5::float8 d, 12.340::numeric e, true f, 'x'::text g, '{\\\"k\\\":[1]}'::jsonb h, '2020-01-02T03:04:05.678Z'::timestamptz i, '\\\\x6869'::bytea j, NULL k, '2020-01-02'::date l, '-0.05'::numeric m, 10000.5::numeric n, '8a1d5b36-3a8b-4b8e-9d2a-0e4f1f1f1f1f'::uuid o\", (err, r) => { done(); if (err) return cb(err); const x = r.rows[0]; \
               cb(null, { user_id: 1, a: x.a, b: x.b, c: x.c, d: x.d, e: x.e, f: x.f, g: x.g, h: x.h, i: x.i instanceof Date && x.i.toISOString(), j: Buffer.isBuffer(x.j) && x.j.toString(), k: x.k, l: x.l.toISOString(), m: x.m, n: x.n, o: x.o }); }));",
            json!({"outcome": "success", "result": {"a": 1, "b": 2, "c": "3", "d": 1.5, "e": "12.340", "f": true, "g": "x", "h": {"k": [1]}, "i": "2020-01-02T03:04:05.678Z", "j": "hi", "k": null, "l": "2020-01-02T00:00:00.000Z", "m": "-0.05", "n": "10000.5", "o": "8a1d5b36-3a8b-4b8e-9d2a-0e4f1f1f1f1f"}}),
        ),
        (
            "parameters are sent as text and typed by the server",
            "const c = new pg.Client(url); c.connect().then(() => c.query('SELECT $1::int + $2::int AS n, $3 AS s, $4::text IS NULL AS z, $5::jsonb AS j, $6::timestamptz AS t', [2, '3', \"o'neil\", null, { a: 1 }, new Date(0)])).then((r) => { c.end(); const x = r.rows[0]; cb(null, { user_id: 1, n: x.n, s: x.s, z: x.z, j: x.j, t: x.t.getTime() }); }, cb);",
            json!({"outcome": "success", "result": {"n": 5, "s": "o'neil", "z": true, "j": {"a": 1}, "t": 0}}),
        ),
        (
            "unique violation keeps node-postgres's fields",
            "const p = new pg.Pool({ connectionString: url }); p.query('INSERT INTO ' + T + ' (email) VALUES ($1)', [email]).then(() => p.query('INSERT INTO ' + T + ' (email) VALUES ($1)', [email])).catch((e) => cb(null, { user_id: 1, code: e.code, constraint: e.constraint, detail: e.detail, message: e.message }));",
            json!({"outcome": "success", "result": {"code": "23505", "constraint": "~_email_key", "detail": "Key (email)=(a@example.com) already exists.", "message": "~duplicate key value violates unique constraint"}}),
        ),
        (
            "update rowCount and rowMode array",
            "(async () => { const p = new pg.Pool(url); await p.query('INSERT INTO ' + T + ' (email, n) VALUES ($1, 1), ($2, 1)', ['x@x', 'y@x']); \
               const u = await p.query('UPDATE ' + T + ' SET n = n + 1 WHERE n = 1'); \
               const a = await p.query({ text: 'SELECT email, n FROM ' + T + ' ORDER BY email', rowMode: 'array' }); \
               const none = await p.query('SELECT * FROM ' + T + ' WHERE email = $1', ['nobody']); \
               cb(null, { user_id: 1, updated: u.rowCount, command: u.command, rows: a.rows, empty: none.rows.length, fields: none.fields.length }); })().catch(cb);",
            json!({"outcome": "success", "result": {"updated": 2, "command": "UPDATE", "rows": [["x@x", 2], ["y@x", 2]], "empty": 0, "fields": 4}}),
        ),
        (
            "a syntax error is an error with its SQLSTATE",
            "pg.connect(url, (err, client, done) => client.query('SELEC 1', (e) => { done(); cb(null, { user_id: 1, code: e.code, position: e.message }); }));",
            json!({"outcome": "success", "result": {"code": "42601", "position": "syntax error at or near \"SELEC\""}}),
        ),
        (
            "a server that is not there is ECONNREFUSED",
            "pg.connect('postgres://u:p@127.0.0.1:1/db', (err) => cb(null, { user_id: 1, code: err.code, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "ECONNREFUSED", "message": "connect ECONNREFUSED 127.0.0.1:1"}}),
        ),
        (
            "a server not on the allow-list is refused before connecting",
            "pg.connect('postgres://u:p@10.1.2.3:5432/db', (err) => cb(null, { user_id: 1, code: err.code, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "EGRESS_DENIED", "message": "~egress to 10.1.2.3:5432 is not allowed"}}),
        ),
        (
            "a name is not its loopback address",
            "pg.connect(url.replace('127.0.0.1', 'localhost'), (err) => cb(null, { user_id: 1, code: err.code }));",
            json!({"outcome": "success", "result": {"code": "EGRESS_DENIED"}}),
        ),
        (
            "Unix sockets are refused",
            "pg.connect({ host: '/var/run/postgresql', user: 'postgres' }, (err) => cb(null, { user_id: 1, code: err.code, message: err.message }));",
            json!({"outcome": "success", "result": {"code": "EGRESS_DENIED", "message": "~Unix socket"}}),
        ),
        (
            "a wrong password is the server's error 28P01",
            "pg.connect(url.replace(':customdb@', ':wrong@'), (err) => cb(null, { user_id: 1, code: err.code }));",
            json!({"outcome": "success", "result": {"code": "28P01"}}),
        ),
        (
            "a query after end fails clearly",
            "const c = new pg.Client(url); c.connect(() => c.end(() => c.query('SELECT 1', (e) => cb(null, { user_id: 1, message: e.message }))));",
            json!({"outcome": "success", "result": {"message": "Client was closed and is not queryable"}}),
        ),
    ]
}

#[test]
fn pg_module_against_postgresql() {
    for (name, body, expected) in cases() {
        let table = unique("pg_users");
        let create = format!(
            "pg.connect(url, (e, c, done) => {{ if (e) return cb(e); c.query('CREATE TABLE ' + T + ' (id serial PRIMARY KEY, email text UNIQUE, n int, created timestamptz DEFAULT now())', (e2) => {{ done(); if (e2) return cb(e2); {body} }}); }});"
        );
        expect(name, &run(&login(&create, &table)), &expected);
    }
}

#[test]
fn the_wall_clock_covers_waiting_on_the_database() {
    let mut inv = login(
        "pg.connect(url, (e, c, done) => c.query('SELECT pg_sleep(30)', () => { done(); cb(null, { user_id: 1 }); }));",
        "unused",
    );
    inv.limits.timeout_ms = 1_000;
    expect(
        "pg_sleep beyond the limit",
        &run(&inv),
        &json!({"outcome": "timeout"}),
    );
}
