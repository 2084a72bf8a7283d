//! `customdb worker`: the hidden subcommand the supervisor starts; never run by hand.

use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Heap ceiling for scripts in this worker, in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    crate::isolation::worker::run(args.memory_bytes)?;
    Ok(ExitCode::SUCCESS)
}
