//! `/api/v2/connections`: create, read, list with Auth0's three paging shapes, update, delete,
//! a user out of the store, and the dashboard's "Try" (beyond Auth0). Configuration values
//! never leave in clear.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::error::management;
use super::extract::*;
use super::users::EmailQuery;
use super::{ApiError, AppState, Query, Tenant, body};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v2/connections",
            get(connections).post(create_connection),
        )
        .route(
            "/api/v2/connections/{id}",
            get(get_connection)
                .patch(patch_connection)
                .delete(delete_connection),
        )
        .route(
            "/api/v2/connections/{id}/users",
            axum::routing::delete(delete_connection_user),
        )
        .route(
            "/api/v2/connections/{id}/try",
            axum::routing::post(try_script),
        )
}

/// What the Management API shows in place of each configuration value.
use crate::service::ENCRYPTED;

/// A connection as the Management API shows it: configuration values never leave in clear.
fn connection_json(r: &crate::store::ConnectionRecord) -> Value {
    let configuration = r
        .configuration
        .keys()
        .map(|k| (k.clone(), json!(ENCRYPTED)))
        .collect();
    let options = r
        .options
        .document(crate::service::sources(&r.scripts), configuration);
    crate::domain::connection::document(Some(&r.id), &r.name, &r.attributes, options)
}

fn payload_error(e: String) -> ApiError {
    ApiError::bad_request(format!("Payload validation error: {e}"))
}

/// A store write of a connection; a name the tenant already has is Auth0's 409.
async fn put_connection(
    state: &AppState,
    record: &crate::store::ConnectionRecord,
) -> Result<(), ApiError> {
    state.core.save_connection(record).await.map_err(management)
}

/// The tenant's connection `id` (or name), or Auth0's 404.
pub(super) async fn connection_record(
    state: &AppState,
    tenant: &Tenant,
    id: String,
) -> Result<crate::store::ConnectionRecord, ApiError> {
    state
        .core
        .connection_record(&tenant.id, &id)
        .await?
        .ok_or_else(no_connection)
}

fn no_connection() -> ApiError {
    ApiError::management(
        StatusCode::NOT_FOUND,
        "The connection does not exist",
        "inexistent_connection",
    )
}

async fn create_connection(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<CreateConnections>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body(request).await?;
    let id = format!("con_{}", uuid::Uuid::new_v4().simple());
    let record =
        crate::service::connection_from_api(&tenant.id, id, &body).map_err(payload_error)?;
    put_connection(&state, &record).await?;
    Ok((StatusCode::CREATED, Json(connection_json(&record))))
}

async fn get_connection(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadConnections>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = connection_record(&state, &tenant, id).await?;
    Ok(Json(connection_json(&record)))
}

async fn patch_connection(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateConnections>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = body(request).await?;
    let existing = connection_record(&state, &tenant, id).await?;
    let record = crate::service::patch_connection(&existing, &body).map_err(payload_error)?;
    put_connection(&state, &record).await?;
    Ok(Json(connection_json(&record)))
}

async fn delete_connection(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<DeleteConnections>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.core.delete_connection(&tenant.id, &id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(no_connection())
    }
}

