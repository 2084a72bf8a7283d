//! Password changes over HTTP: `POST /dbconnections/change_password` (Auth0's "forgot
//! password"), `POST /api/v2/tickets/password-change` (a ticket URL for the operator to
//! deliver, since customdb sends no mail), and `/lo/reset`, where a ticket and a new password
//! run the password-change flow.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::auth::{client, text};
use super::connections::connection_record;
use super::extract::*;
use super::{ApiError, AppState, Query, Tenant, body};
use crate::service::{DEFAULT_TTL_SECS, MAX_TTL_SECS, Redeemed, TicketRequest};
use crate::store::Issuer;

/// What Auth0 answers to every change-password request, whether or not the user exists.
const REQUESTED: &str = "We've just sent you an email to reset your password.";
const CHANGED: &str = "You have successfully changed your password.";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dbconnections/change_password", post(request_change))
        .route("/api/v2/tickets/password-change", post(create_ticket))
        .route("/lo/reset", axum::routing::get(reset_form).post(reset))
}

/// The URL a ticket id is redeemed at.
fn ticket_url(tenant: &Tenant, id: &str) -> String {
    format!("{}/lo/reset?ticket={id}#", tenant.base_url())
}

/// `POST /dbconnections/change_password {client_id, email, connection}`: records a ticket for
/// the user with the email, if any. The answer never tells whether the user exists.
async fn request_change(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    request: Request,
) -> Result<Response, ApiError> {
    let body = super::auth::parameters(request).await?;
    client(&state, &tenant, &body).await?;
    let email = text(&body, "email").ok_or_else(|| ApiError::missing("email"))?;
    crate::domain::profile::check_email(email).map_err(|why| {
        ApiError::auth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("email {why}"),
        )
    })?;
    crate::service::note_caller(|c| c.user_name = Some(email.to_string()));
    let name = text(&body, "connection").ok_or_else(|| ApiError::missing("connection"))?;
    let record = state
        .core
        .connection_record(&tenant.id, name)
        .await?
        .ok_or_else(|| {
            ApiError::auth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("no connection named '{name}'"),
            )
        })?;
    let _slot = state.admit(&tenant.id)?;
    state
        .core
        .request_password_change(&tenant.id, &record, email)
        .await?;
    // Auth0 answers the sentence itself as text/html, not JSON; SDKs show it as is.
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        REQUESTED,
    )
        .into_response())
}

/// The body of `POST /api/v2/tickets/password-change`: the user by id, or by email and
/// connection id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    user_id: Option<String>,
    email: Option<String>,
    connection_id: Option<String>,
    result_url: Option<String>,
    ttl_sec: Option<i64>,
    #[serde(default)]
    mark_email_as_verified: bool,
}

async fn create_ticket(
    State(state): State<Arc<AppState>>,
    ManagementToken { tenant, .. }: ManagementToken<CreateUserTickets>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: TicketBody = super::dto::typed(body(request).await?)?;
    let ttl_secs = match body.ttl_sec {
        None | Some(0) => DEFAULT_TTL_SECS,
        Some(s) if (1..=MAX_TTL_SECS).contains(&s) => s,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "Payload validation error: ttl_sec {s} is outside 0..={MAX_TTL_SECS}"
            )));
        }
    };
    if let Some(url) = &body.result_url {
        let parsed = url::Url::parse(url).map_err(|e| {
            ApiError::bad_request(format!(
                "Payload validation error: result_url is not a URL: {e}"
            ))
        })?;
        // The browser is sent there after the reset: never a javascript: or data: URL.
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::bad_request(format!(
                "Payload validation error: result_url must be an http or https URL, not {}:",
                parsed.scheme()
            )));
        }
    }
    let (connection, email) = match (&body.user_id, &body.email, &body.connection_id) {
        (Some(user_id), None, None) => {
            let user = state.core.user(&tenant.id, user_id).await?.ok_or_else(|| {
                ApiError::management(
                    StatusCode::NOT_FOUND,
                    "The user does not exist.",
                    "inexistent_user",
                )
            })?;
            let email = user.email().map(str::to_string).ok_or_else(|| {
                ApiError::bad_request("The user has no email to change the password of.")
            })?;
            (user.connection, email)
        }
        (None, Some(email), Some(id)) => {
            let record = connection_record(&state, &tenant, id.clone()).await?;
            (record.name, email.clone())
        }
        _ => {
            return Err(ApiError::bad_request(
                "Payload validation error: give user_id, or email with connection_id",
            ));
        }
    };
    let id = state
        .core
        .issue_ticket(
            &tenant.id,
            TicketRequest {
                connection,
                email,
                result_url: body.result_url,
                ttl_secs,
                mark_email_verified: body.mark_email_as_verified,
                issuer: Issuer::Administrator,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"ticket": ticket_url(&tenant, &id)})),
    ))
}

#[derive(Debug, Deserialize)]
struct TicketQuery {
    ticket: String,
}

/// A ticket id as issued: 48 lowercase hex digits (so it is safe to put into the page).
fn well_formed(ticket: &str) -> bool {
    ticket.len() == 48 && ticket.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /lo/reset?ticket=`: the page where the user types the new password.
async fn reset_form(Query(q): Query<TicketQuery>) -> Response {
    if !well_formed(&q.ticket) {
        return (
            StatusCode::BAD_REQUEST,
            Html("<!doctype html><title>Reset password</title><p>This link is not valid.</p>"),
        )
            .into_response();
    }
    Html(format!(
        "<!doctype html><title>Reset password</title>\
         <form method=post action=/lo/reset>\
         <input type=hidden name=ticket value={}>\
         <p><label>New password <input type=password name=newPassword required></label></p>\
         <p><label>Confirm <input type=password name=confirmNewPassword required></label></p>\
         <p><button>Change password</button></p></form>",
        q.ticket
    ))
    .into_response()
}

/// `POST /lo/reset {ticket, newPassword[, confirmNewPassword]}` (JSON or form): runs the
/// password-change flow; redirects to the ticket's `result_url` when it has one.
async fn reset(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    request: Request,
) -> Result<Response, ApiError> {
    let body = super::auth::parameters(request).await?;
    let bad =
        |description: &str| ApiError::auth(StatusCode::BAD_REQUEST, "invalid_request", description);
    let ticket = text(&body, "ticket").ok_or_else(|| ApiError::missing("ticket"))?;
    let password = text(&body, "newPassword").ok_or_else(|| ApiError::missing("newPassword"))?;
    if text(&body, "confirmNewPassword").is_some_and(|c| c != password) {
        return Err(bad("The passwords do not match."));
    }
    let _slot = state.admit(&tenant.id)?;
    match state
        .core
        .redeem_ticket(&tenant.id, ticket, password)
        .await?
    {
        Redeemed::Changed {
            result_url: Some(url),
        } => {
            let mut target = url::Url::parse(&url).map_err(|e| bad(&e.to_string()))?;
            target
                .query_pairs_mut()
                .append_pair("success", "true")
                .append_pair("message", CHANGED);
            Ok(Redirect::to(target.as_str()).into_response())
        }
        Redeemed::Changed { result_url: None } => {
            Ok(Json(json!({"success": true, "message": CHANGED})).into_response())
        }
        Redeemed::InvalidTicket => Err(ApiError::auth(
            StatusCode::NOT_FOUND,
            "invalid_ticket",
            "The ticket is unknown, expired or already used.",
        )),
        Redeemed::Failed(refusal) => Err(super::error::reset_error(refusal)),
    }
}
