//! Driver benchmarks through the production path (supervisor -> worker -> sandbox -> driver):
//! the sqlite template's login against bcrypt alone, and a PostgreSQL / MySQL query through
//! the `pg` / `mysql` modules against the same query from Rust on one open connection.
//! Needs CUSTOMDB_TEST_PG and CUSTOMDB_TEST_MYSQL (scripts/bench.sh starts the servers).

mod common;
use common::{exe, percentile};

use customdb::isolation::{Pool, PoolConfig};
use customdb::script::{Action, Invocation, Limits, Policy};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const RUNS: usize = 200;
const BCRYPT_RUNS: usize = 30;

fn template(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

fn row(name: &str, mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let p50 = percentile(&samples, 0.5);
    println!(
        "| {name} | {p50:.3} | {:.3} | {} |",
        percentile(&samples, 0.99),
        samples.len()
    );
    p50
}

async fn time_runs(pool: &Pool, inv: &Invocation, runs: usize) -> Vec<f64> {
    // One warm-up run opens the context (and the connection pool) first.
    let first = pool.run(inv).await.expect("worker runs");
    assert_eq!(
        first.outcome,
        customdb::outcome::Outcome::Success,
        "{:?} {:?}",
        first.error,
        first.console
    );
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let e = pool.run(inv).await.expect("worker runs");
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(e.outcome, customdb::outcome::Outcome::Success);
    }
    samples
}

fn invocation(connection: &str, source: String, args: serde_json::Value) -> Invocation {
    Invocation {
        tenant: "bench".into(),
        connection: connection.into(),
        action: Action::Login,
        source,
        args: args.as_array().cloned().unwrap_or_default(),
        context: None,
        configuration: BTreeMap::new(),
        limits: Limits::default(),
        policy: Policy::default(),
    }
}

fn address(url: &str) -> String {
    customdb::harness::backend::address(url).expect("a server URL")
}

const QUERY_SCRIPT: &str = "function login(email, password, callback) { QUERY }";

#[tokio::main]
async fn main() {
    let pool = Pool::new(PoolConfig {
        max_workers: 2,
        ..PoolConfig::new(exe())
    });
    println!("| what (ms) | p50 | p99 | runs |\n|---|---|---|---|");

    // sqlite template login, bcrypt cost 10, against bcrypt::verify of the same hash.
    let data = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(data.path().join("users.db")).unwrap();
    db.execute_batch(&template("templates/sqlite/cases/schema.sql"))
        .unwrap();
    db.execute_batch(&template("templates/sqlite/cases/seed.sql"))
        .unwrap();
    let hash: String = db
        .query_row("SELECT password FROM users WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let mut login = invocation(
        "sqlite",
        template("templates/sqlite/login.js"),
        json!(["alice@example.com", "correct horse battery staple"]),
    );
    login
        .configuration
        .insert("DB_FILE".into(), "users.db".into());
    login.policy.data_dirs = vec![data.path().to_path_buf()];
    let whole = row(
        "sqlite template login (bcrypt 10), through a worker",
        time_runs(&pool, &login, BCRYPT_RUNS).await,
    );
    let bcrypt_only: Vec<f64> = (0..BCRYPT_RUNS)
        .map(|_| {
            let t = Instant::now();
            assert!(bcrypt::verify("correct horse battery staple", &hash).unwrap());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let alone = row("bcrypt::verify alone (cost 10), in Rust", bcrypt_only);
    println!(
        "| overhead of the login beyond bcrypt | {:.3} | | |",
        whole - alone
    );

    // PostgreSQL: the same indexed lookup through `pg` and from Rust.
    let pg_url =
        std::env::var("CUSTOMDB_TEST_PG").expect("CUSTOMDB_TEST_PG (run scripts/bench.sh)");
    let (client, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_users; CREATE TABLE bench_users (id serial PRIMARY KEY, email text UNIQUE, nickname text);
             INSERT INTO bench_users (email, nickname) SELECT 'u' || g || '@example.com', 'u' || g FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let pg_query = "pg.connect(configuration.URL, (err, client, done) => { if (err) return callback(err); client.query('SELECT id, email, nickname FROM bench_users WHERE email = $1', [email], (err, r) => { done(); callback(err, { user_id: r.rows[0].id }); }); });";
    let mut pg = invocation(
        "pg",
        QUERY_SCRIPT.replace("QUERY", &format!("const pg = require('pg'); {pg_query}")),
        json!(["u500@example.com", "x"]),
    );
    pg.configuration.insert("URL".into(), pg_url.clone());
    pg.policy.egress = vec![address(&pg_url)];
    row(
        "pg query through the module (whole run)",
        time_runs(&pool, &pg, RUNS).await,
    );
    let mut direct = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let rows = client
            .query_typed(
                "SELECT id, email, nickname FROM bench_users WHERE email = $1",
                &[(&"u500@example.com", tokio_postgres::types::Type::TEXT)],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        direct.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    row("the same query from Rust (tokio-postgres)", direct);

    // MySQL / MariaDB.
    let my_url =
        std::env::var("CUSTOMDB_TEST_MYSQL").expect("CUSTOMDB_TEST_MYSQL (run scripts/bench.sh)");
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&my_url).unwrap())
        .await
        .unwrap();
    conn.query_drop(
        "DROP TABLE IF EXISTS bench_users; CREATE TABLE bench_users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE, nickname VARCHAR(255));",
    )
    .await
    .unwrap();
    let values: Vec<String> = (1..=1000)
        .map(|g| format!("('u{g}@example.com', 'u{g}')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO bench_users (email, nickname) VALUES {}",
        values.join(",")
    ))
    .await
    .unwrap();
    let my_query = "const c = mysql.createConnection(configuration.URL); c.query('SELECT id, email, nickname FROM bench_users WHERE email = ?', [email], (err, rows) => { c.end(); callback(err, { user_id: rows[0].id }); });";
    let mut my = invocation(
        "mysql",
        QUERY_SCRIPT.replace(
            "QUERY",
            &format!("const mysql = require('mysql'); {my_query}"),
        ),
        json!(["u500@example.com", "x"]),
    );
    my.configuration.insert("URL".into(), my_url.clone());
    my.policy.egress = vec![address(&my_url)];
    row(
        "mysql query through the module (whole run)",
        time_runs(&pool, &my, RUNS).await,
    );
    let mut direct = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let rows: Vec<mysql_async::Row> = conn
            .query("SELECT id, email, nickname FROM bench_users WHERE email = 'u500@example.com'")
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        direct.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    row("the same query from Rust (mysql_async)", direct);
}
