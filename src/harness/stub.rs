//! A stand-in for a tenant's REST API during a test case: a real HTTP listener (axum) on a
//! loopback port that answers the routes the case lists, so HTTP-backed connections are proven
//! offline through the same `fetch`/`axios`/`request` path and egress checks as production.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One canned answer: `path` matches the request target exactly (query included) or, when it
/// has no `?`, the path alone; `method` matches any method when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: Option<String>,
    pub path: String,
    #[serde(default = "ok")]
    pub status: u16,
    /// JSON is sent as JSON; a string is sent as it is.
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn ok() -> u16 {
    200
}

impl Route {
    /// Refuses what the stub could not send: a status outside 100–999, a header name or value
    /// HTTP does not allow.
    pub fn check(&self) -> Result<(), String> {
        let at = format!(
            "http route {} {}",
            self.method.as_deref().unwrap_or("*"),
            self.path
        );
        StatusCode::from_u16(self.status)
            .map_err(|_| format!("{at}: status {} is not an HTTP status", self.status))?;
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{at}: {name:?} is not an HTTP header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("{at}: the value of {name} is not a valid header value"))?;
        }
        Ok(())
    }
}

/// A running stub; it stops when dropped.
pub struct Stub {
    pub address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(routes: Vec<Route>) -> std::io::Result<Stub> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let routes = Arc::new(routes);
    let app = axum::Router::new().fallback(move |request: Request| {
        let routes = routes.clone();
        async move { answer(&routes, request.method(), request.uri()) }
    });
    let task = tokio::spawn(async move {
        // The stub lives as long as its case; an error here ends it, and the case then fails
        // on a refused connection, which names the stub's address.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Stub { address, task })
}

/// The route's canned answer, or a 404 that names the request.
fn answer(routes: &[Route], method: &Method, uri: &Uri) -> Response {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), ToString::to_string);
    let route = routes.iter().find(|r| {
        let method_ok = r
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
        let path_ok = r.path == target || (!r.path.contains('?') && r.path == uri.path());
        method_ok && path_ok
    });
    let Some(route) = route else {
        let body = serde_json::json!({"error": format!("no stub route for {method} {target}")});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    let content = match &route.body {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut response = content.into_response();
    *response.status_mut() = StatusCode::from_u16(route.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Checked when the case was loaded (`Route::check`).
    for (name, value) in &route.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}
