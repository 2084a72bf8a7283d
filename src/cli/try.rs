//! `customdb try`: run one script with real inputs through a worker, as production does, and
//! show its console output, outcome, result or error, and timings.

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{parse_duration, parse_size};
use crate::domain::options::ConnectionOptions;
use crate::domain::profile::{self, ProfileOptions};
use crate::isolation::{Pool, PoolConfig};
use crate::outcome::{Execution, Outcome};
use crate::script::{Action, Invocation, Limits, Policy, complete_create_user};

/// Run one script locally and see its console output and result.
///
/// Arguments per action: login IDENTIFIER PASSWORD · get_user IDENTIFIER · create USER_JSON ·
/// verify EMAIL · change_password EMAIL NEW_PASSWORD · delete ID ·
/// change_email EMAIL NEW_EMAIL true|false
#[derive(Debug, Args)]
pub struct TryArgs {
    /// The action: login, get_user, create, verify, change_password, delete, change_email.
    action: String,
    /// The script file (one function, as stored by the platform).
    script: PathBuf,
    /// The action's arguments.
    args: Vec<String>,
    /// A configuration value, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// A JSON object of configuration values, or a Deploy CLI database.json.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Pass this JSON object as the script's `context` argument.
    #[arg(long, value_name = "JSON")]
    context: Option<String>,
    /// Wall-clock limit, such as 500ms or 2s (default 20s).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Memory ceiling of the worker, such as 256MB (default 512MB).
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// A folder `sqlite3` may open databases in (repeatable; default: the current folder).
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dirs: Vec<PathBuf>,
    /// A host HTTP requests may reach, such as api.example.com or 127.0.0.1:8080 (repeatable).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TryArgs) -> anyhow::Result<ExitCode> {
    let invocation = invocation(&args)?;
    let program = std::env::current_exe()
        .context("cannot locate the customdb executable to start a worker")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pool = Pool::new(PoolConfig {
        max_workers: 1,
        ..PoolConfig::new(program)
    });
    let execution = rt.block_on(pool.run(&invocation))?;
    // What login/get_user return becomes a normalized profile, as the server would store it.
    let profile = match (invocation.action, &execution.result) {
        (Action::Login | Action::GetUser, Some(result))
            if execution.outcome == Outcome::Success =>
        {
            Some(profile::normalize(
                result,
                &profile_options(&args, &invocation)?,
            ))
        }
        _ => None,
    };
    if args.json {
        let mut report = json_report(&execution);
        match &profile {
            Some(Ok(p)) => report["profile"] = Value::Object(p.value.clone()),
            Some(Err(v)) => report["profile_errors"] = json!(v),
            None => {}
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // The timing line stays last, below the profile.
        let report = human_report(&execution);
        let (body, time) = report
            .trim_end()
            .rsplit_once('\n')
            .unwrap_or(("", report.trim_end()));
        println!("{body}");
        match &profile {
            Some(Ok(p)) => {
                let text = serde_json::to_string_pretty(&p.value)?;
                out_block("profile:", &text);
                for w in &p.warnings {
                    println!("warning: {w}");
                }
            }
            Some(Err(violations)) => {
                println!("profile: rejected — the server would fail this login");
                for v in violations {
                    println!("         {v}");
                }
            }
            None => {}
        }
        println!("{time}");
    }
    let profile_ok = !matches!(profile, Some(Err(_)));
    Ok(if execution.outcome == Outcome::Success && profile_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn invocation(args: &TryArgs) -> anyhow::Result<Invocation> {
    let action: Action = args.action.parse().map_err(|e: String| anyhow!(e))?;
    let source = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read script {}", args.script.display()))?;
    let params = action.params();
    if args.args.len() != params.len() {
        let usage: Vec<String> = params.iter().map(|p| p.to_uppercase()).collect();
        bail!(
            "{action} takes {} argument(s), {} given\nusage: customdb try {action} SCRIPT {}",
            params.len(),
            args.args.len(),
            usage.join(" ")
        );
    }
    let mut values: Vec<Value> = args.args.iter().map(|a| Value::String(a.clone())).collect();
    let connection = args
        .script
        .file_stem()
        .map_or("try".to_string(), |s| s.to_string_lossy().into_owned());
    match action {
        Action::Create => {
            let mut user: Value = serde_json::from_str(&args.args[0])
                .map_err(|e| anyhow!("USER_JSON is not valid JSON: {e}"))?;
            if !user.is_object() {
                bail!(
                    "USER_JSON must be a JSON object such as {{\"email\":\"a@example.com\",\"password\":\"...\"}}"
                );
            }
            complete_create_user(&mut user, "local", &connection);
            values[0] = user;
        }
        Action::ChangeEmail => {
            values[2] = match args.args[2].as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => bail!(
                    "the VERIFIED argument of change_email must be true or false, not '{other}'"
                ),
            };
        }
        _ => {}
    }
    let context = match &args.context {
        Some(c) => {
            let v: Value =
                serde_json::from_str(c).map_err(|e| anyhow!("--context is not valid JSON: {e}"))?;
            if !v.is_object() {
                bail!("--context must be a JSON object");
            }
            Some(v)
        }
        None => None,
    };
    let mut limits = Limits::default();
    if let Some(t) = &args.timeout {
        limits.timeout_ms = parse_duration(t)
            .map_err(|e| anyhow!("--timeout: {e}"))?
            .as_millis() as u64;
    }
    if let Some(m) = &args.memory {
        limits.memory_bytes = parse_size(m).map_err(|e| anyhow!("--memory: {e}"))?;
    }
    Ok(Invocation {
        tenant: "local".to_string(),
        connection,
        action,
        source,
        args: values,
        context,
        configuration: configuration(args)?,
        limits,
        policy: policy(args)?,
    })
}

fn policy(args: &TryArgs) -> anyhow::Result<Policy> {
    let data_dirs = if args.data_dirs.is_empty() {
        vec![std::env::current_dir().context("cannot read the current folder")?]
    } else {
        args.data_dirs.clone()
    };
    let mut dirs = Vec::new();
    for dir in data_dirs {
        let canonical = dir
            .canonicalize()
            .with_context(|| format!("--data-dir {}: no such folder", dir.display()))?;
        dirs.push(canonical);
    }
    Ok(Policy {
        data_dirs: dirs,
        egress: args.allow_hosts.clone(),
        // The operator's own machine: --allow-host may name loopback and private addresses.
        internal: crate::script::Internal::Listed,
    })
}

fn configuration(args: &TryArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut config = BTreeMap::new();
    if let Some(path) = &args.config_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("config file {} is not valid JSON", path.display()))?;
        // A Deploy CLI database.json keeps the values under options.configuration.
        let values = doc.pointer("/options/configuration").unwrap_or(&doc);
        let map = values.as_object().ok_or_else(|| {
            anyhow!(
                "config file {} must hold a JSON object of settings",
                path.display()
            )
        })?;
        for (k, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => bail!(
                    "configuration value '{k}' in {} must be a string, number or boolean",
                    path.display()
                ),
            };
            config.insert(k.clone(), text);
        }
    }
    for pair in &args.config {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--config '{pair}' must be KEY=VALUE"))?;
        if k.is_empty() {
            bail!("--config '{pair}' has an empty key");
        }
        config.insert(k.to_string(), v.to_string());
    }
    Ok(config)
}

