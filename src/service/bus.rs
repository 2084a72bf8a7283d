//! The live bus and the tenant's log: every script run and log event as it happens, for
//! live watchers (`GET /api/v2/logs/stream`), and the log events the flows write.

use std::sync::Arc;

use super::{Answer, Service, ServiceError};
use crate::domain::events::{Caller, LiveEvent, LogType};
use crate::store::{LogEvent, LogWindow};

tokio::task_local! {
    /// Who sent the request being answered: what every log event it causes records.
    static CALLER: std::cell::RefCell<Caller>;
}

/// Runs `work` (the answer to one request) with `caller` as the source of its log events.
pub async fn as_caller<F: std::future::Future>(caller: Caller, work: F) -> F::Output {
    CALLER.scope(std::cell::RefCell::new(caller), work).await
}

/// Adds what a handler learned about the caller (its client, the identifier typed) to the
/// request's; nothing outside a request.
pub fn note_caller(change: impl FnOnce(&mut Caller)) {
    let _ = CALLER.try_with(|c| change(&mut c.borrow_mut()));
}

/// The request's caller (empty outside a request).
pub(super) fn caller() -> Caller {
    CALLER.try_with(|c| c.borrow().clone()).unwrap_or_default()
}

/// Events a live watcher may miss before it is told it fell behind.
pub(super) const LIVE_BACKLOG: usize = 1024;

impl Service {
    /// A receiver of every live event from now on (all tenants: the caller filters).
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Shows an event to live watchers; it is built only when someone watches.
    pub(super) fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        if self.live.receiver_count() > 0 {
            // Watchers that left between the check and the send are not an error.
            let _ = self.live.send(Arc::new(event()));
        }
    }

    /// Records a log event and shows it to live watchers; without a description, the
    /// type's own.
    pub(crate) async fn log(
        &self,
        tenant: &str,
        kind: LogType,
        connection: &str,
        user_id: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ServiceError> {
        let description = description.unwrap_or(kind.description());
        let event = self
            .store
            .log(tenant, kind, connection, user_id, description, caller())
            .await?;
        self.published(tenant, &event);
        Ok(())
    }

    /// Shows a log event the store wrote to live watchers.
    pub(super) fn published(&self, tenant: &str, event: &LogEvent) {
        self.publish(|| LiveEvent::Log {
            tenant: tenant.to_string(),
            event: serde_json::to_value(event).unwrap_or_default(),
        });
    }

    /// Forgets the log events, runs, counts and tickets `retention` no longer keeps.
    pub async fn prune(
        &self,
        retention: crate::store::Retention,
    ) -> Result<crate::store::Pruned, ServiceError> {
        Ok(self.store.prune(retention).await?)
    }

    /// One log event of the tenant.
    pub async fn log_event(&self, tenant: &str, id: i64) -> Result<Option<LogEvent>, ServiceError> {
        Ok(self.store.log_event(tenant, id).await?)
    }

    /// A window of the tenant's log events and their total (see `LogWindow`).
    pub async fn log_window(
        &self,
        tenant: &str,
        window: LogWindow,
    ) -> Result<(Vec<LogEvent>, usize), ServiceError> {
        Ok(self.store.log_window(tenant, window).await?)
    }

    /// Logs `success` or `failure` by how `answer` ended.
    pub(super) async fn log_result(
        &self,
        tenant: &str,
        connection: &str,
        answer: &Answer<()>,
        success: LogType,
        failure: LogType,
    ) -> Result<(), ServiceError> {
        let kind = if answer.is_ok() { success } else { failure };
        self.log(tenant, kind, connection, None, None).await
    }
}
