//! `customdb serve`: the multi-tenant server on the embedded default (a data folder with the
//! store, its key, the signing key and a demo tenant), with structured logs and graceful
//! shutdown.

use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::listener::{self, Limits};
use crate::api::throttle::Rate;
use crate::api::{self, AppState, tokens::Keys};
use crate::isolation::{Pool, PoolConfig};
use crate::service::Service;
use crate::store::{Retention, Store, seal::Sealer};

/// Run the server: Auth0's Authentication and Management APIs over your connections.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A JSON file with any of the settings below, by their names with underscores
    /// (`listen`, `data`, `max_runs_per_tenant`, `workers`, `log_format`,
    /// `egress_allow_internal`, `public_url`, `trusted_proxies`, `header_timeout_secs`,
    /// `max_connections`, `rate_limit_per_ip`, `rate_limit_burst`, `max_bcrypt_cost`,
    /// `max_pbkdf2_iterations`, `data_folder_quota_mb`, `log_retention_days`, `log_events_kept_per_tenant`,
    /// `run_retention_days`, `runs_kept_per_tenant`, `prune_interval_secs`, `spare_workers`,
    /// `idle_worker_memory_mb`, `runs_per_worker`); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:3000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data folder: the store, its key, connections' data folders [default: customdb-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Requests running scripts that one tenant may have in flight, beyond which it gets 429
    /// [default: 64].
    #[arg(long)]
    max_runs_per_tenant: Option<usize>,
    /// Worker processes running scripts [default: 4 per core]; one tenant may keep at most
    /// half of them busy.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Log lines as text or json [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// An internal address tenants' scripts may reach when their allow-list names it: an
    /// address, a CIDR block (10.0.0.0/8) or HOST:PORT (repeatable). Without it, loopback,
    /// private, link-local, CGNAT, multicast and unspecified addresses are never reached.
    #[arg(
        long = "egress-allow-internal",
        value_name = "ADDR_OR_CIDR_OR_HOST:PORT"
    )]
    egress_allow_internal: Vec<String>,
    /// The URL clients reach the server at, such as https://auth.example.com behind a TLS
    /// proxy: its scheme is the scheme of every token issuer and endpoint URL
    /// [default: the request's, or X-Forwarded-Proto].
    #[arg(long, value_name = "URL")]
    public_url: Option<url::Url>,
    /// A reverse proxy (an address or CIDR block, repeatable) whose X-Forwarded-For and
    /// auth0-forwarded-for headers name the client; without it the peer address is the
    /// client's, whatever the headers say.
    #[arg(long = "trusted-proxy", value_name = "ADDR_OR_CIDR")]
    trusted_proxies: Vec<String>,
    /// Seconds a connection may take to send a request's headers, counted from its opening or
    /// from the end of its previous response (so also the longest an idle keep-alive
    /// connection is kept) [default: 10].
    #[arg(long, value_name = "SECONDS")]
    header_timeout_secs: Option<u64>,
    /// Connections served at once; more wait to be accepted [default: three quarters of the
    /// open-file limit, which serve raises to its hard limit].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Requests a second each client address may send to the endpoints that need no token
    /// (/oauth/token, /dbconnections/*, /lo/reset), sustained; 0 turns the limit off
    /// [default: 50].
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit_per_ip: Option<f64>,
    /// Requests at once a quiet client may send to those endpoints [default: 200].
    #[arg(long, value_name = "N")]
    rate_limit_burst: Option<u32>,
    /// Highest bcrypt cost a script may hash or compare at; above it bcrypt throws a
    /// RangeError that names this setting [default: 14].
    #[arg(long, value_name = "COST")]
    max_bcrypt_cost: Option<u32>,
    /// Most PBKDF2 iterations a script's crypto.pbkdf2 call may ask for [default: 2000000].
    #[arg(long, value_name = "N")]
    max_pbkdf2_iterations: Option<u32>,
    /// Megabytes each connection's data folder may hold (its SQLite databases stop growing
    /// there with SQLITE_FULL) [default: 100].
    #[arg(long, value_name = "MB")]
    data_folder_quota_mb: Option<u64>,
    /// Days log events are kept [default: 30].
    #[arg(long, value_name = "DAYS")]
    log_retention_days: Option<u32>,
    /// Log events kept per tenant, newest first [default: 100000].
    #[arg(long, value_name = "N")]
    log_events_kept_per_tenant: Option<u32>,
    /// Days recorded script runs (console and timings) are kept [default: 7].
    #[arg(long, value_name = "DAYS")]
    run_retention_days: Option<u32>,
    /// Recorded script runs kept per tenant, newest first [default: 10000].
    #[arg(long, value_name = "N")]
    runs_kept_per_tenant: Option<u32>,
    /// Seconds between two prunes of what retention no longer keeps [default: 600].
    #[arg(long, value_name = "SECONDS")]
    prune_interval_secs: Option<u64>,
    /// Worker processes started ahead of need, so that a tenant's first run does not wait for
    /// one to start [default: 1 per core].
    #[arg(long, value_name = "N")]
    spare_workers: Option<usize>,
    /// Memory the idle workers kept warm for their tenants may use together (each one's own
    /// resident pages, not those it shares with the executable); beyond it the least recently
    /// used is stopped [default: 1024].
    #[arg(long, value_name = "MB")]
    idle_worker_memory_mb: Option<u64>,
    /// Runs one worker serves at once, interleaved while they wait on I/O; a tenant's runs
    /// spread over its share of workers first [default: 64].
    #[arg(long, value_name = "N")]
    runs_per_worker: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