/// How the connection normalizes profiles: its name, and `import_mode` and
/// `non_persistent_attrs` when `--config-file` is its database.json.
fn profile_options(args: &TryArgs, inv: &Invocation) -> anyhow::Result<ProfileOptions> {
    let mut options = ProfileOptions {
        connection: inv.connection.clone(),
        ..ProfileOptions::default()
    };
    if let Some(path) = &args.config_file {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&inv.connection);
        let parts = ConnectionOptions::split(doc.get("options"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        options = ProfileOptions::of(name, &parts.options);
    }
    Ok(options)
}

/// Prints `label` and an indented multi-line text beside it, as the result is printed.
fn out_block(label: &str, text: &str) {
    for (i, line) in text.lines().enumerate() {
        let tag = if i == 0 { label } else { "" };
        println!("{tag:<9}{line}");
    }
}

fn json_report(e: &Execution) -> Value {
    json!({
        "outcome": e.outcome,
        "result": e.result,
        "error": e.error,
        "console": e.console,
        "warnings": e.warnings,
        "timings_ms": e.timings,
    })
}

fn human_report(e: &Execution) -> String {
    let mut out = String::new();
    for line in &e.console {
        let level = line.level;
        for (i, text) in line.message.lines().enumerate() {
            let tag = if i == 0 {
                format!("[{level}]")
            } else {
                String::new()
            };
            out.push_str(&format!("{tag:<8}{text}\n"));
        }
    }
    if !e.console.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("outcome: {}\n", e.outcome));
    if let Some(r) = &e.result {
        let pretty = serde_json::to_string_pretty(r).unwrap_or_default();
        out.push_str(&format!(
            "result:  {}\n",
            pretty.replace('\n', "\n         ")
        ));
    }
    if let Some(err) = &e.error {
        out.push_str(&format!("error:   {err}\n"));
        for (label, value) in [
            ("code", &err.code),
            ("description", &err.description),
            ("user_id", &err.user_id),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("         {label}: {v}\n"));
            }
        }
        if let Some(status) = err.status_code {
            out.push_str(&format!("         status_code: {status}\n"));
        }
        if let Some(stack) = &err.stack {
            for frame in stack.lines().skip(1) {
                out.push_str(&format!("         {}\n", frame.trim()));
            }
        }
    }
    for w in &e.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let t = &e.timings;
    out.push_str(&format!(
        "time:    {:.1} ms (worker start {:.1} ms, compile {:.1} ms, run {:.1} ms, native CPU {:.1} ms)\n",
        t.total_ms, t.spawn_ms, t.compile_ms, t.run_ms, t.native_cpu_ms
    ));
    out
}
