//! `customdb test`: proves a connection's scripts offline. Reads the cases of Deploy CLI
//! connection folders, gives each case a fresh database (and an HTTP stub when it lists
//! routes), runs it through the same worker pool as production, and checks the outcome,
//! result, error, console lines or a golden transcript.

pub mod backend;
mod check;
pub mod junit;
pub mod stub;

pub use check::{matches, slug, transcript};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::isolation::Pool;
use crate::layout::{self, ConnectionFolder, LayoutError};
use crate::outcome::{Execution, Outcome};
use crate::script::{Invocation, Limits, Policy, complete_create_user};

/// The folder of cases inside a connection folder.
pub const CASES_DIR: &str = "cases";
/// Settings shared by every case of a connection.
pub const SETUP_FILE: &str = "setup.json";
/// Golden transcripts, one file per case.
pub const GOLDEN_DIR: &str = "golden";

/// The tenant name test runs use (workers are never shared with other tenants).
const TENANT: &str = "customdb-test";

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{path}: {what}")]
    Case { path: PathBuf, what: String },
}

/// Why one case could not be run (a case that ran and differs from its expectation is not an
/// error: its report lists the differences).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The case asks for what `setup.json` does not provide.
    #[error("{0}")]
    Setup(&'static str),
    #[error("setup.json names database key {0}, which the configuration lacks")]
    MissingDatabaseKey(String),
    #[error("configuration {key}: {reason}")]
    Keyword { key: String, reason: String },
    #[error("cannot make a data folder: {0}")]
    DataFolder(std::io::Error),
    #[error("cannot start the HTTP stub: {0}")]
    Stub(std::io::Error),
    #[error(transparent)]
    Database(#[from] backend::BackendError),
    #[error("fixture {name}: {reason}")]
    Fixture { name: String, reason: String },
    #[error("after query {sql:?} failed: {source}")]
    After {
        sql: String,
        source: backend::BackendError,
    },
    #[error(transparent)]
    Run(#[from] crate::isolation::PoolError),
}

/// `cases/setup.json`: which configuration key names the case database, which fixtures every
/// case starts from, which key receives the HTTP stub's base URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    pub database: Option<String>,
    #[serde(default)]
    pub fixtures: Vec<Fixture>,
    pub http: Option<String>,
}

/// SQL run in the case's database before the script: a file in `cases/` or inline text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fixture {
    File(String),
    Sql { sql: String },
}

/// One case. See the README's "Test cases" section for the format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub action: crate::script::Action,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default)]
    pub fixtures: Vec<Fixture>,
    #[serde(default)]
    pub http: Vec<stub::Route>,
    pub context: Option<Value>,
    pub timeout_ms: Option<u64>,
    pub expect: Option<Expect>,
    #[serde(default)]
    pub golden: bool,
    /// Queries run in the case's database after the script, with the rows they must return.
    #[serde(default)]
    pub after: Vec<After>,
}

/// A query run after the script; its rows (every value as text) must match `rows`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    pub sql: String,
    pub rows: Vec<Value>,
}

/// What a case checks; every field present must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: Option<Outcome>,
    /// A subset of the callback value (strings starting with `~` match by containment).
    pub result: Option<Value>,
    /// A subset of the error (`name`, `message`, `code`, …).
    pub error: Option<Value>,
    /// Each entry must be contained in some console line.
    #[serde(default)]
    pub console: Vec<String>,
}

/// A connection folder with its cases, loaded and checked before anything runs.
#[derive(Debug, Clone)]
pub struct Suite {
    pub folder: ConnectionFolder,
    pub setup: Setup,
    /// (file the case came from, case)
    pub cases: Vec<(PathBuf, Case)>,
}

impl Suite {
    fn cases_dir(&self) -> PathBuf {
        self.folder.dir.join(CASES_DIR)
    }
}

