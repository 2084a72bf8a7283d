//! Many runs of one tenant in flight in one worker at once, interleaved on its event loop:
//! they share their connection's `global` as Node's runs do, keep their own limits, and a run
//! that breaks a limit or crashes the worker fails only itself by its limit — its siblings end
//! as `interrupted`, and other tenants see nothing.

use crate::util::{block_on, customdb_exe, invocation};
use customdb::isolation::{Pool, PoolConfig};
use customdb::outcome::{Execution, Outcome};
use customdb::script::{Action, Invocation};
use futures::future::join_all;
use serde_json::json;

/// One worker for each tenant, however many runs it has in flight.
fn one_worker_each() -> Pool {
    Pool::new(PoolConfig {
        max_workers: 4,
        max_busy_per_tenant: 1,
        ..PoolConfig::new(customdb_exe())
    })
}

fn of(tenant: &str, connection: &str, source: &str) -> Invocation {
    let mut inv = invocation(Action::Login, source, json!(["a", "b"]));
    inv.tenant = tenant.into();
    inv.connection = connection.into();
    inv
}

/// Waits `ms` on a timer, then answers with how many runs of its connection were waiting at
/// once at most (counted in `global`).
fn waiting(ms: u64) -> String {
    format!(
        "function login(a, b, cb) {{ global.now = (global.now || 0) + 1; global.most = Math.max(global.most || 0, global.now); setTimeout(function () {{ global.now -= 1; cb(null, {{ user_id: 'w', most: global.most }}); }}, {ms}); }}"
    )
}

async fn runs(pool: &Pool, invs: &[Invocation]) -> Vec<Execution> {
    join_all(
        invs.iter()
            .map(|inv| async { pool.run(inv).await.unwrap() }),
    )
    .await
}

#[test]
fn runs_of_one_connection_interleave_in_one_worker_and_share_its_global() {
    let pool = one_worker_each();
    block_on(async {
        let invs: Vec<Invocation> = (0..32).map(|_| of("t", "db", &waiting(1_000))).collect();
        let done = runs(&pool, &invs).await;
        let most = done
            .iter()
            .map(|e| {
                assert_eq!(e.outcome, Outcome::Success, "{e:?}");
                e.result.as_ref().unwrap()["most"].as_u64().unwrap()
            })
            .max()
            .unwrap();
        assert_eq!(
            most, 32,
            "all 32 runs waited at once, in one worker, on one global"
        );
        // Another connection of the same tenant has a global of its own.
        let other = pool.run(&of("t", "other", &waiting(1))).await.unwrap();
        assert_eq!(other.result.unwrap()["most"], 1);
    });
}

/// Runs `culprit` in `tenant` while eight siblings of it wait on timers and a calm tenant's
/// run waits too; returns the culprit's execution and its siblings'.
fn among_siblings(culprit: &str, limits: impl Fn(&mut Invocation)) -> (Execution, Vec<Execution>) {
    let pool = one_worker_each();
    block_on(async {
        let mut siblings: Vec<Invocation> =
            (0..8).map(|_| of("t", "db", &waiting(2_000))).collect();
        let mut culprit = of("t", "db", culprit);
        for inv in siblings.iter_mut().chain(std::iter::once(&mut culprit)) {
            limits(inv);
        }
        let calm = of("calm", "db", &waiting(1_500));
        let (siblings, culprit, calm) = tokio::join!(
            runs(&pool, &siblings),
            async {
                // Sent once the siblings are waiting on their timers.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                pool.run(&culprit).await.unwrap()
            },
            async { pool.run(&calm).await.unwrap() }
        );
        assert_eq!(
            calm.outcome,
            Outcome::Success,
            "another tenant saw it: {calm:?}"
        );
        // The tenant's next run is served again.
        let after = pool.run(&of("t", "db", &waiting(1))).await.unwrap();
        assert_eq!(after.outcome, Outcome::Success, "{after:?}");
        (culprit, siblings)
    })
}

/// The message of a run's error (every run these tests check failed).
fn message(e: &Execution) -> &str {
    e.error.as_ref().unwrap().message.as_deref().unwrap()
}

fn assert_interrupted(siblings: &[Execution]) {
    for s in siblings {
        assert_eq!(s.outcome, Outcome::Interrupted, "{s:?}");
        let error = s.error.as_ref().unwrap();
        assert_eq!(error.name.as_deref(), Some("InterruptedError"), "{s:?}");
        assert!(message(s).contains("another run"), "{s:?}");
    }
}

