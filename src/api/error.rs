//! The one place where what the service layer answers becomes HTTP: `ApiError` (an error in
//! one of Auth0's two shapes, the Authentication API's `{error, error_description}` and the
//! Management API's `{statusCode, error, message, errorCode}`) and the mapping of each flow's
//! `Answer` to the status and body Auth0 gives it. customdb's own failures are a 500 whose
//! body carries only the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::request_id;
use crate::domain::protection::{BLOCKED_DESCRIPTION, THROTTLED_DESCRIPTION};
use crate::service::{Failure, Refusal, ServiceError};

/// An error answer in one of Auth0's two shapes.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The Authentication API's shape: `{error, error_description}`.
    pub fn auth(status: StatusCode, error: &str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({"error": error, "error_description": description.into()}),
            retry_after: None,
        }
    }

    /// The Management API's shape: `{statusCode, error, message, errorCode}`.
    pub fn management(status: StatusCode, message: impl Into<String>, code: &str) -> Self {
        ApiError {
            retry_after: None,
            status,
            body: json!({
                "statusCode": status.as_u16(),
                "error": status.canonical_reason().unwrap_or(""),
                "message": message.into(),
                "errorCode": code,
            }),
        }
    }

    /// The Authentication API's answer to a request without a required parameter.
    pub fn missing(parameter: &str) -> Self {
        Self::auth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Missing required parameter: {parameter}"),
        )
    }

    /// The Management API's 400 for a query parameter: "Query validation error: {what}".
    pub fn bad_query(what: impl std::fmt::Display) -> Self {
        Self::management(
            StatusCode::BAD_REQUEST,
            format!("Query validation error: {what}"),
            "invalid_query_string",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::management(StatusCode::BAD_REQUEST, message, "invalid_body")
    }

    /// The Authentication API's answer when a tenant's script failed (an error, a limit, an
    /// invalid profile): Auth0's sentence and the request id, never the script's own words,
    /// which go to the tenant's logs and live stream.
    pub fn script_failed() -> Self {
        let mut e = Self::auth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Something went wrong while trying to reach your database.",
        );
        e.body["request_id"] = json!(request_id());
        e
    }

    /// customdb itself failed: logged in full with the request id; the client gets the id only.
    pub fn internal(error: ServiceError) -> Self {
        let id = request_id();
        tracing::error!(request_id = %id, error = %error, "request failed");
        if error.is_disk_full() {
            // Nothing was written (the transaction rolled back); the same request succeeds
            // once the operator frees space.
            let mut e = Self::management(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server cannot store anything right now (its disk is full); nothing was changed, try again later (request id {id})"
                ),
                "temporarily_unavailable",
            );
            e.retry_after = Some(30);
            return e;
        }
        Self::management(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (request id {id})"),
            "internal_error",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::UnknownConnection(name) => ApiError::management(
                StatusCode::BAD_REQUEST,
                format!("no connection named '{name}'"),
                "invalid_connection",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A use case's failure as the Management API answers it.
pub(super) fn management(failure: Failure) -> ApiError {
    let refusal = match failure {
        Failure::Refused(r) => r,
        Failure::Internal(e) => return e.into(),
    };
    match refusal {
        Refusal::NotFound => ApiError::management(
            StatusCode::NOT_FOUND,
            "The user does not exist.",
            "inexistent_user",
        ),
        Refusal::BadRequest(v) | Refusal::InvalidProfile(v) => ApiError::management(
            StatusCode::BAD_REQUEST,
            format!("Payload validation error: {}", joined(&v)),
            "invalid_body",
        ),
        Refusal::Conflict { message, code } => {
            ApiError::management(StatusCode::CONFLICT, message, &code)
        }
        Refusal::MissingScript(action) => ApiError::management(
            StatusCode::BAD_REQUEST,
            format!("{action} script does not exist"),
            "operation_not_supported",
        ),
        Refusal::Refused => ApiError::management(
            StatusCode::BAD_REQUEST,
            "The connection's script refused the change.",
            "operation_not_supported",
        ),
        Refusal::ScriptFailed { outcome, error } => ApiError::management(
            StatusCode::BAD_GATEWAY,
            match error {
                Some(e) => format!("the connection's script failed: {e}"),
                None => format!("the connection's script failed: {outcome}"),
            },
            "script_error",
        ),
        Refusal::WeakPassword(rejection) => {
            let (name, message) = rejection.name_and_message();
            ApiError::management(
                StatusCode::BAD_REQUEST,
                format!("{name}: {message}"),
                "invalid_password",
            )
        }
        Refusal::TooManyAttempts => ApiError::management(
            StatusCode::TOO_MANY_REQUESTS,
            BLOCKED_DESCRIPTION,
            "too_many_attempts",
        ),
        Refusal::SuspiciousIp => ApiError::management(
            StatusCode::TOO_MANY_REQUESTS,
            THROTTLED_DESCRIPTION,
            "too_many_attempts",
        ),
        Refusal::Blocked | Refusal::WrongCredentials | Refusal::Unauthorized(_) => {
            ApiError::management(
                StatusCode::FORBIDDEN,
                "The operation is not allowed for this user.",
                "operation_not_allowed",
            )
        }
    }
}

/// Auth0's answers to a failed login.
pub(super) fn login_error(failure: Failure) -> ApiError {
    let refusal = match failure {
        Failure::Refused(r) => r,
        Failure::Internal(e) => return e.into(),
    };
    match refusal {
        Refusal::WrongCredentials
        | Refusal::NotFound
        | Refusal::Refused
        | Refusal::BadRequest(_) => ApiError::auth(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "Wrong email or password.",
        ),
        Refusal::Blocked => {
            ApiError::auth(StatusCode::UNAUTHORIZED, "unauthorized", "user is blocked")
        }
        Refusal::TooManyAttempts => ApiError::auth(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            BLOCKED_DESCRIPTION,
        ),
        Refusal::SuspiciousIp => ApiError::auth(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            THROTTLED_DESCRIPTION,
        ),
        Refusal::WeakPassword(rejection) => ApiError {
            status: StatusCode::BAD_REQUEST,
            body: rejection.signup_body(),
            retry_after: None,
        },
        Refusal::Unauthorized(message) => {
            ApiError::auth(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        // The script's own words (and the profile it returned) are for the tenant's logs.
        Refusal::InvalidProfile(_) | Refusal::ScriptFailed { .. } => ApiError::script_failed(),
        Refusal::Conflict { message, .. } => {
            ApiError::auth(StatusCode::CONFLICT, "invalid_grant", message)
        }
        Refusal::MissingScript(action) => ApiError::auth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("{action} script does not exist"),
        ),
    }
}

/// Auth0's answers to a failed signup (`/dbconnections/signup`).
pub(super) fn signup_error(failure: Failure) -> ApiError {
    let bad_request = |name: &str, code: &str, description: String| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"name": name, "code": code, "description": description, "statusCode": 400}),
        retry_after: None,
    };
    match failure {
        Failure::Refused(Refusal::Conflict { code, message }) => {
            bad_request("BadRequestError", &code, message)
        }
        Failure::Refused(Refusal::InvalidProfile(v) | Refusal::BadRequest(v)) => {
            bad_request("ValidationError", "invalid_signup", joined(&v))
        }
        other => login_error(other),
    }
}

