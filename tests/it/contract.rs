//! The Auth0 contract, row by row (SPEC §1): each action's success and negative answers, each
//! error class's fields, callback rules, async scripts, thrown values, context.

use crate::util::{expect, invocation, run, run_script};
use customdb::outcome::Outcome;
use customdb::script::Action;
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    action: Action,
    script: &'static str,
    args: Value,
    expect: Value,
}

fn cases() -> Vec<Case> {
    use Action::*;
    vec![
        Case {
            name: "login success",
            action: Login,
            args: json!(["a@x.com", "pw"]),
            script: "function login(email, password, callback) { callback(null, { user_id: 1, email: email }); }",
            expect: json!({"outcome": "success", "result": {"user_id": 1, "email": "a@x.com"}, "error": null}),
        },
        Case {
            name: "login callback() is not found",
            action: Login,
            args: json!(["a@x.com", "pw"]),
            script: "function login(email, password, callback) { callback(); }",
            expect: json!({"outcome": "not_found", "result": null}),
        },
        Case {
            name: "login callback(null, null) is not found",
            action: Login,
            args: json!(["a@x.com", "pw"]),
            script: "function login(email, password, callback) { callback(null, null); }",
            expect: json!({"outcome": "not_found"}),
        },
        Case {
            name: "WrongUsernameOrPasswordError fields",
            action: Login,
            args: json!(["a@x.com", "pw"]),
            script: "function login(email, password, callback) { callback(new WrongUsernameOrPasswordError(email, 'nope')); }",
            expect: json!({"outcome": "error", "error": {"name": "WrongUsernameOrPasswordError", "code": "wrongusernameorpassword",
                "message": "nope", "user_id": "a@x.com", "status_code": 400, "stack": "~WrongUsernameOrPasswordError: nope\n    at "}}),
        },
        Case {
            name: "ValidationError fields",
            action: Create,
            args: json!([{"email": "a@x.com", "password": "pw"}]),
            script: "function create(user, callback) { callback(new ValidationError('user_exists', 'the user already exists')); }",
            expect: json!({"outcome": "error", "error": {"name": "ValidationError", "code": "user_exists",
                "message": "the user already exists", "description": "the user already exists"}}),
        },
        Case {
            name: "UnauthorizedError fields",
            action: Login,
            args: json!(["a@x.com", "pw"]),
            script: "function login(email, password, callback) { callback(new UnauthorizedError('account locked')); }",
            expect: json!({"outcome": "error", "error": {"name": "UnauthorizedError", "code": "unauthorized",
                "description": "account locked", "status_code": 401}}),
        },
        Case {
            name: "error classes are real Error subclasses",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { const e = new ValidationError('c', 'm'); cb(null, { user_id: 1, isError: e instanceof Error, isOwn: e instanceof ValidationError, hasStack: typeof e.stack === 'string' }); }",
            expect: json!({"outcome": "success", "result": {"isError": true, "isOwn": true, "hasStack": true}}),
        },
        Case {
            name: "plain Error keeps only whitelisted fields",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { const e = new Error('boom'); e.secret = 'x'; e.code = 'E1'; cb(e); }",
            expect: json!({"outcome": "error", "error": {"name": "Error", "message": "boom", "code": "E1", "secret": null}}),
        },
        Case {
            name: "callback with a string error becomes {message}",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { cb('just text'); }",
            expect: json!({"outcome": "error", "error": {"message": "just text", "name": null}}),
        },
        Case {
            name: "thrown string becomes {message}",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { throw 'thrown text'; }",
            expect: json!({"outcome": "error", "error": {"message": "thrown text", "name": null}}),
        },
        Case {
            name: "synchronous throw is an error",
            action: GetUser,
            args: json!(["a"]),
            script: "function getUser(a, cb) { null.x; }",
            expect: json!({"outcome": "error", "error": {"name": "TypeError"}}),
        },
        Case {
            name: "get_user success",
            action: GetUser,
            args: json!(["a@x.com"]),
            script: "function getByEmail(email, callback) { callback(null, { user_id: 'u1', email: email, nickname: 'a' }); }",
            expect: json!({"outcome": "success", "result": {"user_id": "u1"}}),
        },
        Case {
            name: "get_user not found",
            action: GetUser,
            args: json!(["a@x.com"]),
            script: "function getByEmail(email, callback) { callback(null); }",
            expect: json!({"outcome": "not_found"}),
        },
        Case {
            name: "create success receives the user",
            action: Create,
            args: json!([{"email": "a@x.com", "password": "pw", "tenant": "t", "client_id": "c", "connection": "db"}]),
            script: "function create(user, callback) { if (user.email !== 'a@x.com' || user.connection !== 'db') throw new Error('bad user'); callback(null); }",
            expect: json!({"outcome": "success", "result": null}),
        },
        Case {
            name: "verify true",
            action: Verify,
            args: json!(["a@x.com"]),
            script: "function verify(email, callback) { callback(null, true); }",
            expect: json!({"outcome": "success", "result": true}),
        },
        Case {
            name: "verify false",
            action: Verify,
            args: json!(["a@x.com"]),
            script: "function verify(email, callback) { callback(null, false); }",
            expect: json!({"outcome": "false", "result": false}),
        },
        Case {
            name: "change_password true",
            action: ChangePassword,
            args: json!(["a@x.com", "new"]),
            script: "function changePassword(email, newPassword, callback) { callback(null, newPassword === 'new'); }",
            expect: json!({"outcome": "success", "result": true}),
        },
        Case {
            name: "change_password with last_password_reset",
            action: ChangePassword,
            args: json!(["a@x.com", "new"]),
            script: "function changePassword(email, p, callback) { callback(null, { last_password_reset: '2024-05-01T00:00:00.000Z' }); }",
            expect: json!({"outcome": "success", "result": {"last_password_reset": "2024-05-01T00:00:00.000Z"}}),
        },
        Case {
            name: "change_password false",
            action: ChangePassword,
            args: json!(["a@x.com", "new"]),
            script: "function changePassword(email, p, callback) { callback(null, false); }",
            expect: json!({"outcome": "false"}),
        },
        Case {
            name: "delete success gets the bare id",
            action: Delete,
            args: json!(["123"]),
            script: "function remove(id, callback) { if (id !== '123') throw new Error(id); callback(null); }",
            expect: json!({"outcome": "success"}),
        },
        Case {
            name: "change_email true with verified flag",
            action: ChangeEmail,
            args: json!(["a@x.com", "b@x.com", true]),
            script: "function changeEmail(email, newEmail, verified, callback) { callback(null, verified === true && newEmail === 'b@x.com'); }",
            expect: json!({"outcome": "success", "result": true}),
        },
        Case {
            name: "change_email false",
            action: ChangeEmail,
            args: json!(["a@x.com", "b@x.com", false]),
            script: "function changeEmail(email, newEmail, verified, callback) { callback(null, false); }",
            expect: json!({"outcome": "false"}),
        },
        Case {
            name: "callback twice: first wins, second is a warning",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { cb(null, { user_id: 'first' }); cb(null, { user_id: 'second' }); }",
            expect: json!({"outcome": "success", "result": {"user_id": "first"}, "warnings": ["~more than once"]}),
        },
        Case {
            name: "never calling back is a timeout",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { }",
            expect: json!({"outcome": "timeout", "error": {"message": "~without calling callback"}}),
        },
        Case {
            name: "async function resolving through the callback",
            action: Login,
            args: json!(["a", "b"]),
            script: "async function login(a, b, cb) { const v = await Promise.resolve(7); return cb(null, { user_id: v }); }",
            expect: json!({"outcome": "success", "result": {"user_id": 7}}),
        },
        Case {
            name: "async function that rejects",
            action: Login,
            args: json!(["a", "b"]),
            script: "async function login(a, b, cb) { await null; throw new UnauthorizedError('blocked'); }",
            expect: json!({"outcome": "error", "error": {"name": "UnauthorizedError", "description": "blocked"}}),
        },
        Case {
            name: "anonymous function expression",
            action: Login,
            args: json!(["a", "b"]),
            script: "function (a, b, cb) { cb(null, { user_id: 'anon' }); }",
            expect: json!({"outcome": "success", "result": {"user_id": "anon"}}),
        },
        Case {
            name: "callback from setTimeout",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { setTimeout(function (x) { cb(null, { user_id: x }); }, 5, 'later'); }",
            expect: json!({"outcome": "success", "result": {"user_id": "later"}}),
        },
        Case {
            name: "clearTimeout cancels",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { const t = setTimeout(() => cb(new Error('fired')), 5); clearTimeout(t); setImmediate(() => cb(null, { user_id: 1 })); }",
            expect: json!({"outcome": "success"}),
        },
        Case {
            name: "exception in a timer is an error",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { setTimeout(() => { throw new Error('in timer'); }, 1); }",
            expect: json!({"outcome": "error", "error": {"message": "in timer"}}),
        },
        Case {
            name: "syntax error names line and column",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) {\n  var x = ;\n}",
            expect: json!({"outcome": "invalid_script", "error": {"name": "SyntaxError", "message": "~line 2"}}),
        },
        Case {
            name: "two functions are not one script",
            action: Login,
            args: json!(["a", "b"]),
            script: "function a() {}\nfunction b() {}",
            expect: json!({"outcome": "invalid_script"}),
        },
        Case {
            name: "a non-function expression is refused",
            action: Login,
            args: json!(["a", "b"]),
            script: "42",
            expect: json!({"outcome": "invalid_script", "error": {"message": "~single function expression"}}),
        },
        Case {
            name: "console captured with levels",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { console.log('n=%d', 5); console.warn({ k: [1, 'x'] }); console.error(new Error('e1')); cb(null, { user_id: 1 }); }",
            expect: json!({"outcome": "success", "console": [
                {"level": "log", "message": "n=5"}, {"level": "warn", "message": "{ k: [ 1, 'x' ] }"},
                {"level": "error", "message": "~Error: e1"}]}),
        },
        Case {
            name: "password is redacted from console and result",
            action: Login,
            args: json!(["a@x.com", "hunter22"]),
            script: "function login(a, p, cb) { console.log('pw is ' + p); cb(null, { user_id: 1, echo: p }); }",
            expect: json!({"outcome": "success", "console": [{"message": "pw is [REDACTED]"}], "result": {"echo": "[REDACTED]"}}),
        },
        Case {
            name: "result conversion follows JSON.stringify",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { cb(null, { user_id: 1, d: new Date(0), f: function () {}, u: undefined, n: NaN, arr: [undefined, 1], nested: { t: true } }); }",
            expect: json!({"outcome": "success", "result": {"d": "1970-01-01T00:00:00.000Z", "f": null, "u": null, "n": null, "arr": [null, 1], "nested": {"t": true}}}),
        },
        Case {
            name: "cyclic result is refused clearly",
            action: Login,
            args: json!(["a", "b"]),
            script: "function login(a, b, cb) { const o = { user_id: 1 }; o.self = o; cb(null, o); }",
            expect: json!({"outcome": "error", "error": {"name": "InvalidResultError", "message": "~cycle"}}),
        },
    ]
}

