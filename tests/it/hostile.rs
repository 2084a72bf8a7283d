//! Hostile scripts: each must end in a named outcome within its deadline plus one second (the
//! watchdog's guarantee, not a speed target), customdb must survive it, and a normal script must
//! run correctly right after it.

use crate::util::{block_on, expect, invocation, run};
use customdb::outcome::Outcome;
use customdb::script::Action;
use serde_json::json;

const NORMAL: &str = "function login(a, b, cb) { cb(null, { user_id: 'ok' }); }";

/// (name, script body run inside `login`, the outcome it must end with)
const HOSTILE: &[(&str, &str, Outcome)] = &[
    (
        "loop at top of the function",
        "while (true) {}",
        Outcome::Timeout,
    ),
    (
        "loop inside a nested function",
        "function spin() { for (;;) {} } spin();",
        Outcome::Timeout,
    ),
    (
        "loop inside forEach",
        "[1].forEach(() => { while (true) {} });",
        Outcome::Timeout,
    ),
    (
        "loop under try/catch",
        "try { while (true) {} } catch (e) {} cb(null, { user_id: 'escaped' });",
        Outcome::Timeout,
    ),
    (
        "loop in a promise job",
        "Promise.resolve().then(() => { while (true) {} });",
        Outcome::Timeout,
    ),
    (
        "loop in a timer",
        "setTimeout(() => { while (true) {} }, 1);",
        Outcome::Timeout,
    ),
    (
        "loop in an async function",
        "(async () => { await null; while (true) {} })();",
        Outcome::Timeout,
    ),
    (
        "deep recursion",
        "function r(n) { return r(n + 1) + 1; } r(0);",
        Outcome::Error,
    ),
    (
        "deep recursion through natives",
        "function r() { return [0].map(r); } r();",
        Outcome::Error,
    ),
    (
        "runtime nesting then String()",
        "let n = []; for (let i = 0; i < 200000; i++) n = [n]; String(n);",
        Outcome::Crashed,
    ),
    (
        "string doubling",
        "let s = 'x'; while (true) s += s;",
        Outcome::MemoryLimit,
    ),
    ("huge repeat", "'x'.repeat(2 ** 31);", Outcome::MemoryLimit),
    // One native call that grows slowly: the deadline stops it before memory does.
    (
        "array fill",
        "new Array(2 ** 30).fill(0);",
        Outcome::Timeout,
    ),
    // Buffer allocation failing under the ceiling is a catchable RangeError, as in Node.
    (
        "buffer push",
        "const a = []; for (;;) a.push(new Uint8Array(16 << 20));",
        Outcome::Error,
    ),
    (
        "object push",
        "const a = []; for (;;) a.push({ k: a.length, s: 'x'.repeat(64) + a.length });",
        Outcome::Timeout,
    ),
    (
        "sparse join",
        "const a = []; a.length = 2 ** 32 - 1; a.join(',');",
        Outcome::MemoryLimit,
    ),
    (
        "catastrophic regex",
        "/(a+)+$/.test('a'.repeat(40) + '!');",
        Outcome::Timeout,
    ),
    (
        "promise flood",
        "function p() { return Promise.resolve().then(p); } p();",
        Outcome::Timeout,
    ),
    // The pending-timer cap throws inside a timer: an uncaught exception, named by the cap.
    (
        "timer flood",
        "function t() { setTimeout(t, 0); setTimeout(t, 0); } t();",
        Outcome::Error,
    ),
    (
        "console flood",
        "for (;;) console.log('spam spam spam spam');",
        Outcome::OutputLimit,
    ),
    (
        "console flood under try/catch",
        "for (let i = 0; i < 1e6; i++) { try { console.log('x'.repeat(100)); } catch (e) {} } cb(null, { user_id: 'escaped' });",
        Outcome::OutputLimit,
    ),
    (
        "buffer above the cap",
        "new Uint8Array(1e9); cb(null, { user_id: 'no' });",
        Outcome::Error,
    ),
];

