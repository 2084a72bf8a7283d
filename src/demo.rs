//! The embedded default `customdb serve` starts on: a demo tenant (the default for every
//! host), a connection on the sqlite template with a small legacy database, and a management
//! client whose credentials are kept in the data folder (0600) so each start can print them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::script::Action;
use crate::store::{Client, ConnectionRecord, Store, StoreError};
use crate::templates;

pub const TENANT: &str = "demo";
pub const CONNECTION: &str = "Username-Password-Authentication";
const CREDENTIALS: &str = "demo-client.json";

/// The demo's management client, as printed at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoClient {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the demo in {0}: {1}")]
    Files(String, String),
}

/// Creates the demo on first start (an empty store) and returns its client either way.
pub fn ensure(store: &Store, data: &Path) -> Result<Option<DemoClient>, DemoError> {
    let credentials = data.join(CREDENTIALS);
    if let Ok(text) = std::fs::read_to_string(&credentials) {
        let client: Option<DemoClient> = serde_json::from_str(&text).ok();
        // A demo made by an older customdb gets the scopes added since (create:user_tickets).
        if let Some(c) = &client
            && let Some(mut stored) = store.get_client(&c.client_id)?
            && stored.scopes != management_scopes()
        {
            stored.scopes = management_scopes();
            store.put_client(&stored)?;
        }
        return Ok(client);
    }
    if store.get_connection(TENANT, CONNECTION)?.is_some() {
        return Ok(None);
    }
    let files = |e: std::io::Error| DemoError::Files(data.display().to_string(), e.to_string());
    let text = |path: &str| {
        String::from_utf8_lossy(templates::file("sqlite", path).unwrap_or_default()).into_owned()
    };
    let mut scripts = BTreeMap::new();
    for action in Action::ALL {
        scripts.insert(action, text(&format!("{action}.js")));
    }
    store.add_domain(TENANT, "localhost", true)?;
    store.put_connection(&ConnectionRecord {
        id: "con_demo".into(),
        tenant: TENANT.into(),
        name: CONNECTION.into(),
        options: serde_json::json!({"import_mode": false})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        scripts,
        configuration: BTreeMap::from([("DB_FILE".to_string(), "users.db".to_string())]),
    })?;
    // The legacy database the demo connection's scripts read: the template's seed users.
    let legacy = data.join("connections").join(TENANT).join(CONNECTION);
    std::fs::create_dir_all(&legacy).map_err(files)?;
    let db = rusqlite::Connection::open(legacy.join("users.db"))
        .map_err(|e| DemoError::Files(data.display().to_string(), e.to_string()))?;
    db.execute_batch(&format!(
        "{}\n{}",
        text("cases/schema.sql"),
        text("cases/seed.sql")
    ))
    .map_err(|e| DemoError::Files(data.display().to_string(), e.to_string()))?;
    let client = DemoClient {
        client_id: uuid::Uuid::new_v4().simple().to_string(),
        client_secret: crate::store::seal::Sealer::generate_key(),
    };
    store.put_client(&Client {
        client_id: client.client_id.clone(),
        tenant: TENANT.into(),
        name: "demo management client".into(),
        secret_hash: secret_hash(&client.client_secret),
        scopes: management_scopes(),
    })?;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&credentials)
        .map_err(files)?;
    writeln!(
        file,
        "{}",
        serde_json::to_string_pretty(&client).unwrap_or_default()
    )
    .map_err(files)?;
    Ok(Some(client))
}

fn management_scopes() -> Vec<String> {
    crate::store::MANAGEMENT_SCOPES
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// How client secrets are stored: SHA-256 (they are 256-bit random values, not passwords).
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}