/// Reads a connection folder and every `cases/*.json` in it.
pub fn load(dir: &Path) -> Result<Suite, HarnessError> {
    let folder = layout::read(dir)?;
    let cases_dir = dir.join(CASES_DIR);
    let setup_path = cases_dir.join(SETUP_FILE);
    let setup = if setup_path.is_file() {
        parse_json(&setup_path)?
    } else {
        Setup::default()
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&cases_dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && *p != setup_path)
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let list: Vec<Case> = parse_json(&file)?;
        for case in list {
            check_case(&folder, &case).map_err(|what| HarnessError::Case {
                path: file.clone(),
                what: format!("case \"{}\": {what}", case.name),
            })?;
            cases.push((file.clone(), case));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (file, case) in &cases {
        if !names.insert(case.name.as_str()) {
            return Err(HarnessError::Case {
                path: file.clone(),
                what: format!("two cases are named \"{}\"", case.name),
            });
        }
    }
    Ok(Suite {
        folder,
        setup,
        cases,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, HarnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| HarnessError::Case {
        path: path.to_path_buf(),
        what: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| HarnessError::Case {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

fn check_case(folder: &ConnectionFolder, case: &Case) -> Result<(), String> {
    let params = case.action.params();
    if case.args.len() != params.len() {
        return Err(format!(
            "{} takes {} argument(s) ({}), {} given",
            case.action,
            params.len(),
            params.join(", "),
            case.args.len()
        ));
    }
    if case.expect.is_none() && !case.golden && case.after.is_empty() {
        return Err(
            "has no \"expect\", \"golden\" or \"after\": a case must check something".into(),
        );
    }
    if !folder.scripts.contains_key(&case.action) {
        return Err(format!("the connection has no {} script", case.action));
    }
    case.http.iter().try_for_each(stub::Route::check)
}

/// How the harness runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write golden transcripts instead of comparing them.
    pub update: bool,
    /// Cases in flight at once.
    pub jobs: usize,
    /// Values for the configuration's `##KEY##` keywords.
    pub keywords: layout::Keywords,
    /// Hosts the scripts may reach besides the case's stubs and databases (`--allow-host`):
    /// a folder's own `allowed_hosts` is not trusted here.
    pub allow_hosts: Vec<String>,
}

/// The verdict on one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub connection: String,
    pub case: String,
    pub file: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub outcome: Option<Outcome>,
    pub duration_ms: f64,
    /// The golden transcript was written (`--update`).
    pub updated: bool,
}

/// Runs every case of `suites`, `options.jobs` at a time, calling `progress` as each ends.
pub async fn run(
    suites: &[Suite],
    pool: &Pool,
    options: &RunOptions,
    mut progress: impl FnMut(&CaseReport),
) -> Vec<CaseReport> {
    use futures::StreamExt;
    let all = suites
        .iter()
        .flat_map(|s| s.cases.iter().map(move |(file, case)| (s, file, case)))
        .enumerate();
    let mut reports = Vec::new();
    let mut stream = futures::stream::iter(all)
        .map(|(i, (suite, file, case))| async move {
            (i, run_case(suite, file, case, pool, options).await)
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some((i, report)) = stream.next().await {
        progress(&report);
        reports.push((i, report));
    }
    // Reports follow the order the cases are written in, whatever order they finished in.
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

async fn run_case(
    suite: &Suite,
    file: &Path,
    case: &Case,
    pool: &Pool,
    options: &RunOptions,
) -> CaseReport {
    let started = Instant::now();
    let mut report = CaseReport {
        connection: suite.folder.name.clone(),
        case: case.name.clone(),
        file: file.display().to_string(),
        passed: false,
        failures: Vec::new(),
        outcome: None,
        duration_ms: 0.0,
        updated: false,
    };
    match execute(suite, case, pool, options).await {
        Ok((execution, after)) => {
            report.outcome = Some(execution.outcome);
            report.failures = check::check(suite, case, &execution, options, &mut report.updated);
            for (query, rows) in case.after.iter().zip(after) {
                if let Err(m) = matches(
                    &Value::Array(rows.clone()),
                    &Value::Array(query.rows.clone()),
                ) {
                    report.failures.push(format!(
                        "after {:?}: {m}; rows were {}",
                        query.sql,
                        Value::Array(rows)
                    ));
                }
            }
        }
        Err(e) => report.failures.push(e.to_string()),
    }
    report.passed = report.failures.is_empty();
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    report
}

/// Prepares the case's world (data folder, database, fixtures, HTTP stub), runs the script
/// through the pool, and tears the world down.
async fn execute(
    suite: &Suite,
    case: &Case,
    pool: &Pool,
    options: &RunOptions,
) -> Result<(Execution, Vec<Vec<Value>>), CaseError> {
    let data = tempfile::tempdir().map_err(CaseError::DataFolder)?;
    let mut configuration = BTreeMap::new();
    for (k, v) in suite.folder.configuration.iter().chain(&case.configuration) {
        let v = options.keywords.fill(v).map_err(|e| CaseError::Keyword {
            key: k.clone(),
            reason: e.to_string(),
        })?;
        configuration.insert(k.clone(), v);
    }
    let mut egress = options.allow_hosts.clone();
    let _stub = match (&suite.setup.http, case.http.is_empty()) {
        (Some(key), false) => {
            let stub = stub::start(case.http.clone())
                .await
                .map_err(CaseError::Stub)?;
            configuration.insert(key.clone(), format!("http://{}", stub.address));
            egress.push(stub.address.to_string());
            Some(stub)
        }
        (None, false) => {
            return Err(CaseError::Setup(
                "the case lists http routes but setup.json names no \"http\" configuration key",
            ));
        }
        _ => None,
    };
    let fixtures: Vec<&Fixture> = suite.setup.fixtures.iter().chain(&case.fixtures).collect();
    let database = match &suite.setup.database {
        Some(key) => {
            let value = configuration
                .get(key)
                .cloned()
                .ok_or_else(|| CaseError::MissingDatabaseKey(key.clone()))?;
            let (value, db) = backend::create(&value, data.path()).await?;
            // The case's own database server is on the allow-list, as a tenant lists theirs.
            if let Some(address) = backend::address(&value) {
                egress.push(address);
            }
            configuration.insert(key.clone(), value.clone());
            Some((db, value))
        }
        None if !fixtures.is_empty() => {
            return Err(CaseError::Setup(
                "the case has fixtures but setup.json names no \"database\" key",
            ));
        }
        None => None,
    };
    let result = async {
        if let Some((db, url)) = &database {
            load_fixtures(suite, &fixtures, db, url).await?;
        }
        let invocation = invocation(suite, case, configuration, egress, data.path());
        let execution = pool.run(&invocation).await?;
        let after = after_queries(case, database.as_ref()).await?;
        Ok((execution, after))
    }
    .await;
    if let Some((db, _)) = database {
        db.drop().await;
    }
    result
}

/// Runs the suite's and the case's fixtures, in order, against the case's database.
async fn load_fixtures(
    suite: &Suite,
    fixtures: &[&Fixture],
    db: &backend::Database,
    url: &str,
) -> Result<(), CaseError> {
    for fixture in fixtures {
        let (name, sql) = match fixture {
            Fixture::Sql { sql } => ("(inline sql)".to_string(), sql.clone()),
            Fixture::File(name) => {
                let path = suite.cases_dir().join(name);
                let sql = std::fs::read_to_string(&path).map_err(|e| CaseError::Fixture {
                    name: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                (name.clone(), sql)
            }
        };
        db.run_sql(url, &sql)
            .await
            .map_err(|e| CaseError::Fixture {
                name,
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// The run a case asks for: its script and arguments, the filled configuration, the case's
/// time limit, and a policy that reaches the case's data folder, database and stub.
fn invocation(
    suite: &Suite,
    case: &Case,
    configuration: BTreeMap<String, String>,
    egress: Vec<String>,
    data: &Path,
) -> Invocation {
    let mut args = case.args.clone();
    if case.action == crate::script::Action::Create
        && let Some(user) = args.first_mut()
    {
        complete_create_user(user, TENANT, &suite.folder.name);
    }
    let mut limits = Limits::default();
    if let Some(ms) = case.timeout_ms {
        limits.timeout_ms = ms;
    }
    Invocation {
        tenant: TENANT.into(),
        connection: suite.folder.name.clone(),
        action: case.action,
        source: suite.folder.scripts[&case.action].clone(),
        args,
        context: case.context.clone(),
        configuration,
        limits,
        policy: Policy {
            data_dirs: vec![data.to_path_buf()],
            egress,
            // The operator runs the harness on their own machine: case databases and stubs
            // listen on loopback.
            internal: crate::script::Internal::Listed,
        },
    }
}

/// The rows of the case's `after` queries, read once the script has run.
async fn after_queries(
    case: &Case,
    database: Option<&(backend::Database, String)>,
) -> Result<Vec<Vec<Value>>, CaseError> {
    let mut after = Vec::new();
    for query in &case.after {
        let (db, url) = database.ok_or(CaseError::Setup(
            "the case has \"after\" queries but setup.json names no \"database\" key",
        ))?;
        let rows = db
            .query_text(url, &query.sql)
            .await
            .map_err(|source| CaseError::After {
                sql: query.sql.clone(),
                source,
            })?;
        after.push(rows);
    }
    Ok(after)
}
