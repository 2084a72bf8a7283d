//! Shared helpers: one pool of real workers, the one way tests assemble a store and a service,
//! invocations with defaults, and JSON subset matching for data-driven expectations.

use customdb::isolation::{Pool, PoolConfig};
use customdb::outcome::Execution;
use customdb::script::{Action, Invocation, Limits};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use customdb::domain::time::ManualClock;
use customdb::service::Service;
use customdb::store::{Store, seal::Sealer};

pub fn customdb_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_customdb"))
}

/// One runtime and pool for the whole test binary, as a server would have.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(f)
}

/// The test binary's pool of real workers, shared by every test that runs scripts.
pub fn pool() -> &'static Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(Pool::new(PoolConfig {
            max_workers: 4,
            max_busy_per_tenant: 4,
            ..PoolConfig::new(customdb_exe())
        }))
    })
}

/// A store in a fresh temporary folder, sealed with a fresh key, whose clock stands still
/// until the test moves it.
pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Store,
    pub clock: Arc<ManualClock>,
}

pub fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let clock = ManualClock::at(customdb::domain::time::Timestamp::now());
    let store = Store::open(&path, Sealer::from_text(&Sealer::generate_key()).unwrap())
        .unwrap()
        .with_clock(clock.clone());
    TempStore {
        dir,
        path,
        store,
        clock,
    }
}

/// The service over `store`, with the shared pool and data folders under `data_root`.
pub fn service(store: Store, data_root: PathBuf) -> Service {
    Service::new(Arc::new(store), pool().clone(), Some(data_root))
}

pub fn invocation(action: Action, source: &str, args: Value) -> Invocation {
    Invocation {
        tenant: "test".into(),
        connection: format!("conn-{}", uuid_like()),
        action,
        source: source.into(),
        args: args.as_array().cloned().unwrap_or_default(),
        context: None,
        configuration: BTreeMap::new(),
        limits: Limits::default(),
        policy: Default::default(),
    }
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn run(inv: &Invocation) -> Execution {
    block_on(pool().run(inv)).expect("the worker pool runs the script")
}

pub fn run_script(action: Action, source: &str, args: Value) -> Execution {
    run(&invocation(action, source, args))
}

pub use customdb::harness::matches;

/// Asserts an Execution against a JSON subset, showing the whole Execution on failure.
pub fn expect(name: &str, exec: &Execution, expected: &Value) {
    let actual = serde_json::to_value(exec).unwrap();
    if let Err(m) = matches(&actual, expected) {
        panic!(
            "case {name}: {m}\nexecution: {}",
            serde_json::to_string_pretty(&actual).unwrap()
        );
    }
}

/// The address of a database server the test command started (`CUSTOMDB_TEST_PG`,
/// `CUSTOMDB_TEST_MYSQL`). A database test without its server fails: it never skips.
pub fn server_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: database tests need the servers scripts/test.sh starts \
             (run scripts/test.sh, or start them with scripts/start-postgres.sh / \
             scripts/start-mariadb.sh and export {var})"
        )
    })
}

/// A name no other test run uses, for tables and databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), uuid_like())
}

/// `host:port` of a server URL, as an egress allow-list entry.
pub fn host_port(url: &str) -> String {
    customdb::harness::backend::address(url).expect("a server URL")
}
