//! The store as async code sees it: every read owns its one hop to the blocking pool (SQLite
//! blocks; the async threads must not) unless memory answers, and every append awaits the
//! store's writer thread, so callers neither clone arguments into closures nor know which
//! database answers. This is the seam a second backend plugs into: the service
//! layer and the API talk to `AsyncStore`, never to SQL.

use std::sync::Arc;

use super::{
    BRUTE_FORCE, Block, Cached, Client, ConnectionRecord, LogEvent, LogWindow, LoginGuard,
    ProfileCopy, Pruned, Retention, RootAttributes, SUSPICIOUS_IP, Store, StoreError, Ticket, User,
    UserChange, memo,
};
use crate::domain::events::LogType;
use crate::domain::profile::Profile;
use crate::domain::protection::{Attempt, BruteForce, Budget, Stage, SuspiciousIp};
use crate::outcome::Execution;
use crate::script::Action;

/// The product's store, async. Cheap to clone.
#[derive(Clone)]
pub struct AsyncStore {
    store: Arc<Store>,
}

impl AsyncStore {
    pub fn new(store: Arc<Store>) -> Self {
        AsyncStore { store }
    }

    /// The blocking store, for callers that are not async (the CLI's setup, tests).
    pub fn sync(&self) -> &Store {
        &self.store
    }

    /// Where the store's dates come from.
    pub fn clock(&self) -> &Arc<dyn crate::domain::time::Clock> {
        self.store.clock()
    }

    /// Runs `f` on the blocking pool.
    async fn hop<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    // Connections.

    pub async fn get_connection(
        &self,
        tenant: &str,
        name_or_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let (t, n) = (tenant.to_owned(), name_or_id.to_owned());
        self.hop(move |s| s.get_connection(&t, &n)).await
    }

    /// The connection as of at most a few seconds ago (`Store::current_connection`): from
    /// memory without a hop when this process read it lately.
    pub async fn current_connection(
        &self,
        tenant: &str,
        name_or_id: &str,
    ) -> Result<Option<Arc<ConnectionRecord>>, StoreError> {
        let key = memo::key(tenant, name_or_id);
        if let Some(hit) = self.store.memo.connections.get(&key) {
            return Ok(Some(hit));
        }
        self.hop(move |s| s.current_connection(&key.0, &key.1))
            .await
    }

