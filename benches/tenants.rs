//! Many tenants on one server (release binary): no-I/O password-realm logins from 16 clients
//! to one tenant, then spread round-robin over 64 and over 256 tenants, as ratios to the one
//! tenant measured in the same run (alternating rounds); the resident memory of all workers after the 256-tenant
//! round (and per tenant); the latency of a tenant's first run (cold), one at a time; and one
//! tenant's login latency alone and while eight tenants keep sixteen logins each that hang.
//!
//! `cargo bench --bench tenants [cold]`

mod common;
mod server;
use common::percentile;
use server::{Served, admin, serve};

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECONDS: u64 = 8;
const CLIENTS: usize = 16;
/// Tenants made: the 256 of the widest round and the cold ones, each used once.
const TENANTS: usize = 256;
const COLD: usize = 40;

/// A tenant's domain and the client id of its public application.
#[derive(Clone)]
struct Tenant {
    host: String,
    client: String,
}

/// Answers at once (no I/O).
const QUICK: &str = "function login(email, password, callback) { callback(null, { user_id: 'u-' + email, email: email }); }";
/// Waits on a timer it never settles: the run ends only at its 20 s deadline.
const HANGS: &str =
    "function login(email, password, callback) { setTimeout(function () {}, 600000); }";
const HOSTILE: usize = 8;
const HOSTILE_CLIENTS: usize = 16;

/// Makes `n` tenants named `prefix0…`, each with one connection "Quick" whose login is `script`.
fn tenants(data: &Path, prefix: &str, n: usize, script: &str) -> Vec<Tenant> {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("database.json"),
        json!({"name": "Quick", "options": {"customScripts": {"login": "./login.js"}}}).to_string(),
    )
    .unwrap();
    std::fs::write(folder.path().join("login.js"), script).unwrap();
    (0..n)
        .map(|i| {
            let (name, host) = (format!("{prefix}{i}"), format!("{prefix}{i}.test"));
            admin(data, &["create", &name, "--domain", &host]);
            let printed = admin(data, &["client", &name, "--public"]);
            let client = printed
                .lines()
                .find_map(|l| l.strip_prefix("client_id "))
                .unwrap()
                .to_string();
            admin(
                data,
                &["connection", &name, folder.path().to_str().unwrap()],
            );
            Tenant { host, client }
        })
        .collect()
}

/// Sends one login of tenant `t`; its status.
async fn send(http: &reqwest::Client, base: &str, t: &Tenant) -> u16 {
    let body = json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Quick",
                      "client_id": t.client, "username": "bench@example.com", "password": "whatever"});
    let response = http
        .post(format!("{base}/oauth/token"))
        .header("host", &t.host)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// One successful login of `t`: its latency in ms.
async fn login(http: &reqwest::Client, base: &str, t: &Tenant) -> f64 {
    let started = Instant::now();
    assert_eq!(send(http, base, t).await, 200, "{}", t.host);
    started.elapsed().as_secs_f64() * 1e3
}

/// Latencies (sorted, ms) of `t`'s logins from 2 clients for SECONDS.
async fn latencies(s: &Served, t: &Tenant) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (base, t) = (s.base.clone(), t.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut seen = Vec::new();
                while Instant::now() < deadline {
                    seen.push(login(&http, &base, &t).await);
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    all
}

/// `t`'s login latencies alone, then while HOSTILE tenants keep HOSTILE_CLIENTS logins each
/// that hang in flight.
async fn beside_hostile(s: &Served, t: &Tenant, hostile: &[Tenant]) -> (Vec<f64>, Vec<f64>) {
    let alone = latencies(s, t).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = hostile
        .iter()
        .flat_map(|h| std::iter::repeat_n(h.clone(), HOSTILE_CLIENTS))
        .map(|h| {
            let (base, stop) = (s.base.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    send(&http, &base, &h).await;
                }
            })
        })
        .collect();
    // Let the hanging runs take the workers first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attacked = latencies(s, t).await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
    (alone, attacked)
}

