//! `clsync sync JOB`: one job without the daemon: a full sync, then changes until the source
//! is quiet for the job's delay (copying a tree that is still being written).

use std::process::ExitCode;

use clsync::config;
use clsync::job::{Job, JobOptions};

use super::{ConfigDir, EXIT_CONFIG, EXIT_RUNTIME, absolute, init_logging};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigDir,
    /// Log filter, as for `run`.
    #[arg(long, env = "CLSYNC_LOG")]
    log_level: Option<String>,
    /// Accepted and ignored (`clsync sync --once JOB` is documented): `sync` always ends
    /// once the source is quiet.
    #[arg(long, hide = true)]
    once: bool,
    /// The job's name (its file stem).
    job: String,
}

pub fn run(args: Args) -> ExitCode {
    let config_dir = absolute(args.config.config_dir);
    let loaded = config::load_dir(&config_dir);
    init_logging(args.log_level, &loaded.daemon);
    let name = args.job;
    let Some(cfg) = loaded.jobs.iter().find(|j| j.name == name).cloned() else {
        for d in loaded.diagnostics.iter().filter(|d| {
            d.file
                .file_stem()
                .is_some_and(|s| s.to_string_lossy() == name)
        }) {
            tracing::error!("{d}");
        }
        tracing::error!("no valid job named {name:?} in {}", config_dir.display());
        return ExitCode::from(EXIT_CONFIG);
    };
    let opts = JobOptions {
        force_initial_sync: true,
        once: true,
        notify: None,
    };
    let job = match Job::start(cfg, opts) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let status = job.wait();
    if status.last_success.is_some() && status.consecutive_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}
