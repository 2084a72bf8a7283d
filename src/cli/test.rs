//! `customdb test`: run the cases of connection folders through workers and report, for a
//! person (progress lines, then `N passed, N failed`) or a machine (`--json`, `--junit`).

use anyhow::{Context as _, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::harness::{self, CaseReport, RunOptions};
use crate::isolation::{Pool, PoolConfig};
use crate::layout;

/// Prove connections' scripts offline: run the cases in each connection folder's cases/.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Connection folders, or folders to search for them (default: the current folder).
    paths: Vec<PathBuf>,
    /// Record golden transcripts instead of comparing them.
    #[arg(long)]
    update: bool,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print one JSON report instead of progress lines.
    #[arg(long)]
    json: bool,
    /// Cases run at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Run only cases whose connection or name contains TEXT.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// A JSON object of values for the configuration's `##KEY##` keywords; CUSTOMDB_KW_<KEY>
    /// variables also map them (and win). Nothing else of the environment is read.
    #[arg(long, value_name = "FILE")]
    keywords: Option<PathBuf>,
    /// A host the scripts may reach besides each case's HTTP stub and database, as
    /// HOST, HOST:PORT or an address (repeatable). A folder's own allowed_hosts is ignored
    /// here: a connection folder under test is not trusted to choose where it sends data.
    #[arg(long = "allow-host", value_name = "HOST:PORT")]
    allow_hosts: Vec<String>,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let folders = layout::find(&roots)?;
    if folders.is_empty() {
        bail!(
            "no connection folders (folders with a database.json) under {}; create one with `customdb init DIR --template sqlite`",
            roots
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut suites = Vec::new();
    for folder in &folders {
        let mut suite = harness::load(folder)?;
        if let Some(filter) = &args.filter {
            let connection = suite.folder.name.clone();
            suite.cases.retain(|(_, c)| {
                c.name.contains(filter.as_str()) || connection.contains(filter.as_str())
            });
        }
        suites.push(suite);
    }
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    if total == 0 {
        bail!(
            "no cases to run in {} connection folder(s); add cases/*.json (see the README's \"Test cases\")",
            folders.len()
        );
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let program = std::env::current_exe()
        .context("cannot locate the customdb executable to start workers")?;
    // Every case runs as one tenant: it may use every worker.
    let pool = Pool::new(PoolConfig {
        max_workers: jobs,
        max_busy_per_tenant: jobs,
        ..PoolConfig::new(program)
    });
    let options = RunOptions {
        update: args.update,
        jobs,
        keywords: layout::Keywords::load(args.keywords.as_deref())?,
        allow_hosts: args.allow_hosts.clone(),
    };
    if !args.json {
        println!(
            "customdb test: {total} case(s) in {} connection(s), {jobs} at a time",
            suites.len()
        );
    }
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut done = 0;
    let reports = rt.block_on(harness::run(&suites, &pool, &options, |report| {
        done += 1;
        if !args.json {
            print!("{}", progress_line(report, done, total));
            let _ = std::io::stdout().flush();
        }
    }));
    let passed = reports.iter().filter(|r| r.passed).count();
    let failed = reports.len() - passed;
    if let Some(path) = &args.junit {
        std::fs::write(path, harness::junit::render(&reports))
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
    }
    if args.json {
        let report = serde_json::json!({
            "passed": passed,
            "failed": failed,
            "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "cases": reports,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let updated = reports.iter().filter(|r| r.updated).count();
        if updated > 0 {
            println!("recorded {updated} golden transcript(s)");
        }
        println!(
            "{passed} passed, {failed} failed ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn progress_line(r: &CaseReport, done: usize, total: usize) -> String {
    let width = total.to_string().len();
    let verdict = if r.passed { "ok  " } else { "FAIL" };
    let mut out = format!(
        "[{done:>width$}/{total}] {verdict} {} › {} ({:.0} ms)\n",
        r.connection, r.case, r.duration_ms
    );
    for failure in &r.failures {
        for line in failure.lines() {
            out.push_str(&format!("{:>w$}{line}\n", "", w = width * 2 + 9));
        }
    }
    out
}
