//! `/api/v2/logs`: the tenant's log events, paged or from a checkpoint, and one by its id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::extract::*;
use super::{ApiError, AppState, Query};
use crate::domain::events::LogFilter;
use crate::store::LogWindow;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/logs", get(logs))
        .route("/api/v2/logs/{id}", get(log_event))
}

/// `GET /logs`'s parameters: Auth0's paging (`page`, `per_page`, `include_totals`) with a
/// search (`q`, or `search` as the generated SDKs call it) and a `sort`, or a checkpoint
/// (`from` an event id, `take` how many after it), which ignores the others; `fields` and
/// `include_fields` either way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    page: usize,
    per_page: Option<usize>,
    #[serde(default)]
    include_totals: bool,
    /// A `log_id` (a string of digits).
    from: Option<String>,
    take: Option<usize>,
    q: Option<String>,
    search: Option<String>,
    sort: Option<String>,
    fields: Option<String>,
    include_fields: Option<bool>,
}

/// A `log_id` as the API accepts it back, or a 400 naming the parameter.
fn parse_log_id(name: &str, text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_query(format!("{name} must be a log_id, as log events carry it"))
    })
}

/// `GET /logs/{id}`: one event, or Auth0's 404.
async fn log_event(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadLogs>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found =
        || ApiError::management(StatusCode::NOT_FOUND, "log not found", "inexistent_log");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let event = state
        .core
        .log_event(&tenant.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!(event)))
}

async fn logs(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadLogs>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let per_page = q.per_page.unwrap_or(50);
    let take = q.take.unwrap_or(50);
    for (name, value) in [("per_page", per_page), ("take", take)] {
        if !(1..=100).contains(&value) {
            return Err(ApiError::bad_query(format!(
                "{name} must be between 1 and 100"
            )));
        }
    }
    let projection =
        super::dto::Projection::new(q.fields.as_deref(), q.include_fields.unwrap_or(true));
    let from = q
        .from
        .as_deref()
        .map(|f| parse_log_id("from", f))
        .transpose()?;
    let window = match from {
        Some(id) => LogWindow::After { id, take },
        None => {
            let filter: LogFilter = match q.q.as_deref().or(q.search.as_deref()) {
                Some(search) => search
                    .parse()
                    .map_err(|e| ApiError::bad_query(format!("q: {e}")))?,
                None => LogFilter::default(),
            };
            let oldest_first = match q.sort.as_deref() {
                None | Some("date:-1" | "log_id:-1") => false,
                Some("date:1" | "log_id:1") => true,
                Some(other) => {
                    return Err(ApiError::bad_query(format!(
                        "sort `{other}` is not supported: date:1 or date:-1"
                    )));
                }
            };
            // Auth0's offset paging reaches the first 1000 events; a checkpoint goes further.
            if q.page.saturating_mul(per_page) >= 1000 {
                return Err(ApiError::management(
                    StatusCode::BAD_REQUEST,
                    "You can only page through the first 1000 records: use checkpoint paging (from, take)",
                    "invalid_paging",
                ));
            }
            LogWindow::Page {
                page: q.page,
                per_page,
                oldest_first,
                filter,
            }
        }
    };
    let (events, total) = state.core.log_window(&tenant.id, window).await?;
    let last = events.last().map(|e| e.id);
    let events: Vec<Value> = events.iter().map(|e| projection.apply(json!(e))).collect();
    if let Some(from) = from {
        // Auth0's checkpoint answer: a bare array, ordered by log_id, and the next page's URL in
        // a `Link` header (the same URL again when there was nothing new).
        let next = last.unwrap_or(from);
        let link = format!(
            "<{}/api/v2/logs?from={next}&take={take}>; rel=\"next\"",
            tenant.base_url()
        );
        let mut response = Json(json!(events)).into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
        return Ok(response);
    }
    Ok(Json(if q.include_totals {
        json!({"start": q.page * per_page, "limit": per_page, "length": events.len(), "total": total, "logs": events})
    } else {
        json!(events)
    })
    .into_response())
}
