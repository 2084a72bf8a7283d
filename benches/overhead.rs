//! Overhead benchmarks through the production path (supervisor -> worker process -> sandbox):
//! warm and cold runs of a no-I/O login, `customdb try` wall time, and memory per warm
//! connection in a worker. Run with `scripts/bench.sh` (or `cargo bench`); prints a table.

mod common;
use common::{exe, percentile};

use customdb::isolation::protocol::{self, Request, Response};
use customdb::isolation::{Pool, PoolConfig};
use customdb::script::{Action, Invocation, Limits};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

const LOGIN: &str = "function login(email, password, callback) {\n  if (password !== 'pw') return callback(new WrongUsernameOrPasswordError(email, 'wrong'));\n  callback(null, { user_id: 42, email: email, name: 'Ada', app_metadata: { plan: 'pro' } });\n}\n";

fn invocation(connection: &str) -> Invocation {
    Invocation {
        tenant: "bench".into(),
        connection: connection.into(),
        action: Action::Login,
        source: LOGIN.into(),
        args: vec![json!("ada@example.com"), json!("pw")],
        context: None,
        configuration: BTreeMap::new(),
        limits: Limits::default(),
        policy: Default::default(),
    }
}

fn report(name: &str, mut samples: Vec<f64>, target: &str) {
    samples.sort_by(f64::total_cmp);
    println!(
        "| {name} | {:.3} | {:.3} | {} | {target} |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let exe = exe();
    assert!(
        exe.exists(),
        "build the binary first: cargo build --release ({} missing)",
        exe.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = Pool::new(PoolConfig {
        max_workers: 1,
        ..PoolConfig::new(exe.clone())
    });
    println!("| measurement (ms) | p50 | p99 | runs | DESIGN target |");
    println!("|---|---|---|---|---|");

    // Warm: the same connection again and again; the context and compiled function are reused.
    let warm = invocation("warm");
    rt.block_on(pool.run(&warm)).unwrap();
    let mut total = Vec::new();
    let mut inside = Vec::new();
    for _ in 0..5_000 {
        let e = rt.block_on(pool.run(&warm)).unwrap();
        assert!(e.timings.warm, "expected a warm run");
        total.push(e.timings.total_ms);
        inside.push(e.timings.run_ms + e.timings.compile_ms);
    }
    report(
        "warm run, supervisor round trip",
        total,
        "p50 <= 0.1, p99 <= 1",
    );
    report("warm run, inside the worker", inside, "");

    // Cold: a new connection each time, so a new context, prelude and compile.
    let mut cold = Vec::new();
    let mut cold_inside = Vec::new();
    for i in 0..500 {
        let e = rt
            .block_on(pool.run(&invocation(&format!("cold-{i}"))))
            .unwrap();
        assert!(!e.timings.warm);
        cold.push(e.timings.total_ms);
        cold_inside.push(e.timings.compile_ms + e.timings.run_ms);
    }
    report("cold run (new context), round trip", cold, "p50 <= 2");
    report("cold run, inside the worker", cold_inside, "");

    // `customdb try` from process start to printed result.
    let dir = std::env::temp_dir().join(format!("customdb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("login.js");
    std::fs::write(&script, LOGIN).unwrap();
    let mut wall = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(["try", "login"])
            .arg(&script)
            .args(["ada@example.com", "pw"])
            .output()
            .unwrap();
        assert!(out.status.success());
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report("`customdb try` wall time", wall, "<= 30");
    std::fs::remove_dir_all(&dir).ok();

    // Memory per idle warm connection: RSS growth of one worker holding N warm contexts.
    let mut child = Command::new(&exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut exchange = |id: u64, connection: &str| {
        protocol::write_blocking(&mut stdin, &{
            let invocation = invocation(connection);
            Request {
                id,
                script: protocol::Script::Sent(protocol::digest(&invocation)),
                invocation,
                forget: Vec::new(),
            }
        })
        .unwrap();
        stdin.flush().unwrap();
        let _: Response = protocol::read_blocking(&mut stdout).unwrap().unwrap();
    };
    for i in 0..8 {
        exchange(i, &format!("base-{i}"));
    }
    let before = rss_kb(child.id());
    let n = 56;
    for i in 0..n {
        exchange(100 + i, &format!("mem-{i}"));
    }
    let after = rss_kb(child.id());
    println!(
        "| memory per warm connection | {:.0} KB | | {n} contexts | <= 1024 KB |",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(stdin);
    let _ = child.wait();
}
