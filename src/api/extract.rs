//! What handlers take from a request before any body is read: the tenant (by Host), a
//! Management API token carrying the scope the route needs, and a query string.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, StatusCode, request::Parts};
use serde_json::Value;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use super::{ApiError, AppState, DEFAULT_HOST_TTL, MAX_HOSTS};

/// The request's tenant and the domain it was reached at (the token issuer).
pub struct Tenant {
    pub id: String,
    pub domain: String,
    /// `https` when a proxy in front says so (`X-Forwarded-Proto`), else `http`.
    pub scheme: &'static str,
}

impl Tenant {
    /// Where this tenant's endpoints are reached, e.g. `http://localhost:8080`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.domain)
    }

    /// The issuer of this tenant's tokens and discovery document: the base URL and a slash,
    /// so that OpenID clients, which require the issuer to be the URL they discovered, verify.
    pub fn issuer(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// The audience of this tenant's Management API (always https, as Auth0 names it).
    pub fn management_audience(&self) -> String {
        format!("https://{}/api/v2/", self.domain)
    }
}

impl FromRequestParts<Arc<AppState>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let domain = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_ascii_lowercase();
        // The operator's public URL decides (a TLS proxy in front); else a proxy's
        // `X-Forwarded-Proto`; else plain http, as the request came.
        let scheme = match (state.public_https, parts.headers.get("x-forwarded-proto")) {
            (Some(true), _) => "https",
            (Some(false), _) => "http",
            (None, Some(v)) if v.as_bytes().eq_ignore_ascii_case(b"https") => "https",
            (None, _) => "http",
        };
        let known = state
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&domain)
            .filter(|(_, until)| until.is_none_or(|t| Instant::now() < t))
            .map(|(id, _)| id.clone());
        if let Some(id) = known {
            return Ok(Tenant { id, domain, scheme });
        }
        let host = domain.clone();
        let tenant = state.core.tenant_for_host(&host).await?;
        match tenant {
            Some((id, explicit)) => {
                // A tenant's own domain stays its own (domains are only ever added); a host
                // the default tenant answered may become another tenant's domain (through
                // `customdb tenant create`, another process), so that answer is kept briefly.
                let until = (!explicit).then(|| Instant::now() + DEFAULT_HOST_TTL);
                let mut hosts = state.hosts.lock().unwrap_or_else(|e| e.into_inner());
                if hosts.len() >= MAX_HOSTS {
                    hosts.clear();
                }
                hosts.insert(domain.clone(), (id.clone(), until));
                Ok(Tenant { id, domain, scheme })
            }
            None => Err(ApiError::management(
                StatusCode::NOT_FOUND,
                format!("no tenant answers for host {domain}"),
                "unknown_tenant",
            )),
        }
    }
}

/// A query string as `T`; a bad one is a 400 in the Management API's shape that names the
/// parameter (axum's own rejection is plain text).
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                let detail = e.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                ApiError::bad_query(detail)
            })
    }
}

/// A Management API scope a route requires (`read:users`, ...).
pub trait Scope {
    const NAME: &'static str;
}

macro_rules! scopes {
    ($($marker:ident = $name:literal;)*) => {
        $(
            #[doc = concat!("The `", $name, "` scope.")]
            pub struct $marker;
            impl Scope for $marker {
                const NAME: &'static str = $name;
            }
        )*
    };
}

scopes! {
    ReadUsers = "read:users";
    CreateUsers = "create:users";
    UpdateUsers = "update:users";
    DeleteUsers = "delete:users";
    ReadLogs = "read:logs";
    ReadConnections = "read:connections";
    CreateConnections = "create:connections";
    UpdateConnections = "update:connections";
    DeleteConnections = "delete:connections";
    CreateUserTickets = "create:user_tickets";
    ReadAttackProtection = "read:attack_protection";
    UpdateAttackProtection = "update:attack_protection";
    GetAnomalyBlock = "get:anomaly_block";
    DeleteAnomalyBlock = "delete:anomaly_block";
}

/// A request of the tenant carrying a Management API token with scope `S`; anything else is
/// answered 401 or 403 before the handler (or its body) is looked at.
pub struct ManagementToken<S> {
    pub tenant: Tenant,
    scope: PhantomData<S>,
}

impl<S: Scope> FromRequestParts<Arc<AppState>> for ManagementToken<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let tenant = Tenant::from_request_parts(parts, state).await?;
        require(state, &tenant, &parts.headers, S::NAME)?;
        Ok(ManagementToken {
            tenant,
            scope: PhantomData,
        })
    }
}

/// The claims of the request's bearer token, signed by us for this tenant.
pub(super) fn bearer(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let unauthorized = || {
        ApiError::management(
            StatusCode::UNAUTHORIZED,
            "Missing or invalid bearer token",
            "invalid_token",
        )
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let claims = state.keys.verify(token).ok_or_else(unauthorized)?;
    let claims = claims.as_object().cloned().ok_or_else(unauthorized)?;
    // A token of one tenant never reads or changes another.
    if claims
        .get("https://customdb.dev/tenant")
        .and_then(Value::as_str)
        != Some(tenant.id.as_str())
    {
        return Err(unauthorized());
    }
    Ok(claims)
}

/// Checks that the request carries a Management API token with `scope`: one issued by
/// `client_credentials` (`gty`, and `sub` = `<client_id>@clients`) for this domain's
/// Management API audience. An end user's token never passes, whatever its scope says.
fn require(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    scope: &str,
) -> Result<(), ApiError> {
    let claims = bearer(state, tenant, headers)?;
    crate::service::note_caller(|c| {
        c.client_id = claims
            .get("azp")
            .and_then(Value::as_str)
            .map(str::to_string);
    });
    let audience = tenant.management_audience();
    let for_management = match claims.get("aud") {
        Some(Value::String(a)) => *a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience.as_str())),
        _ => false,
    };
    let azp = claims
        .get("azp")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let machine = claims.get("gty").and_then(Value::as_str) == Some("client-credentials")
        && !azp.is_empty()
        && claims.get("sub").and_then(Value::as_str) == Some(format!("{azp}@clients").as_str());
    if !(for_management && machine) {
        return Err(ApiError::management(
            StatusCode::UNAUTHORIZED,
            "Bad audience or grant: the Management API accepts only client_credentials tokens for its audience",
            "invalid_token",
        ));
    }
    let has = claims
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split_whitespace().any(|x| x == scope));
    if has {
        Ok(())
    } else {
        Err(ApiError::management(
            StatusCode::FORBIDDEN,
            format!("Insufficient scope, expected any of: {scope}"),
            "insufficient_scope",
        ))
    }
}