/// A password change that did not happen, as the reset page reports it.
pub(super) fn reset_error(refusal: Refusal) -> ApiError {
    let (status, description) = match refusal {
        Refusal::InvalidProfile(_) | Refusal::ScriptFailed { .. } => {
            return ApiError::script_failed();
        }
        Refusal::NotFound => (StatusCode::BAD_REQUEST, "The user does not exist.".into()),
        Refusal::Refused => (
            StatusCode::BAD_REQUEST,
            "The connection's change_password script refused the change.".into(),
        ),
        Refusal::Unauthorized(message) => (StatusCode::UNAUTHORIZED, message),
        Refusal::Blocked => (StatusCode::UNAUTHORIZED, "user is blocked".into()),
        Refusal::TooManyAttempts => (StatusCode::TOO_MANY_REQUESTS, BLOCKED_DESCRIPTION.into()),
        Refusal::SuspiciousIp => (StatusCode::TOO_MANY_REQUESTS, THROTTLED_DESCRIPTION.into()),
        Refusal::WeakPassword(rejection) => (
            StatusCode::BAD_REQUEST,
            match &rejection {
                crate::domain::password_policy::Rejection::TooWeak { policy, .. } => {
                    format!("Password is too weak. The password must have:\n{policy}")
                }
                other => format!("{}.", other.name_and_message().1),
            },
        ),
        Refusal::Conflict { message, .. } => (StatusCode::CONFLICT, message),
        Refusal::BadRequest(v) => (StatusCode::BAD_REQUEST, joined(&v)),
        Refusal::MissingScript(action) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{action} script does not exist"),
        ),
        Refusal::WrongCredentials => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the password was not changed".into(),
        ),
    };
    let error = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request"
    };
    ApiError::auth(status, error, description)
}

fn joined(violations: &[crate::domain::profile::Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
