//! `clsync run`: the daemon in the foreground, until SIGTERM or SIGINT.

use std::process::ExitCode;

use clsync::config::{self, Severity};
use clsync::supervisor::{self, Supervisor};

use super::{ConfigDir, EXIT_CONFIG, EXIT_RUNTIME, absolute, init_logging};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigDir,
    /// Log filter: error, warn, info, debug, trace, or tracing directives
    /// (e.g. "info,clsync::monitor=trace"). Overrides [daemon] log_level.
    #[arg(long, env = "CLSYNC_LOG")]
    log_level: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let config_dir = absolute(args.config.config_dir);
    let loaded = config::load_dir(&config_dir);
    init_logging(args.log_level, &loaded.daemon);
    supervisor::log_diagnostics(&loaded);
    if !loaded.main_ok {
        let errors = loaded
            .errors()
            .filter(|d| d.severity == Severity::Error)
            .count();
        tracing::error!(
            "cannot start: {errors} error(s) in the daemon configuration of {}",
            config_dir.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    match Supervisor::start(&loaded).and_then(|s| s.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
