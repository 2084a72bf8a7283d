//! Command-line front doors: argument parsing and dispatch. One file per subcommand; the work
//! itself is library calls. `anyhow` is used here and nowhere below.

mod deploy;
mod init;
mod serve;
mod tenant;
mod test;
mod r#try;
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Runs Auth0-style custom database scripts in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "customdb", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Try(Box<r#try::TryArgs>),
    Test(test::TestArgs),
    Init(init::InitArgs),
    Serve(Box<serve::ServeArgs>),
    Tenant(tenant::TenantArgs),
    Deploy(deploy::DeployArgs),
    Export(deploy::ExportArgs),
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Exit code for a run that customdb could not perform (bad arguments, unreadable files).
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Try(args) => r#try::run(*args),
        Command::Test(args) => test::run(args),
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Tenant(args) => tenant::run(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Export(args) => deploy::export(args),
        Command::Worker(args) => worker::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Parses `500ms`, `2s`, `1m`.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("'{s}' is not a duration; use a number with a unit, such as 500ms, 2s or 1m")
    })?;
    let secs = match unit.trim() {
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        "" => return Err(format!("'{s}' has no unit; write 500ms, 2s or 1m")),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' in '{s}'; use ms, s or m"
            ));
        }
    };
    if !(0.001..=3600.0).contains(&secs) {
        return Err(format!("'{s}' is out of range (1ms to 60m)"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses `256MB`, `1G`, `512MiB`, or a byte count.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size; write for example 256MB or 1GB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}'; use KB, MB or GB"
            ));
        }
    };
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < 32 << 20 {
        return Err(format!("'{s}' is below the 32MB minimum a worker needs"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("2").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("2h")
                .unwrap_err()
                .contains("unknown duration unit")
        );
        assert_eq!(parse_size("256MB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("1KB").unwrap_err().contains("minimum"));
        assert!(parse_size("lots").is_err());
    }
}
