//! `customdb tenant ...`: administer the server's tenants on its data folder — create a
//! tenant and its domains, add a management client, import a connection folder.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::flows::Core;
use crate::isolation::{Pool, PoolConfig};
use crate::store::{Client, Store, seal::Sealer};

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
    /// Add a client; prints its id and secret once (only a hash of the secret is kept).
    Client {
        tenant: String,
        /// Scopes of its Management API tokens.
        #[arg(long, default_value = crate::store::MANAGEMENT_SCOPES)]
        scopes: String,
        #[arg(long, default_value = "management client")]
        name: String,
    },
    /// Import a Deploy CLI connection folder (database.json and scripts) into the tenant.
    Connection { tenant: String, dir: PathBuf },
}

pub fn run(args: TenantArgs) -> anyhow::Result<ExitCode> {
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
        } => {
            store.ensure_tenant(&tenant)?;
            let client_id = uuid::Uuid::new_v4().simple().to_string();
            let secret = Sealer::generate_key();
            store.put_client(&Client {
                client_id: client_id.clone(),
                tenant: tenant.clone(),
                name,
                secret_hash: crate::demo::secret_hash(&secret),
                scopes: scopes.split_whitespace().map(str::to_string).collect(),
            })?;
            println!(
                "client_id {client_id}\nclient_secret {secret}\n(the secret is shown only now)"
            );
        }
        TenantCommand::Connection { tenant, dir } => {
            let program = std::env::current_exe()?;
            let core = Core::new(
                Arc::new(store),
                Arc::new(Pool::new(PoolConfig::new(program))),
                Some(args.data.join("connections")),
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let record =
                rt.block_on(core.import_connection(&tenant, &dir, |k| std::env::var(k).ok()))?;
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
