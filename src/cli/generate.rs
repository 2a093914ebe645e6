//! What is generated from the clap definitions: shell completions (`clsync completions`)
//! and the manual pages (the hidden `clsync man`, run by the package build).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_RUNTIME};

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Output directory (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

pub fn completions(a: CompletionsArgs) -> ExitCode {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "clsync",
        &mut std::io::stdout(),
    );
    ExitCode::SUCCESS
}

pub fn man(a: ManArgs) -> ExitCode {
    match crate::manpages::write_all(Cli::command(), &a.dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clsync: {}: {e}", a.dir.display());
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
