//! `customdb init DIR --template NAME`: write a connection folder from a shipped template,
//! ready for `customdb test`.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::templates;

/// Create a connection folder (Deploy CLI layout, with test cases) from a template.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to create; its name becomes the connection's name.
    dir: PathBuf,
    /// sqlite (default), postgres, mysql, rest-api or aspnet-identity-migration.
    #[arg(long, short = 't', default_value = "sqlite")]
    template: String,
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let count = templates::write(&args.template, &args.dir)?;
    let dir = args.dir.display();
    println!(
        "created {dir} from the {} template ({count} files)",
        args.template
    );
    println!("next: customdb test {dir}");
    Ok(ExitCode::SUCCESS)
}
