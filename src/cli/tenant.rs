//! `customdb tenant ...`: administer the server's tenants on its data folder — create a
//! tenant and its domains, add a management client, import a connection folder.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::domain::client::{Client, Grant, MANAGEMENT_SCOPES};
use crate::domain::names;
use crate::isolation::{Pool, PoolConfig};
use crate::service::Service;
use crate::store::{Store, seal::Sealer};

/// Administer tenants: domains, management clients, connections.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// The server's data folder.
    #[arg(long, default_value = "customdb-data", global = true)]
    data: PathBuf,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant (or add domains to it): requests whose Host is a domain go to it.
    Create {
        tenant: String,
        /// A Host the tenant answers for, such as auth.example.com or localhost:3000 (repeatable).
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// Also answer requests whose Host matches no tenant.
        #[arg(long)]
        default: bool,
    },
    /// Add a client: by default a confidential management client (client_credentials; its id
    /// and secret are printed once, only a digest of the secret is kept); with --public an
    /// application without a secret that logs users in with the password grants.
    Client {
        tenant: String,
        /// Scopes of its Management API tokens (default: every scope customdb checks).
        #[arg(long, conflicts_with = "public")]
        scopes: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A public (native) application: no secret, password and password-realm grants only.
        #[arg(long)]
        public: bool,
        /// The grants of a confidential client (repeatable): client_credentials (the
        /// default), password, password-realm. It must send its secret on each.
        #[arg(long = "grant-type", value_parser = Grant::from_flag, conflicts_with = "public")]
        grant_types: Vec<Grant>,
    },
    /// Import a Deploy CLI connection folder (database.json and scripts) into the tenant.
    Connection {
        tenant: String,
        dir: PathBuf,
        /// A JSON object of values for `##KEY##` keywords (CUSTOMDB_KW_<KEY> variables also
        /// map them, and win).
        #[arg(long, value_name = "FILE")]
        keywords: Option<PathBuf>,
    },
}

pub fn run(mut args: TenantArgs) -> anyhow::Result<ExitCode> {
    args.data = std::path::absolute(&args.data)
        .with_context(|| format!("cannot resolve the data folder {}", args.data.display()))?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let sealer = Sealer::load(&args.data.join("store.key"), true)?;
    let store = Store::open(&args.data.join("store.db"), sealer)?;
    match args.command {
        TenantCommand::Create {
            tenant,
            domains,
            default,
        } => {
            names::tenant(&tenant)?;
            for (i, domain) in domains.iter().enumerate() {
                store.add_domain(&tenant, domain, default && i == 0)?;
            }
            println!(
                "tenant {tenant} answers for {}{}",
                domains.join(", "),
                if default { " (and any other host)" } else { "" }
            );
        }
        TenantCommand::Client {
            tenant,
            scopes,
            name,
            public,
            grant_types,
        } => {
            names::tenant(&tenant)?;
            let client_id = uuid::Uuid::new_v4().simple().to_string();
            if public {
                let name = name.unwrap_or_else(|| "application".into());
                store.put_client(&Client::public_app(client_id.clone(), tenant, name))?;
                println!("client_id {client_id}\n(a public client: it has no secret)");
            } else {
                let secret = crate::secret::client_secret();
                let scopes = match scopes {
                    Some(s) => s.split_whitespace().map(str::to_string).collect(),
                    None => MANAGEMENT_SCOPES.iter().map(|s| s.to_string()).collect(),
                };
                let name = name.unwrap_or_else(|| "management client".into());
                let digest = crate::secret::digest(&secret);
                let grants = if grant_types.is_empty() {
                    vec![Grant::ClientCredentials]
                } else {
                    grant_types
                };
                store.put_client(&Client::confidential(
                    client_id.clone(),
                    tenant,
                    name,
                    digest,
                    scopes,
                    grants,
                ))?;
                println!(
                    "client_id {client_id}\nclient_secret {secret}\n(the secret is shown only now)"
                );
            }
        }
        TenantCommand::Connection {
            tenant,
            dir,
            keywords,
        } => {
            names::tenant(&tenant)?;
            let keywords = crate::layout::Keywords::load(keywords.as_deref())?;
            let program = std::env::current_exe()?;
            let core = Service::new(
                Arc::new(store),
                Arc::new(Pool::new(PoolConfig::new(program))),
                Some(args.data.join("connections")),
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let record = rt.block_on(core.import_connection(&tenant, &dir, &keywords))?;
            match record {
                Ok(r) => println!(
                    "connection {} ({}) imported into {tenant}: {} scripts",
                    r.name,
                    r.id,
                    r.scripts.len()
                ),
                Err(e) => bail!("{e}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