#[test]
fn hostile_scripts_end_in_named_outcomes() {
    let mut wrong = Vec::new();
    for &(name, body, outcome) in HOSTILE {
        let script = format!("function login(email, password, cb) {{ {body} }}");
        let mut inv = invocation(Action::Login, &script, json!(["a", "b"]));
        inv.limits.timeout_ms = 1_500;
        inv.limits.memory_bytes = 256 << 20;
        let exec = run(&inv);
        if exec.outcome != outcome {
            wrong.push(format!(
                "{name}: expected {outcome}, got {} ({:?})",
                exec.outcome, exec.error
            ));
        }
        assert!(
            exec.error.is_some(),
            "{name}: a limit names itself in the error"
        );
        assert!(
            exec.timings.total_ms <= inv.limits.timeout_ms as f64 + 1_000.0,
            "{name}: ended after {} ms, past the deadline plus one second",
            exec.timings.total_ms
        );
        let mut normal = invocation(Action::Login, NORMAL, json!(["a", "b"]));
        normal.limits.memory_bytes = inv.limits.memory_bytes;
        expect(
            name,
            &run(&normal),
            &json!({"outcome": "success", "result": {"user_id": "ok"}}),
        );
    }
    assert!(
        wrong.is_empty(),
        "hostile scripts ended wrongly:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn instruction_budget_is_its_own_outcome() {
    let mut inv = invocation(
        Action::Login,
        "function login(a, b, cb) { let n = 0; for (let i = 0; i < 1e8; i++) n += i; cb(null, { user_id: n }); }",
        json!(["a", "b"]),
    );
    inv.limits.instructions = 1_000_000;
    expect(
        "cpu",
        &run(&inv),
        &json!({"outcome": "cpu_limit", "error": {"name": "CpuLimitError"}}),
    );
}

/// (name, script body, what the probe must report back in `result.v`)
const PROBES: &[(&str, &str, &str)] = &[
    (
        "import()",
        "import('./secret.json').then(() => cb(null, { user_id: 1, v: 'loaded' }), (e) => cb(null, { user_id: 1, v: 'refused' }));",
        "refused",
    ),
    (
        "eval",
        "cb(null, { user_id: 1, v: typeof eval });",
        "undefined",
    ),
    (
        "Function constructor",
        "try { new Function('return 1')(); cb(null, { user_id: 1, v: 'ran' }); } catch (e) { cb(null, { user_id: 1, v: e.name }); }",
        "EvalError",
    ),
    (
        "function constructor via prototype",
        "try { (function () {}).constructor('return 1')(); cb(null, { user_id: 1, v: 'ran' }); } catch (e) { cb(null, { user_id: 1, v: e.name }); }",
        "EvalError",
    ),
    (
        "async function constructor",
        "try { (async function () {}).constructor('return 1'); cb(null, { user_id: 1, v: 'ran' }); } catch (e) { cb(null, { user_id: 1, v: e.name }); }",
        "EvalError",
    ),
    (
        "require('fs')",
        "try { require('fs'); cb(null, { user_id: 1, v: 'loaded' }); } catch (e) { cb(null, { user_id: 1, v: e.code + ' ' + e.message }); }",
        "MODULE_NOT_FOUND Cannot find module 'fs'. Modules available in customdb scripts: axios, bcrypt, bcryptjs, crypto, jsonwebtoken, mysql, pg, request, sqlite3, uuid",
    ),
    (
        "require('child_process')",
        "try { require('child_process'); cb(null, { user_id: 1, v: 'loaded' }); } catch (e) { cb(null, { user_id: 1, v: e.code }); }",
        "MODULE_NOT_FOUND",
    ),
    (
        "process",
        "cb(null, { user_id: 1, v: typeof process });",
        "undefined",
    ),
    (
        "SharedArrayBuffer and friends",
        "cb(null, { user_id: 1, v: [typeof SharedArrayBuffer, typeof Atomics, typeof WeakRef, typeof FinalizationRegistry].join() });",
        "undefined,undefined,undefined,undefined",
    ),
    (
        "no host helpers on the global",
        "cb(null, { user_id: 1, v: Object.getOwnPropertyNames(globalThis).filter((k) => /native|host|__/.test(k)).join() });",
        "",
    ),
];

#[test]
fn probes_find_no_ambient_authority() {
    for &(name, body, expected) in PROBES {
        let script = format!("function login(a, b, cb) {{ {body} }}");
        let exec = run(&invocation(Action::Login, &script, json!(["a", "b"])));
        expect(
            name,
            &exec,
            &json!({"outcome": "success", "result": {"v": expected}}),
        );
    }
}

#[test]
fn source_limits_are_checked_before_parsing() {
    let deep = format!(
        "function login(a, b, cb) {{ return {}1{}; }}",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    expect(
        "deep source",
        &run(&invocation(Action::Login, &deep, json!(["a", "b"]))),
        &json!({"outcome": "invalid_script", "error": {"message": "~nest deeper than 200"}}),
    );
    let big = format!(
        "function login(a, b, cb) {{ /* {} */ }}",
        "x".repeat(100 * 1024)
    );
    expect(
        "big source",
        &run(&invocation(Action::Login, &big, json!(["a", "b"]))),
        &json!({"outcome": "invalid_script", "error": {"message": "~above the 102400 byte limit"}}),
    );
}

/// A pool of two workers where a tenant may keep one busy, private to one test.
fn small_pool() -> customdb::isolation::Pool {
    customdb::isolation::Pool::new(customdb::isolation::PoolConfig {
        max_workers: 2,
        max_busy_per_tenant: 1,
        ..customdb::isolation::PoolConfig::new(crate::util::customdb_exe())
    })
}

#[test]
fn a_tenant_whose_scripts_hang_leaves_workers_to_the_others() {
    let pool = small_pool();
    let hang =
        "function login(a, b, cb) { setTimeout(function () { cb(null, { user_id: 1 }); }, 3000); }";
    let quick = "function login(a, b, cb) { cb(null, { user_id: 2 }); }";
    let mut noisy = invocation(Action::Login, hang, json!(["a", "b"]));
    noisy.tenant = "noisy".into();
    let mut calm = invocation(Action::Login, quick, json!(["a", "b"]));
    calm.tenant = "calm".into();
    block_on(async {
        use futures::StreamExt;
        let mut hanging: futures::stream::FuturesUnordered<_> =
            (0..3).map(|_| pool.run(&noisy)).collect();
        // The calm tenant's run ends before any of the noisy tenant's: it never waits for them.
        tokio::select! {
            calm = pool.run(&calm) => {
                assert_eq!(calm.unwrap().outcome, Outcome::Success);
            }
            _ = hanging.next() => panic!("the calm tenant waited for the noisy tenant's runs"),
        }
        while let Some(run) = hanging.next().await {
            assert_eq!(run.unwrap().outcome, Outcome::Success);
        }
    });
}

#[test]
fn an_abandoned_run_gives_its_worker_back() {
    let pool = small_pool();
    let hang =
        "function login(a, b, cb) { setTimeout(function () { cb(null, { user_id: 1 }); }, 5000); }";
    let quick = "function login(a, b, cb) { cb(null, { user_id: 2 }); }";
    block_on(async {
        // Three runs whose callers give up (an HTTP client that went away drops the future).
        for _ in 0..3 {
            let inv = invocation(Action::Login, hang, json!(["a", "b"]));
            let abandoned =
                tokio::time::timeout(std::time::Duration::from_millis(200), pool.run(&inv)).await;
            assert!(abandoned.is_err(), "the run was still going");
        }
        let inv = invocation(Action::Login, quick, json!(["a", "b"]));
        let run = tokio::time::timeout(std::time::Duration::from_secs(10), pool.run(&inv))
            .await
            .expect("the pool still has workers after abandoned runs");
        assert_eq!(run.unwrap().outcome, Outcome::Success);
    });
}

#[test]
fn work_a_run_leaves_behind_ends_with_it_and_floods_are_bounded() {
    let login = |body: &str| format!("function login(email, password, cb) {{ {body} }}");
    // Costs above the server's ceiling are refused by name, hashing and comparing alike.
    for body in [
        "require('bcrypt').hash('x', 31, cb);",
        "require('bcrypt').compare('x', '$2b$31$abcdefghijklmnopqrstuu' + 'a'.repeat(31), cb);",
        "require('crypto').pbkdf2('x', 's', 5000000, 32, 'sha256', cb);",
    ] {
        let exec = run(&invocation(Action::Login, &login(body), json!(["a", "b"])));
        let error = exec.error.clone().unwrap_or_default();
        assert_eq!(
            (exec.outcome, error.name.as_deref()),
            (Outcome::Error, Some("RangeError")),
            "{body}: {error:?}"
        );
        let message = error.message.unwrap_or_default();
        assert!(
            message.contains("above this server's limit") && message.contains("serve --max-"),
            "{body}: {message}"
        );
    }

    // A hash still running when the script calls back: the run succeeds, says so, and its
    // worker is stopped — the next run of the connection starts cold.
    let mut inv = invocation(
        Action::Login,
        &login("require('bcrypt').hash('x', 14, function () {}); cb(null, { user_id: 'done' });"),
        json!(["a", "b"]),
    );
    let exec = run(&inv);
    expect(
        "left behind",
        &exec,
        &json!({"outcome": "success", "result": {"user_id": "done"}}),
    );
    assert!(
        exec.warnings.iter().any(|w| w.contains("still running")),
        "{:?}",
        exec.warnings
    );
    inv.source = NORMAL.into();
    let next = run(&inv);
    expect("after", &next, &json!({"outcome": "success"}));
    assert!(
        !next.timings.warm,
        "the worker that held the hash was stopped"
    );

    // A million callbacks are one counted warning; a huge error message is cut.
    let exec = run(&invocation(
        Action::Login,
        &login("for (var i = 0; i < 1000000; i++) cb(null, { user_id: 'x' });"),
        json!(["a", "b"]),
    ));
    assert_eq!(
        exec.warnings,
        vec!["callback was called more than once; only the first call counts (999999 times)"]
    );
    assert!(serde_json::to_vec(&exec).unwrap().len() < 4096);
    let exec = run(&invocation(
        Action::Login,
        &login("cb(new Error('x'.repeat(1 << 22)));"),
        json!(["a", "b"]),
    ));
    let message = exec.error.unwrap().message.unwrap();
    assert_eq!(
        message.chars().count(),
        8 * 1024 + 1,
        "cut, with an ellipsis"
    );
}