#[test]
fn contract_table() {
    for case in cases() {
        let exec = run_script(case.action, case.script, case.args);
        expect(case.name, &exec, &case.expect);
    }
}

#[test]
fn context_is_inserted_before_the_callback() {
    let script = "function login(email, password, context, callback) { callback(null, { user_id: 1, org: context.organization.name }); }";
    let mut inv = invocation(Action::Login, script, json!(["a@x.com", "pw"]));
    inv.context = Some(json!({"organization": {"id": "org_1", "name": "Acme"}}));
    expect(
        "context",
        &run(&inv),
        &json!({"outcome": "success", "result": {"org": "Acme"}}),
    );

    let remove = "function remove(id, context, callback) { callback(null, Object.keys(context).length === 0 ? undefined : 'x'); }";
    let mut inv = invocation(Action::Delete, remove, json!(["42"]));
    inv.context = Some(json!({"organization": {"id": "org_1"}}));
    expect("delete gets {}", &run(&inv), &json!({"outcome": "success"}));
}

#[test]
fn configuration_is_frozen_strings() {
    let script = "function login(a, b, cb) { 'use strict'; let threw = false; try { configuration.DB = 'x'; } catch (e) { threw = true; } cb(null, { user_id: 1, db: configuration.DB, threw: threw, frozen: Object.isFrozen(configuration) }); }";
    let mut inv = invocation(Action::Login, script, json!(["a", "b"]));
    inv.configuration
        .insert("DB".into(), "postgres://db/acme".into());
    expect(
        "configuration",
        &run(&inv),
        &json!({"outcome": "success", "result": {"db": "postgres://db/acme", "threw": true, "frozen": true}}),
    );
}