#[test]
fn a_synchronous_loop_among_concurrent_runs_is_stopped_long_before_its_budget() {
    // Its budget (2e9 instructions) would hold the thread for seconds: the watchdog stops it.
    let (culprit, siblings) =
        among_siblings("function login(a, b, cb) { while (true) {} }", |_| {});
    assert_eq!(culprit.outcome, Outcome::CpuLimit, "{culprit:?}");
    assert!(
        message(&culprit).contains("while other runs"),
        "{culprit:?}"
    );
    assert_interrupted(&siblings);
}

#[test]
fn a_promise_flood_among_concurrent_runs_is_stopped_as_a_synchronous_loop_is() {
    // Each job is a short slice that queues the next (and keeps nothing: the heap does not
    // grow), so the loop never pauses: the siblings' timers would wait for the flood's deadline.
    let (culprit, siblings) = among_siblings(
        "function login(a, b, cb) { function p() { Promise.resolve().then(p); } p(); }",
        |_| {},
    );
    assert_eq!(culprit.outcome, Outcome::CpuLimit, "{culprit:?}");
    assert!(message(&culprit).contains("promise jobs"), "{culprit:?}");
    assert_interrupted(&siblings);
}

#[test]
fn a_synchronous_loop_alone_is_stopped_once_a_run_arrives_behind_it() {
    // The loop holds the worker's only thread, so the second request is not read: it waits in
    // the pipe, and the watchdog stops the loop for it rather than let it wait the budget out.
    let pool = one_worker_each();
    block_on(async {
        let culprit = of("t", "db", "function login(a, b, cb) { while (true) {} }");
        let behind = of("t", "db", &waiting(1));
        let (culprit, behind) = tokio::join!(async { pool.run(&culprit).await.unwrap() }, async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            pool.run(&behind).await.unwrap()
        });
        assert_eq!(culprit.outcome, Outcome::CpuLimit, "{culprit:?}");
        assert!(
            message(&culprit).contains("while other runs"),
            "stopped by the watchdog, not by its budget: {culprit:?}"
        );
        assert_interrupted(&[behind]);
    });
}

#[test]
fn a_run_past_a_small_instruction_budget_among_concurrent_runs_fails_alone_by_its_limit() {
    let (culprit, siblings) =
        among_siblings("function login(a, b, cb) { while (true) {} }", |inv| {
            inv.limits.instructions = 1_000_000;
        });
    assert_eq!(culprit.outcome, Outcome::CpuLimit, "{culprit:?}");
    assert_interrupted(&siblings);
}

#[test]
fn a_memory_bomb_among_concurrent_runs_is_the_only_one_blamed_for_memory() {
    let (culprit, siblings) =
        among_siblings("function login(a, b, cb) { 'x'.repeat(2 ** 31); }", |inv| {
            inv.limits.memory_bytes = 256 << 20;
        });
    assert_eq!(culprit.outcome, Outcome::MemoryLimit, "{culprit:?}");
    assert_interrupted(&siblings);
    for s in &siblings {
        assert!(!message(s).contains("memory limit of"), "{s:?}");
    }
}

#[test]
fn an_engine_crash_among_concurrent_runs_is_the_only_one_called_crashed() {
    let (culprit, siblings) = among_siblings(
        "function login(a, b, cb) { let n = []; for (let i = 0; i < 120000; i++) n = [n]; String(n); }",
        |_| {},
    );
    // Overflowing the 256 MB native stack takes about 0.4 s of one slice here: on a slower
    // machine the watchdog may stop it first. Either way the culprit alone gets its own end.
    assert!(
        matches!(culprit.outcome, Outcome::Crashed | Outcome::CpuLimit),
        "{culprit:?}"
    );
    if culprit.outcome == Outcome::Crashed {
        assert!(message(&culprit).contains("native stack"), "{culprit:?}");
    }
    assert_interrupted(&siblings);
}

#[test]
fn an_abandoned_run_among_concurrent_runs_leaves_its_siblings_running() {
    let pool = one_worker_each();
    block_on(async {
        let siblings: Vec<Invocation> = (0..8).map(|_| of("t", "db", &waiting(1_000))).collect();
        let abandoned = of("t", "db", &waiting(1_000));
        let (done, gave_up) = tokio::join!(runs(&pool, &siblings), async {
            // An HTTP client that went away drops its run's future.
            tokio::time::timeout(std::time::Duration::from_millis(200), pool.run(&abandoned)).await
        });
        assert!(gave_up.is_err(), "the abandoned run was still going");
        for e in &done {
            assert_eq!(e.outcome, Outcome::Success, "{e:?}");
        }
        let after = pool.run(&of("t", "db", &waiting(1))).await.unwrap();
        assert_eq!(after.outcome, Outcome::Success, "{after:?}");
    });
}

