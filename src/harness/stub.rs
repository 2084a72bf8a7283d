//! A stand-in for a tenant's REST API during a test case: a real HTTP/1.1 listener on a
//! loopback port that answers the routes the case lists, so HTTP-backed connections are proven
//! offline through the same `fetch`/`axios`/`request` path and egress checks as production.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let routes = Arc::new(routes);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let _ = answer(stream, &routes).await;
            });
        }
    });
    Ok(Stub { address, task })
}

async fn answer(stream: tokio::net::TcpStream, routes: &[Route]) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    let path = target.split('?').next().unwrap_or("");
    let route = routes.iter().find(|r| {
        let method_ok = r
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&method));
        let path_ok = r.path == target || (!r.path.contains('?') && r.path == path);
        method_ok && path_ok
    });
    let (status, headers, content) = match route {
        Some(r) => {
            let content = match &r.body {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (r.status, r.headers.clone(), content)
        }
        None => (
            404,
            BTreeMap::new(),
            format!("{{\"error\":\"no stub route for {method} {target}\"}}"),
        ),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        content.len()
    );
    if !headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(content.as_bytes()).await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Status",
    }
}
