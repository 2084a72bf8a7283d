//! Connections (SPEC §5): the Management API's create and update rules, the `[encrypted]`
//! rule for configuration values, Deploy CLI folders in and out, each connection's data
//! folder, and the dashboard's "Try".

use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

use super::{Answer, Refusal, Service, ServiceError, Settings, refuse};
use crate::domain::options::ConnectionOptions;
use crate::domain::profile::{self, Violation};
use crate::layout;
use crate::outcome::Outcome;
use crate::script::Action;
use crate::store::{ConnectionRecord, StoreError};

/// The data folder of a connection under `root` (`<root>/<connection id>`), created when
/// missing. The id is checked again here, and the result must lie under the root: a stored
/// value never becomes a path elsewhere. A folder of an older customdb, keyed by tenant and
/// connection name, is moved to its new place the first time.
pub fn connection_dir(
    root: &std::path::Path,
    record: &ConnectionRecord,
) -> Result<PathBuf, ServiceError> {
    use crate::domain::names;
    let failed = |what: String| ServiceError::DataFolder(what);
    let id = names::connection_id(&record.id).map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(root)
        .map_err(|e| failed(format!("cannot create {}: {e}", root.display())))?;
    let root = root
        .canonicalize()
        .map_err(|e| failed(format!("cannot resolve {}: {e}", root.display())))?;
    let dir = root.join(id);
    if std::fs::symlink_metadata(&dir).is_err()
        && names::tenant(&record.tenant).is_ok()
        && names::connection_name(&record.name).is_ok()
    {
        let old = root.join(&record.tenant).join(&record.name);
        if is_folder(&old)
            && let Err(e) = std::fs::rename(&old, &dir)
            // A concurrent first run of the connection may have moved it just now.
            && !is_folder(&dir)
        {
            return Err(failed(format!(
                "cannot move {} to {}: {e}",
                old.display(),
                dir.display()
            )));
        }
    }
    // Concurrent first runs of one connection all get here: the folder one of them made is
    // the folder of all (a symlink or a file in its place is not).
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed(format!("cannot create {}: {e}", dir.display()))),
    }
    if !is_folder(&dir) {
        return Err(failed(format!("{} is not a folder", dir.display())));
    }
    if dir.parent() != Some(root.as_path()) {
        return Err(failed(format!(
            "{} is outside {}",
            dir.display(),
            root.display()
        )));
    }
    Ok(dir)
}

