//! HTTP benchmarks against a real `customdb serve` (release binary, demo tenant, sqlite
//! template): login throughput against the bcrypt-only ceiling measured in the same run, and
//! `GET /api/v2/users/{id}` latency at 64 concurrent clients.

mod common;
use common::{exe, percentile};

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECONDS: u64 = 10;
const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = tempfile::tempdir().unwrap();
    let mut server = Command::new(exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let base = first
        .trim_start_matches("customdb listening on ")
        .to_string();
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("data/demo-client.json")).unwrap(),
    )
    .unwrap();
    let client_id = creds["client_id"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();

    // The ceiling: bcrypt (cost 10) verifications per second on every core at once.
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
    let ceiling = done.load(Ordering::Relaxed) as f64 / SECONDS as f64;

    // Logins over HTTP: password-realm grants from 2×cores clients for the same time.
    let login = json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": "Username-Password-Authentication",
                       "client_id": client_id, "username": "alice@example.com", "password": PASSWORD}).to_string();
    let ok = Arc::new(AtomicUsize::new(0));
    // Warm the worker and the cache first.
    http.post(format!("{base}/oauth/token"))
        .header("content-type", "application/json")
        .body(login.clone())
        .send()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..cores * 2)
        .map(|_| {
            let (http, base, login, ok) = (http.clone(), base.clone(), login.clone(), ok.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = http
                        .post(format!("{base}/oauth/token"))
                        .header("content-type", "application/json")
                        .body(login.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let logins = ok.load(Ordering::Relaxed) as f64 / SECONDS as f64;

    // Cached-profile reads at 64 concurrent clients.
    let creds_body = json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": creds["client_secret"],
                            "audience": format!("https://{}/api/v2/", base.trim_start_matches("http://"))}).to_string();
    let token = http
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/json")
        .body(creds_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token: Value = serde_json::from_str(&token).unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for _ in 0..100 {
                    let t = Instant::now();
                    let r = http
                        .get(format!("{base}/api/v2/users/auth0%7C1"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
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

    println!("| measurement | value | DESIGN target |\n|---|---|---|");
    println!("| bcrypt-only ceiling ({cores} cores, cost 10) | {ceiling:.1} logins/s | |");
    println!(
        "| HTTP password-realm logins, sqlite template | {logins:.1} logins/s = {:.2} of the ceiling | ≥ 0.9 |",
        logins / ceiling
    );
    println!(
        "| GET /api/v2/users/{{id}}, 64 concurrent clients | p50 {:.2} ms, p99 {:.2} ms ({} requests) | p99 ≤ 5 ms |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
    let _ = server.kill();
    let _ = server.wait();
}