#[test]
fn global_persists_within_a_connection_but_not_across() {
    // `global` lives in a worker, as in Auth0's: a pool of one worker, private to this test,
    // so that other tests' runs (and the workers their limits stop) never come between.
    let pool = customdb::isolation::Pool::new(customdb::isolation::PoolConfig {
        max_workers: 1,
        max_busy_per_tenant: 1,
        ..customdb::isolation::PoolConfig::new(crate::util::customdb_exe())
    });
    let run = |inv: &customdb::script::Invocation| crate::util::block_on(pool.run(inv)).unwrap();
    let script = "function login(a, b, cb) { global.count = (global.count || 0) + 1; cb(null, { user_id: 1, count: global.count }); }";
    let first = invocation(Action::Login, script, json!(["a", "b"]));
    let counts: Vec<Value> = (0..3)
        .map(|_| run(&first).result.unwrap()["count"].clone())
        .collect();
    assert_eq!(
        counts,
        vec![json!(1), json!(2), json!(3)],
        "global persists between runs of one connection"
    );
    let other = invocation(Action::Login, script, json!(["a", "b"]));
    assert_eq!(
        run(&other).result.unwrap()["count"],
        json!(1),
        "another connection starts with its own global"
    );
}

#[test]
fn a_stale_callback_from_an_earlier_run_answers_nothing() {
    let script = "function login(a, b, cb) { if (global.old) { global.old(null, { user_id: 'stale' }); } global.old = cb; if (a === 'second') return; cb(null, { user_id: 'fresh' }); }";
    let mut inv = invocation(Action::Login, script, json!(["first", "b"]));
    assert_eq!(run(&inv).outcome, Outcome::Success);
    inv.args = vec![json!("second"), json!("b")];
    let exec = run(&inv);
    assert_eq!(
        exec.outcome,
        Outcome::Timeout,
        "the old callback must not answer the new run: {exec:?}"
    );
}

