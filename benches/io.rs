//! I/O-bound logins (release binary): one tenant, 64 clients, each login waiting 100 ms —
//! on a timer, and on a real PostgreSQL `SELECT pg_sleep(0.1)` through `require('pg')` — as a
//! ratio to the ideal 64 / 0.1 s = 640 logins/s; and no-I/O logins at the same concurrency
//! as a ratio to the RS256 ceiling: RSA-2048 signatures per second on all cores (aws-lc-rs, a
//! key parsed once, as the server holds it), measured by this bench, over the two a login
//! signs. Needs CUSTOMDB_TEST_PG (scripts/bench.sh
//! starts a private PostgreSQL).
//!
//! `cargo bench --bench io`

mod common;
mod server;
use common::percentile;
use server::{admin, serve};

use serde_json::json;
use std::time::{Duration, Instant};

const SECONDS: u64 = 8;
const CLIENTS: usize = 64;
const WAIT_S: f64 = 0.1;

const TIMER: &str = "function login(email, password, callback) { setTimeout(function () { callback(null, { user_id: email, email: email }); }, 100); }";
const QUICK: &str = "function login(email, password, callback) { callback(null, { user_id: email, email: email }); }";
const PG: &str = "function login(email, password, callback) { const pg = require('pg'); pg.connect(configuration.PG_URL, function (err, client, done) { if (err) return callback(err); client.query('SELECT pg_sleep(0.1)', function (err) { done(); if (err) return callback(err); callback(null, { user_id: email, email: email }); }); }); }";

/// Adds connection `name` with login `script` to tenant `tenant`.
fn connection(
    data: &std::path::Path,
    tenant: &str,
    name: &str,
    script: &str,
    options: serde_json::Value,
) {
    let folder = tempfile::tempdir().unwrap();
    let mut options = options;
    options["customScripts"] = json!({"login": "./login.js"});
    std::fs::write(
        folder.path().join("database.json"),
        json!({"name": name, "options": options}).to_string(),
    )
    .unwrap();
    std::fs::write(folder.path().join("login.js"), script).unwrap();
    admin(
        data,
        &["connection", tenant, folder.path().to_str().unwrap()],
    );
}

/// Logins/s and sorted latencies (ms) of CLIENTS clients logging in to `realm` for `seconds`.
async fn load(base: &str, client: &str, realm: &str, seconds: u64) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (base, client, realm) = (base.to_string(), client.to_string(), realm.to_string());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut seen = Vec::new();
                while Instant::now() < deadline {
                    let body = json!({"grant_type": "http://auth0.com/oauth/grant-type/password-realm", "realm": realm,
                                      "client_id": client, "username": format!("c{i}@example.com"), "password": "whatever"});
                    let t = Instant::now();
                    let response = http
                        .post(format!("{base}/oauth/token"))
                        .header("host", "io.test")
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap();
                    assert_eq!(status, 200, "{text}");
                    seen.push(t.elapsed().as_secs_f64() * 1e3);
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (rate, all)
}

/// RSA-2048 PKCS#1 SHA-256 signatures per second on every core at once.
fn rs256_per_second() -> f64 {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::RSA_PKCS1_SHA256;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pair = std::sync::Arc::new(KeyPair::generate(KeySize::Rsa2048).unwrap());
    let until = Instant::now() + Duration::from_secs(3);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let pair = pair.clone();
            std::thread::spawn(move || {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let message = [b'x'; 600];
                let mut signature = vec![0u8; pair.public_modulus_len()];
                let mut n = 0u64;
                while Instant::now() < until {
                    pair.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum::<u64>() as f64 / 3.0
}

#[tokio::main]
async fn main() {
    let pg = std::env::var("CUSTOMDB_TEST_PG")
        .expect("CUSTOMDB_TEST_PG names the PostgreSQL to wait on (scripts/bench.sh starts one)");
    let address = url::Url::parse(&pg).unwrap();
    let host_port = format!(
        "{}:{}",
        address.host_str().unwrap(),
        address.port().unwrap_or(5432)
    );
    let data = tempfile::tempdir().unwrap();
    admin(data.path(), &["create", "io", "--domain", "io.test"]);
    let printed = admin(data.path(), &["client", "io", "--public"]);
    let client = printed
        .lines()
        .find_map(|l| l.strip_prefix("client_id "))
        .unwrap()
        .to_string();
    connection(data.path(), "io", "Timer", TIMER, json!({}));
    connection(data.path(), "io", "Quick", QUICK, json!({}));
    connection(
        data.path(),
        "io",
        "Pg",
        PG,
        json!({"configuration": {"PG_URL": pg}, "allowed_hosts": [host_port]}),
    );
    let server = serve(data.path(), &["--egress-allow-internal", &host_port]);
    let base = &server.base;
    let ideal = CLIENTS as f64 / WAIT_S;
    println!(
        "I/O-bound logins, one tenant, {CLIENTS} clients, each login waits {WAIT_S} s (ideal {ideal:.0}/s):"
    );
    for realm in ["Quick", "Timer", "Pg"] {
        // A short round first: workers, contexts and pooled connections warm up.
        load(base, &client, realm, 2).await;
        let (rate, lat) = load(base, &client, realm, SECONDS).await;
        let against = if realm == "Quick" {
            // Beside the logins, so that both see the machine at the same speed.
            let ceiling = rs256_per_second() / 2.0;
            format!(
                "{:.2} of the RS256 ceiling ({ceiling:.0} logins/s)",
                rate / ceiling
            )
        } else {
            format!("{:.2} of ideal", rate / ideal)
        };
        println!(
            "  {realm:5}: {rate:6.1} logins/s = {against}; p50 {:.0} ms, p99 {:.0} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
}
