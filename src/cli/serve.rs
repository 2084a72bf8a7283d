//! `customdb serve`: the multi-tenant server on the embedded default (a data folder with the
//! store, its key, the signing key and a demo tenant), with structured logs and graceful
//! shutdown.

use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::{self, AppState, tokens::Keys};
use crate::flows::Core;
use crate::isolation::{Pool, PoolConfig};
use crate::store::{Store, seal::Sealer};

/// Run the server: Auth0's Authentication and Management APIs over your connections.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Data folder: the store, its key, connections' data folders.
    #[arg(long, default_value = "customdb-data")]
    data: PathBuf,
    /// Requests running scripts that one tenant may have in flight (beyond: 429).
    #[arg(long, default_value_t = 64)]
    max_runs_per_tenant: usize,
    /// Worker processes running scripts (default: 4 per core); one tenant may keep at most
    /// half of them busy.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Log lines as `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOMDB_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let sealer = Sealer::load(&args.data.join("store.key"), true)?;
    let store = Store::open(&args.data.join("store.db"), sealer)?;
    let demo = crate::demo::ensure(&store, &args.data)?;
    let keys = Keys::load(&store)?;
    let program = std::env::current_exe()
        .context("cannot locate the customdb executable to start workers")?;
    let core = Core::new(
        Arc::new(store),
        Arc::new(Pool::new(pool_config(program, args.workers))),
        Some(args.data.join("connections")),
    );
    let state = Arc::new(AppState::new(core, keys, args.max_runs_per_tenant.max(1)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let mut banner = format!("customdb listening on http://{address}\n");
        if let Some(client) = demo {
            banner += &format!("demo tenant: connection \"{}\", users alice@example.com / \"correct horse battery staple\", bob@example.com / \"hunter22\"\n", crate::demo::CONNECTION);
            banner += &format!("management client: client_id {} client_secret {}\n", client.client_id, client.client_secret);
            banner += &format!(
                "try: curl -s http://{address}/oauth/token -H 'content-type: application/json' -d '{{\"grant_type\":\"http://auth0.com/oauth/grant-type/password-realm\",\"realm\":\"{}\",\"client_id\":\"{}\",\"username\":\"alice@example.com\",\"password\":\"correct horse battery staple\"}}'\n",
                crate::demo::CONNECTION,
                client.client_id
            );
        }
        // Whoever started the server may stop reading its output (`| head -1`): the server
        // keeps serving either way.
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down");
            })
            .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The pool for `--workers N`: N workers, half of them (at least one) for any one tenant.
fn pool_config(program: PathBuf, workers: Option<usize>) -> PoolConfig {
    let default = PoolConfig::new(program);
    match workers {
        Some(n) => PoolConfig {
            max_workers: n.max(1),
            max_busy_per_tenant: (n / 2).max(1),
            ..default
        },
        None => default,
    }
}
