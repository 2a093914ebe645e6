//! `clsync check`: validates a configuration directory, or single job files against it, and
//! prints every diagnostic as `file:line:column: message`.

use std::path::PathBuf;
use std::process::ExitCode;

use clsync::config::{self, Loaded};

use super::EXIT_CONFIG;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration directory whose clsync.toml supplies [defaults] and against which
    /// relative paths resolve.
    #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Job files to check instead of the whole directory (e.g. Ansible's `validate: clsync check %s`).
    files: Vec<PathBuf>,
}

pub fn run(Args { config_dir, files }: Args) -> ExitCode {
    let mut ok = true;
    let mut jobs = 0;
    let mut report = |loaded: Loaded| {
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
        ok &= !loaded.has_errors();
        jobs += loaded.jobs.len();
    };
    if files.is_empty() {
        report(config::load_dir(&config_dir));
    } else {
        for f in files {
            report(config::load_single(&config_dir, &f));
        }
    }
    if ok {
        println!("configuration OK ({jobs} job(s))");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}