/// Whether `path` is a folder itself (not a symlink to one).
fn is_folder(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

impl Service {
    /// Imports a Deploy CLI connection folder: options replaced whole, scripts and
    /// configuration (keywords filled from `keywords`) stored, configuration sealed.
    pub async fn import_connection(
        &self,
        tenant: &str,
        dir: &Path,
        keywords: &layout::Keywords,
    ) -> Result<Result<ConnectionRecord, String>, ServiceError> {
        let folder = match layout::read(dir) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(e) = crate::domain::names::connection_name(&folder.name) {
            return Ok(Err(format!("{}: {e}", dir.display())));
        }
        let mut configuration = std::collections::BTreeMap::new();
        for (k, v) in &folder.configuration {
            match keywords.fill(v) {
                Ok(v) => configuration.insert(k.clone(), v),
                Err(e) => return Ok(Err(format!("configuration {k}: {e}"))),
            };
        }
        let existing = self.store.get_connection(tenant, &folder.name).await?;
        let record = ConnectionRecord {
            id: existing
                .map(|r| r.id)
                .unwrap_or_else(|| format!("con_{}", uuid::Uuid::new_v4().simple())),
            tenant: tenant.to_string(),
            name: folder.name.clone(),
            attributes: folder.attributes.clone(),
            options: folder.options.clone(),
            scripts: folder.scripts.clone(),
            configuration,
        };
        self.store.put_connection(&record).await?;
        Ok(Ok(record))
    }

    /// The dashboard's "Try": runs the connection's script for `action` (or `source` in its
    /// place) with `args`, records the run, and returns the Execution with the normalized
    /// profile (or its violations) for login and get_user. Nothing is cached.
    pub async fn try_script(
        &self,
        tenant: &str,
        connection: &str,
        action: Action,
        args: Vec<Value>,
        source: Option<String>,
    ) -> Answer<Value> {
        let mut record = self.connection(tenant, connection).await?;
        if let Some(source) = source {
            record.scripts.insert(action, source);
        }
        let params = action.params();
        if args.len() != params.len() {
            return refuse(Refusal::BadRequest(vec![Violation {
                field: "args".into(),
                rule: format!(
                    "{action} takes {} argument(s): {}",
                    params.len(),
                    params.join(", ")
                ),
            }]));
        }
        let settings = Settings::of(&record);
        let Some(execution) = self.run(&settings, action, args).await? else {
            return refuse(Refusal::MissingScript(action));
        };
        let mut report = serde_json::to_value(&execution).unwrap_or_default();
        if matches!(action, Action::Login | Action::GetUser)
            && execution.outcome == Outcome::Success
        {
            match profile::normalize(
                execution.result.as_ref().unwrap_or(&Value::Null),
                &settings.profile,
            ) {
                Ok(p) => report["profile"] = Value::Object(p.value),
                Err(v) => report["profile_errors"] = json!(v),
            }
        }
        Ok(report)
    }
}

impl Service {
    /// The tenant's connection with this id or name.
    pub async fn connection_record(
        &self,
        tenant: &str,
        id_or_name: &str,
    ) -> Result<Option<ConnectionRecord>, ServiceError> {
        Ok(self.store.get_connection(tenant, id_or_name).await?)
    }

    /// The tenant's connections, by name.
    pub async fn connections(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, ServiceError> {
        Ok(self.store.list_connections(tenant).await?)
    }

    /// Stores a connection made or changed by the rules above; a name the tenant already has
    /// is Auth0's `connection_conflict`.
    pub async fn save_connection(&self, record: &ConnectionRecord) -> Answer<()> {
        match self.store.put_connection(record).await {
            Err(StoreError::NameTaken(_)) => refuse(Refusal::Conflict {
                code: "connection_conflict".into(),
                message: "A connection with the same name already exists".into(),
            }),
            other => Ok(other?),
        }
    }

    /// Deletes a connection and its users; false when the tenant has none with this id.
    pub async fn delete_connection(&self, tenant: &str, id: &str) -> Result<bool, ServiceError> {
        Ok(self.store.delete_connection(tenant, id).await?)
    }
}

/// What `GET /connections` shows in place of each configuration value; sent back in a PATCH,
/// it keeps the stored value (Auth0 overwrote the secret with it: deploy-cli #197, #821).
pub const ENCRYPTED: &str = "[encrypted]";

/// A new connection from a `POST /connections` body: `name` (Auth0's rule), `strategy`
/// (`auth0`, the only kind customdb serves), `options` with `customScripts` and
/// `configuration`, and the top-level attributes. Anything else is refused by name.
pub fn connection_from_api(
    tenant: &str,
    id: String,
    body: &Value,
) -> Result<ConnectionRecord, String> {
    let body = body.as_object().ok_or("the body must be a JSON object")?;
    unknown_fields(body, &["name", "strategy", "options"])?;
    let name = match body.get("name") {
        Some(Value::String(n)) => crate::domain::names::connection_name(n)
            .map_err(|e| e.to_string())?
            .to_string(),
        None => return Err("Missing required property: name".into()),
        Some(_) => return Err("name must be a string".into()),
    };
    match body.get("strategy") {
        None => {}
        Some(Value::String(s)) if s == "auth0" => {}
        Some(other) => {
            return Err(format!(
                "strategy {other} is not served here: customdb's connections are database connections (\"auth0\")"
            ));
        }
    }
    let (options, scripts, configuration) = options_from_api(body.get("options"))?;
    ConnectionRecord {
        id,
        tenant: tenant.to_string(),
        name,
        attributes: Default::default(),
        options,
        scripts,
        configuration,
    }
    .with_attributes(body)
}

/// `existing` after a `PATCH /connections/{id}` body. `options`, when sent, replaces the
/// options whole, as Auth0's does (a configuration value sent back as `[encrypted]` keeps the
/// stored one); without it, options, scripts and configuration stay as they are. The
/// attributes the body names are set (`null` unsets). `id`, `name` and `strategy` may be sent
/// back unchanged, never changed.
pub fn patch_connection(
    existing: &ConnectionRecord,
    body: &Value,
) -> Result<ConnectionRecord, String> {
    let body = body.as_object().ok_or("the body must be a JSON object")?;
    unknown_fields(body, &["options", "id", "name", "strategy"])?;
    for (key, stored) in [
        ("id", existing.id.as_str()),
        ("name", existing.name.as_str()),
        ("strategy", "auth0"),
    ] {
        if let Some(sent) = body.get(key)
            && sent.as_str() != Some(stored)
        {
            return Err(format!("{key} cannot be changed (it is {stored:?})"));
        }
    }
    let mut record = existing.clone().with_attributes(body)?;
    if let Some(options) = body.get("options") {
        let (options, scripts, mut configuration) = options_from_api(Some(options))?;
        for (key, value) in configuration.iter_mut() {
            if value == ENCRYPTED
                && let Some(stored) = existing.configuration.get(key)
            {
                value.clone_from(stored);
            }
        }
        record.options = options;
        record.scripts = scripts;
        record.configuration = configuration;
    }
    Ok(record)
}

impl ConnectionRecord {
    /// The record with the top-level attributes `body` names applied.
    fn with_attributes(mut self, body: &Map<String, Value>) -> Result<Self, String> {
        self.attributes = self.attributes.patched(body)?;
        Ok(self)
    }
}

/// Refuses top-level fields that are neither `allowed` nor an attribute, naming them as
/// Auth0's payload validation does.
fn unknown_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    use crate::domain::connection::ConnectionAttributes;
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k) && !ConnectionAttributes::KEYS.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Additional properties not allowed: {}",
            unknown.join(",")
        ))
    }
}

