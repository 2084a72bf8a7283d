//! `GET /api/v2/logs/stream` (beyond Auth0): every script run of the tenant (outcome, console,
//! timings — redacted in the worker) and every log event, live, as server-sent events. A
//! watcher that falls behind is told how many events it missed.

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

use super::extract::*;
use super::{ApiError, AppState, Query};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v2/logs/stream", get(stream))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    /// Only this connection's runs and events.
    connection: Option<String>,
}

async fn stream(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadLogs>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let receiver = state.core.watch();
    // The first event says the watch has begun: everything after it will be seen.
    let ready = Event::default()
        .event("ready")
        .data(json!({"tenant": tenant.id}).to_string());
    let events = futures::stream::unfold(
        (receiver, tenant.id, q.connection),
        |(mut receiver, tenant, connection)| async move {
            loop {
                let event = match receiver.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(missed)) => {
                        let lagged = Event::default()
                            .event("lagged")
                            .data(json!({"missed": missed}).to_string());
                        return Some((Ok(lagged), (receiver, tenant, connection)));
                    }
                    Err(RecvError::Closed) => return None,
                };
                let wanted = event.tenant() == tenant
                    && connection.as_deref().is_none_or(|c| {
                        event.data().get("connection").and_then(|v| v.as_str()) == Some(c)
                    });
                if wanted {
                    let sse = Event::default()
                        .event(event.name())
                        .data(event.data().to_string());
                    return Some((Ok(sse), (receiver, tenant, connection)));
                }
            }
        },
    );
    let all = futures::stream::once(async { Ok(ready) }).chain(events);
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}
