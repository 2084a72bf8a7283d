//! The `customdb` binary: parses arguments and hands over to the library. Exit codes: 0 the
//! script succeeded, 1 it ended with any other outcome, 2 customdb could not run it.

use std::process::ExitCode;

fn main() -> ExitCode {
    customdb::cli::main()
}