/// `DELETE /connections/{id}/users?email=`: removes the user from customdb's store (Auth0's
/// semantics: no script runs; a user of the tenant's database comes back at the next login).
async fn delete_connection_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<DeleteUsers>,
    Path(id): Path<String>,
    Query(q): Query<EmailQuery>,
) -> Result<StatusCode, ApiError> {
    let record = connection_record(&state, &tenant, id).await?;
    state
        .core
        .forget_user(&tenant.id, &record.name, &q.email)
        .await
        .map_err(management)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TryBody {
    action: crate::script::Action,
    #[serde(default)]
    args: Vec<Value>,
    /// A script to run in place of the stored one (the dashboard's unsaved edit).
    script: Option<String>,
}

/// `POST /connections/{id}/try` (beyond Auth0, the dashboard's "Try"): runs a stored or
/// supplied script and returns the Execution with the normalized profile.
async fn try_script(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateConnections>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body: TryBody = super::dto::typed(body(request).await?)?;
    let record = connection_record(&state, &tenant, id).await?;
    let _slot = state.admit(&tenant.id)?;
    let report = state
        .core
        .try_script(
            &tenant.id,
            &record.name,
            body.action,
            body.args,
            body.script,
        )
        .await
        .map_err(management)?;
    Ok(Json(report))
}

/// `GET /connections` as Auth0 pages it (notes: auth0-jobs-and-protection §1): a checkpoint
/// (`from`/`take` → `{connections, next}`, `next` absent on the last page; it wins over
/// everything else, as auth0-python sends `include_totals=true&take=50`), offset paging with
/// totals (`{start, limit, total, connections}`, the first 1000 only), or a bare array; the
/// filters `name`, `strategy` (repeatable) and `fields`/`include_fields`.
async fn connections(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadConnections>,
    uri: axum::http::Uri,
) -> Result<Json<Value>, ApiError> {
    let query = ConnectionsQuery::parse(uri.query().unwrap_or_default())?;
    let mut records = state.core.connections(&tenant.id).await?;
    records.retain(|r| query.name.as_ref().is_none_or(|n| *n == r.name));
    // Every connection here is a database connection.
    if !query.strategies.is_empty() && !query.strategies.iter().any(|s| s == "auth0") {
        records.clear();
    }
    let shown = |records: &[crate::store::ConnectionRecord]| -> Vec<Value> {
        records
            .iter()
            .map(|r| query.projection.apply(connection_json(r)))
            .collect()
    };
    if query.take.is_some() || query.from.is_some() {
        let take = query.take.unwrap_or(50);
        let start = match &query.from {
            Some(from) => records
                .iter()
                .position(|r| checkpoint(&r.name) == *from)
                .map_or(records.len(), |i| i + 1),
            None => 0,
        };
        let page = &records[start.min(records.len())..(start + take).min(records.len())];
        let mut body = json!({"connections": shown(page)});
        if start + take < records.len()
            && let Some(last) = page.last()
        {
            body["next"] = json!(checkpoint(&last.name));
        }
        return Ok(Json(body));
    }
    let per_page = query.per_page.unwrap_or(50);
    let start = query.page * per_page;
    if start >= 1000 {
        return Err(ApiError::management(
            StatusCode::BAD_REQUEST,
            "You can only page through the first 1000 records: use checkpoint paging (from, take)",
            "invalid_paging",
        ));
    }
    let paged = query.page > 0 || query.per_page.is_some();
    let page: &[crate::store::ConnectionRecord] = if paged || query.include_totals {
        &records[start.min(records.len())..(start + per_page).min(records.len())]
    } else {
        &records
    };
    if query.include_totals {
        return Ok(Json(json!({
            "start": start, "limit": per_page, "total": records.len(), "connections": shown(page),
        })));
    }
    Ok(Json(Value::Array(shown(page))))
}

/// The opaque checkpoint after a connection: its name, base64url-encoded.
fn checkpoint(name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

/// The query string of `GET /connections`. Parsed by hand: `strategy` may repeat.
#[derive(Debug, Default)]
struct ConnectionsQuery {
    page: usize,
    per_page: Option<usize>,
    include_totals: bool,
    from: Option<String>,
    take: Option<usize>,
    name: Option<String>,
    strategies: Vec<String>,
    projection: super::dto::Projection,
}

impl ConnectionsQuery {
    fn parse(raw: &str) -> Result<Self, ApiError> {
        let bad = ApiError::bad_query;
        let number = |key: &str, value: &str, range: std::ops::RangeInclusive<usize>| {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "{key} must be a number in {}..={}",
                        range.start(),
                        range.end()
                    ))
                })
        };
        let flag = |key: &str, value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(format!("{key} must be true or false"))),
        };
        let mut q = ConnectionsQuery::default();
        let (mut fields, mut include_fields) = (None, true);
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match key.as_ref() {
                "page" => q.page = number("page", &value, 0..=usize::MAX / 1024)?,
                "per_page" => q.per_page = Some(number("per_page", &value, 1..=100)?),
                "include_totals" => q.include_totals = flag("include_totals", &value)?,
                "from" => q.from = Some(value.into_owned()).filter(|v| !v.is_empty()),
                "take" => q.take = Some(number("take", &value, 1..=100)?),
                "name" => q.name = Some(value.into_owned()),
                "strategy" => q.strategies.extend(value.split(',').map(str::to_string)),
                "fields" => fields = Some(value.into_owned()),
                "include_fields" => include_fields = flag("include_fields", &value)?,
                other => return Err(bad(format!("unknown parameter {other}"))),
            }
        }
        q.projection = super::dto::Projection::new(fields.as_deref(), include_fields);
        Ok(q)
    }
}