type ParsedOptions = (
    ConnectionOptions,
    std::collections::BTreeMap<Action, String>,
    std::collections::BTreeMap<String, String>,
);

/// An API body's `options` split into the options, the scripts (sources) and the
/// configuration, each checked.
fn options_from_api(options: Option<&Value>) -> Result<ParsedOptions, String> {
    let parts = ConnectionOptions::split(options)?;
    let scripts = parts.script_entries()?.unwrap_or_default();
    let configuration = layout::configuration_values(parts.configuration.as_ref())
        .map_err(|e| format!("options.configuration {e}"))?;
    Ok((parts.options, scripts, configuration))
}

/// The scripts as an API body's `customScripts`: each action's key and its source.
pub fn sources(scripts: &std::collections::BTreeMap<Action, String>) -> Map<String, Value> {
    scripts
        .iter()
        .map(|(action, source)| (action.key().to_string(), json!(source)))
        .collect()
}

/// Writes a connection as a Deploy CLI folder. Configuration values are never written: each
/// becomes a `##KEY##` keyword for the deploying environment to fill in.
pub fn export_connection(record: &ConnectionRecord, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut scripts = Map::new();
    for (action, source) in &record.scripts {
        let file = format!("{action}.js");
        std::fs::write(dir.join(&file), source)?;
        scripts.insert(action.key().to_string(), json!(format!("./{file}")));
    }
    let configuration: Map<String, Value> = record
        .configuration
        .keys()
        .map(|k| (k.clone(), json!(format!("##{k}##"))))
        .collect();
    let options = record.options.document(scripts, configuration);
    let doc = crate::domain::connection::document(None, &record.name, &record.attributes, options);
    std::fs::write(
        dir.join(layout::DATABASE_JSON),
        serde_json::to_string_pretty(&doc)? + "\n",
    )
}
