//! Attack protection over the Management API: `/api/v2/user-blocks` (read and lift the blocks
//! brute-force protection set, by user id or by identifier) and
//! `/api/v2/attack-protection/brute-force-protection` and `suspicious-ip-throttling` (the
//! tenant's settings), and `/api/v2/anomaly/blocks/ips/{ip}` (throttled addresses), in
//! Auth0's shapes (notes §4.5, §4.8).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::error::management;
use super::extract::*;
use super::{ApiError, AppState, Query, body};
use crate::service::{Blocked, Failure, Refusal};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v2/user-blocks",
            get(blocks_of_identifier).delete(unblock_identifier),
        )
        .route(
            "/api/v2/user-blocks/{id}",
            get(blocks_of_user).delete(unblock_user),
        )
        .route(
            "/api/v2/attack-protection/brute-force-protection",
            get(brute_force).patch(patch_brute_force),
        )
        .route(
            "/api/v2/attack-protection/suspicious-ip-throttling",
            get(suspicious_ip).patch(patch_suspicious_ip),
        )
        .route(
            "/api/v2/anomaly/blocks/ips/{ip}",
            get(ip_block).delete(unblock_ip),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksQuery {
    identifier: Option<String>,
    #[serde(default)]
    consider_brute_force_enablement: bool,
}

impl BlocksQuery {
    fn identifier(&self) -> Result<&str, ApiError> {
        self.identifier
            .as_deref()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ApiError::bad_query("identifier is required"))
    }
}

/// Auth0's 404 of the user-blocks endpoints.
fn by_user(failure: Failure) -> ApiError {
    match failure {
        Failure::Refused(Refusal::NotFound) => {
            ApiError::management(StatusCode::NOT_FOUND, "User not found.", "inexistent_user")
        }
        other => management(other),
    }
}

async fn blocks_of_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadUsers>,
    Path(id): Path<String>,
    Query(query): Query<BlocksQuery>,
) -> Result<Json<Value>, ApiError> {
    let blocks = state
        .core
        .user_blocks(
            &tenant.id,
            Blocked::User(&id),
            query.consider_brute_force_enablement,
        )
        .await
        .map_err(by_user)?;
    Ok(Json(json!({ "blocked_for": blocks })))
}

async fn blocks_of_identifier(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadUsers>,
    Query(query): Query<BlocksQuery>,
) -> Result<Json<Value>, ApiError> {
    let identifier = query.identifier()?;
    let blocks = state
        .core
        .user_blocks(
            &tenant.id,
            Blocked::Identifier(identifier),
            query.consider_brute_force_enablement,
        )
        .await
        .map_err(management)?;
    Ok(Json(json!({ "blocked_for": blocks })))
}

async fn unblock_user(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .unblock(&tenant.id, Blocked::User(&id))
        .await
        .map_err(by_user)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unblock_identifier(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateUsers>,
    Query(query): Query<BlocksQuery>,
) -> Result<StatusCode, ApiError> {
    let identifier = query.identifier()?;
    state
        .core
        .unblock(&tenant.id, Blocked::Identifier(identifier))
        .await
        .map_err(management)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn brute_force(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadAttackProtection>,
) -> Result<Json<Value>, ApiError> {
    let settings = state.core.brute_force(&tenant.id).await?;
    Ok(Json(json!(settings)))
}

/// A PATCH body, which must be an object.
async fn object(request: Request) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body(request).await? {
        Value::Object(patch) => Ok(patch),
        _ => Err(ApiError::bad_request(
            "Payload validation error: the body must be an object",
        )),
    }
}

async fn patch_brute_force(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateAttackProtection>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let patch = object(request).await?;
    let settings = state
        .core
        .patch_brute_force(&tenant.id, patch)
        .await
        .map_err(management)?;
    Ok(Json(json!(settings)))
}

async fn suspicious_ip(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<ReadAttackProtection>,
) -> Result<Json<Value>, ApiError> {
    let settings = state.core.suspicious_ip(&tenant.id).await?;
    Ok(Json(json!(settings)))
}

async fn patch_suspicious_ip(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<UpdateAttackProtection>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let patch = object(request).await?;
    let settings = state
        .core
        .patch_suspicious_ip(&tenant.id, patch)
        .await
        .map_err(management)?;
    Ok(Json(json!(settings)))
}

/// 200 when the address is throttled now, 404 when it is not (Auth0's answers).
async fn ip_block(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<GetAnomalyBlock>,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.core.ip_blocked(&tenant.id, &ip).await? {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::management(
            StatusCode::NOT_FOUND,
            "IP is not blocked",
            "not_found",
        ))
    }
}

async fn unblock_ip(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<DeleteAnomalyBlock>,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.unblock_ip(&tenant.id, &ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
