//! HTTP for `fetch`, `axios` and `request`: one native `request` on reqwest, under the
//! connection's egress allow-list. The URL is checked before the request and on every
//! redirect; names are resolved here and only public addresses are used for them, so a
//! tenant's DNS cannot lead a script into the operator's network. Bodies are capped.

use base64::Engine as _;
use boa_engine::{Context, JsResult, JsValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Failure, Native, json, spawn_io};
use crate::sandbox::bindings;

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
    let state = bindings::state(ctx);
    let egress = state.policy.egress.clone();
    let remaining = state
        .limits
        .timeout_ms
        .saturating_sub(state.started.elapsed().as_millis() as u64);
    spawn_io(
        ctx,
        async move {
            let spec: Request = serde_json::from_value(spec.unwrap_or_default())
                .map_err(|e| Failure::new(format!("invalid request: {e}")))?;
            send(spec, &egress, remaining).await
        },
        json,
    )
}

async fn send(spec: Request, egress: &[String], remaining_ms: u64) -> Result<Value, Failure> {
    let url = reqwest::Url::parse(&spec.url).map_err(|e| {
        Failure::new(format!("Invalid URL '{}': {e}", spec.url)).with("code", "ERR_INVALID_URL")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(
            Failure::new(format!("unsupported protocol '{}'", url.scheme()))
                .with("code", "ERR_INVALID_PROTOCOL"),
        );
    }
    let allow = AllowList::parse(egress);
    allow.check(&url).map_err(denied)?;
    let client = client(egress, &allow, spec.follow)?;
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
fn client(egress: &[String], allow: &AllowList, follow: bool) -> Result<reqwest::Client, Failure> {
    type Clients = HashMap<(Vec<String>, bool), reqwest::Client>;
    static CLIENTS: Mutex<Option<Clients>> = Mutex::new(None);
    let mut clients = CLIENTS
        .lock()
        .map_err(|_| Failure::new("HTTP client registry poisoned"))?;
    let clients = clients.get_or_insert_with(HashMap::new);
    if let Some(c) = clients.get(&(egress.to_vec(), follow)) {
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
    clients.insert((egress.to_vec(), follow), client.clone());
    Ok(client)
}

/// An egress refusal: the request never left the worker.
#[derive(Debug, thiserror::Error)]
#[error("egress to {target} is not allowed: {why}")]
pub struct Denied {
    target: String,
    why: &'static str,
}

fn denied(d: Denied) -> Failure {
    Failure::new(d.to_string()).with("code", "EGRESS_DENIED")
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

/// The parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    Name(String),
    /// `*.example.com`: any subdomain of `example.com`.
    Suffix(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone)]
struct Entry {
    host: Host,
    port: Option<u16>,
}

impl AllowList {
    pub fn parse(entries: &[String]) -> Self {
        let entries = entries
            .iter()
            .filter_map(|raw| {
                let raw = raw.trim().to_ascii_lowercase();
                let (host, port) = split_port(&raw);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let host = if let Ok(ip) = host.parse::<IpAddr>() {
                    Host::Ip(ip)
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    Host::Suffix(suffix.to_string())
                } else if !host.is_empty() {
                    Host::Name(host.to_string())
                } else {
                    return None;
                };
                Some(Entry { host, port })
            })
            .collect();
        AllowList { entries }
    }

    /// Whether `url`'s host and port are on the list. Addresses are checked at resolution.
    pub fn check(&self, url: &reqwest::Url) -> Result<(), Denied> {
        let port = url.port_or_known_default();
        let target = match (url.host_str(), port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(deny(url.as_str(), "the URL has no host")),
        };
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => Host::Name(d.to_ascii_lowercase()),
            None => return Err(deny(&target, "the URL has no host")),
        };
        let listed = self.entries.iter().any(|e| {
            let port_ok = e.port.is_none() || e.port == port;
            let host_ok = match (&e.host, &host) {
                (Host::Ip(a), Host::Ip(b)) => a == b,
                (Host::Name(a), Host::Name(b)) => a == b,
                (Host::Suffix(s), Host::Name(b)) => b.ends_with(&format!(".{s}")),
                _ => false,
            };
            port_ok && host_ok
        });
        if listed {
            Ok(())
        } else {
            Err(deny(
                &target,
                "it is not on the connection's allow-list (add the host to allowed_hosts)",
            ))
        }
    }

    fn names_localhost(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.host == Host::Name("localhost".into()))
    }
}

fn deny(target: &str, why: &'static str) -> Denied {
    Denied {
        target: target.to_string(),
        why,
    }
}

fn split_port(raw: &str) -> (&str, Option<u16>) {
    // `[v6]:port`, `host:port`; a bare IPv6 address has several colons and no port.
    if let Some(rest) = raw.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host, port.parse().ok());
    }
    match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (raw, None),
        },
        _ => (raw, None),
    }
}

impl reqwest::dns::Resolve for AllowList {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_ascii_lowercase();
        let localhost = name == "localhost" && self.names_localhost();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| is_public(a.ip()) || (localhost && a.ip().is_loopback()))
                .collect();
            if usable.is_empty() {
                let denied: Box<dyn std::error::Error + Send + Sync> = Box::new(deny(
                    &name,
                    "it resolves only to private or loopback addresses, which a name cannot \
                     reach (list the IP address itself)",
                ));
                return Err(denied);
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Addresses on the public internet: not loopback, private, link-local, shared, multicast,
/// documentation, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matching() {
        let list = AllowList::parse(&[
            "api.example.com".into(),
            "*.corp.example".into(),
            "127.0.0.1:8080".into(),
            "[::1]:9".into(),
        ]);
        let table = [
            ("https://api.example.com/x", true),
            ("http://API.example.com:81/x", true),
            ("https://evil.example.com/", false),
            ("https://a.b.corp.example/", true),
            ("https://corp.example/", false),
            ("http://127.0.0.1:8080/", true),
            ("http://127.0.0.1:8081/", false),
            ("http://[::1]:9/", true),
            ("http://localhost:8080/", false),
        ];
        for (url, ok) in table {
            let url = reqwest::Url::parse(url).unwrap();
            assert_eq!(list.check(&url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn public_addresses() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("2606:4700::1111", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