#[test]
fn many_hostile_tenants_at_once_leave_a_calm_one_served() {
    let pool = one_worker_each();
    let hostile = [
        "function login(a, b, cb) { while (true) {} }",
        "function login(a, b, cb) { 'x'.repeat(2 ** 31); }",
        "function login(a, b, cb) { setTimeout(function () {}, 600000); }",
    ];
    block_on(async {
        let invs: Vec<Invocation> = (0..12)
            .flat_map(|t| {
                (0..4).map(move |_| {
                    let mut inv = of(&format!("h{t}"), "db", hostile[t % hostile.len()]);
                    inv.limits.timeout_ms = 3_000;
                    inv.limits.memory_bytes = 256 << 20;
                    inv
                })
            })
            .collect();
        let calm = of("calm", "db", &waiting(10));
        let (hostile, calm) = tokio::join!(runs(&pool, &invs), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            pool.run(&calm).await.unwrap()
        });
        assert_eq!(calm.outcome, Outcome::Success, "{calm:?}");
        for e in &hostile {
            assert!(e.outcome.is_limit(), "{e:?}");
        }
    });
}

#[test]
fn an_abandoned_http_login_among_concurrent_logins_of_a_real_server_harms_none() {
    use crate::serve::{admin, start_with};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin(&data, &["create", "io", "--domain", "io.test"]);
    let printed = admin(&data, &["client", "io", "--public"]);
    let client = printed
        .lines()
        .find_map(|l| l.strip_prefix("client_id "))
        .unwrap()
        .trim()
        .to_string();
    let folder = dir.path().join("waits");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("database.json"),
        r#"{"name": "waits", "options": {}}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("login.js"),
        "function login(email, password, callback) { setTimeout(() => callback(null, { user_id: email, email: email }), 1000); }",
    )
    .unwrap();
    admin(&data, &["connection", "io", folder.to_str().unwrap()]);
    // One worker for the tenant: every login below is in flight in the same process.
    let s = start_with(dir, &["--workers", "2"]);
    block_on(async {
        let login = |user: String, give_up: Option<u64>| {
            let (url, client) = (format!("{}/oauth/token", s.base), client.clone());
            async move {
                let mut http = reqwest::Client::builder();
                if let Some(ms) = give_up {
                    http = http.timeout(std::time::Duration::from_millis(ms));
                }
                let sent = http
                    .build()
                    .unwrap()
                    .post(url)
                    .header("host", "io.test")
                    .header("content-type", "application/json")
                    .body(json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "waits",
                                 "client_id": client, "username": user, "password": "pw"}).to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap())),
                    Err(_) => None,
                }
            }
        };
        let (answers, abandoned) = tokio::join!(
            join_all((0..8).map(|i| login(format!("u{i}@example.com"), None))),
            login("gone@example.com".into(), Some(200))
        );
        assert!(
            abandoned.is_none(),
            "the abandoned login was answered: {abandoned:?}"
        );
        for a in &answers {
            let (status, body) = a.as_ref().expect("a sibling's login was answered");
            assert_eq!(*status, 200, "{body}");
            assert!(body.contains("access_token"), "{body}");
        }
        let (status, body) = login("after@example.com".into(), None).await.unwrap();
        assert_eq!(status, 200, "{body}");
    });
}

#[test]
fn runs_per_worker_bounds_the_runs_in_flight_in_one_worker() {
    let pool = Pool::new(PoolConfig {
        max_workers: 2,
        max_busy_per_tenant: 1,
        runs_per_worker: 2,
        ..PoolConfig::new(customdb_exe())
    });
    block_on(async {
        let invs: Vec<Invocation> = (0..6).map(|_| of("t", "db", &waiting(300))).collect();
        for e in runs(&pool, &invs).await {
            assert_eq!(e.outcome, Outcome::Success, "{e:?}");
            assert!(
                e.result.unwrap()["most"].as_u64().unwrap() <= 2,
                "more than two runs were in flight in the worker"
            );
        }
    });
}