/// The `--config` file: every key optional, unknown keys refused by name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    max_runs_per_tenant: Option<usize>,
    workers: Option<usize>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    egress_allow_internal: Vec<String>,
    public_url: Option<url::Url>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    header_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    rate_limit_per_ip: Option<f64>,
    rate_limit_burst: Option<u32>,
    max_bcrypt_cost: Option<u32>,
    max_pbkdf2_iterations: Option<u32>,
    data_folder_quota_mb: Option<u64>,
    log_retention_days: Option<u32>,
    log_events_kept_per_tenant: Option<u32>,
    run_retention_days: Option<u32>,
    runs_kept_per_tenant: Option<u32>,
    prune_interval_secs: Option<u64>,
    spare_workers: Option<usize>,
    idle_worker_memory_mb: Option<u64>,
    runs_per_worker: Option<usize>,
}

/// What the server runs with: flags, then the config file, then the defaults.
struct Settings {
    listen: SocketAddr,
    data: PathBuf,
    max_runs_per_tenant: usize,
    workers: Option<usize>,
    spare_workers: Option<usize>,
    idle_worker_memory_mb: Option<u64>,
    runs_per_worker: Option<usize>,
    /// The open-file limit, once raised: connections and workers' pipes share it.
    open_files: u64,
    log_format: LogFormat,
    egress_allow_internal: Vec<String>,
    public_url: Option<url::Url>,
    trusted_proxies: Vec<ipnet::IpNet>,
    listener: Limits,
    rate_limit: Option<Rate>,
    limits: crate::script::Limits,
    retention: Retention,
    prune_every: std::time::Duration,
}

