//! The listener: accepts TCP connections up to a cap and serves each with HTTP/1.1 under a
//! header-read timeout, which also bounds how long an idle keep-alive connection waits for
//! its next request. Neither an idle client nor one that sends its headers a byte at a time
//! can hold a connection — or a file descriptor — for longer than that.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the listener allows one connection and all of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// From accepting a connection, or from finishing a response, to the end of the next
    /// request's headers.
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight (a live log stream never ends).
    pub drain: Duration,
}

impl Limits {
    /// Defaults: a 10 s header timeout (nginx allows 60 s for headers and 75 s idle; Node
    /// closes idle keep-alive connections after 5 s), and three quarters of the process's
    /// descriptor limit for connections (the rest is for workers, the store and the tenants'
    /// databases).
    pub fn default_for(open_files: u64) -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: usize::try_from(open_files / 4 * 3)
                .unwrap_or(usize::MAX)
                .clamp(64, 100_000),
            drain: Duration::from_secs(10),
        }
    }
}

/// Raises the soft limit of open files to the hard limit (as Go's runtime does) and returns
/// it.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory: wait for connections to close rather than
                    // spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut router.clone(), request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or breaks HTTP ends only its own connection.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("requests still in flight after the drain period were cut off");
    }
}
