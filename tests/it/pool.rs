//! The worker pool across tenants: idle workers stay warm for their tenants under the memory
//! budget (least recently used out first), spares started ahead take a tenant's first run, and
//! a tenant with nothing in flight is served while others' scripts hang in every worker.

use crate::util::{block_on, customdb_exe, invocation};
use customdb::isolation::{Pool, PoolConfig};
use customdb::outcome::{Execution, Outcome};
use customdb::script::{Action, Invocation};
use serde_json::json;

const QUICK: &str = "function login(a, b, cb) { cb(null, { user_id: 'ok' }); }";

fn of(tenant: &str, source: &str) -> Invocation {
    let mut inv = invocation(Action::Login, source, json!(["a", "b"]));
    inv.tenant = tenant.into();
    inv.connection = "db".into();
    inv
}

async fn run(pool: &Pool, inv: &Invocation) -> Execution {
    let exec = pool.run(inv).await.unwrap();
    assert_eq!(exec.outcome, Outcome::Success, "{exec:?}");
    exec
}

#[test]
fn idle_workers_stay_warm_for_more_tenants_than_run_at_once() {
    let pool = Pool::new(PoolConfig {
        max_workers: 2,
        max_busy_per_tenant: 1,
        ..PoolConfig::new(customdb_exe())
    });
    block_on(async {
        let tenants: Vec<String> = (0..6).map(|n| format!("t{n}")).collect();
        for t in &tenants {
            assert!(!run(&pool, &of(t, QUICK)).await.timings.warm);
        }
        // Six tenants, two busy at most: each tenant's worker was kept, so every second run
        // finds its compiled script.
        for t in &tenants {
            assert!(run(&pool, &of(t, QUICK)).await.timings.warm, "{t}");
        }
    });
}

#[test]
fn past_the_idle_memory_budget_the_least_recently_used_worker_goes() {
    // A budget below one worker's resident memory: only the most recent idle worker is kept.
    let pool = Pool::new(PoolConfig {
        idle_memory_bytes: 1,
        ..PoolConfig::new(customdb_exe())
    });
    block_on(async {
        run(&pool, &of("a", QUICK)).await;
        run(&pool, &of("b", QUICK)).await;
        assert!(run(&pool, &of("b", QUICK)).await.timings.warm);
        assert!(
            !run(&pool, &of("a", QUICK)).await.timings.warm,
            "a's worker was stopped when b's went idle"
        );
    });
}

#[test]
fn a_spare_takes_a_tenants_first_run() {
    let pool = Pool::new(PoolConfig {
        spares: 1,
        ..PoolConfig::new(customdb_exe())
    });
    block_on(async {
        // Spares start in the background (a server asks at start, as here; every run asks
        // again); a tenant's first run is then handed a ready one (no process started on its
        // path) and still runs only its own tenant's code.
        pool.refill();
        let mut handed = None;
        for n in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let exec = run(&pool, &of(&format!("new{n}"), QUICK)).await;
            if exec.timings.spawn_ms == 0.0 {
                handed = Some(exec);
                break;
            }
        }
        let exec = handed.expect("no tenant's first run was given a spare");
        assert!(!exec.timings.warm, "a spare holds nothing of anyone");
    });
}

#[test]
fn a_newcomer_is_served_while_other_tenants_scripts_hang_in_every_worker() {
    let pool = Pool::new(PoolConfig {
        max_workers: 4,
        max_busy_per_tenant: 2,
        ..PoolConfig::new(customdb_exe())
    });
    let hang =
        "function login(a, b, cb) { setTimeout(function () { cb(null, { user_id: 1 }); }, 3000); }";
    block_on(async {
        use futures::StreamExt;
        // Six tenants' scripts hang, three runs each: they take every worker and more, and
        // the rest of their runs wait behind their own.
        let hostile: Vec<Invocation> = (0..6).map(|n| of(&format!("h{n}"), hang)).collect();
        let mut hanging: futures::stream::FuturesUnordered<_> = (0..3)
            .flat_map(|_| hostile.iter().map(|inv| pool.run(inv)))
            .collect();
        let newcomer = of("calm", QUICK);
        tokio::select! {
            calm = pool.run(&newcomer) => {
                assert_eq!(calm.unwrap().outcome, Outcome::Success);
            }
            _ = hanging.next() => panic!("the newcomer waited for the hanging tenants' runs"),
        }
        while let Some(run) = hanging.next().await {
            assert_eq!(run.unwrap().outcome, Outcome::Success);
        }
    });
}

#[test]
fn serve_starts_spares_before_the_first_request_and_its_first_run_takes_one() {
    let s = crate::serve::start();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ready = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        s.workers().len() >= cores
    });
    assert!(ready, "serve started {:?}, not {cores} spares", s.workers());
    block_on(async {
        let token = s.management_token().await;
        let (_, connections) = s
            .call("GET", "/api/v2/connections", Some(&token), None)
            .await;
        let try_url = format!(
            "/api/v2/connections/{}/try",
            connections[0]["id"].as_str().unwrap()
        );
        let (status, run) = s
            .call(
                "POST",
                &try_url,
                Some(&token),
                Some(json!({"action": "login", "args": ["alice@example.com", "correct horse battery staple"]})),
            )
            .await;
        assert_eq!(
            (status, run["outcome"].as_str()),
            (200, Some("success")),
            "{run}"
        );
        assert_eq!(run["timings"]["spawn_ms"], 0.0, "{run}");
    });
}
