//! `clsync sync JOB`: one job without the daemon: a full sync, then changes until the source
//! is quiet for the job's delay (copying a tree that is still being written), with its
//! progress on stderr ([`super::progress`]).

use std::process::ExitCode;

use clsync::config::{self, Mode};
use clsync::job::{Job, JobOptions};

use super::progress::{Progress, Subject};
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
    /// Show no progress. Otherwise progress goes to stderr: on a terminal, a bar with the
    /// files and bytes done, the rate and the time left (a spinner until the source is
    /// counted); else a line when the source is counted, one every --progress-interval, and
    /// a final summary (files, bytes copied, duration, rate). "Files" are the objects that
    /// are not directories (symlinks and special files included). Files and bytes are
    /// counted by the mirror engine (mode "mirror") or taken from rsync's own progress
    /// (mode "rsync": the initial sync runs with --info=progress2 --no-inc-recursive, files
    /// being those rsync transferred); in the command modes progress is the elapsed time and
    /// the size of the source.
    #[arg(long)]
    no_progress: bool,
    /// How often a progress line is written when stderr is not a terminal.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    progress_interval: std::time::Duration,
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
        progress: !args.no_progress,
    };
    let (source, filter) = (cfg.source.clone(), cfg.filter());
    // The mirror engine counts what it does; rsync reports its full syncs' progress.
    let counted = matches!(cfg.mode, Mode::Mirror | Mode::Rsync);
    let job = match Job::start(cfg, opts) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let progress = (!args.no_progress).then(|| {
        Progress::start(Subject {
            job: name,
            source,
            filter,
            tally: job.tally().filter(|_| counted),
            every: args.progress_interval,
        })
    });
    let status = job.wait();
    let ok = status.last_success.is_some() && status.consecutive_failures == 0;
    if let Some(p) = progress {
        p.finish(ok);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}
