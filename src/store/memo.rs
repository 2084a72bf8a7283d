//! In-memory copies of what a cached-profile read needs — users by id and their connection's
//! options — so that `GET /api/v2/users/{id}` answers without a trip to SQLite. Only this
//! process writes users: each write drops its user's copy, and a generation counter keeps a
//! copy read before a write from being stored after it. Options can also change from
//! `customdb tenant` in another process, so their copies live a few seconds.

use crate::domain::options::ConnectionOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::User;

/// How long a connection's options are trusted without reading them again.
const OPTIONS_TTL: Duration = Duration::from_secs(5);
/// Copies kept at most; beyond, the map starts over (a bound, not an eviction policy).
const MAX_USERS: usize = 65_536;
const MAX_OPTIONS: usize = 4_096;

type Key = (String, String);

/// A cached profile with its connection's options (which hold its cache policy).
pub type ProfileCopy = (Arc<User>, Arc<ConnectionOptions>);

#[derive(Default)]
pub struct Memo {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every write that drops a copy.
    generation: u64,
    users: HashMap<Key, Arc<User>>,
    options: HashMap<Key, (Arc<ConnectionOptions>, Instant)>,
}

fn key(a: &str, b: &str) -> Key {
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
        (at.elapsed() < OPTIONS_TTL).then(|| (user, options.clone()))
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

    /// After a write of a connection's options, or of many users at once.
    pub fn forget_connection(&self, tenant: &str, connection: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.options.remove(&key(tenant, connection));
        inner
            .users
            .retain(|(t, _), u| !(t == tenant && u.connection == connection));
    }
}