/// Logins per second from CLIENTS clients for SECONDS, the n-th login going to tenant n mod
/// the list's length.
async fn round_robin(s: &Served, over: &[Tenant]) -> f64 {
    let over = Arc::new(over.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (over, next, base) = (over.clone(), next.clone(), s.base.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut done = 0usize;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    login(&http, &base, &over[n % over.len()]).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Resident memory of the server's worker processes (its children), in bytes, and how many.
fn workers_memory(server: u32) -> (u64, usize) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent != Some(server) {
            continue;
        }
        // Resident pages of its own: resident minus file-backed (shared with the executable).
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
        let pages: Vec<u64> = statm
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        total.0 += pages
            .get(1)
            .unwrap_or(&0)
            .saturating_sub(*pages.get(2).unwrap_or(&0))
            * 4096;
        total.1 += 1;
    }
    total
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("data");
    let all = tenants(&data, "t", TENANTS + COLD, QUICK);
    let (warm, cold) = all.split_at(TENANTS);
    let hostile = tenants(&data, "h", HOSTILE, HANGS);
    let server = serve(&data, &[]);
    let http = reqwest::Client::new();
    // One login each first, so that the rounds measure tenants whose connections are known
    // and whose workers are warm (the first run of a tenant is the cold row's measurement).
    for t in warm {
        login(&http, &server.base, t).await;
    }
    // Two passes of the three rounds, alternating, so that drift in the machine's load falls
    // on all three alike; each rate is the mean of its two rounds.
    let (mut one, mut over64, mut over256) = (0.0, 0.0, 0.0);
    // `cargo bench --bench tenants cold` measures first logins only.
    let rounds = if std::env::args().any(|a| a == "cold") {
        0
    } else {
        2
    };
    for _ in 0..rounds {
        let r = (
            round_robin(&server, &warm[..1]).await,
            round_robin(&server, &warm[..64]).await,
            round_robin(&server, warm).await,
        );
        eprintln!("round: {r:?}");
        one += r.0 / 2.0;
        over64 += r.1 / 2.0;
        over256 += r.2 / 2.0;
    }
    let (bytes, count) = workers_memory(server.child.id());
    // Cold: tenants never run before, one at a time, a pause between (as first logins come).
    let mut firsts = Vec::new();
    for t in cold {
        tokio::time::sleep(Duration::from_millis(100)).await;
        firsts.push(login(&http, &server.base, t).await);
    }
    firsts.sort_by(f64::total_cmp);
    let mut warm_again = Vec::new();
    for t in cold {
        warm_again.push(login(&http, &server.base, t).await);
    }
    warm_again.sort_by(f64::total_cmp);
    let (alone, attacked) = beside_hostile(&server, &warm[1], &hostile).await;
    println!("| measurement | value |\n|---|---|");
    println!("| no-I/O logins, {CLIENTS} clients, one tenant | {one:.0}/s |");
    println!(
        "| the same round-robin over 64 tenants | {over64:.0}/s = {:.2} of one tenant |",
        over64 / one
    );
    println!(
        "| the same round-robin over 256 tenants | {over256:.0}/s = {:.2} of one tenant |",
        over256 / one
    );
    println!(
        "| workers after the 256-tenant round: their own resident memory | {count} processes, {:.0} MiB, {:.1} MiB per worker |",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / count.max(1) as f64
    );
    println!(
        "| a tenant's first login (cold), {COLD} tenants one at a time | p50 {:.2} ms, p99 {:.2} ms |",
        percentile(&firsts, 0.5),
        percentile(&firsts, 0.99)
    );
    println!(
        "| the same tenants' second login | p50 {:.2} ms, p99 {:.2} ms |",
        percentile(&warm_again, 0.5),
        percentile(&warm_again, 0.99)
    );
    println!(
        "| one tenant's logins (2 clients), alone | p50 {:.2} ms, p99 {:.2} ms |",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99)
    );
    println!(
        "| the same while {HOSTILE} tenants keep {HOSTILE_CLIENTS} logins each that hang | p50 {:.2} ms, p99 {:.2} ms = {:.2} of alone |",
        percentile(&attacked, 0.5),
        percentile(&attacked, 0.99),
        percentile(&attacked, 0.99) / percentile(&alone, 0.99)
    );
}