impl Settings {
    fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            None => ConfigFile::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not a valid config file (a JSON object with listen, data, max_runs_per_tenant, workers, log_format, egress_allow_internal, public_url, trusted_proxies, header_timeout_secs, max_connections, rate_limit_per_ip, rate_limit_burst, max_bcrypt_cost, max_pbkdf2_iterations, data_folder_quota_mb, log_retention_days, log_events_kept_per_tenant, run_retention_days, runs_kept_per_tenant, prune_interval_secs, spare_workers, idle_worker_memory_mb, runs_per_worker)",
                        path.display()
                    )
                })?
            }
        };
        let egress_allow_internal = if args.egress_allow_internal.is_empty() {
            file.egress_allow_internal
        } else {
            args.egress_allow_internal
        };
        for entry in &egress_allow_internal {
            crate::sandbox::check_operator_entry(entry)
                .map_err(|e| anyhow::anyhow!("egress_allow_internal: {e}"))?;
        }
        let trusted_proxies = if args.trusted_proxies.is_empty() {
            file.trusted_proxies
        } else {
            args.trusted_proxies
        };
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|entry| {
                crate::domain::protection::Allowed::try_from(entry.clone())
                    .map(|a| a.net())
                    .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let open_files = listener::raise_open_files();
        let mut listener = Limits::default_for(open_files);
        if let Some(secs) = args.header_timeout_secs.or(file.header_timeout_secs) {
            listener.header_timeout = std::time::Duration::from_secs(secs.max(1));
        }
        if let Some(n) = args.max_connections.or(file.max_connections) {
            listener.max_connections = n.max(1);
        }
        let defaults = Rate::default();
        let per_second = args
            .rate_limit_per_ip
            .or(file.rate_limit_per_ip)
            .unwrap_or(defaults.per_second);
        if !(per_second.is_finite() && per_second >= 0.0) {
            anyhow::bail!("rate_limit_per_ip must be a number of requests a second, 0 for none");
        }
        let rate_limit = (per_second > 0.0).then(|| Rate {
            per_second,
            burst: args
                .rate_limit_burst
                .or(file.rate_limit_burst)
                .map_or(defaults.burst, |b| f64::from(b.max(1))),
        });
        let mut limits = crate::script::Limits::default();
        if let Some(cost) = args.max_bcrypt_cost.or(file.max_bcrypt_cost) {
            if !(4..=31).contains(&cost) {
                anyhow::bail!("max_bcrypt_cost must be between 4 and 31, not {cost}");
            }
            limits.max_bcrypt_cost = cost;
        }
        if let Some(n) = args.max_pbkdf2_iterations.or(file.max_pbkdf2_iterations) {
            limits.max_pbkdf2_iterations = n.max(1);
        }
        if let Some(mb) = args.data_folder_quota_mb.or(file.data_folder_quota_mb) {
            limits.data_folder_bytes = mb.max(1).saturating_mul(1 << 20);
        }
        let kept = Retention::default();
        let retention = Retention {
            log_days: args
                .log_retention_days
                .or(file.log_retention_days)
                .unwrap_or(kept.log_days),
            log_events_per_tenant: args
                .log_events_kept_per_tenant
                .or(file.log_events_kept_per_tenant)
                .unwrap_or(kept.log_events_per_tenant),
            run_days: args
                .run_retention_days
                .or(file.run_retention_days)
                .unwrap_or(kept.run_days),
            runs_per_tenant: args
                .runs_kept_per_tenant
                .or(file.runs_kept_per_tenant)
                .unwrap_or(kept.runs_per_tenant),
        };
        let prune_every = std::time::Duration::from_secs(
            args.prune_interval_secs
                .or(file.prune_interval_secs)
                .unwrap_or(600)
                .max(1),
        );
        let public_url = args.public_url.or(file.public_url);
        if let Some(url) = &public_url
            && (!matches!(url.scheme(), "http" | "https") || url.path() != "/")
        {
            anyhow::bail!(
                "public_url {url} must be an http or https URL without a path, such as https://auth.example.com"
            );
        }
        Ok(Settings {
            open_files,
            public_url,
            trusted_proxies,
            listener,
            rate_limit,
            limits,
            retention,
            prune_every,
            egress_allow_internal,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000))),
            data: args
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from("customdb-data")),
            max_runs_per_tenant: args
                .max_runs_per_tenant
                .or(file.max_runs_per_tenant)
                .unwrap_or(64)
                .max(1),
            workers: args.workers.or(file.workers),
            spare_workers: args.spare_workers.or(file.spare_workers),
            idle_worker_memory_mb: args.idle_worker_memory_mb.or(file.idle_worker_memory_mb),
            runs_per_worker: args.runs_per_worker.or(file.runs_per_worker),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        })
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let args = Settings::resolve(args)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOMDB_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    // Workers run in another current folder: every path handed on is absolute.
    let data = args
        .data
        .canonicalize()
        .with_context(|| format!("cannot resolve the data folder {}", args.data.display()))?;
    let args = Settings { data, ..args };
    let sealer = Sealer::load(&args.data.join("store.key"), true)?;
    let store = Store::open(&args.data.join("store.db"), sealer)?;
    let demo = crate::demo::ensure(&store, &args.data)?;
    let keys = Keys::load(&store)?;
    let program = std::env::current_exe()
        .context("cannot locate the customdb executable to start workers")?;
    let core = Service::new(
        Arc::new(store),
        Arc::new(Pool::new(pool_config(program, &args))),
        Some(args.data.join("connections")),
    )
    .with_internal_egress(args.egress_allow_internal.clone())
    .with_limits(args.limits.clone());
    let state = Arc::new(
        AppState::new(core, keys, args.max_runs_per_tenant)
            .with_public_url(args.public_url.as_ref())
            .with_trusted_proxies(args.trusted_proxies.clone())
            .with_rate_limit(args.rate_limit),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let mut banner = format!("customdb listening on http://{address}\n");
        if let Some(demo) = demo {
            banner += &format!("demo tenant: connection \"{}\", users alice@example.com / \"correct horse battery staple\", bob@example.com / \"hunter22\"\n", crate::demo::CONNECTION);
            banner += &format!("demo app (public client, for logins): client_id {}\n", demo.app.client_id);
            banner += &format!("management client (client_credentials): client_id {} client_secret {}\n", demo.management.client_id, demo.management.client_secret);
            banner += &format!(
                "try: curl -s http://{address}/oauth/token -H 'content-type: application/json' -d '{{\"grant_type\":\"http://auth0.com/oauth/grant-type/password-realm\",\"realm\":\"{}\",\"client_id\":\"{}\",\"username\":\"alice@example.com\",\"password\":\"correct horse battery staple\"}}'\n",
                crate::demo::CONNECTION,
                demo.app.client_id
            );
        }
        // Whoever started the server may stop reading its output (`| head -1`): the server
        // keeps serving either way.
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
        tokio::spawn(prune(state.clone(), args.retention, args.prune_every));
        // Spares start now, so that even the first tenant's first run finds one.
        state.core.pool.refill();
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        listener::serve(listener, api::router(state), args.listener, shutdown).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Forgets, every `every` from the start, what `retention` no longer keeps; on the blocking
/// pool in short transactions, so requests carry on meanwhile.
async fn prune(state: Arc<AppState>, retention: Retention, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match state.core.prune(retention).await {
            Ok(pruned) if pruned != Default::default() => {
                tracing::info!(?pruned, "pruned what retention no longer keeps");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; the next prune tries again"),
        }
    }
}

/// The pool: `--workers N` busy at once (half of them, at least one, for any one tenant),
/// spares started ahead, and idle workers kept under the memory budget and in a sixteenth of
/// the open-file limit (three pipes each), which leaves the rest to connections.
fn pool_config(program: PathBuf, args: &Settings) -> PoolConfig {
    let default = PoolConfig::new(program);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (max_workers, max_busy_per_tenant) = match args.workers {
        Some(n) => (n.max(1), (n / 2).max(1)),
        None => (default.max_workers, default.max_busy_per_tenant),
    };
    PoolConfig {
        max_workers,
        max_busy_per_tenant,
        spares: args.spare_workers.unwrap_or(cores),
        runs_per_worker: args
            .runs_per_worker
            .unwrap_or(default.runs_per_worker)
            .max(1),
        idle_memory_bytes: args.idle_worker_memory_mb.unwrap_or(1024) << 20,
        max_idle: default.max_idle.min((args.open_files / 16) as usize).max(1),
        ..default
    }
}
