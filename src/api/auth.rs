//! Auth0's Authentication API: password and password-realm grants, client credentials for
//! Management API tokens, `/userinfo`, `/dbconnections/signup`, JWKS and OpenID discovery.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

use super::{ApiError, AppState, Tenant, body};
use crate::flows::Answer;
use crate::store::User;

/// Lifetime of issued tokens.
const TOKEN_SECONDS: i64 = 86_400;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/dbconnections/signup", post(signup))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(openid))
}

async fn jwks(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.keys.jwks())
}

async fn openid(tenant: Tenant) -> Json<Value> {
    let base = tenant.base_url();
    Json(json!({
        // The issuer is what tokens carry in `iss`: Auth0 domains are https names, and
        // behind a TLS-terminating proxy so is ours; the endpoints are where we listen.
        "issuer": format!("https://{}/", tenant.domain),
        "token_endpoint": format!("{base}/oauth/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": ["password", "http://auth0.com/oauth/grant-type/password-realm", "client_credentials"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["token", "id_token"],
        "subject_types_supported": ["public"],
    }))
}

pub(super) fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

async fn token(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = body(&headers, request).await?;
    let grant = text(&body, "grant_type").ok_or_else(|| ApiError::missing("grant_type"))?;
    match grant {
        "client_credentials" => client_credentials(&state, &tenant, &body).await,
        "password" | "http://auth0.com/oauth/grant-type/password-realm" => {
            password(&state, &tenant, &body, grant).await
        }
        other => Err(ApiError::auth(
            StatusCode::FORBIDDEN,
            "unsupported_grant_type",
            format!("Grant type '{other}' not allowed for the client."),
        )),
    }
}

pub(super) async fn client(
    state: &AppState,
    tenant: &Tenant,
    body: &Value,
) -> Result<crate::store::Client, ApiError> {
    let id = text(body, "client_id")
        .ok_or_else(|| ApiError::auth(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized"))?
        .to_string();
    let client = state.store(move |s| s.get_client(&id)).await?;
    client
        .filter(|c| c.tenant == tenant.id)
        .ok_or_else(|| ApiError::auth(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized"))
}

async fn client_credentials(
    state: &AppState,
    tenant: &Tenant,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let client = client(state, tenant, body).await?;
    let secret = text(body, "client_secret").unwrap_or_default();
    let hash = crate::demo::secret_hash(secret);
    if !constant_time_eq(hash.as_bytes(), client.secret_hash.as_bytes()) {
        return Err(ApiError::auth(
            StatusCode::UNAUTHORIZED,
            "access_denied",
            "Unauthorized",
        ));
    }
    let audience = format!("https://{}/api/v2/", tenant.domain);
    let wanted = text(body, "audience").unwrap_or(&audience);
    if wanted != audience && wanted != format!("http://{}/api/v2/", tenant.domain) {
        return Err(ApiError::auth(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("Service not found: {wanted}"),
        ));
    }
    let now = crate::store::unix_now();
    let claims = json!({
        "iss": format!("https://{}/", tenant.domain),
        "sub": format!("{}@clients", client.client_id),
        "aud": wanted,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "azp": client.client_id,
        "scope": client.scopes.join(" "),
        "gty": "client-credentials",
        "https://customdb.dev/tenant": tenant.id,
    });
    Ok(Json(json!({
        "access_token": state.keys.sign(&claims),
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": client.scopes.join(" "),
    })))
}

async fn password(
    state: &AppState,
    tenant: &Tenant,
    body: &Value,
    grant: &str,
) -> Result<Json<Value>, ApiError> {
    let client = client(state, tenant, body).await?;
    let username = text(body, "username").ok_or_else(|| ApiError::missing("username"))?;
    let pw = text(body, "password").ok_or_else(|| ApiError::missing("password"))?;
    let connection = match (grant, text(body, "realm")) {
        (_, Some(realm)) => realm.to_string(),
        ("password", None) => default_connection(state, tenant).await?,
        _ => return Err(ApiError::missing("realm")),
    };
    let _slot = state.admit(&tenant.id)?;
    let answer = state
        .core
        .login(&tenant.id, &connection, username, pw)
        .await?;
    let user = match answer {
        Answer::Done(user) => user,
        other => return Err(login_error(other)),
    };
    let now = crate::store::unix_now();
    let issuer = format!("https://{}/", tenant.domain);
    let mut id_claims = profile_claims(&user);
    id_claims.insert("iss".into(), json!(issuer));
    id_claims.insert("aud".into(), json!(client.client_id));
    id_claims.insert("iat".into(), json!(now));
    id_claims.insert("exp".into(), json!(now + TOKEN_SECONDS));
    let scope = text(body, "scope")
        .unwrap_or("openid profile email")
        .to_string();
    let access = json!({
        "iss": issuer,
        "sub": user.user_id,
        "aud": text(body, "audience").map_or(format!("https://{}/userinfo", tenant.domain), str::to_string),
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "azp": client.client_id,
        "scope": scope,
        "https://customdb.dev/tenant": tenant.id,
    });
    Ok(Json(json!({
        "access_token": state.keys.sign(&access),
        "id_token": state.keys.sign(&Value::Object(id_claims)),
        "scope": scope,
        "expires_in": TOKEN_SECONDS,
        "token_type": "Bearer",
    })))
}

async fn default_connection(state: &AppState, tenant: &Tenant) -> Result<String, ApiError> {
    let t = tenant.id.clone();
    let records = state.store(move |s| s.list_connections(&t)).await?;
    records.into_iter().next().map(|r| r.name).ok_or_else(|| {
        ApiError::auth(
            StatusCode::FORBIDDEN,
            "server_error",
            "Authorization server not configured with default connection.",
        )
    })
}

/// Auth0's answers to a failed login.
fn login_error<T>(answer: Answer<T>) -> ApiError {
    match answer {
        Answer::WrongCredentials | Answer::NotFound => ApiError::auth(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "Wrong email or password.",
        ),
        Answer::Blocked => {
            ApiError::auth(StatusCode::UNAUTHORIZED, "unauthorized", "user is blocked")
        }
        Answer::Unauthorized(message) => {
            ApiError::auth(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        Answer::InvalidProfile(v) => ApiError::auth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!(
                "the login script returned an invalid profile: {}",
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Answer::Conflict { message, .. } => {
            ApiError::auth(StatusCode::CONFLICT, "invalid_grant", message)
        }
        Answer::ScriptFailed { error, outcome } => ApiError::auth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            match error {
                Some(e) => format!("the login script failed: {e}"),
                None => format!("the login script failed: {outcome}"),
            },
        ),
        Answer::MissingScript(action) => ApiError::auth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("{action} script does not exist"),
        ),
        Answer::Done(_) | Answer::Refused | Answer::BadRequest(_) => ApiError::auth(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "Wrong email or password.",
        ),
    }
}

/// OpenID claims from the profile (the id_token and `/userinfo`).
fn profile_claims(user: &User) -> serde_json::Map<String, Value> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(user.user_id));
    for key in [
        "email",
        "email_verified",
        "name",
        "nickname",
        "picture",
        "given_name",
        "family_name",
        "username",
        "phone_number",
        "phone_verified",
    ] {
        if let Some(v) = user.profile.get(key) {
            claims.insert(key.into(), v.clone());
        }
    }
    claims.insert("updated_at".into(), json!(user.updated_at));
    claims
}

async fn userinfo(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = super::manage::bearer(&state, &tenant, &headers)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let t = tenant.id.clone();
    let user = state
        .store(move |s| s.get_user(&t, &sub))
        .await?
        .ok_or_else(|| ApiError::auth(StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized"))?;
    Ok(Json(Value::Object(profile_claims(&user))))
}

async fn signup(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = body(&headers, request).await?;
    client(&state, &tenant, &body).await?;
    let connection = text(&body, "connection")
        .ok_or_else(|| ApiError::bad_request("Missing required parameter: connection"))?
        .to_string();
    for key in ["email", "password"] {
        if text(&body, key).is_none() {
            return Err(ApiError::bad_request(format!(
                "Missing required parameter: {key}"
            )));
        }
    }
    let mut user = serde_json::Map::new();
    for key in [
        "email",
        "password",
        "username",
        "user_metadata",
        "given_name",
        "family_name",
        "name",
        "nickname",
        "picture",
    ] {
        if let Some(v) = body.get(key) {
            user.insert(key.into(), v.clone());
        }
    }
    let _slot = state.admit(&tenant.id)?;
    match state
        .core
        .signup(&tenant.id, &connection, Value::Object(user))
        .await?
    {
        Answer::Done(u) => Ok(Json(json!({
            "_id": u.user_id.strip_prefix("auth0|").unwrap_or(&u.user_id),
            "email": u.email(),
            "email_verified": u.profile.get("email_verified").cloned().unwrap_or(json!(false)),
        }))),
        Answer::Conflict { code, message } => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"name": "BadRequestError", "code": code, "description": message, "statusCode": 400}),
            retry_after: None,
        }),
        Answer::InvalidProfile(v) | Answer::BadRequest(v) => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"name": "ValidationError", "code": "invalid_signup", "description": v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), "statusCode": 400}),
            retry_after: None,
        }),
        other => Err(login_error(other)),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
