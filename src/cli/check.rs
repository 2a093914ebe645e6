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
    /// Check the one FILE as if it were named FILE_NAME: `NAME.toml` checks it as the job NAME,
    /// `clsync.toml` as the main configuration of --config-dir. For validators that check a
    /// temporary copy under another name (Ansible's `validate: clsync check --as web.toml %s`).
    #[arg(long = "as", value_name = "FILE_NAME", requires = "files")]
    as_name: Option<PathBuf>,
}

pub fn run(
    Args {
        config_dir,
        files,
        as_name,
    }: Args,
) -> ExitCode {
    if as_name.is_some() && files.len() != 1 {
        eprintln!("clsync check: --as names exactly one FILE");
        return ExitCode::from(super::EXIT_USAGE);
    }
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
            let named = as_name.as_deref().unwrap_or(&f);
            report(config::load_single_as(&config_dir, &f, named));
        }
    }
    if ok {
        println!("configuration OK ({jobs} job(s))");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}
