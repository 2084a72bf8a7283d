//! `/api/v2/users` and `/api/v2/users-by-email`: get, list with Auth0's paging and a subset
//! of `q`, by email, create (the signup flow), patch, delete.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use super::error::management;
use super::extract::*;
use super::{ApiError, AppState, Query, body};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/users", get(list_users).post(create_user))
        .route(
            "/api/v2/users/{id}",
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route("/api/v2/users-by-email", get(users_by_email))
}

async fn get_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadUsers>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cached = state
        .core
        .read_user(&tenant.id, &id)
        .await
        .map_err(management)?;
    Ok(Json(super::dto::cached_user(&cached)))
}

async fn patch_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateUsers>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = body(request).await?;
    let _slot = state.admit(&tenant.id)?;
    let user = state
        .core
        .patch_user(&tenant.id, &id, &body)
        .await
        .map_err(management)?;
    Ok(Json(super::dto::user(&user)))
}

async fn delete_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<DeleteUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _slot = state.admit(&tenant.id)?;
    state
        .core
        .delete(&tenant.id, &id)
        .await
        .map_err(management)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    page: usize,
    per_page: Option<usize>,
    #[serde(default)]
    include_totals: bool,
    q: Option<String>,
    connection: Option<String>,
}

/// Auth0's `q` subset: free text, or `field:value` / `field:"value"` for `email`, `user_id`,
/// `name`, `username` and `identities.connection`.
fn parse_q(q: &str) -> (Option<String>, Option<String>) {
    let mut text = None;
    let mut connection = None;
    for term in q.split(" AND ") {
        let term = term.trim();
        match term.split_once(':') {
            Some(("identities.connection", v)) => {
                connection = Some(v.trim_matches('"').to_string())
            }
            Some((_, v)) => text = Some(v.trim_matches('"').trim_matches('*').to_string()),
            None => text = Some(term.trim_matches('"').trim_matches('*').to_string()),
        }
    }
    (text.filter(|t| !t.is_empty()), connection)
}

async fn list_users(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadUsers>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let per_page = q.per_page.unwrap_or(50);
    if per_page > 100 {
        return Err(ApiError::bad_query("per_page must be between 0 and 100"));
    }
    // Auth0's offset paging reaches the first 1000 users only.
    if q.page.saturating_mul(per_page.max(1)) >= 1000 {
        return Err(ApiError::management(
            StatusCode::BAD_REQUEST,
            "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation.",
            "invalid_paging",
        ));
    }
    let (text, conn) = q.q.as_deref().map(parse_q).unwrap_or_default();
    let connection = q.connection.or(conn);
    let page = state
        .core
        .list_users(
            &tenant.id,
            connection.as_deref(),
            text.as_deref(),
            q.page,
            per_page,
        )
        .await?;
    Ok(Json(if q.include_totals {
        super::dto::user_page(&page)
    } else {
        Value::Array(page.users.iter().map(super::dto::user).collect())
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct EmailQuery {
    pub(super) email: String,
}

async fn users_by_email(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadUsers>,
    Query(q): Query<EmailQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .core
        .list_users(&tenant.id, None, Some(&q.email), 0, 100)
        .await?;
    let exact: Vec<Value> = page
        .users
        .iter()
        .filter(|u| u.email().is_some_and(|e| e.eq_ignore_ascii_case(&q.email)))
        .map(super::dto::user)
        .collect();
    Ok(Json(Value::Array(exact)))
}

async fn create_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<CreateUsers>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body(request).await?;
    super::dto::check_management(&body, super::dto::USER_CREATE)?;
    let connection = body
        .get("connection")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request("Payload validation error: Missing required property: connection")
        })?
        .to_string();
    let mut user = body.clone();
    if let Some(obj) = user.as_object_mut() {
        obj.remove("connection");
    }
    let _slot = state.admit(&tenant.id)?;
    let created = state
        .core
        .signup(&tenant.id, &connection, user)
        .await
        .map_err(management)?;
    Ok((StatusCode::CREATED, Json(super::dto::user(&created))))
}
