//! The effective configuration of a job, as every other layer reads it: what to sync where,
//! how (mode and handler options), when (delays, retries, verification) and within which
//! limits (sandbox). Built only by loading ([`super::load_dir`]); two equal [`JobConfig`]s
//! describe the same running job, which is what a reload compares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::command::CommandOptions;
use super::delete::Delete;
use super::job_filter::JobFilter;
use crate::rules::Filter;

/// How a job turns batches into a destination that matches the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One `rsync` per batch (local or remote destination).
    Rsync,
    /// The native handler: local destinations only, renames stay renames.
    Mirror,
    /// An external program (`[command]`), as the C clsync's other modes run it.
    Command(CommandOptions),
    /// rclone (`[rclone]`), to an rclone remote (`remote:path`).
    Rclone(RcloneOptions),
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Rsync => "rsync",
            Mode::Mirror => "mirror",
            Mode::Command(c) => c.kind.as_str(),
            Mode::Rclone(_) => "rclone",
        }
    }
}

/// `[rclone]`: the program, its configuration file (`--config`; rclone's own default when
/// not set) and extra arguments given to every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcloneOptions {
    pub path: PathBuf,
    pub config: Option<PathBuf>,
    pub args: Vec<String>,
    /// The job's `exclude` as rclone filter lines, in order (checked when loading).
    pub filter: Vec<String>,
}

/// A job's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local directory (absolute).
    Local(PathBuf),
    /// Anything rsync reaches by itself: `host:path`, `user@host:path`, `rsync://…`.
    Remote(String),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local(p) => write!(f, "{}", p.display()),
            Destination::Remote(s) => f.write_str(s),
        }
    }
}

/// `[big_file]`: big files wait longer, so a growing image is not re-sent every second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigFile {
    pub threshold: u64,
    pub delay: Duration,
}

/// How handlers run, from `[rsync]` and the job's top-level keys: the rsync program and its
/// extra arguments (rsync mode, and `%RSYNC-ARGS%` of the command modes), the timeout and
/// accepted exit codes of every mode, ssh, and the identity handler processes take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerOptions {
    pub path: PathBuf,
    pub args: Vec<String>,
    /// Kill a handler run (its whole process group) that takes longer than this. The
    /// mirror, which has no process, stops its run cooperatively instead
    /// ([`crate::handler::mirror`]).
    pub timeout: Option<Duration>,
    /// Exit codes that count as success (rsync's 24, "some files vanished", by default).
    pub ignore_exit_codes: Vec<i32>,
    /// How to reach a remote destination over ssh (`-e` for rsync, and the remote `mv`).
    pub ssh: SshOptions,
    /// Run handlers as this user and group instead of the daemon's (supplementary groups
    /// cleared).
    pub run_as: Option<RunAs>,
}

/// `rsync` from PATH, no extra arguments, no timeout, no exit code ignored, default ssh,
/// the daemon's identity (what tests start from; job files get their defaults when they
/// are resolved).
impl Default for HandlerOptions {
    fn default() -> HandlerOptions {
        HandlerOptions {
            path: "rsync".into(),
            args: Vec::new(),
            timeout: None,
            ignore_exit_codes: Vec::new(),
            ssh: SshOptions::default(),
            run_as: None,
        }
    }
}

/// `user` / `group`: the identity handler processes run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// `[ssh]` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// The ssh program (default `ssh`).
    pub command: Option<PathBuf>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    /// Extra ssh arguments, e.g. `["-o", "ConnectTimeout=10"]`.
    pub options: Vec<String>,
}

impl SshOptions {
    /// The ssh command line, program first.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            self.command
                .as_ref()
                .map_or_else(|| "ssh".to_string(), |p| p.display().to_string()),
        ];
        if let Some(p) = self.port {
            v.extend(["-p".to_string(), p.to_string()]);
        }
        if let Some(i) = &self.identity_file {
            v.extend(["-i".to_string(), i.display().to_string()]);
        }
        v.extend(self.options.iter().cloned());
        v
    }

    /// True when nothing was configured (rsync's own default `ssh` is then used).
    pub fn is_default(&self) -> bool {
        *self == SshOptions::default()
    }
}

/// A job's effective configuration: the job file over `[defaults]` over built-in defaults.
/// Two equal `JobConfig`s describe the same running job (reload compares them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    pub name: String,
    pub file: PathBuf,
    /// Every destination of the job file (`destinations = [...]`); a job file with several
    /// runs one job per destination (see `config::fan_out`), and each of those holds only its own.
    pub fan_out: Vec<Destination>,
    /// For one target of a fan-out: the job file's name.
    pub target_of: Option<String>,
    pub enabled: bool,
    pub source: PathBuf,
    pub destination: Destination,
    pub mode: Mode,
    pub delay: Duration,
    /// What is synced: the excludes and rules as written, compiled once at load.
    pub filter: JobFilter,
    pub initial_sync: bool,
    /// What the job may remove at the destination, and in which runs.
    pub delete: Delete,
    pub big_file: Option<BigFile>,
    pub workers: usize,
    /// Run a full sync this often, to repair drift the monitor could not see (changes made
    /// at the destination, or while the daemon was stopped).
    pub verify_interval: Option<Duration>,
    /// Two-way setups: drop changes that only echo what this job itself sent.
    pub loop_guard: bool,
    pub retry: RetryOptions,
    pub rsync: HandlerOptions,
    pub sandbox: SandboxOptions,
}

/// `sandbox`, `sandbox_read`, `sandbox_write`: what Landlock lets the job's handler runs
/// reach ([`crate::sandbox`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// `"auto"` resolved: on for modes rsync and mirror, off for the command modes.
    pub enabled: bool,
    /// Readable besides what the job needs anyway (absolute).
    pub read: Vec<PathBuf>,
    /// Writable (and readable) besides the destination and the lists directory.
    pub write: Vec<PathBuf>,
}

/// How failed handler runs are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// After this many consecutive failures the job is reported failed (it keeps retrying,
    /// with its changes kept); 0 = never.
    pub retries: u32,
    /// The first wait; it doubles after every failure…
    pub delay: Duration,
    /// …up to this.
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    fn default() -> RetryOptions {
        RetryOptions {
            retries: 0,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl JobConfig {
    /// The job's compiled filter (compiled once, when the configuration was loaded).
    pub fn filter(&self) -> Arc<Filter> {
        self.filter.compiled().clone()
    }
}
