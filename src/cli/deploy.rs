//! `customdb deploy` and `customdb export`: Deploy CLI connection folders pushed to, and
//! written back from, a running server through its Management API (client credentials).
//! Configuration keywords (`##KEY##`) are filled from the environment on deploy and written
//! back as keywords on export: secrets never land in the folder.

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::connection::document;
use crate::layout;
use crate::service::{connection_from_api, export_connection, sources};

/// Where the server is and the management client to use.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's base URL, such as http://localhost:8080.
    #[arg(long, env = "CUSTOMDB_SERVER")]
    server: String,
    /// A management client of the tenant (`customdb tenant client`, or the demo's).
    #[arg(long, env = "CUSTOMDB_CLIENT_ID")]
    client_id: String,
    /// Its secret; prefer the environment variable, which `ps` does not show.
    #[arg(long, env = "CUSTOMDB_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
}

/// Push connection folders (database.json and scripts) to a server: new ones are created,
/// existing ones (by name) have their options and scripts replaced.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Connection folders, or folders to search for them (default: the current folder).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print one JSON report instead of lines.
    #[arg(long)]
    json: bool,
    /// A JSON object of values for the configuration's `##KEY##` keywords; CUSTOMDB_KW_<KEY>
    /// variables also map them (and win). Nothing else of the environment is read.
    #[arg(long, value_name = "FILE")]
    keywords: Option<PathBuf>,
}

/// Write a server's database connections as Deploy CLI folders under
/// DIR/database-connections/.
#[derive(Debug, Args)]
pub struct ExportArgs {
    dir: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Only this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Print one JSON report instead of lines.
    #[arg(long)]
    json: bool,
}

/// A Management API session.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn connect(args: &ServerArgs) -> anyhow::Result<Api> {
        let base = args.server.trim_end_matches('/').to_string();
        url::Url::parse(&base).with_context(|| {
            format!("--server {base} is not a URL; write e.g. http://localhost:8080")
        })?;
        let http = reqwest::Client::new();
        let mut api = Api {
            http,
            base,
            token: String::new(),
        };
        let tokens = api
            .call(
                reqwest::Method::POST,
                "/oauth/token",
                Some(json!({"grant_type": "client_credentials", "client_id": args.client_id, "client_secret": args.client_secret})),
            )
            .await
            .context("cannot get a Management API token; check --client-id and --client-secret")?;
        api.token = tokens["access_token"]
            .as_str()
            .context("the server's token answer has no access_token")?
            .to_string();
        Ok(api)
    }

    /// One request; a non-2xx answer becomes an error carrying the server's message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach {}; is `customdb serve` running there?",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value
                .get("message")
                .or_else(|| value.get("error_description"))
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_string);
            bail!("{method} {path}: {status}: {message}");
        }
        Ok(value)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let folders = layout::find(&roots)?;
    if folders.is_empty() {
        bail!("no connection folders (folders with a database.json) to deploy");
    }
    let keywords = layout::Keywords::load(args.keywords.as_deref())?;
    // Every folder is read and every keyword filled before anything is sent: a mistake in
    // one folder changes nothing on the server.
    let mut bodies = Vec::new();
    for dir in &folders {
        let folder = layout::read(dir)?;
        crate::domain::names::connection_name(&folder.name)
            .with_context(|| format!("{}", dir.display()))?;
        let mut configuration = serde_json::Map::new();
        for (key, value) in &folder.configuration {
            let filled = keywords
                .fill(value)
                .map_err(|e| anyhow::anyhow!("{}: configuration {key}: {e}", dir.display()))?;
            configuration.insert(key.clone(), json!(filled));
        }
        let options = folder
            .options
            .document(sources(&folder.scripts), configuration);
        // The whole document for both a create and an update: a PATCH may send `name` and
        // `strategy` back unchanged.
        let body = document(None, &folder.name, &folder.attributes, options);
        bodies.push((folder.name, body));
    }
    runtime()?.block_on(async {
        let api = Api::connect(&args.server).await?;
        let existing = api
            .call(reqwest::Method::GET, "/api/v2/connections", None)
            .await?;
        let mut report = Vec::new();
        for (name, body) in bodies {
            let id = existing
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == name.as_str())
                .and_then(|c| c["id"].as_str());
            let (action, answer) = match id {
                Some(id) => (
                    "updated",
                    api.call(
                        reqwest::Method::PATCH,
                        &format!("/api/v2/connections/{id}"),
                        Some(body),
                    )
                    .await,
                ),
                None => (
                    "created",
                    api.call(reqwest::Method::POST, "/api/v2/connections", Some(body))
                        .await,
                ),
            };
            let answer = answer.with_context(|| format!("deploying connection {name}"))?;
            if !args.json {
                println!("{action} {name} ({})", answer["id"].as_str().unwrap_or("?"));
            }
            report.push(json!({"name": name, "id": answer["id"], "action": action}));
        }
        if args.json {
            println!("{}", json!({"connections": report}));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let api = Api::connect(&args.server).await?;
        let listed = api
            .call(reqwest::Method::GET, "/api/v2/connections", None)
            .await?;
        let root = args.dir.join("database-connections");
        let mut report = Vec::new();
        for connection in listed.as_array().into_iter().flatten() {
            // The answer's own fields, less the id, are a connection body.
            let mut body = connection.clone();
            let id = body
                .as_object_mut()
                .and_then(|o| o.remove("id"))
                .and_then(|id| id.as_str().map(str::to_string))
                .unwrap_or_default();
            let record = connection_from_api("", id, &body).map_err(|e| {
                anyhow::anyhow!("the server sent a connection customdb cannot read: {e}")
            })?;
            if args.connection.as_ref().is_some_and(|c| *c != record.name) {
                continue;
            }
            // The name becomes a folder name: nothing that could leave the export folder.
            crate::domain::names::connection_name(&record.name)?;
            let dir = root.join(&record.name);
            export_connection(&record, &dir)
                .with_context(|| format!("cannot write {}", dir.display()))?;
            if !args.json {
                println!("wrote {}", dir.display());
            }
            report.push(json!({"name": record.name, "dir": dir}));
        }
        if let Some(name) = &args.connection
            && report.is_empty()
        {
            bail!("the server has no connection named {name}");
        }
        if args.json {
            println!("{}", json!({"connections": report}));
        }
        Ok(ExitCode::SUCCESS)
    })
}
