//! The HTTP front door (axum): Auth0's Authentication API (`/oauth/token`, `/userinfo`,
//! `/dbconnections/signup` and `change_password`, JWKS, OpenID configuration), password-change
//! tickets and `/lo/reset`, the Management API (`/api/v2/...`) and its live log stream, over
//! the service layer. Tenants are chosen by Host (`extract`). The only module that knows HTTP:
//! one error type and one mapping of flow answers to Auth0's status codes and bodies (`error`).

mod auth;
mod connections;
pub mod dto;
mod error;
mod extract;
pub mod listener;
mod live;
mod logs;
mod protection;
pub mod throttle;
mod tickets;
pub mod tokens;
mod users;

pub use error::ApiError;
pub use extract::{Query, Tenant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::events::Caller;
use crate::service::Service;

/// How long a host answered by the default tenant is remembered.
const DEFAULT_HOST_TTL: Duration = Duration::from_secs(5);
/// Hosts remembered at most (any Host header can be sent: the map must not grow unbounded).
const MAX_HOSTS: usize = 4096;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares.
pub struct AppState {
    pub core: Service,
    pub keys: tokens::Keys,
    /// Script runs one tenant may have in flight; beyond it requests get 429.
    pub max_runs_per_tenant: usize,
    pub in_flight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// The scheme of `serve --public-url`: `Some(true)` for https. Issuers and endpoint URLs
    /// use it; without it they follow the request.
    pub public_https: Option<bool>,
    /// Proxies whose `X-Forwarded-For` / `auth0-forwarded-for` name the client (`serve
    /// --trusted-proxy`); from any other peer, the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Per-address buckets of the endpoints anyone may call.
    pub throttle: throttle::Throttle,
    /// Hosts already resolved to their tenant, with when the answer must be looked up again.
    hosts: std::sync::Mutex<std::collections::HashMap<String, (String, Option<Instant>)>>,
}

impl AppState {
    pub fn new(core: Service, keys: tokens::Keys, max_runs_per_tenant: usize) -> Self {
        AppState {
            core,
            keys,
            max_runs_per_tenant,
            in_flight: Default::default(),
            public_https: None,
            trusted_proxies: Vec::new(),
            throttle: throttle::Throttle::new(Some(throttle::Rate::default())),
            hosts: Default::default(),
        }
    }

    /// Serves behind `public_url` (`https://auth.example.com`): its scheme is the scheme of
    /// every issuer and endpoint URL, whatever the request's.
    pub fn with_public_url(mut self, public_url: Option<&url::Url>) -> Self {
        self.public_https = public_url.map(|u| u.scheme() == "https");
        self
    }

    /// Takes the client's address from these proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Limits each client of the unauthenticated endpoints to `rate` (`None`: no limit).
    pub fn with_rate_limit(mut self, rate: Option<throttle::Rate>) -> Self {
        self.throttle = throttle::Throttle::new(rate);
        self
    }

    fn trusted(&self, ip: std::net::IpAddr) -> bool {
        let ip = crate::domain::protection::canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy. Then
    /// `auth0-forwarded-for` (a backend logging a user in on its behalf) if sent, else the
    /// nearest address of `X-Forwarded-For` that is not itself a trusted proxy (the addresses
    /// before it are whatever the client wrote, so the first is never believed blindly).
    fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        use std::net::IpAddr;
        if !self.trusted(peer) {
            return peer;
        }
        let parse = |s: &str| s.trim().parse::<IpAddr>().ok();
        if let Some(ip) = headers
            .get("auth0-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse(v.split(',').next().unwrap_or_default()))
        {
            return ip;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Some(ip) = parse(hop) else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        client
    }

    /// A slot for one request that runs the tenant's scripts, or a 429 with Retry-After: a
    /// tenant that floods the server waits its turn without taking other tenants' capacity.
    pub fn admit(&self, tenant: &str) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let semaphore = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(tenant.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max_runs_per_tenant)))
                .clone()
        };
        semaphore.try_acquire_owned().map_err(|_| {
            let mut e = ApiError::management(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests in flight for this tenant (at most {})",
                    self.max_runs_per_tenant
                ),
                "too_many_requests",
            );
            e.retry_after = Some(1);
            e
        })
    }
}

/// The router, ready for `axum::serve` or for tests without a socket.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(logs::routes())
        .merge(protection::routes())
        .merge(connections::routes())
        .merge(tickets::routes())
        .merge(live::routes())
        .fallback(|request: Request| async move {
            ApiError::management(
                StatusCode::NOT_FOUND,
                format!("no endpoint at {}", request.uri().path()),
                "not_found",
            )
        })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::management(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} is not allowed on {}",
                    request.method(),
                    request.uri().path()
                ),
                "method_not_allowed",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            trace_request,
        ))
        .with_state(state)
}

tokio::task_local! {
    /// The id of the request being answered, for errors logged while answering it.
    static REQUEST_ID: String;
}

/// The id of the request being answered (a fresh one outside a request).
pub(crate) fn request_id() -> String {
    REQUEST_ID
        .try_with(String::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
}

/// Gives every request an id (the client's `X-Request-Id` when it is a short token, else a new
/// one), answers with it in `X-Request-Id`, and logs one line per request: method, path (never
/// the query, which may hold an email or a ticket), status and time — failures at info, the
/// rest at debug.
async fn trace_request(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string);
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| {
            crate::domain::protection::canonical(state.client_ip(peer.0.ip(), request.headers()))
        });
    let throttled = match client {
        Some(ip) if throttle::guarded(&path) => state.throttle.take(ip, started).err(),
        _ => None,
    };
    let mut response = if let Some(wait) = throttled {
        let mut e = ApiError::auth(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("Too many requests from this address; retry in {wait} s."),
        );
        e.retry_after = Some(wait);
        axum::response::IntoResponse::into_response(e)
    } else {
        let caller = Caller {
            ip: client.map(|ip| ip.to_string()),
            user_agent: header_text(&request, axum::http::header::USER_AGENT),
            hostname: header_text(&request, axum::http::header::HOST),
            ..Caller::default()
        };
        let answer = crate::service::as_caller(caller, next.run(request));
        REQUEST_ID.scope(id.clone(), answer).await
    };
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    // Answers that went well are debug lines (`CUSTOMDB_LOG=debug`): at thousands of reads a
    // second, a line each costs a fifth of the read path.
    if status >= 400 {
        tracing::info!(request_id = %id, %method, %path, status, ms, "request");
    } else {
        tracing::debug!(request_id = %id, %method, %path, status, ms, "request");
    }
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A header's value as text, at most 512 characters of it (a log event keeps it).
fn header_text(request: &Request, name: axum::http::HeaderName) -> Option<String> {
    let text = request.headers().get(name)?.to_str().ok()?;
    Some(text.chars().take(512).collect())
}

/// A request body as JSON, from `application/json` or a form; a bad body is a 400 that says
/// what is wrong.
pub async fn body(request: Request) -> Result<Value, ApiError> {
    let form = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "the request body must be at most {MAX_BODY_BYTES} bytes"
            ))
        })?;
    if form {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        return Ok(Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ));
    }
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}
