//! HTTP for `fetch`, `axios` and `request`: one native `request` on reqwest, under the
//! connection's egress allow-list. The URL is checked before the request and on every
//! redirect; names are resolved here and only public addresses are used for them, so a
//! tenant's DNS cannot lead a script into the operator's network. Bodies are capped.

use base64::Engine as _;
use boa_engine::{Context, JsResult, JsValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::egress::{AllowList, Denied, denied};
use super::{Failure, Native, json, spawn_io};
use crate::sandbox::run_state;

pub const NATIVES: &[Native] = &[("request", 1, request)];

/// The largest response body a script may receive.
pub const MAX_RESPONSE_BYTES: usize = 5 << 20;

/// Redirects followed before the request fails, as browsers and Node's fetch do.
const MAX_REDIRECTS: usize = 10;

/// What the glue sends: one request, already shaped.
#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// Body bytes as base64, absent for no body.
    body: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default = "yes")]
    follow: bool,
}

fn yes() -> bool {
    true
}

fn request(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let spec = args.first().cloned().unwrap_or_default().to_json(ctx)?;
    let state = run_state::state(ctx);
    let allow = AllowList::of(&state.policy);
    let remaining = state
        .limits
        .timeout_ms
        .saturating_sub(state.started.elapsed().as_millis() as u64);
    spawn_io(
        ctx,
        async move {
            let spec: Request = serde_json::from_value(spec.unwrap_or_default())
                .map_err(|e| Failure::new(format!("invalid request: {e}")))?;
            send(spec, &allow, remaining).await
        },
        json,
    )
}

async fn send(spec: Request, allow: &AllowList, remaining_ms: u64) -> Result<Value, Failure> {
    let url = reqwest::Url::parse(&spec.url).map_err(|e| {
        Failure::new(format!("Invalid URL '{}': {e}", spec.url)).with("code", "ERR_INVALID_URL")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(
            Failure::new(format!("unsupported protocol '{}'", url.scheme()))
                .with("code", "ERR_INVALID_PROTOCOL"),
        );
    }
    allow.check(&url).map_err(denied)?;
    let client = client(allow, spec.follow)?;
    let method = reqwest::Method::from_bytes(spec.method.to_uppercase().as_bytes())
        .map_err(|_| Failure::new(format!("invalid method '{}'", spec.method)))?;
    let timeout = spec
        .timeout_ms
        .unwrap_or(remaining_ms)
        .min(remaining_ms)
        .max(1);
    let mut builder = client
        .request(method, url)
        .timeout(Duration::from_millis(timeout));
    for (k, v) in &spec.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = spec.body {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| Failure::new(format!("invalid request body: {e}")))?;
        builder = builder.body(bytes);
    }
    let mut response = builder.send().await.map_err(|e| transport(e, timeout))?;
    let status = response.status();
    let final_url = response.url().to_string();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(e, timeout))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Failure::new(format!(
                "response body exceeds the {} MB limit",
                MAX_RESPONSE_BYTES >> 20
            ))
            .with("code", "ERR_FR_MAX_BODY_LENGTH_EXCEEDED"));
        }
        body.extend_from_slice(&chunk);
    }
    let (body, encoding) = match String::from_utf8(body) {
        Ok(text) => (text, "utf8"),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            "base64",
        ),
    };
    Ok(json!({
        "status": status.as_u16(),
        "statusText": status.canonical_reason().unwrap_or(""),
        "url": final_url,
        "redirected": final_url != spec.url,
        "headers": headers,
        "body": body,
        "encoding": encoding,
    }))
}

/// One reqwest client per allow-list (and redirect mode) in this worker, so connections are
/// reused across runs of the same connection.
fn client(allow: &AllowList, follow: bool) -> Result<reqwest::Client, Failure> {
    type Clients = HashMap<(AllowList, bool), reqwest::Client>;
    static CLIENTS: Mutex<Option<Clients>> = Mutex::new(None);
    let mut clients = CLIENTS
        .lock()
        .map_err(|_| Failure::new("HTTP client registry poisoned"))?;
    let clients = clients.get_or_insert_with(HashMap::new);
    if let Some(c) = clients.get(&(allow.clone(), follow)) {
        return Ok(c.clone());
    }
    let for_redirects = allow.clone();
    let redirects = if follow {
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("maximum of {MAX_REDIRECTS} redirects exceeded"))
            } else if let Err(d) = for_redirects.check(attempt.url()) {
                attempt.error(d)
            } else {
                attempt.follow()
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    let client = reqwest::Client::builder()
        .redirect(redirects)
        .dns_resolver(Arc::new(allow.clone()))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("customdb/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::new(format!("cannot build the HTTP client: {e}")))?;
    clients.insert((allow.clone(), follow), client.clone());
    Ok(client)
}

/// Node-style codes for transport failures; egress refusals raised inside reqwest (on a
/// redirect, or by the resolver) keep their own message.
fn transport(e: reqwest::Error, timeout_ms: u64) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<Denied>() {
            return Failure::new(d.to_string()).with("code", "EGRESS_DENIED");
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let code = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("ECONNREFUSED"),
                std::io::ErrorKind::ConnectionReset => Some("ECONNRESET"),
                _ => None,
            };
            if let Some(code) = code {
                let target = e.url().map(|u| {
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or(""),
                        u.port_or_known_default().unwrap_or(0)
                    )
                });
                return Failure::new(format!("connect {code} {}", target.unwrap_or_default()))
                    .with("code", code);
            }
        }
        source = s.source();
    }
    if e.is_timeout() {
        return Failure::new(format!("timeout of {timeout_ms}ms exceeded"))
            .with("code", "ETIMEDOUT");
    }
    if e.is_redirect() {
        return Failure::new(e.to_string()).with("code", "ERR_FR_TOO_MANY_REDIRECTS");
    }
    // Name lookups and TLS failures: reqwest's own message hides the cause, so add the root.
    let mut root: &(dyn std::error::Error + 'static) = &e;
    while let Some(next) = root.source() {
        root = next;
    }
    let code = if root.to_string().contains("lookup") {
        "ENOTFOUND"
    } else {
        "ECONNRESET"
    };
    Failure::new(format!("{e}: {root}")).with("code", code)
}

impl reqwest::dns::Resolve for AllowList {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (allow, name) = (self.clone(), name.as_str().to_string());
        Box::pin(async move {
            let addrs = allow
                .resolve(&name, 0)
                .await
                .map_err(|d| Box::new(d) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
