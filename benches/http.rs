//! HTTP benchmarks against a real `customdb serve` (release binary, demo tenant, sqlite
//! template): login throughput against the bcrypt-only ceiling measured in the same run,
//! `GET /api/v2/users/{id}` latency at 64 concurrent clients, and the demo tenant's login
//! latency while another tenant floods the server with scripts that hang.
//!
//! `cargo bench --bench http [logins] [reads] [neighbour]` runs the named parts (all by default).

mod common;
mod server;
use common::percentile;
use server::{Served, admin, serve};

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECONDS: u64 = 10;
const PASSWORD: &str = "correct horse battery staple";
const NOISY_HOST: &str = "noisy.test";
/// Clients of the noisy tenant, more than its 64 runs in flight.
const FLOOD_CLIENTS: usize = 96;
/// Measured reads per client (after ten that open its connection).
const READS_PER_CLIENT: usize = 500;

struct Server {
    served: Served,
    client_id: String,
    client_secret: String,
    /// The demo's public application, the client of its logins.
    app_id: String,
    /// A client of the noisy tenant (whose login script never answers).
    noisy_client: String,
}

/// Prepares the data folder (the noisy tenant beside the demo) and starts the server on it.
fn start(data: &Path) -> Server {
    let admin = |args: &[&str]| admin(data, args);
    admin(&["create", "noisy", "--domain", NOISY_HOST]);
    let printed = admin(&["client", "noisy", "--public"]);
    let noisy_client = printed
        .lines()
        .find_map(|l| l.strip_prefix("client_id "))
        .unwrap()
        .to_string();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("database.json"),
        json!({"name": "Hanging", "options": {"customScripts": {"login": "./login.js"}}})
            .to_string(),
    )
    .unwrap();
    // Waits on a timer it never settles: the run ends only at its 20 s deadline.
    std::fs::write(
        folder.path().join("login.js"),
        "function login(email, password, callback) { setTimeout(function () {}, 600000); }",
    )
    .unwrap();
    admin(&["connection", "noisy", folder.path().to_str().unwrap()]);

    let served = serve(data, &[]);
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-client.json")).unwrap())
            .unwrap();
    let app: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-app.json")).unwrap())
            .unwrap();
    Server {
        served,
        client_id: creds["client_id"].as_str().unwrap().to_string(),
        client_secret: creds["client_secret"].as_str().unwrap().to_string(),
        app_id: app["client_id"].as_str().unwrap().to_string(),
        noisy_client,
    }
}

fn demo_login(s: &Server) -> String {
    json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Username-Password-Authentication",
           "client_id": s.app_id, "username": "alice@example.com", "password": PASSWORD})
    .to_string()
}

