//! Auth0's Authentication API: password and password-realm grants, client credentials for
//! Management API tokens, `/userinfo`, `/dbconnections/signup`, JWKS and OpenID discovery.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

use super::{ApiError, AppState, Tenant, body};
use crate::domain::client::{Client, Grant};
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
        // The issuer is what tokens carry in `iss`, and where the document was discovered.
        "issuer": tenant.issuer(),
        "token_endpoint": format!("{base}/oauth/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": ["password", "http://auth0.com/oauth/grant-type/password-realm", "client_credentials"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["token", "id_token"],
        "subject_types_supported": ["public"],
    }))
}

/// The body of an Authentication API request whose parameters are all strings, as a form's
/// are (`/oauth/token`, `/dbconnections/change_password`, `/lo/reset`): a JSON body with a
/// number, list or object where a parameter goes is a 400 that names the parameter, not a
/// "missing" one.
pub(super) async fn parameters(request: Request) -> Result<Value, ApiError> {
    let body = body(request).await?;
    let bad = |description: String| {
        ApiError::auth(StatusCode::BAD_REQUEST, "invalid_request", description)
    };
    let Some(map) = body.as_object() else {
        return Err(bad("the body must be a JSON object or a form".into()));
    };
    if let Some((key, _)) = map.iter().find(|(_, v)| !(v.is_string() || v.is_null())) {
        let key: String = key.chars().take(64).collect();
        return Err(bad(format!("Invalid parameter: {key} must be a string")));
    }
    Ok(body)
}

/// A parameter's text; an empty one counts as absent.
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
    let body = parameters(request).await?;
    let name = text(&body, "grant_type").ok_or_else(|| ApiError::missing("grant_type"))?;
    let Some(grant) = Grant::parse(name) else {
        return Err(ApiError::auth(
            StatusCode::FORBIDDEN,
            "unsupported_grant_type",
            format!("Grant type '{name}' not allowed for the client."),
        ));
    };
    let client = authenticate(&state, &tenant, &headers, &body, grant).await?;
    match grant {
        Grant::ClientCredentials => client_credentials(&state, &tenant, &client, &body),
        Grant::Password | Grant::PasswordRealm => {
            password(&state, &tenant, &client, &body, grant).await
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::auth(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized")
}

/// The tenant's client named by `client_id` in the body, without authentication: the
/// endpoints Auth0 opens to public clients (signup, change_password) need only its id.
pub(super) async fn client(
    state: &AppState,
    tenant: &Tenant,
    body: &Value,
) -> Result<Client, ApiError> {
    let id = text(body, "client_id")
        .ok_or_else(unauthorized)?
        .to_string();
    lookup(state, tenant, id).await
}

/// The tenant's client `id`; the request's log events name it from here on.
async fn lookup(state: &AppState, tenant: &Tenant, id: String) -> Result<Client, ApiError> {
    let client = state
        .core
        .client(&tenant.id, &id)
        .await?
        .ok_or_else(unauthorized)?;
    crate::service::note_caller(|c| {
        c.client_id = Some(client.client_id.clone());
        c.client_name = Some(client.name.clone());
    });
    Ok(client)
}

/// The client of a token request, authenticated as Auth0 does: it must allow the grant, and a
/// confidential client must prove its secret (in the body, `client_secret_post`, or in an
/// `Authorization: Basic` header, `client_secret_basic`) on every grant. A public client has
/// no secret to prove.
async fn authenticate(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: &Value,
    grant: Grant,
) -> Result<Client, ApiError> {
    let basic = basic_credentials(headers)?;
    let from_body = text(body, "client_id");
    let id = match (&basic, from_body) {
        (Some((a, _)), Some(b)) if a != b => return Err(unauthorized()),
        (Some((id, _)), _) => id.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => return Err(unauthorized()),
    };
    let client = lookup(state, tenant, id).await?;
    if !client.allows(grant) {
        return Err(ApiError::auth(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            format!(
                "Grant type '{}' not allowed for the client.",
                grant.as_str()
            ),
        ));
    }
    if client.is_public() {
        return Ok(client);
    }
    let presented = basic
        .map(|(_, secret)| secret)
        .or_else(|| text(body, "client_secret").map(str::to_string));
    match (presented, &client.secret_digest) {
        (Some(secret), Some(digest)) if crate::secret::matches_digest(&secret, digest) => {
            Ok(client)
        }
        _ => Err(unauthorized()),
    }
}

/// `Authorization: Basic` credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    use base64::Engine as _;
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some(encoded) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let part = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((part(id), part(secret))))
}

