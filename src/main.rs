//! The `clsync` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use clsync::config::{self, Loaded, Severity};
use clsync::supervisor::{self, Supervisor};

/// Exit status for an invalid configuration (`check`, or `run` with nothing usable).
const EXIT_CONFIG: u8 = 1;
/// Exit status for a runtime failure of the daemon itself.
const EXIT_RUNTIME: u8 = 3;

#[derive(Parser)]
#[command(
    name = "clsync",
    version,
    about = "Live file-sync daemon: keeps destinations equal to watched source trees",
    long_about = "clsync watches directory trees (inotify), batches the changes, filters them \
through exclude patterns and rules, and hands each batch to one rsync run or to its native \
mirror, so that every destination keeps up with its source within seconds.\n\n\
Jobs are TOML files in CONFIG_DIR/jobs.d/ (one job per file, named after the file); \
CONFIG_DIR/clsync.toml holds daemon settings and [defaults] inherited by every job.",
    after_help = "Exit status: 0 success; 1 invalid configuration; 2 usage error; 3 runtime failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every enabled job in the foreground until SIGTERM/SIGINT (SIGHUP reloads).
    Run {
        /// Configuration directory (holds clsync.toml and jobs.d/).
        #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
        config_dir: PathBuf,
        /// Log filter: error, warn, info, debug, trace, or tracing directives
        /// (e.g. "info,clsync::monitor=trace"). Overrides [daemon] log_level.
        #[arg(long, env = "CLSYNC_LOG")]
        log_level: Option<String>,
    },
    /// Validate the configuration directory, or job files, and print every error as
    /// file:line:column: message. Exit 0 when valid.
    Check {
        /// Configuration directory whose clsync.toml supplies [defaults] and against which
        /// relative paths resolve.
        #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
        config_dir: PathBuf,
        /// Job files to check instead of the whole directory (e.g. Ansible's `validate: clsync check %s`).
        files: Vec<PathBuf>,
    },
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("clsync: invalid log level {level:?} ({e}); using \"info\"");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn print_diagnostics(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
}

fn check(config_dir: PathBuf, files: Vec<PathBuf>) -> ExitCode {
    let mut ok = true;
    let mut jobs = 0;
    let mut report = |loaded: Loaded| {
        print_diagnostics(&loaded);
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

fn run(config_dir: PathBuf, log_level: Option<String>) -> ExitCode {
    let loaded = config::load_dir(&config_dir);
    let level = log_level
        .or_else(|| loaded.daemon.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(&level);
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
    let result = Supervisor::start(&loaded).and_then(|s| s.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config_dir,
            log_level,
        } => run(config_dir, log_level),
        Command::Check { config_dir, files } => check(config_dir, files),
    }
}
