//! In-memory copies of what hot paths read, so that they answer without a trip to SQLite:
//! users by id and their connection's options (for `GET /api/v2/users/{id}`), and the rows
//! every login reads — the tenant of a host, a client, a connection. Each write in this
//! process drops the copies it changes, and a generation counter keeps a copy read before a
//! write from being stored after it. Only this process writes users; options, connections,
//! clients and domains can also change from `customdb tenant` in another process, so their
//! copies live a few seconds (`TTL`).

use crate::domain::options::ConnectionOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Client, ConnectionRecord, User};

/// How long a copy that another process may outdate is trusted without reading it again.
const TTL: Duration = Duration::from_secs(5);
/// Copies kept at most; beyond, the map starts over (a bound, not an eviction policy).
const MAX_USERS: usize = 65_536;
const MAX_OPTIONS: usize = 4_096;
/// Copies of connections, clients and hosts kept at most, each.
const MAX_ROWS: usize = 16_384;

type Key = (String, String);

/// A cached profile with its connection's options (which hold its cache policy).
pub type ProfileCopy = (Arc<User>, Arc<ConnectionOptions>);

#[derive(Default)]
pub struct Memo {
    inner: Mutex<Inner>,
    /// Connection records by (tenant, name) and by (tenant, id).
    pub connections: Fresh<Key, Arc<ConnectionRecord>>,
    /// Clients by client_id.
    pub clients: Fresh<String, Arc<Client>>,
    /// The tenant answering for a host (lower-cased), and whether the host is its own.
    pub hosts: Fresh<String, Option<(String, bool)>>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every write that drops a copy.
    generation: u64,
    users: HashMap<Key, Arc<User>>,
    options: HashMap<Key, (Arc<ConnectionOptions>, Instant)>,
}

pub fn key(a: &str, b: &str) -> Key {
    (a.to_string(), b.to_string())
}

impl Memo {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before reading from SQLite; `keep` stores what was read only if no write came
    /// in between.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The user and its connection's options, when both copies are here and fresh.
    pub fn profile(&self, tenant: &str, user_id: &str) -> Option<ProfileCopy> {
        let inner = self.lock();
        let user = inner.users.get(&key(tenant, user_id))?.clone();
        let (options, at) = inner.options.get(&key(tenant, &user.connection))?;
        (at.elapsed() < TTL).then(|| (user, options.clone()))
    }

    /// Keeps copies read from SQLite since `generation`, unless a write came in between.
    pub fn keep(&self, generation: u64, user: Arc<User>, options: Arc<ConnectionOptions>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.users.len() >= MAX_USERS {
            inner.users.clear();
        }
        if inner.options.len() >= MAX_OPTIONS {
            inner.options.clear();
        }
        inner.options.insert(
            key(&user.tenant, &user.connection),
            (options, Instant::now()),
        );
        inner.users.insert(key(&user.tenant, &user.user_id), user);
    }

    /// After a write of one user (called once it is committed).
    pub fn forget_user(&self, tenant: &str, user_id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.users.remove(&key(tenant, user_id));
    }

    /// After a write of the connection `id` named `connection` (its name may have changed),
    /// or of many of its users at once.
    pub fn forget_connection(&self, tenant: &str, id: &str, connection: &str) {
        self.connections
            .forget(|(t, _), record| t == tenant && (record.id == id || record.name == connection));
        let mut inner = self.lock();
        inner.generation += 1;
        inner.options.remove(&key(tenant, connection));
        inner
            .users
            .retain(|(t, _), u| !(t == tenant && u.connection == connection));
    }
}

/// Copies of rows that another process may also write: each lives `TTL`, and a write in this
/// process drops the copies it changes (`forget`) before it is answered.
pub struct Fresh<K, V> {
    inner: Mutex<Rows<K, V>>,
}

struct Rows<K, V> {
    /// Bumped by every `forget`.
    generation: u64,
    rows: HashMap<K, (V, Instant)>,
}

impl<K, V> Default for Fresh<K, V> {
    fn default() -> Self {
        Fresh {
            inner: Mutex::new(Rows {
                generation: 0,
                rows: HashMap::new(),
            }),
        }
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> Fresh<K, V> {
    fn lock(&self) -> MutexGuard<'_, Rows<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before reading from SQLite; `keep` stores what was read only if no write came
    /// in between.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The copy of `key`, if it is here and fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let rows = self.lock();
        let (value, at) = rows.rows.get(key)?;
        (at.elapsed() < TTL).then(|| value.clone())
    }

    /// Keeps copies read from SQLite since `generation`, unless a write came in between.
    pub fn keep(&self, generation: u64, copies: impl IntoIterator<Item = (K, V)>) {
        let mut rows = self.lock();
        if rows.generation != generation {
            return;
        }
        if rows.rows.len() >= MAX_ROWS {
            rows.rows.clear();
        }
        let now = Instant::now();
        rows.rows
            .extend(copies.into_iter().map(|(k, v)| (k, (v, now))));
    }

    /// After a write (called once it is committed): drops the copies `changed` names.
    pub fn forget(&self, changed: impl Fn(&K, &V) -> bool) {
        let mut rows = self.lock();
        rows.generation += 1;
        rows.rows.retain(|k, (v, _)| !changed(k, v));
    }
}