async fn post_login(http: &reqwest::Client, base: &str, body: &str, host: Option<&str>) -> u16 {
    let mut request = http
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = host {
        request = request.header("host", h);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// Logins per second from `clients` concurrent clients for SECONDS, and their latencies (ms).
async fn login_load(s: &Server, clients: usize) -> (f64, Vec<f64>) {
    let http = reqwest::Client::new();
    let body = demo_login(s);
    // Warm the worker and the cache first.
    assert_eq!(post_login(&http, &s.served.base, &body, None).await, 200);
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, body) = (http.clone(), s.served.base.clone(), body.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    assert_eq!(post_login(&http, &base, &body, None).await, 200);
                    samples.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    samples.sort_by(f64::total_cmp);
    (samples.len() as f64 / SECONDS as f64, samples)
}

/// bcrypt (cost 10) verifications per second on every core at once.
fn bcrypt_ceiling(cores: usize) -> f64 {
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hash, done) = (hash.clone(), done.clone());
            std::thread::spawn(move || {
                while Instant::now() < until {
                    assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    done.load(Ordering::Relaxed) as f64 / SECONDS as f64
}

async fn logins(s: &Server, cores: usize) {
    // The ceiling is measured before and after the logins: the machine's speed drifts, and
    // the mean of the two is what the logins ran beside.
    let before = bcrypt_ceiling(cores);
    let (logins, _) = login_load(s, cores * 2).await;
    let ceiling = (before + bcrypt_ceiling(cores)) / 2.0;
    println!("| bcrypt-only ceiling ({cores} cores, cost 10) | {ceiling:.1} logins/s | |");
    println!(
        "| HTTP password-realm logins, sqlite template | {logins:.1} logins/s = {:.2} of the ceiling | ≥ 0.9 |",
        logins / ceiling
    );
}

/// A Management API token of the demo's management client.
async fn management_token(http: &reqwest::Client, s: &Server) -> String {
    let answer = http
        .post(format!("{}/oauth/token", s.served.base))
        .header("content-type", "application/json")
        .body(json!({"grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.client_secret}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

/// Logins with brute-force protection on (Auth0's default) against the same with it off, in
/// alternating rounds: what counting costs a successful login.
async fn protection(s: &Server, cores: usize) {
    let http = reqwest::Client::new();
    let token = management_token(&http, s).await;
    let set = |enabled: bool| {
        http.patch(format!(
            "{}/api/v2/attack-protection/brute-force-protection",
            s.served.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(json!({ "enabled": enabled }).to_string())
        .send()
    };
    let (mut on, mut off) = (0.0, 0.0);
    for _ in 0..2 {
        assert!(set(false).await.unwrap().status().is_success());
        off += login_load(s, cores * 2).await.0;
        assert!(set(true).await.unwrap().status().is_success());
        on += login_load(s, cores * 2).await.0;
    }
    println!(
        "| the same logins with brute-force protection on, against off (alternating rounds) | {:.1} against {:.1} logins/s = {:.3} | no measurable cost |",
        on / 2.0,
        off / 2.0,
        on / off
    );
}

async fn reads(s: &Server) {
    let http = reqwest::Client::new();
    let token = management_token(&http, s).await;
    // The user is in the cache once it has logged in.
    assert_eq!(
        post_login(&http, &s.served.base, &demo_login(s), None).await,
        200
    );
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (http, base, token) = (http.clone(), s.served.base.clone(), token.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                // The first requests open the client's connection; steady state is measured.
                for i in 0..READS_PER_CLIENT + 10 {
                    let t = Instant::now();
                    let r = http
                        .get(format!("{base}/api/v2/users/auth0%7C1"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    if i >= 10 {
                        samples.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "| GET /api/v2/users/{{id}}, 64 concurrent clients | p50 {:.2} ms, p99 {:.2} ms ({} requests) | p99 ≤ 5 ms |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

/// The demo tenant's logins alone, then while the noisy tenant keeps its limit of logins
/// in flight, each hanging until its deadline.
async fn neighbour(s: &Server, cores: usize) {
    let (_, quiet) = login_load(s, cores).await;
    let stop = Arc::new(AtomicBool::new(false));
    let noisy_body = json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Hanging",
                            "client_id": s.noisy_client, "username": "x@example.com", "password": "whatever"})
    .to_string();
    let flood: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|_| {
            let http = reqwest::Client::new();
            let (base, body, stop) = (s.served.base.clone(), noisy_body.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let request = post_login(&http, &base, &body, Some(NOISY_HOST));
                    // Each hanging login is abandoned after 30 s at most; 429s are retried.
                    let status = tokio::time::timeout(Duration::from_secs(30), request).await;
                    if matches!(status, Ok(429)) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    // Let the flood fill the noisy tenant's share of the workers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, noisy) = login_load(s, cores).await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
    println!(
        "| demo logins ({cores} clients), alone | p50 {:.1} ms, p99 {:.1} ms ({} logins) | |",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        quiet.len()
    );
    println!(
        "| the same while {FLOOD_CLIENTS} clients of another tenant send logins that hang (64 in flight, the rest 429) | p50 {:.1} ms, p99 {:.1} ms ({} logins) | p99 unmoved |",
        percentile(&noisy, 0.5),
        percentile(&noisy, 0.99),
        noisy.len()
    );
}

#[tokio::main]
async fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |part: &str| wanted.is_empty() || wanted.iter().any(|w| w == part);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = tempfile::tempdir().unwrap();
    let server = start(&data.path().join("data"));
    println!("| measurement | value | DESIGN target |\n|---|---|---|");
    if run("logins") {
        logins(&server, cores).await;
    }
    if run("protection") {
        protection(&server, cores).await;
    }
    if run("reads") {
        reads(&server).await;
    }
    if run("neighbour") {
        neighbour(&server, cores).await;
    }
}
