//! `customdb worker`: the hidden subcommand the supervisor starts; never run by hand.

use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Heap ceiling for scripts in this worker, in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// The file where the run of each slice is recorded, for the supervisor to read if the
    /// worker dies.
    #[arg(long)]
    slice_ledger: Option<std::path::PathBuf>,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    crate::isolation::worker::run(args.memory_bytes, args.slice_ledger.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