#[test]
fn configuration_values_never_reach_the_transcript_or_errors() {
    // Secrets go (a password inside a URL, any value whose key is not plainly a name);
    // names a person needs in an error (a file, a host, a database) stay.
    let script = "function login(a, b, cb) { console.log('connecting to', configuration.DB, 'port', configuration.PORT, 'with', configuration.API_TOKEN); cb(new Error('cannot open ' + configuration.DB_FILE + ' or reach ' + configuration.DB)); }";
    let mut inv = invocation(Action::Login, script, json!(["a", "b"]));
    inv.configuration
        .insert("DB".into(), "postgres://app:s3cret@db/acme".into());
    inv.configuration.insert("PORT".into(), "5432".into());
    inv.configuration
        .insert("API_TOKEN".into(), "tok-0123456789".into());
    inv.configuration
        .insert("DB_FILE".into(), "legacy-users.db".into());
    expect(
        "configuration redacted",
        &run(&inv),
        &json!({"outcome": "error",
                "console": [{"message": "connecting to postgres://app:[REDACTED]@db/acme port 5432 with [REDACTED]"}],
                "error": {"message": "cannot open legacy-users.db or reach postgres://app:[REDACTED]@db/acme"}}),
    );
}

/// Every lazily installed global keeps working in a function that first touched it: called
/// again in the same run, after a rejection, and in later warm runs (the second `fetch` used
/// to throw "class constructor cannot be invoked without 'new'").
#[test]
fn lazy_globals_work_every_time_they_are_used() {
    let uses = [
        ("Buffer", "Buffer.from('hi').toString('base64')"),
        ("TextEncoder", "new TextEncoder().encode('hi').length"),
        (
            "TextDecoder",
            "new TextDecoder().decode(new Uint8Array([104, 105]))",
        ),
        ("atob", "atob('aGk=')"),
        ("btoa", "btoa('hi')"),
        (
            "URL",
            "new URL('https://a.example/x?y=1').searchParams.get('y')",
        ),
        ("URLSearchParams", "new URLSearchParams('a=1').get('a')"),
        ("Headers", "new Headers({ a: 'b' }).get('a')"),
        ("Response", "typeof Response"),
        (
            "fetch",
            "typeof fetch('http://not-listed.example/').catch(() => {})",
        ),
    ];
    for (name, expr) in uses {
        let script = format!(
            "function login(email, password, callback) {{
                function use() {{ return String({expr}); }}
                const seen = [use(), use()];
                fetch('http://not-listed.example/').catch((e) => {{
                    seen.push(use());
                    return fetch('http://not-listed.example/');
                }}).catch((e) => {{
                    seen.push(e.message, e.cause.code);
                    callback(null, {{ user_id: 1, seen: seen }});
                }});
            }}"
        );
        let inv = invocation(Action::Login, &script, json!(["a@x.com", "pw"]));
        let first = run(&inv);
        // The shared pool may hand a later run to another worker (cold) while other tests
        // keep the first one busy: the first warm run is the one that matters.
        let again = (0..8)
            .map(|_| run(&inv))
            .find(|e| e.timings.warm)
            .unwrap_or_else(|| panic!("{name}: no later run was warm"));
        for exec in [first, again] {
            let seen = exec
                .result
                .as_ref()
                .and_then(|r| r["seen"].as_array().cloned());
            let seen = seen.unwrap_or_else(|| panic!("{name}: {exec:?}"));
            assert_eq!(seen[0], seen[1], "{name}: {seen:?}");
            assert_eq!(seen[0], seen[2], "{name} after a rejection: {seen:?}");
            assert_eq!(seen[3], "fetch failed", "{name}: {seen:?}");
            assert_eq!(seen[4], "EGRESS_DENIED", "{name}: {seen:?}");
        }
    }
}
