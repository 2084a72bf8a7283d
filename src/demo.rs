//! The embedded default `customdb serve` starts on: a demo tenant (the default for every
//! host), a connection on the sqlite template with a small legacy database, and a management
//! client whose credentials are kept in the data folder (0600) so each start can print them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::domain::options::ConnectionOptions;
use crate::script::Action;
use crate::store::{Client, ConnectionRecord, Store, StoreError};
use crate::templates;

pub const TENANT: &str = "demo";
pub const CONNECTION: &str = "Username-Password-Authentication";
/// The demo connection's id, which also names its data folder.
pub const CONNECTION_ID: &str = "con_demo";
const CREDENTIALS: &str = "demo-client.json";
const APP: &str = "demo-app.json";

/// The demo's management client, as printed at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoClient {
    pub client_id: String,
    pub client_secret: String,
}

/// The demo's public application: the client of its login example (no secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoApp {
    pub client_id: String,
}

/// What `serve` prints of the demo.
#[derive(Debug, Clone)]
pub struct Demo {
    pub app: DemoApp,
    pub management: DemoClient,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the demo in {0}: {1}")]
    Files(String, String),
}

/// Creates the demo on first start (an empty store) and returns its clients either way.
pub fn ensure(store: &Store, data: &Path) -> Result<Option<Demo>, DemoError> {
    let files = |e: std::io::Error| DemoError::Files(data.display().to_string(), e.to_string());
    let management = match std::fs::read_to_string(data.join(CREDENTIALS)) {
        Ok(text) => {
            let Ok(client) = serde_json::from_str::<DemoClient>(&text) else {
                return Ok(None);
            };
            // A demo made by an older customdb gets the scopes added since (create:user_tickets).
            if let Some(mut stored) = store.get_client(&client.client_id)?
                && stored.scopes != management_scopes()
            {
                stored.scopes = management_scopes();
                store.put_client(&stored)?;
            }
            client
        }
        Err(_) if store.get_connection(TENANT, CONNECTION)?.is_some() => return Ok(None),
        Err(_) => create(store, data)?,
    };
    // The public app came later than the management client: older demos get one too.
    let app = match std::fs::read_to_string(data.join(APP)) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| files(e.into()))?,
        Err(_) => {
            let app = DemoApp {
                client_id: uuid::Uuid::new_v4().simple().to_string(),
            };
            store.put_client(&Client::public_app(
                app.client_id.clone(),
                TENANT.into(),
                "demo app".into(),
            ))?;
            write_private(&data.join(APP), &app).map_err(files)?;
            app
        }
    };
    Ok(Some(Demo { app, management }))
}

/// The demo tenant, its connection with the seeded legacy database, and its management client.
fn create(store: &Store, data: &Path) -> Result<DemoClient, DemoError> {
    let files = |e: std::io::Error| DemoError::Files(data.display().to_string(), e.to_string());
    let text = |path: &str| {
        String::from_utf8_lossy(templates::file("sqlite", path).unwrap_or_default()).into_owned()
    };
    let mut scripts = BTreeMap::new();
    for action in Action::ALL {
        scripts.insert(action, text(&format!("{action}.js")));
    }
    store.add_domain(TENANT, "localhost", true)?;
    let record = ConnectionRecord {
        id: CONNECTION_ID.into(),
        tenant: TENANT.into(),
        name: CONNECTION.into(),
        attributes: Default::default(),
        options: ConnectionOptions {
            import_mode: Some(false),
            ..Default::default()
        },
        scripts,
        configuration: BTreeMap::from([("DB_FILE".to_string(), "users.db".to_string())]),
    };
    store.put_connection(&record)?;
    // The legacy database the demo connection's scripts read: the template's seed users.
    let legacy = crate::service::connection_dir(&data.join("connections"), &record)
        .map_err(|e| DemoError::Files(data.display().to_string(), e.to_string()))?;
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
        client_secret: crate::secret::client_secret(),
    };
    store.put_client(&Client::management(
        client.client_id.clone(),
        TENANT.into(),
        "demo management client".into(),
        crate::secret::digest(&client.client_secret),
        management_scopes(),
    ))?;
    write_private(&data.join(CREDENTIALS), &client).map_err(files)?;
    Ok(client)
}

/// Writes `value` as JSON to a new file only its owner can read.
fn write_private(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(
        file,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

fn management_scopes() -> Vec<String> {
    crate::domain::client::MANAGEMENT_SCOPES
        .iter()
        .map(|s| s.to_string())
        .collect()
}