    pub async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.hop(move |s| s.put_connection(&r)).await
    }

    pub async fn list_connections(
        &self,
        tenant: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| s.list_connections(&t)).await
    }

    pub async fn delete_connection(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let (t, i) = (tenant.to_owned(), id.to_owned());
        self.hop(move |s| s.delete_connection(&t, &i)).await
    }

    // Users.

    pub async fn get_user(&self, tenant: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.get_user(&t, &u)).await
    }

    /// A cached profile and its connection's options: from memory without a hop when this
    /// process has them.
    pub async fn profile(
        &self,
        tenant: &str,
        user_id: &str,
    ) -> Result<Option<ProfileCopy>, StoreError> {
        if let Some(hit) = self.store.remembered_profile(tenant, user_id) {
            return Ok(Some(hit));
        }
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.profile(&t, &u)).await
    }

    pub async fn find_user(
        &self,
        tenant: &str,
        connection: &str,
        identifier: &str,
    ) -> Result<Option<User>, StoreError> {
        let (t, c, i) = (
            tenant.to_owned(),
            connection.to_owned(),
            identifier.to_owned(),
        );
        self.hop(move |s| s.find_user(&t, &c, &i)).await
    }

    pub async fn cache_profile(
        &self,
        tenant: &str,
        connection: &str,
        profile: Profile,
        roots: RootAttributes,
        cached: Cached,
        migrated_hash: Option<String>,
    ) -> Result<(User, Option<LogEvent>), StoreError> {
        self.store
            .cache_profile(tenant, connection, profile, roots, cached, migrated_hash)
            .await
    }

    pub async fn record_local_login(&self, tenant: &str, user_id: &str) -> Result<(), StoreError> {
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.record_local_login(&t, &u)).await
    }

    pub async fn set_password_hash(
        &self,
        tenant: &str,
        user_id: &str,
        hash: String,
    ) -> Result<bool, StoreError> {
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.set_password_hash(&t, &u, &hash)).await
    }

    pub async fn update_user(
        &self,
        tenant: &str,
        user_id: &str,
        change: UserChange,
    ) -> Result<Option<User>, StoreError> {
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.update_user(&t, &u, &change)).await
    }

    /// Marks the email of the connection's user with this email verified, if there is one.
    pub async fn mark_email_verified(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
    ) -> Result<(), StoreError> {
        let (t, c, e) = (tenant.to_owned(), connection.to_owned(), email.to_owned());
        self.hop(move |s| {
            if let Some(user) = s.find_user(&t, &c, &e)? {
                let mut change = UserChange::default();
                change
                    .fields
                    .insert("email_verified".into(), serde_json::Value::Bool(true));
                s.update_user(&t, &user.user_id, &change)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn delete_user(&self, tenant: &str, user_id: &str) -> Result<bool, StoreError> {
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        self.hop(move |s| s.delete_user(&t, &u)).await
    }

    pub async fn list_users(
        &self,
        tenant: &str,
        connection: Option<&str>,
        search: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<User>, usize), StoreError> {
        let (t, c, q) = (
            tenant.to_owned(),
            connection.map(str::to_owned),
            search.map(str::to_owned),
        );
        self.hop(move |s| s.list_users(&t, c.as_deref(), q.as_deref(), page, per_page))
            .await
    }

    // Attack protection.

    /// What every login checks first, in one hop: the tenant's brute-force settings and,
    /// when `identifier` from `ip` is counted, its keys and the failures counted so far; the
    /// suspicious-IP settings and, when the address is counted, what is left of its login
    /// budget.
    pub async fn login_guard(
        &self,
        tenant: &str,
        connection: &str,
        connection_on: bool,
        identifier: &str,
        ip: Option<&str>,
    ) -> Result<LoginGuard, StoreError> {
        let (t, c, i, ip) = (
            tenant.to_owned(),
            connection.to_owned(),
            identifier.to_owned(),
            ip.map(str::to_owned),
        );
        let now = self.store.clock().now();
        self.hop(move |s| {
            let brute_force: BruteForce = s.setting(&t, BRUTE_FORCE)?;
            let counted = match brute_force.attempt(connection_on, &i, ip.as_deref()) {
                None => None,
                Some(attempt) => {
                    let failures = s.failures(&t, &c, &attempt, now.as_second())?;
                    Some((attempt, failures))
                }
            };
            let suspicious: SuspiciousIp = s.setting(&t, SUSPICIOUS_IP)?;
            let address = match suspicious.counted(ip.as_deref()) {
                None => None,
                Some(ip) => {
                    let budget = suspicious.budget(Stage::Login);
                    let left = s.ip_tokens(&t, &ip, Stage::Login, budget, now.as_millisecond())?;
                    Some((ip, left))
                }
            };
            Ok(LoginGuard {
                brute_force,
                counted,
                suspicious,
                address,
            })
        })
        .await
    }

    pub async fn count_failure(
        &self,
        tenant: &str,
        connection: &str,
        attempt: &Attempt,
    ) -> Result<u32, StoreError> {
        let (t, c, a) = (tenant.to_owned(), connection.to_owned(), attempt.clone());
        let now = self.now_secs();
        self.hop(move |s| s.count_failure(&t, &c, &a, now)).await
    }

    pub async fn clear_failures(
        &self,
        tenant: &str,
        connection: Option<&str>,
        identifiers: Vec<String>,
        ip: Option<&str>,
    ) -> Result<usize, StoreError> {
        let (t, c, ip) = (
            tenant.to_owned(),
            connection.map(str::to_owned),
            ip.map(str::to_owned),
        );
        self.hop(move |s| s.clear_failures(&t, c.as_deref(), &identifiers, ip.as_deref()))
            .await
    }

    pub async fn blocks(
        &self,
        tenant: &str,
        connection: Option<&str>,
        identifiers: Vec<String>,
        max_attempts: u32,
    ) -> Result<Vec<Block>, StoreError> {
        let (t, c) = (tenant.to_owned(), connection.map(str::to_owned));
        let now = self.now_secs();
        self.hop(move |s| s.blocks(&t, c.as_deref(), &identifiers, max_attempts, now))
            .await
    }

    pub async fn brute_force(&self, tenant: &str) -> Result<BruteForce, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| s.setting(&t, BRUTE_FORCE)).await
    }

    pub async fn suspicious_ip(&self, tenant: &str) -> Result<SuspiciousIp, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| s.setting(&t, SUSPICIOUS_IP)).await
    }

    /// Applies a PATCH body to the tenant's suspicious-IP settings in one transaction.
    pub async fn patch_suspicious_ip(
        &self,
        tenant: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Result<SuspiciousIp, crate::domain::profile::Violation>, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| {
            s.update_setting(&t, SUSPICIOUS_IP, |current: SuspiciousIp| {
                current.patched(&patch)
            })
        })
        .await
    }

    /// Takes one attempt from an address's budget: what was left before and after.
    pub async fn take_ip_token(
        &self,
        tenant: &str,
        ip: &str,
        stage: Stage,
        budget: Budget,
    ) -> Result<(f64, f64), StoreError> {
        let (t, ip) = (tenant.to_owned(), ip.to_owned());
        let now = self.store.clock().now().as_millisecond();
        self.hop(move |s| s.take_ip_token(&t, &ip, stage, budget, now))
            .await
    }

    /// What is left of an address's budget in `stage`.
    pub async fn ip_tokens(
        &self,
        tenant: &str,
        ip: &str,
        stage: Stage,
        budget: Budget,
    ) -> Result<f64, StoreError> {
        let (t, ip) = (tenant.to_owned(), ip.to_owned());
        let now = self.store.clock().now().as_millisecond();
        self.hop(move |s| s.ip_tokens(&t, &ip, stage, budget, now))
            .await
    }

    pub async fn clear_ip(&self, tenant: &str, ip: &str) -> Result<usize, StoreError> {
        let (t, ip) = (tenant.to_owned(), ip.to_owned());
        self.hop(move |s| s.clear_ip(&t, &ip)).await
    }

    /// Applies a PATCH body to the tenant's brute-force settings in one transaction.
    pub async fn patch_brute_force(
        &self,
        tenant: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Result<BruteForce, crate::domain::profile::Violation>, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| {
            s.update_setting(&t, BRUTE_FORCE, |current: BruteForce| {
                current.patched(&patch)
            })
        })
        .await
    }

    // Password history.

    pub async fn previous_passwords(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        keep: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (t, c, e) = (tenant.to_owned(), connection.to_owned(), email.to_owned());
        self.hop(move |s| s.previous_passwords(&t, &c, &e, keep))
            .await
    }

    pub async fn remember_password(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        hash: String,
        keep: usize,
    ) -> Result<(), StoreError> {
        let (t, c, e) = (tenant.to_owned(), connection.to_owned(), email.to_owned());
        self.hop(move |s| s.remember_password(&t, &c, &e, &hash, keep))
            .await
    }

    /// Forgets what `retention` no longer keeps (see `Store::prune`).
    pub async fn prune(&self, retention: Retention) -> Result<Pruned, StoreError> {
        self.hop(move |s| s.prune(retention)).await
    }

    fn now_secs(&self) -> i64 {
        self.store.clock().now().as_second()
    }

    // Logs and runs.

    pub async fn log(
        &self,
        tenant: &str,
        kind: LogType,
        connection: &str,
        user_id: Option<&str>,
        description: &str,
        caller: crate::domain::events::Caller,
    ) -> Result<LogEvent, StoreError> {
        self.store
            .log(
                tenant,
                kind,
                Some(connection),
                user_id,
                Some(description),
                caller,
            )
            .await
    }

    pub async fn log_event(&self, tenant: &str, id: i64) -> Result<Option<LogEvent>, StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| s.log_event(&t, id)).await
    }

    pub async fn log_window(
        &self,
        tenant: &str,
        window: LogWindow,
    ) -> Result<(Vec<LogEvent>, usize), StoreError> {
        let t = tenant.to_owned();
        self.hop(move |s| s.log_window(&t, window)).await
    }

    /// Records a run: submitted now, durable once the returned `Pending` answers (or once any
    /// append submitted after it answers: appends commit in order).
    pub fn record_run(
        &self,
        tenant: &str,
        connection: &str,
        action: Action,
        execution: &Execution,
    ) -> super::Pending<()> {
        self.store.record_run(tenant, connection, action, execution)
    }

    // Tenants and clients.

    /// `Store::tenant_for_host`, from memory without a hop when this process read it lately.
    pub async fn tenant_for_host(&self, host: &str) -> Result<Option<(String, bool)>, StoreError> {
        let host = host.to_lowercase();
        if let Some(hit) = self.store.memo.hosts.get(&host) {
            return Ok(hit);
        }
        self.hop(move |s| s.tenant_for_host(&host)).await
    }

    /// `Store::current_client`, from memory without a hop when this process read it lately.
    pub async fn current_client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let id = client_id.to_owned();
        if let Some(hit) = self.store.memo.clients.get(&id) {
            return Ok(Some(hit));
        }
        self.hop(move |s| s.current_client(&id)).await
    }

    // Tickets.

    pub async fn put_ticket(
        &self,
        digest: &str,
        ticket: Ticket,
        now: i64,
    ) -> Result<(), StoreError> {
        let d = digest.to_owned();
        self.hop(move |s| s.put_ticket(&d, &ticket, now)).await
    }

    /// Claims a live ticket of the tenant (expiry read from the store's clock).
    pub async fn claim_ticket(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        let (t, d) = (tenant.to_owned(), digest.to_owned());
        self.hop(move |s| s.claim_ticket(&t, &d, s.clock().now().as_second()))
            .await
    }

    pub async fn finish_ticket(&self, digest: &str, used: bool) -> Result<(), StoreError> {
        let d = digest.to_owned();
        self.hop(move |s| s.finish_ticket(&d, used)).await
    }
}