/// The Management API's audience at the tenant's domain: the only audience of
/// `client_credentials` tokens, and the one the Management API accepts.
fn client_credentials(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let audience = tenant.management_audience();
    if let Some(wanted) = text(body, "audience")
        && wanted != audience
    {
        return Err(ApiError::auth(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("Service not found: {wanted}"),
        ));
    }
    // A request may narrow the client's scopes, never widen them.
    let scope = match text(body, "scope") {
        Some(asked) => asked
            .split_whitespace()
            .filter(|s| client.scopes.iter().any(|g| g == s))
            .collect::<Vec<_>>()
            .join(" "),
        None => client.scopes.join(" "),
    };
    let now = crate::domain::time::unix_now();
    let claims = json!({
        "iss": tenant.issuer(),
        "sub": format!("{}@clients", client.client_id),
        "aud": audience,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "azp": client.client_id,
        "scope": scope,
        "gty": "client-credentials",
        "https://customdb.dev/tenant": tenant.id,
    });
    Ok(Json(json!({
        "access_token": state.keys.sign(&claims),
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": scope,
    })))
}

async fn password(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    body: &Value,
    grant: Grant,
) -> Result<Json<Value>, ApiError> {
    let username = text(body, "username").ok_or_else(|| ApiError::missing("username"))?;
    crate::service::note_caller(|c| c.user_name = Some(username.to_string()));
    let pw = text(body, "password").ok_or_else(|| ApiError::missing("password"))?;
    let userinfo = format!("https://{}/userinfo", tenant.domain);
    // An end user's token is for /userinfo (or names the Management API, as Auth0 allows,
    // which still accepts only client_credentials tokens); no other audience exists here.
    let audience = match text(body, "audience") {
        None => userinfo.clone(),
        Some(a) if a == userinfo || a == tenant.management_audience() => a.to_string(),
        Some(other) => {
            return Err(ApiError::auth(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!("Service not found: {other}"),
            ));
        }
    };
    let connection = match (grant, text(body, "realm")) {
        (_, Some(realm)) => realm.to_string(),
        (Grant::Password, None) => default_connection(state, tenant).await?,
        _ => return Err(ApiError::missing("realm")),
    };
    let _slot = state.admit(&tenant.id)?;
    let user = state
        .core
        .login(&tenant.id, &connection, username, pw)
        .await
        .map_err(super::error::login_error)?;
    let now = crate::domain::time::unix_now();
    let issuer = tenant.issuer();
    let mut id_claims = profile_claims(&user);
    id_claims.insert("iss".into(), json!(issuer));
    id_claims.insert("aud".into(), json!(client.client_id));
    id_claims.insert("iat".into(), json!(now));
    id_claims.insert("exp".into(), json!(now + TOKEN_SECONDS));
    // Only OpenID scopes: a Management scope asked for here is simply not granted.
    let scope = crate::domain::client::user_scope(text(body, "scope"));
    let access = json!({
        "iss": issuer,
        "sub": user.user_id,
        "aud": audience,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "azp": client.client_id,
        "scope": scope,
        "gty": "password",
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
    let records = state.core.connections(&tenant.id).await?;
    records.into_iter().next().map(|r| r.name).ok_or_else(|| {
        ApiError::auth(
            StatusCode::FORBIDDEN,
            "server_error",
            "Authorization server not configured with default connection.",
        )
    })
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
    let claims = super::extract::bearer(&state, &tenant, &headers)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let user =
        state.core.user(&tenant.id, &sub).await?.ok_or_else(|| {
            ApiError::auth(StatusCode::UNAUTHORIZED, "invalid_token", "Unauthorized")
        })?;
    Ok(Json(Value::Object(profile_claims(&user))))
}

async fn signup(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = body(request).await?;
    client(&state, &tenant, &body).await?;
    let connection = text(&body, "connection")
        .ok_or_else(|| ApiError::bad_request("Missing required parameter: connection"))?
        .to_string();
    for key in ["email", "password"] {
        // Absent or empty is "missing"; another type is the payload check's below.
        if body.get(key).is_none_or(|v| v.is_null() || *v == "") {
            return Err(ApiError::bad_request(format!(
                "Missing required parameter: {key}"
            )));
        }
    }
    if let Some(problem) = super::dto::problem(&body, super::dto::SIGNUP) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"name": "BadRequestError", "code": "invalid_body", "description": format!("Payload validation error: {problem}"), "statusCode": 400}),
            retry_after: None,
        });
    }
    crate::service::note_caller(|c| c.user_name = text(&body, "email").map(str::to_string));
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
    state
        .core
        .throttle_signup(&tenant.id, &connection)
        .await
        .map_err(super::error::signup_error)?;
    let _slot = state.admit(&tenant.id)?;
    let u = state
        .core
        .signup(&tenant.id, &connection, Value::Object(user))
        .await
        .map_err(super::error::signup_error)?;
    Ok(Json(json!({
        "_id": crate::domain::names::identity_id(&u.user_id),
        "email": u.email(),
        "email_verified": u.profile.get("email_verified").cloned().unwrap_or(json!(false)),
    })))
}
