//! The `clsync` command line: the clap definitions (which also make the manual pages and
//! the shell completions, so these cannot drift from what is accepted) and one module per
//! subcommand. A new subcommand is a variant of [`Command`] holding its own `clap::Args`
//! struct, a module with its `run`, and one arm in [`main`].

mod check;
mod client;
mod explain;
mod generate;
mod metrics;
mod progress;
mod reload;
mod run;
mod status;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use clsync::config;

/// Exit status for an invalid configuration (`check`, or `run` with nothing usable).
const EXIT_CONFIG: u8 = 1;
/// Exit status for a command line clap cannot refuse by itself (clap exits 2 for its own).
const EXIT_USAGE: u8 = 2;
/// Exit status for a runtime failure of the daemon itself (or a daemon not reachable).
const EXIT_RUNTIME: u8 = 3;
/// `clsync status`: some job is failing or retrying.
const EXIT_UNHEALTHY: u8 = 4;

#[derive(Parser)]
#[command(
    name = "clsync",
    version,
    about = "Live file-sync daemon: keeps destinations equal to watched source trees",
    long_about = "clsync watches directory trees (inotify), batches the changes, filters them \
through exclude patterns and rules, and hands each batch to one rsync run, to its native \
mirror, or to a command of yours, so that every destination keeps up with its source within \
seconds.\n\n\
Jobs are TOML files in CONFIG_DIR/jobs.d/ (one job per file, named after the file); \
CONFIG_DIR/clsync.toml holds daemon settings and [defaults] inherited by every job.",
    after_help = "Exit status: 0 success; 1 invalid configuration; 2 usage error; 3 runtime failure or daemon not reachable; 4 (status) a job is unhealthy."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every enabled job in the foreground until SIGTERM/SIGINT (SIGHUP reloads).
    Run(run::Args),
    /// Validate the configuration directory, or job files, and print every error as
    /// file:line:column: message. Exit 0 when valid.
    Check(check::Args),
    /// Show every job's state, counters, last success and last error, and the last reload.
    ///
    /// Exit status: 0 when every enabled job is healthy, 4 when a job is failing or
    /// retrying, 3 when the daemon cannot be reached.
    Status(status::Args),
    /// Ask the running daemon to reload its configuration (like SIGHUP), and report the
    /// result: which jobs started, restarted or stopped, or every configuration error.
    Reload(reload::Args),
    /// Tell which exclude pattern or rule decides whether PATH is synced by JOB.
    Explain(explain::Args),
    /// Print the daemon's metrics in Prometheus' text format: the same text that
    /// `[daemon] metrics_file` and `metrics_listen` serve.
    Metrics(metrics::Args),
    /// Run one job without the daemon: a full sync, then keep syncing changes until none
    /// arrives for the job's delay, then exit (copy a tree that is still being written).
    Sync(sync::Args),
    Import(clsync::import::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// The package installs them; by hand e.g. `clsync completions bash >
    /// /etc/bash_completion.d/clsync`.
    Completions(generate::CompletionsArgs),
    /// Write the manual pages clsync(8), clsync-COMMAND(8) and clsync.toml(5) into DIR
    /// (used to build the package).
    #[command(hide = true)]
    Man(generate::ManArgs),
}

/// The configuration directory, as every command that reads one takes it.
#[derive(clap::Args)]
struct ConfigDir {
    /// Configuration directory (holds clsync.toml and jobs.d/).
    #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
}

pub fn main() -> ExitCode {
    let command = Cli::parse().command;
    if !matches!(command, Command::Run(_) | Command::Sync(_)) {
        quiet_on_closed_pipe();
    }
    match command {
        Command::Run(a) => run::run(a),
        Command::Check(a) => check::run(a),
        Command::Status(a) => status::run(a),
        Command::Reload(a) => reload::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Import(a) => clsync::import::run(a),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
    }
}

/// A report piped into `head` ends like any Unix tool's when the reader goes: by SIGPIPE,
/// silently, instead of a panic on the failed write. (Not for `run` and `sync`: they write
/// into their handlers' pipes, and a handler that exits early is an error they report.)
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal, before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Logging to `[daemon] log_target` at `level`, else `[daemon] log_level`, else `info`.
fn init_logging(level: Option<String>, daemon: &config::DaemonConfig) {
    let level = level
        .or_else(|| daemon.log_level.clone())
        .unwrap_or_else(|| "info".into());
    clsync::logging::init(&level, daemon);
}

/// The configuration directory as an absolute path, so that reloads and `status` do not
/// depend on the working directory.
fn absolute(dir: PathBuf) -> PathBuf {
    dir.canonicalize().unwrap_or(dir)
}
