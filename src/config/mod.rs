//! Loading and validating a configuration directory.
//!
//! `DIR/clsync.toml` (optional) holds `[daemon]` settings and `[defaults]` that every job
//! inherits key by key; `DIR/jobs.d/*.toml` holds one job per file, named after the file stem.
//! Loading never stops at the first problem: every error of every file is collected as a
//! [`Diagnostic`] so that `clsync check` and a reload can show them all at once.

pub mod diag;
mod fan_out;
pub mod observability;
mod placeholder;
mod raw;
pub mod units;

pub use placeholder::Placeholder;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use diag::{Diagnostic, Severity, SourceFile};
use raw::{RawDaemon, RawJob};
use toml::Spanned;

use crate::rules::{self, Filter};

/// Where the daemon looks for its configuration when neither `--config-dir` nor
/// `CLSYNC_CONFIG_DIR` says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/clsync";

/// The default collection delay: short enough to "keep up within seconds", long enough to
/// fold an editor's save or a `tar x` into one batch.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);

/// How a job turns batches into a destination that matches the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One `rsync` per batch (local or remote destination).
    Rsync,
    /// The native handler: local destinations only, renames stay renames.
    Mirror,
    /// An external program (`[command]`), as the C clsync's other modes run it.
    Command(CommandOptions),
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Rsync => "rsync",
            Mode::Mirror => "mirror",
            Mode::Command(c) => c.kind.as_str(),
        }
    }
}

/// The command modes: what the external handler is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// The batch's paths as arguments: `HANDLER PATH... DESTINATION`.
    Direct,
    /// A list file of `EVENT TYPE PATH` records: `HANDLER TYPE JOB LIST`.
    Shell,
    /// One run per path: `HANDLER EVENT /ABS/PATH`.
    Simple,
    /// rsync `--files-from`/`--exclude-from` lists for a script that runs rsync itself.
    RsyncShell,
}

impl CommandKind {
    pub const ALL: [CommandKind; 4] = [
        CommandKind::Direct,
        CommandKind::Shell,
        CommandKind::Simple,
        CommandKind::RsyncShell,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Direct => "direct",
            CommandKind::Shell => "shell",
            CommandKind::Simple => "simple",
            CommandKind::RsyncShell => "rsync-shell",
        }
    }

    /// The argument template used when `[command] args` is not set.
    pub fn default_args(self) -> &'static [&'static str] {
        match self {
            CommandKind::Direct => &["%INCLUDE-LIST%", "%destination%"],
            CommandKind::Shell => &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
            CommandKind::Simple => &["%EVENT%", "%PATH%"],
            CommandKind::RsyncShell => &["%INCLUDE-LIST-PATH%", "%EXCLUDE-LIST-PATH%"],
        }
    }
}

/// `[command]` options of the command modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    pub kind: CommandKind,
    /// The handler program; a bare name is looked up in `PATH`.
    pub path: PathBuf,
    /// The argument template (the mode's default when not configured).
    pub args: Vec<String>,
    /// Where list files are written; `None`: a private directory per job under `$TMPDIR`.
    pub lists_dir: Option<PathBuf>,
    /// Keep list files after each run (debugging).
    pub keep_lists: bool,
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
/// the daemon's identity (what tests start from; job files get their defaults in
/// [`resolve_job`]).
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

/// Looks up `user` (a name or a numeric uid) and `group` (default: the user's primary group).
fn lookup_run_as(user: &str, group: Option<&str>) -> Result<RunAs, (bool, String)> {
    let u = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    }
    .map_err(|e| (true, format!("cannot look up user {user:?}: {e}")))?
    .ok_or_else(|| (true, format!("no such user {user:?}")))?;
    let gid = match group {
        None => u.gid.as_raw(),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)
                .map_err(|e| (false, format!("cannot look up group {g:?}: {e}")))?
                .ok_or_else(|| (false, format!("no such group {g:?}")))?
                .gid
                .as_raw(),
        },
    };
    Ok(RunAs {
        user: u.name,
        uid: u.uid.as_raw(),
        gid,
    })
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
    /// runs one job per destination (see [`fan_out`]), and each of those holds only its own.
    pub fan_out: Vec<Destination>,
    /// For one target of a fan-out: the job file's name.
    pub target_of: Option<String>,
    pub enabled: bool,
    pub source: PathBuf,
    pub destination: Destination,
    pub mode: Mode,
    pub delay: Duration,
    pub exclude: Vec<String>,
    pub rules: Vec<String>,
    pub rules_file: Option<PathBuf>,
    /// The rules file's content as read at load time (a change in it is a config change).
    pub rules_file_text: Option<Vec<u8>>,
    pub initial_sync: bool,
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

impl JobConfig {
    /// Compiles the job's excludes and rules. Validation already compiled them once, so this
    /// only fails if a rules file changed in between.
    pub fn filter(&self) -> Result<Filter, String> {
        let mut rules = Vec::new();
        for line in &self.rules {
            if let Some(r) = rules::Rule::parse(line).map_err(|e| e.to_string())? {
                rules.push(r);
            }
        }
        if let Some(text) = &self.rules_file_text {
            rules.extend(rules::parse_rules_file(text).map_err(|errs| {
                errs.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })?);
        }
        Filter::new(&self.exclude, rules).map_err(|e| e.to_string())
    }
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

/// Daemon-wide settings from `[daemon]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonConfig {
    /// A tracing filter directive such as `info` or `clsync=debug`.
    pub log_level: Option<String>,
    /// The control socket; `None` means the default for the configuration directory
    /// (see [`default_socket`]).
    pub socket: Option<PathBuf>,
    /// Written with the daemon's PID at start, removed at exit.
    pub pid_file: Option<PathBuf>,
    /// Rewritten (atomically) with the JSON status whenever a job's state changes.
    pub status_file: Option<PathBuf>,
    /// The status file's mode; `None`: [`DEFAULT_STATUS_FILE_MODE`].
    pub status_file_mode: Option<u32>,
    /// Where the log goes; `None`: journald when systemd connects stderr to the journal,
    /// else stderr.
    pub log_target: Option<observability::LogTarget>,
    /// The syslog facility code; `None`: `daemon`.
    pub syslog_facility: Option<u8>,
    /// The Prometheus text file (node_exporter's textfile collector), rewritten atomically.
    pub metrics_file: Option<PathBuf>,
    /// At most one rewrite of the metrics file per this interval.
    pub metrics_file_interval: Option<Duration>,
    /// Serve the metrics over HTTP on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The status file names paths of every job (and errors about them), so it is the daemon's
/// user's alone unless `[daemon] status_file_mode` says otherwise.
pub const DEFAULT_STATUS_FILE_MODE: u32 = 0o600;

impl DaemonConfig {
    /// The control socket of the daemon that runs configuration directory `dir`.
    pub fn socket_path(&self, dir: &Path) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| default_socket(dir))
    }

    /// True when the socket goes to the `/tmp/clsync-<uid>` fallback (a non-root daemon
    /// without `XDG_RUNTIME_DIR` nor `[daemon] socket`): a directory in a place everyone may
    /// write, so it must be the daemon's own private one.
    pub fn socket_dir_private(&self) -> bool {
        self.socket.is_none() && socket_base().1
    }

    pub fn status_file_mode(&self) -> u32 {
        self.status_file_mode.unwrap_or(DEFAULT_STATUS_FILE_MODE)
    }
}

/// `[daemon] status_file_mode`: an octal string such as `"0640"`, at most `"0644"` (the
/// group and others may read the status, nobody but the daemon may write it).
pub fn parse_status_file_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix('0').filter(|d| d.len() == 3).unwrap_or(s);
    if digits.len() != 3 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "invalid status_file_mode {s:?}: an octal mode like \"0600\" or \"0640\""
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if mode & !0o644 != 0 {
        return Err(format!(
            "status_file_mode {s:?} allows more than \"0644\": group and others may only read the status file, and no one may execute it (e.g. \"0640\")"
        ));
    }
    Ok(mode)
}

/// The directory of the default sockets, and whether it is the `/tmp` fallback.
fn socket_base() -> (PathBuf, bool) {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        (PathBuf::from("/run/clsync"), false)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        (PathBuf::from(x).join("clsync"), false)
    } else {
        (PathBuf::from(format!("/tmp/clsync-{uid}")), true)
    }
}

/// Where a daemon without `[daemon] socket` listens: `/run/clsync/clsync.sock` for
/// `/etc/clsync` (root), `clsync-<hash>.sock` beside it for other configuration directories,
/// so that daemons of different directories never collide and clients find theirs from
/// the directory alone. Non-root daemons use `$XDG_RUNTIME_DIR/clsync` (or
/// `/tmp/clsync-<uid>`, which must be their own, mode 0700).
pub fn default_socket(dir: &Path) -> PathBuf {
    let (base, _) = socket_base();
    let canon = dir
        .canonicalize()
        .unwrap_or_else(|_| resolve(Path::new("/"), &dir.to_string_lossy()));
    if canon == Path::new(DEFAULT_CONFIG_DIR) {
        return base.join("clsync.sock");
    }
    let h = fnv1a(canon.as_os_str().as_bytes());
    base.join(format!("clsync-{:08x}.sock", h as u32))
}

/// FNV-1a: stable across builds and platforms, unlike the std hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The result of loading a configuration directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub dir: PathBuf,
    pub daemon: DaemonConfig,
    /// Valid jobs (disabled ones included, with `enabled = false`).
    pub jobs: Vec<JobConfig>,
    /// Every error and warning, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// False when `clsync.toml` itself is invalid: then no job can be trusted.
    pub main_ok: bool,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// The defaults that apply to every job file: parsed `clsync.toml` or nothing.
struct Defaults {
    file: SourceFile,
    raw: RawJob,
}

/// Loads `dir/clsync.toml` and every `dir/jobs.d/*.toml`.
pub fn load_dir(dir: &Path) -> Loaded {
    let mut out = Loaded {
        dir: dir.to_path_buf(),
        main_ok: true,
        ..Loaded::default()
    };
    if !dir.is_dir() {
        out.diagnostics.push(diag::file_error(
            dir,
            "configuration directory does not exist or is not a directory",
        ));
        out.main_ok = false;
        return out;
    }
    let defaults = load_main(dir, &mut out);
    let jobs_dir = dir.join("jobs.d");
    let files = match job_files(&jobs_dir) {
        Ok(f) => f,
        Err(e) => {
            if jobs_dir.exists() {
                out.diagnostics
                    .push(diag::file_error(&jobs_dir, format!("cannot list: {e}")));
            }
            Vec::new()
        }
    };
    for file in files {
        for job in load_job_file(dir, &file, defaults.as_ref(), &mut out.diagnostics) {
            if out.jobs.iter().any(|j| j.name == job.name) {
                out.diagnostics.push(diag::file_error(
                    &job.file,
                    format!(
                        "job name {:?} is used twice (a fan-out target is named NAME@DESTINATION)",
                        job.name
                    ),
                ));
                continue;
            }
            out.jobs.push(job);
        }
    }
    dedup(&mut out.diagnostics);
    out
}

/// A bad default is found again by every job that inherits it: say it once. Within a file,
/// diagnostics come in line order.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert(d.to_string()));
    // Stable: files keep the order they were read in.
    let mut order: Vec<PathBuf> = Vec::new();
    for d in diags.iter() {
        if !order.contains(&d.file) {
            order.push(d.file.clone());
        }
    }
    diags.sort_by_key(|d| {
        (
            order.iter().position(|f| *f == d.file).unwrap_or(0),
            d.line,
            d.column,
        )
    });
}

/// Loads one job file against `dir`'s defaults (used by `clsync check FILE`).
pub fn load_single(dir: &Path, file: &Path) -> Loaded {
    let mut out = Loaded {
        dir: dir.to_path_buf(),
        main_ok: true,
        ..Loaded::default()
    };
    let defaults = if dir.is_dir() {
        load_main(dir, &mut out)
    } else {
        None
    };
    out.jobs.extend(load_job_file(
        dir,
        file,
        defaults.as_ref(),
        &mut out.diagnostics,
    ));
    dedup(&mut out.diagnostics);
    out
}

/// The job files of a `jobs.d` directory, sorted: regular files (or links to them) named
/// `*.toml` that are not hidden (editor lock files such as `.#web.toml` are hidden).
fn job_files(jobs_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(jobs_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") || !bytes.ends_with(b".toml") || bytes.len() == 5 {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(SourceFile::new(path, text)),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let f = SourceFile::new(path, text);
                diags.push(f.error(valid..valid, "file is not valid UTF-8 (TOML must be UTF-8)"));
                None
            }
        },
        Err(e) => {
            diags.push(diag::file_error(path, format!("cannot read: {e}")));
            None
        }
    }
}

fn load_main(dir: &Path, out: &mut Loaded) -> Option<Defaults> {
    let path = dir.join("clsync.toml");
    if !path.exists() {
        return None;
    }
    let before = out.diagnostics.len();
    let Some(file) = read_text(&path, &mut out.diagnostics) else {
        out.main_ok = false;
        return None;
    };
    let Some(raw) = raw::read_main(&file, &mut out.diagnostics) else {
        out.main_ok = false;
        return None;
    };
    if let Some(d) = &raw.daemon {
        out.daemon = daemon_config(dir, d);
        if let Some(l) = &d.log_level
            && let Err(e) = check_log_level(l.get_ref())
        {
            out.diagnostics.push(file.error(l.span(), e));
        }
        if let Some(m) = &d.status_file_mode
            && let Err(e) = parse_status_file_mode(m.get_ref())
        {
            out.diagnostics.push(file.error(m.span(), e));
        }
        observability::check(&file, d, &mut out.diagnostics);
    }
    let defaults = raw.defaults.unwrap_or_default();
    for (field, span) in [
        ("source", defaults.source.as_ref().map(|s| s.span())),
        (
            "destination",
            defaults.destination.as_ref().map(|s| s.span()),
        ),
    ] {
        if let Some(span) = span {
            out.diagnostics.push(file.error(
                span,
                format!("`{field}` cannot be a default: set it in each job file"),
            ));
        }
    }
    let defaults = Defaults {
        file,
        raw: defaults,
    };
    check_defaults(dir, &defaults, &mut out.diagnostics);
    if out.diagnostics[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        out.main_ok = false;
    }
    Some(defaults)
}

/// Checks a log filter: comma-separated levels (`error` … `trace`, `off`) or `target=level`
/// directives. A bare word that is not a level would be taken by the tracing filter as a
/// target name and silence every other log line, typos included.
pub fn check_log_level(s: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "invalid log level {d:?}: use error, warn, info, debug, trace or off, or TARGET=LEVEL (e.g. \"info,clsync::monitor=trace\")"
            ));
        }
    }
    if s.trim().is_empty() {
        return Err("empty log level".into());
    }
    Ok(())
}

fn daemon_config(dir: &Path, d: &RawDaemon) -> DaemonConfig {
    let path = |s: &Option<Spanned<String>>| s.as_ref().map(|s| resolve(dir, s.get_ref()));
    DaemonConfig {
        log_level: d.log_level.as_ref().map(|s| s.get_ref().clone()),
        socket: path(&d.socket),
        pid_file: path(&d.pid_file),
        status_file: path(&d.status_file),
        status_file_mode: d
            .status_file_mode
            .as_ref()
            .and_then(|m| parse_status_file_mode(m.get_ref()).ok()),
        log_target: observability::log_target(d),
        syslog_facility: observability::syslog_facility(d),
        metrics_file: path(&d.metrics_file).filter(|_| {
            d.metrics_file
                .as_ref()
                .is_some_and(|f| !f.get_ref().trim().is_empty())
        }),
        metrics_file_interval: observability::metrics_file_interval(d),
        metrics_listen: observability::metrics_listen(d),
    }
}

/// A value together with the file it was written in (the job file or `clsync.toml`).
struct At<'a, T> {
    v: &'a Spanned<T>,
    file: &'a SourceFile,
}

impl<'a, T> At<'a, T> {
    fn get(&self) -> &'a T {
        self.v.get_ref()
    }
    fn err(&self, msg: impl Into<String>) -> Diagnostic {
        self.file.error(self.v.span(), msg)
    }
}

/// Picks the job's value, else the default's, remembering where it came from.
fn pick<'a, T>(
    job: Option<&'a Spanned<T>>,
    jf: &'a SourceFile,
    def: Option<&'a Spanned<T>>,
    df: Option<&'a SourceFile>,
) -> Option<At<'a, T>> {
    match (job, def, df) {
        (Some(v), _, _) => Some(At { v, file: jf }),
        (None, Some(v), Some(f)) => Some(At { v, file: f }),
        _ => None,
    }
}

fn job_name(file: &Path) -> Result<String, String> {
    let stem = file
        .file_name()
        .map(|n| n.as_bytes())
        .and_then(|n| n.strip_suffix(b".toml"))
        .unwrap_or_default();
    let ok = !stem.is_empty()
        && stem
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(String::from_utf8_lossy(stem).into_owned())
    } else {
        Err(format!(
            "job file name {:?} must be NAME.toml with NAME made of letters, digits, '-', '_', '.', '@'",
            file.file_name().unwrap_or(OsStr::new(""))
        ))
    }
}

/// Resolves a configured path against the config dir, and lexically cleans `.` and `..`.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let joined = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        let base = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(dir)
        };
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The real path of `p`, even when its last components do not exist yet.
fn real_path(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// rsync's rule: a `:` before any `/` means a remote host (`host:path`, `user@host:path`).
fn is_remote(dest: &str) -> bool {
    if dest.starts_with("rsync://") {
        return true;
    }
    match (dest.find(':'), dest.find('/')) {
        (Some(c), Some(s)) => c < s && c > 0,
        (Some(c), None) => c > 0,
        _ => false,
    }
}

fn duration_value(at: &At<'_, toml::Value>, diags: &mut Vec<Diagnostic>) -> Option<Duration> {
    match at.get() {
        toml::Value::String(s) => match units::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                diags.push(at.err(e));
                None
            }
        },
        other => {
            diags.push(at.err(format!(
                "expected a duration string such as \"2s\" or \"200ms\", found {}",
                other.type_str()
            )));
            None
        }
    }
}

fn size_value(at: &At<'_, toml::Value>, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    let r = match at.get() {
        toml::Value::String(s) => units::parse_size(s),
        toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        other => Err(format!(
            "expected a size such as \"128MiB\" or a number of bytes, found {}",
            other.type_str()
        )),
    };
    r.map_err(|e| diags.push(at.err(e))).ok()
}

/// Parses and checks one job file; pushes diagnostics; returns the job when it has no error.
fn load_job_file(
    dir: &Path,
    path: &Path,
    defaults: Option<&Defaults>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<JobConfig> {
    load_job_file_one(dir, path, defaults, diags)
        .map(fan_out::expand)
        .unwrap_or_default()
}

fn load_job_file_one(
    dir: &Path,
    path: &Path,
    defaults: Option<&Defaults>,
    diags: &mut Vec<Diagnostic>,
) -> Option<JobConfig> {
    let before = diags.len();
    let file = read_text(path, diags)?;
    let name = match job_name(path) {
        Ok(n) => n,
        Err(e) => {
            diags.push(diag::file_error(path, e));
            return None;
        }
    };
    let raw = raw::read_job(&file, diags)?;
    let job = resolve_job(dir, name, path, &raw, &file, defaults, true, diags);
    if diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    job
}

/// Checks the values of `[defaults]` on their own, so that a bad default is reported even
/// when every job overrides it.
fn check_defaults(dir: &Path, d: &Defaults, diags: &mut Vec<Diagnostic>) {
    resolve_job(
        dir,
        String::new(),
        &d.file.path,
        &d.raw,
        &d.file,
        None,
        false,
        diags,
    );
}

/// Applies defaults to a job's raw values and checks them. `job_file`: this is a job file
/// (source and destination are required and checked), not `[defaults]`.
#[allow(clippy::too_many_arguments)]
fn resolve_job(
    dir: &Path,
    name: String,
    path: &Path,
    raw: &RawJob,
    file: &SourceFile,
    defaults: Option<&Defaults>,
    job_file: bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<JobConfig> {
    let before = diags.len();
    let empty = RawJob::default();
    let (d, df) = match defaults {
        Some(d) => (&d.raw, Some(&d.file)),
        None => (&empty, None),
    };
    let f = file;
    // "Missing key" errors point at the file's last line, not past its final newline.
    let eof = file.text.trim_end().len();

    let enabled = pick(raw.enabled.as_ref(), f, d.enabled.as_ref(), df).is_none_or(|a| *a.get());

    let mode_at = pick(raw.mode.as_ref(), f, d.mode.as_ref(), df);
    // The mode's name; the command modes get their `[command]` options below.
    let mode: Option<Result<Mode, CommandKind>> = match &mode_at {
        None => Some(Ok(Mode::Rsync)),
        Some(a) => match a.get().as_str() {
            "rsync" => Some(Ok(Mode::Rsync)),
            "mirror" => Some(Ok(Mode::Mirror)),
            other => match CommandKind::ALL.iter().find(|k| k.as_str() == other) {
                Some(k) => Some(Err(*k)),
                None => {
                    diags.push(a.err(format!(
                        "unknown mode {other:?}: expected \"rsync\", \"mirror\", \"direct\", \"shell\", \"simple\" or \"rsync-shell\""
                    )));
                    None
                }
            },
        },
    };
    let command_kind = match mode {
        Some(Err(k)) => Some(k),
        _ => None,
    };

    let source = match raw.source.as_ref() {
        None if !job_file => None,
        None => {
            diags.push(f.error(eof..eof, "missing required key `source`"));
            None
        }
        Some(s) if s.get_ref().is_empty() => {
            diags.push(f.error(s.span(), "`source` is empty"));
            None
        }
        Some(s) => {
            let p = resolve(dir, s.get_ref());
            match fs::metadata(&p) {
                Ok(m) if !m.is_dir() => {
                    diags.push(f.error(
                        s.span(),
                        format!("source {} is not a directory", p.display()),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    diags.push(f.warning(
                        s.span(),
                        format!(
                            "source {} does not exist (yet): the job will wait for it",
                            p.display()
                        ),
                    ));
                }
                Err(e) => {
                    diags.push(f.warning(s.span(), format!("source {}: {e}", p.display())));
                }
            }
            Some((p, s))
        }
    };

    // One destination, or several (fan-out: one job per target, each with its own queue and
    // retry state).
    let check_destination = |s: &Spanned<String>, diags: &mut Vec<Diagnostic>| {
        if s.get_ref().is_empty() {
            diags.push(f.error(s.span(), "destination is empty"));
            return None;
        }
        if is_remote(s.get_ref()) {
            if matches!(mode, Some(Ok(Mode::Mirror))) {
                diags.push(f.error(
                    s.span(),
                    "mode \"mirror\" needs a local destination; use mode \"rsync\" for remote ones",
                ));
            }
            return Some(Destination::Remote(s.get_ref().clone()));
        }
        let p = resolve(dir, s.get_ref());
        if let Some((src, _)) = &source {
            let (rs, rd) = (real_path(src), real_path(&p));
            if rd.starts_with(&rs) {
                diags.push(f.error(
                    s.span(),
                    format!(
                        "destination {} is inside the source {}: it would copy itself forever",
                        p.display(),
                        src.display()
                    ),
                ));
            } else if rs.starts_with(&rd) {
                diags.push(f.error(
                    s.span(),
                    format!(
                        "destination {} contains the source {}: syncing with deletion would destroy the source",
                        p.display(),
                        src.display()
                    ),
                ));
            }
        }
        if p == Path::new("/") {
            diags.push(f.error(s.span(), "destination cannot be `/`"));
        }
        Some(Destination::Local(p))
    };
    let destinations: Option<Vec<Destination>> =
        match (raw.destination.as_ref(), raw.destinations.as_ref()) {
            (None, None) if !job_file => None,
            (None, None) => {
                diags.push(f.error(
                    eof..eof,
                    "missing required key `destination` (or `destinations`)",
                ));
                None
            }
            (Some(_), Some(m)) => {
                diags.push(f.error(
                    m.span(),
                    "set either `destination` or `destinations`, not both",
                ));
                None
            }
            (Some(s), None) => check_destination(s, diags).map(|d| vec![d]),
            (None, Some(m)) if m.get_ref().is_empty() => {
                diags.push(f.error(m.span(), "`destinations` is empty"));
                None
            }
            (None, Some(m)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for s in m.get_ref() {
                    match check_destination(s, diags) {
                        Some(d) if out.contains(&d) => {
                            diags.push(f.error(s.span(), "the same destination twice"));
                            ok = false;
                        }
                        Some(d) => out.push(d),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
        };

    let delay = match pick(raw.delay.as_ref(), f, d.delay.as_ref(), df) {
        None => Some(DEFAULT_DELAY),
        Some(a) => duration_value(&a, diags),
    };

    let exclude: Vec<String> = pick(raw.exclude.as_ref(), f, d.exclude.as_ref(), df)
        .map(|a| {
            a.get()
                .iter()
                .map(|s| s.get_ref().clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();

    // Compile the rules now so that a bad regex is reported at its line and column.
    let mut compiled = Vec::new();
    let mut rules = Vec::new();
    if let Some(a) = pick(raw.rules.as_ref(), f, d.rules.as_ref(), df) {
        for line in a.get() {
            match rules::Rule::parse(line.get_ref()) {
                Ok(Some(r)) => compiled.push(r),
                Ok(None) => {}
                Err(e) => {
                    // +1 skips the opening quote of the TOML string.
                    let at = line.span().start + 1 + e.column.saturating_sub(1);
                    diags.push(
                        a.file
                            .error(at..at, format!("rule {:?}: {}", line.get_ref(), e.kind)),
                    );
                }
            }
            rules.push(line.get_ref().clone());
        }
    }
    let mut rules_file = None;
    let mut rules_file_text = None;
    if let Some(a) = pick(raw.rules_file.as_ref(), f, d.rules_file.as_ref(), df) {
        let p = resolve(dir, a.get());
        match fs::read(&p) {
            Ok(bytes) => {
                match rules::parse_rules_file(&bytes) {
                    Ok(r) => compiled.extend(r),
                    Err(errs) => {
                        for e in errs {
                            diags.push(Diagnostic {
                                severity: Severity::Error,
                                file: p.clone(),
                                line: e.line.unwrap_or(1).max(1),
                                column: e.column.max(1),
                                message: format!("rule {:?}: {}", e.text, e.kind),
                            });
                        }
                    }
                }
                rules_file_text = Some(bytes);
            }
            Err(e) => diags.push(a.err(format!("cannot read rules file {}: {e}", p.display()))),
        }
        rules_file = Some(p);
    }
    if let Err(e) = Filter::new(&exclude, compiled) {
        let a = pick(raw.exclude.as_ref(), f, d.exclude.as_ref(), df);
        match a
            .as_ref()
            .and_then(|a| a.get().get(e.index).map(|s| (s, a.file)))
        {
            Some((s, file)) => {
                diags.push(file.error(s.span(), format!("exclude {:?}: {}", s.get_ref(), e.source)))
            }
            None => diags.push(f.error(0..0, e.to_string())),
        }
    }

    let initial_sync =
        pick(raw.initial_sync.as_ref(), f, d.initial_sync.as_ref(), df).is_none_or(|a| *a.get());

    let workers = match pick(raw.workers.as_ref(), f, d.workers.as_ref(), df) {
        None => Some(2),
        Some(a) => match *a.get() {
            n @ 1..=64 => Some(n as usize),
            n => {
                diags.push(a.err(format!("workers must be between 1 and 64, not {n}")));
                None
            }
        },
    };

    let timeout = match pick(raw.timeout.as_ref(), f, d.timeout.as_ref(), df) {
        None => Some(None),
        Some(a) => duration_value(&a, diags).map(|t| (!t.is_zero()).then_some(t)),
    };
    let ignore_exit_codes = match pick(
        raw.ignore_exit_codes.as_ref(),
        f,
        d.ignore_exit_codes.as_ref(),
        df,
    ) {
        // rsync's 24 means nothing to another program.
        None if command_kind.is_some() => Some(vec![]),
        None => Some(vec![24]),
        Some(a) => {
            let mut codes = Vec::new();
            let mut ok = true;
            for c in a.get() {
                match i32::try_from(*c.get_ref()) {
                    Ok(v @ 1..=255) => codes.push(v),
                    _ => {
                        ok = false;
                        diags.push(a.file.error(
                            c.span(),
                            format!("exit codes are 1 to 255, not {}", c.get_ref()),
                        ));
                    }
                }
            }
            ok.then_some(codes)
        }
    };

    let (jb, db) = (raw.big_file.as_ref(), d.big_file.as_ref());
    let threshold = pick(
        jb.and_then(|b| b.threshold.as_ref()),
        f,
        db.and_then(|b| b.threshold.as_ref()),
        df,
    );
    let big_delay = pick(
        jb.and_then(|b| b.delay.as_ref()),
        f,
        db.and_then(|b| b.delay.as_ref()),
        df,
    );
    let big_file = match (threshold, big_delay) {
        (None, None) => Some(None),
        (Some(t), dl) => {
            let t = size_value(&t, diags);
            let dl = match dl {
                Some(a) => duration_value(&a, diags),
                None => Some(Duration::from_secs(30 * 60)),
            };
            match (t, dl) {
                (Some(0), _) => Some(None),
                (Some(threshold), Some(delay)) => Some(Some(BigFile { threshold, delay })),
                _ => None,
            }
        }
        (None, Some(a)) => {
            diags.push(a.err("big_file.delay needs big_file.threshold"));
            None
        }
    };

    let (jr, dr) = (raw.rsync.as_ref(), d.rsync.as_ref());
    let rsync_path = pick(
        jr.and_then(|r| r.path.as_ref()),
        f,
        dr.and_then(|r| r.path.as_ref()),
        df,
    )
    .map_or_else(
        || PathBuf::from("rsync"),
        |a| {
            let p = a.get();
            if p.contains('/') {
                resolve(dir, p)
            } else {
                PathBuf::from(p)
            }
        },
    );
    let rsync_args = pick(
        jr.and_then(|r| r.args.as_ref()),
        f,
        dr.and_then(|r| r.args.as_ref()),
        df,
    )
    .map(|a| a.get().iter().map(|s| s.get_ref().clone()).collect())
    .unwrap_or_default();

    let verify_interval = match pick(
        raw.verify_interval.as_ref(),
        f,
        d.verify_interval.as_ref(),
        df,
    ) {
        None => Some(None),
        Some(a) => duration_value(&a, diags).map(|t| (!t.is_zero()).then_some(t)),
    };

    let retry = {
        let dflt = RetryOptions::default();
        let retries = match pick(raw.retries.as_ref(), f, d.retries.as_ref(), df) {
            None => Some(dflt.retries),
            Some(a) => match u32::try_from(*a.get()) {
                Ok(n) if n <= 1_000_000 => Some(n),
                _ => {
                    diags.push(a.err(format!(
                        "retries must be 0 (never give up) to 1000000, not {}",
                        a.get()
                    )));
                    None
                }
            },
        };
        let delay = match pick(raw.retry_delay.as_ref(), f, d.retry_delay.as_ref(), df) {
            None => Some(dflt.delay),
            Some(a) => duration_value(&a, diags).map(|t| t.max(Duration::from_millis(10))),
        };
        let max_delay = match pick(
            raw.retry_max_delay.as_ref(),
            f,
            d.retry_max_delay.as_ref(),
            df,
        ) {
            None => Some(dflt.max_delay),
            Some(a) => duration_value(&a, diags),
        };
        match (retries, delay, max_delay) {
            (Some(retries), Some(delay), Some(max_delay)) => Some(RetryOptions {
                retries,
                delay,
                max_delay: max_delay.max(delay),
            }),
            _ => None,
        }
    };

    let user_at = pick(raw.user.as_ref(), f, d.user.as_ref(), df);
    let group_at = pick(raw.group.as_ref(), f, d.group.as_ref(), df);
    let run_as = match (&user_at, &group_at) {
        (None, None) => Some(None),
        (None, Some(g)) => {
            diags.push(g.err("`group` needs `user`"));
            None
        }
        (Some(u), g) => match lookup_run_as(u.get(), g.as_ref().map(|g| g.get().as_str())) {
            Ok(r) => Some(Some(r)),
            Err((on_user, msg)) => {
                match (on_user, g) {
                    (false, Some(g)) => diags.push(g.err(msg)),
                    _ => diags.push(u.err(msg)),
                }
                None
            }
        },
    };
    if let (Some(u), Some(Ok(Mode::Mirror))) = (&user_at, &mode) {
        diags.push(u.err(
            "`user` needs a handler process (mode rsync or a command mode); mirror copies inside the daemon",
        ));
    }

    let (js, ds) = (raw.ssh.as_ref(), d.ssh.as_ref());
    let ssh_command = pick(
        js.and_then(|s| s.command.as_ref()),
        f,
        ds.and_then(|s| s.command.as_ref()),
        df,
    )
    .map(|a| {
        let p = a.get();
        if p.contains('/') {
            resolve(dir, p)
        } else {
            PathBuf::from(p)
        }
    });
    let ssh_port = match pick(
        js.and_then(|s| s.port.as_ref()),
        f,
        ds.and_then(|s| s.port.as_ref()),
        df,
    ) {
        None => Some(None),
        Some(a) => match u16::try_from(*a.get()) {
            Ok(p) if p > 0 => Some(Some(p)),
            _ => {
                diags.push(a.err(format!("ssh port must be 1 to 65535, not {}", a.get())));
                None
            }
        },
    };
    let ssh_identity = pick(
        js.and_then(|s| s.identity_file.as_ref()),
        f,
        ds.and_then(|s| s.identity_file.as_ref()),
        df,
    )
    .map(|a| resolve(dir, a.get()));
    let ssh_options: Vec<String> = pick(
        js.and_then(|s| s.options.as_ref()),
        f,
        ds.and_then(|s| s.options.as_ref()),
        df,
    )
    .map(|a| a.get().iter().map(|s| s.get_ref().clone()).collect())
    .unwrap_or_default();

    let sandbox = resolve_sandbox(dir, raw, f, d, df, command_kind.is_some(), diags);

    let command = resolve_command(
        dir,
        raw,
        f,
        defaults,
        command_kind,
        mode_at.as_ref(),
        job_file,
        diags,
    );
    let mode = match mode {
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => command.map(Mode::Command),
        None => None,
    };

    if diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(JobConfig {
        name,
        file: path.to_path_buf(),
        enabled,
        source: source?.0,
        destination: destinations.as_ref()?[0].clone(),
        fan_out: destinations?,
        target_of: None,
        mode: mode?,
        delay: delay?,
        exclude,
        rules,
        rules_file,
        rules_file_text,
        initial_sync,
        big_file: big_file?,
        workers: workers?,
        verify_interval: verify_interval?,
        retry: retry?,
        loop_guard: pick(raw.loop_guard.as_ref(), f, d.loop_guard.as_ref(), df)
            .is_some_and(|a| *a.get()),
        rsync: HandlerOptions {
            path: rsync_path,
            args: rsync_args,
            timeout: timeout?,
            ignore_exit_codes: ignore_exit_codes?,
            ssh: SshOptions {
                command: ssh_command,
                port: ssh_port?,
                identity_file: ssh_identity,
                options: ssh_options,
            },
            run_as: run_as?,
        },
        sandbox: sandbox?,
    })
}

/// `sandbox` (`true`, `false` or `"auto"`: on unless `command` mode), `sandbox_read` and
/// `sandbox_write` (paths, relative ones against the configuration directory).
fn resolve_sandbox(
    dir: &Path,
    raw: &RawJob,
    f: &SourceFile,
    d: &RawJob,
    df: Option<&SourceFile>,
    command: bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<SandboxOptions> {
    let enabled = match pick(raw.sandbox.as_ref(), f, d.sandbox.as_ref(), df) {
        None => Some(!command),
        Some(a) => match a.get() {
            toml::Value::Boolean(b) => Some(*b),
            toml::Value::String(s) if s == "auto" => Some(!command),
            other => {
                diags.push(a.err(format!(
                    "sandbox must be true, false or \"auto\", not {other}"
                )));
                None
            }
        },
    };
    let mut paths = |job: Option<&Spanned<Vec<Spanned<String>>>>,
                     def: Option<&Spanned<Vec<Spanned<String>>>>| {
        let Some(a) = pick(job, f, def, df) else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for p in a.get() {
            if p.get_ref().is_empty() {
                diags.push(a.file.error(p.span(), "empty path"));
            } else {
                out.push(resolve(dir, p.get_ref()));
            }
        }
        (out.len() == a.get().len()).then_some(out)
    };
    let read = paths(raw.sandbox_read.as_ref(), d.sandbox_read.as_ref());
    let write = paths(raw.sandbox_write.as_ref(), d.sandbox_write.as_ref());
    Some(SandboxOptions {
        enabled: enabled?,
        read: read?,
        write: write?,
    })
}

/// Resolves `[command]` (job file over `[defaults.command]`, key by key) for a command mode
/// `kind`, and rejects `[command]` in the job file of an rsync or mirror job. In `[defaults]`
/// (`job_file` false) only the values themselves are checked.
#[allow(clippy::too_many_arguments)]
fn resolve_command(
    dir: &Path,
    raw: &RawJob,
    f: &SourceFile,
    defaults: Option<&Defaults>,
    kind: Option<CommandKind>,
    mode_at: Option<&At<'_, String>>,
    job_file: bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<CommandOptions> {
    let (jc, df) = (raw.command.as_ref(), defaults.map(|d| &d.file));
    let dc = defaults.and_then(|d| d.raw.command.as_ref());
    let path_at = pick(
        jc.and_then(|c| c.path.as_ref()),
        f,
        dc.and_then(|c| c.path.as_ref()),
        df,
    );
    let args_at = pick(
        jc.and_then(|c| c.args.as_ref()),
        f,
        dc.and_then(|c| c.args.as_ref()),
        df,
    );
    let lists_at = pick(
        jc.and_then(|c| c.lists_dir.as_ref()),
        f,
        dc.and_then(|c| c.lists_dir.as_ref()),
        df,
    );
    let keep_at = pick(
        jc.and_then(|c| c.keep_lists.as_ref()),
        f,
        dc.and_then(|c| c.keep_lists.as_ref()),
        df,
    );
    let mut ok = true;
    // Whole-argument placeholders must be known, so that a typo is not passed on literally.
    if let Some(a) = &args_at {
        for arg in a.get() {
            match Placeholder::parse(arg.get_ref()) {
                None => {}
                Some(Err(())) => {
                    ok = false;
                    diags.push(a.file.error(
                        arg.span(),
                        format!(
                            "unknown placeholder {:?}: expected one of {}",
                            arg.get_ref(),
                            Placeholder::names().join(", ")
                        ),
                    ));
                }
                Some(Ok(p))
                    if p.simple_only() && kind.is_some_and(|k| k != CommandKind::Simple) =>
                {
                    ok = false;
                    diags.push(a.file.error(
                        arg.span(),
                        format!(
                            "placeholder {:?} is only valid in mode \"simple\"",
                            arg.get_ref()
                        ),
                    ));
                }
                Some(Ok(_)) => {}
            }
        }
    }
    if let Some(a) = &path_at
        && a.get().is_empty()
    {
        ok = false;
        diags.push(a.err("`command.path` is empty"));
    }
    if let Some(a) = &lists_at
        && a.get().is_empty()
    {
        ok = false;
        diags.push(a.err("`command.lists_dir` is empty"));
    }
    if !job_file {
        return None;
    }
    let Some(kind) = kind else {
        // `[command]` of the job file itself (an inherited one is for the command jobs).
        let mode = mode_at.map_or("rsync", |m| m.get().as_str());
        // (An unknown mode is reported already.)
        if let Some(c) = jc
            && (mode == "rsync" || mode == "mirror")
        {
            diags.push(f.error(
                c.span.clone(),
                format!(
                    "`[command]` is for the command modes (direct, shell, simple, rsync-shell), not for mode {mode:?}"
                ),
            ));
        }
        return None;
    };
    let Some(path) = path_at else {
        let span = match mode_at {
            Some(m) if std::ptr::eq(m.file, f) => m.v.span(),
            _ => f.text.len()..f.text.len(),
        };
        diags.push(f.error(
            span,
            format!(
                "mode {:?} needs `command.path`: the handler program to run",
                kind.as_str()
            ),
        ));
        return None;
    };
    if !ok {
        return None;
    }
    let p = path.get();
    let path = if p.contains('/') {
        resolve(dir, p)
    } else {
        PathBuf::from(p)
    };
    Some(CommandOptions {
        kind,
        path,
        args: match args_at {
            Some(a) => a.get().iter().map(|s| s.get_ref().clone()).collect(),
            None => kind.default_args().iter().map(|s| s.to_string()).collect(),
        },
        lists_dir: lists_at.map(|a| resolve(dir, a.get())),
        keep_lists: keep_at.is_some_and(|a| *a.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn defaults_are_inherited_and_overridden() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\ndelay = \"5s\"\nexclude = [\"*.tmp\"]\n[defaults.rsync]\nargs = [\"-z\"]\n",
        );
        write(
            t.path(),
            "jobs.d/a.toml",
            "source = \"src\"\ndestination = \"dst\"\n",
        );
        write(
            t.path(),
            "jobs.d/b.toml",
            "source = \"src\"\ndestination = \"dst2\"\ndelay = \"0s\"\n[rsync]\npath = \"/usr/bin/rsync\"\n",
        );
        write(t.path(), "jobs.d/README", "not a job");
        write(t.path(), "jobs.d/c.toml.dpkg-old", "garbage = [");
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        assert_eq!(l.jobs.len(), 2);
        let (a, b) = (&l.jobs[0], &l.jobs[1]);
        assert_eq!(a.name, "a");
        assert_eq!(a.delay, Duration::from_secs(5));
        assert_eq!(a.exclude, vec!["*.tmp".to_string()]);
        assert_eq!(a.rsync.args, vec!["-z".to_string()]);
        assert_eq!(a.source, t.path().join("src"));
        assert_eq!(b.delay, Duration::ZERO);
        assert_eq!(b.rsync.args, vec!["-z".to_string()]);
        assert_eq!(b.rsync.path, PathBuf::from("/usr/bin/rsync"));
    }

    /// `sandbox`: "auto" is on for rsync and mirror, off for the command modes; `true` and
    /// `false` force it; paths resolve against the configuration directory; `[defaults]`
    /// gives them to every job; a bad value is an error at its line and column.
    #[test]
    fn sandbox_keys() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\nsandbox_write = [\"logs\"]\n",
        );
        let job = |name: &str, rest: &str| {
            write(
                t.path(),
                &format!("jobs.d/{name}.toml"),
                &format!("source = \"src\"\ndestination = \"dst-{name}\"\n{rest}"),
            )
        };
        job("r", "sandbox_read = [\"/etc/extra\", \"rel\"]\n");
        job("m", "mode = \"mirror\"\nsandbox = false\n");
        job("c", "mode = \"direct\"\n[command]\npath = \"true\"\n");
        job(
            "cs",
            "mode = \"direct\"\nsandbox = true\n[command]\npath = \"true\"\n",
        );
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let get = |n: &str| l.jobs.iter().find(|j| j.name == n).unwrap().sandbox.clone();
        let r = get("r");
        assert!(r.enabled);
        assert_eq!(r.read, [PathBuf::from("/etc/extra"), t.path().join("rel")]);
        assert_eq!(r.write, [t.path().join("logs")]);
        assert!(!get("m").enabled);
        assert!(!get("c").enabled);
        assert!(get("cs").enabled);
        job("bad", "sandbox = \"yes\"\n");
        let l = load_dir(t.path());
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let bad = t.path().join("jobs.d/bad.toml");
        assert!(
            msgs.iter().any(|m| m
                == &format!(
                    "{}:3:11: sandbox must be true, false or \"auto\", not \"yes\"",
                    bad.display()
                )),
            "{msgs:#?}"
        );
    }

    #[test]
    fn errors_have_file_line_column() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "jobs.d/a.toml",
            "source = \"src\"\ndestination = \"dst\"\ndealy = \"5s\"\n",
        );
        write(
            t.path(),
            "jobs.d/b.toml",
            "source = \"src\"\ndestination = \"src/inner\"\ndelay = \"5 parsecs\"\nmode = \"rsyncc\"\n",
        );
        let l = load_dir(t.path());
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let a = t.path().join("jobs.d/a.toml");
        let b = t.path().join("jobs.d/b.toml");
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:3:1: ", a.display())) && m.contains("dealy")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:2:15: ", b.display()))
                    && m.contains("inside the source")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:3:9: ", b.display())) && m.contains("parsecs")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:4:8: ", b.display()))
                    && m.contains("unknown mode")),
            "{msgs:#?}"
        );
        assert!(l.jobs.is_empty());
    }

    #[test]
    fn command_modes_and_their_defaults() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\nmode = \"shell\"\n[defaults.command]\npath = \"my-handler\"\nkeep_lists = true\n",
        );
        let job = |name: &str, extra: &str| {
            write(
                t.path(),
                &format!("jobs.d/{name}.toml"),
                &format!("source = \"src\"\ndestination = \"dst-{name}\"\n{extra}"),
            )
        };
        job("a", "");
        job(
            "b",
            "mode = \"direct\"\nignore_exit_codes = [24]\n[command]\npath = \"bin/h\"\nargs = [\"-v\", \"%INCLUDE-LIST%\"]\nlists_dir = \"lists\"\n",
        );
        job("c", "mode = \"rsync\"\n");
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let Mode::Command(a) = &l.jobs[0].mode else {
            panic!("{:?}", l.jobs[0].mode)
        };
        assert_eq!(a.kind, CommandKind::Shell);
        assert_eq!(a.path, PathBuf::from("my-handler"));
        assert_eq!(a.args, ["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"]);
        assert!(a.keep_lists && a.lists_dir.is_none());
        assert_eq!(l.jobs[0].mode.as_str(), "shell");
        assert!(l.jobs[0].rsync.ignore_exit_codes.is_empty());
        let Mode::Command(b) = &l.jobs[1].mode else {
            panic!()
        };
        assert_eq!(b.kind, CommandKind::Direct);
        assert_eq!(b.path, t.path().join("bin/h"));
        assert_eq!(b.args, ["-v", "%INCLUDE-LIST%"]);
        assert_eq!(b.lists_dir, Some(t.path().join("lists")));
        assert_eq!(l.jobs[1].rsync.ignore_exit_codes, [24]);
        // An inherited [defaults.command] does not bother an rsync job.
        assert_eq!(l.jobs[2].mode, Mode::Rsync);
        assert_eq!(l.jobs[2].rsync.ignore_exit_codes, [24]);
    }

    #[test]
    fn command_errors() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        let head = "source = \"src\"\ndestination = \"dst\"\n";
        let cases = [
            // (job text after head, line, column, message part)
            (
                "mode = \"mirror\"\n[command]\npath = \"x\"\n",
                4,
                2,
                "not for mode \"mirror\"",
            ),
            (
                "[command]\nargs = [\"x\"]\n",
                3,
                2,
                "not for mode \"rsync\"",
            ),
            ("mode = \"simple\"\n", 3, 8, "needs `command.path`"),
            (
                "mode = \"direct\"\n[command]\npath = \"h\"\nargs = [\"%INCLUDE_LIST%\", \"%job%\"]\n",
                6,
                9,
                "unknown placeholder \"%INCLUDE_LIST%\"",
            ),
            (
                "mode = \"shell\"\n[command]\npath = \"h\"\nargs = [\"%job%\", \"%EVENT%\"]\n",
                6,
                18,
                "only valid in mode \"simple\"",
            ),
            ("mode = \"rsync-shel\"\n", 3, 8, "unknown mode"),
        ];
        for (i, (text, line, col, msg)) in cases.iter().enumerate() {
            let dir = t.path().join(format!("c{i}"));
            write(&dir, "jobs.d/j.toml", &format!("{head}{text}"));
            fs::create_dir_all(dir.join("src")).unwrap();
            let l = load_dir(&dir);
            let errs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
            let want = format!("{}:{line}:{col}: ", dir.join("jobs.d/j.toml").display());
            assert!(
                errs.iter().any(|e| e.starts_with(&want) && e.contains(msg)),
                "case {i}: want {want}{msg}\n{errs:#?}"
            );
            assert!(l.jobs.is_empty());
        }
        // A missing path with the mode from [defaults]: at the end of the job file.
        let dir = t.path().join("d");
        fs::create_dir_all(dir.join("src")).unwrap();
        write(&dir, "clsync.toml", "[defaults]\nmode = \"direct\"\n");
        write(&dir, "jobs.d/j.toml", head);
        let l = load_dir(&dir);
        let errs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let want = format!("{}:3:1: ", dir.join("jobs.d/j.toml").display());
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&want) && e.contains("needs `command.path`")),
            "{errs:#?}"
        );
    }

    #[test]
    fn several_destinations_fan_out_into_one_job_each() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "jobs.d/web.toml",
            "source = \"src\"\ndestinations = [\"a\", \"host:/b\"]\n",
        );
        write(
            t.path(),
            "jobs.d/bad.toml",
            "source = \"src\"\ndestination = \"x\"\ndestinations = [\"y\"]\n",
        );
        write(
            t.path(),
            "jobs.d/dup.toml",
            "source = \"src\"\ndestinations = [\"z\", \"z\"]\n",
        );
        let l = load_dir(t.path());
        let names: Vec<&str> = l.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(
            names[0].starts_with("web@") && names[0].ends_with("_a"),
            "{names:?}"
        );
        assert_eq!(names[1], "web@host__b");
        assert_eq!(
            l.jobs[0].destination,
            Destination::Local(t.path().join("a"))
        );
        assert_eq!(l.jobs[1].destination, Destination::Remote("host:/b".into()));
        assert_eq!(l.jobs[1].target_of.as_deref(), Some("web"));
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("bad.toml:3:16") && m.contains("not both")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("dup.toml:2:22") && m.contains("twice")),
            "{msgs:#?}"
        );
    }

    #[test]
    fn log_levels_are_checked() {
        for ok in ["info", "debug", "info,clsync::monitor=trace", "WARN", "off"] {
            assert!(check_log_level(ok).is_ok(), "{ok}");
        }
        for bad in ["infoo", "warning", "", "info,loud", "clsync=loud"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_file_modes_are_checked() {
        for (ok, want) in [
            ("0600", 0o600),
            ("600", 0o600),
            ("0640", 0o640),
            ("0644", 0o644),
            ("0400", 0o400),
        ] {
            assert_eq!(parse_status_file_mode(ok), Ok(want), "{ok}");
        }
        for bad in [
            "0664",
            "0646",
            "0660",
            "0700",
            "0755",
            "1600",
            "4644",
            "0o640",
            "640x",
            "",
            "0",
            "00600",
            "rw-r-----",
        ] {
            assert!(parse_status_file_mode(bad).is_err(), "{bad}");
        }
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("clsync.toml"),
            "[daemon]\nstatus_file = \"s.json\"\nstatus_file_mode = \"0666\"\n",
        )
        .unwrap();
        let loaded = load_dir(t.path());
        let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("clsync.toml:3:20") && m.contains("0644")),
            "{msgs:#?}"
        );
        fs::write(
            t.path().join("clsync.toml"),
            "[daemon]\nstatus_file_mode = \"0640\"\n",
        )
        .unwrap();
        let loaded = load_dir(t.path());
        assert!(!loaded.has_errors());
        assert_eq!(loaded.daemon.status_file_mode(), 0o640);
        assert_eq!(DaemonConfig::default().status_file_mode(), 0o600);
    }

    #[test]
    fn remote_destinations_are_recognised() {
        assert!(is_remote("host:/srv"));
        assert!(is_remote("user@host:backup"));
        assert!(is_remote("rsync://host/module"));
        assert!(!is_remote("/srv/a:b"));
        assert!(!is_remote("dst"));
        assert!(!is_remote(":x"));
    }
}

#[cfg(test)]
mod schema_tests {
    //! The checked-in JSON Schema must describe exactly the keys the parser accepts.

    use super::*;

    fn example(schema: &serde_json::Value) -> String {
        let mut top = String::new();
        let mut tables = String::new();
        let props = schema["properties"].as_object().unwrap();
        for (key, spec) in props {
            if key == "destinations" {
                // Exclusive with `destination`: checked by its own test.
                continue;
            }
            if let Some(sub) = spec.get("properties").and_then(|p| p.as_object()) {
                tables.push_str(&format!("[{key}]\n"));
                for (k, s) in sub {
                    tables.push_str(&format!("{k} = {}\n", value_for(k, s)));
                }
            } else {
                top.push_str(&format!("{key} = {}\n", value_for(key, spec)));
            }
        }
        top + &tables
    }

    fn value_for(key: &str, spec: &serde_json::Value) -> &'static str {
        match key {
            "source" => "\"src\"",
            "destination" => "\"dst\"",
            "mode" => "\"shell\"",
            "lists_dir" => "\"lists\"",
            "delay" | "timeout" | "verify_interval" | "retry_delay" | "retry_max_delay" => "\"2s\"",
            "threshold" => "\"1MiB\"",
            "rules" => "[\"-d^x$\"]",
            "rules_file" => "\"r.rules\"",
            "path" => "\"rsync\"",
            "user" | "group" => "\"root\"",
            "sandbox" => "\"auto\"",
            _ => match spec["type"].as_str() {
                Some("string") => "\"x\"",
                Some("boolean") => "true",
                Some("integer") => "1",
                Some("array") => "[]",
                _ => panic!("no example value for {key}"),
            },
        }
    }

    #[test]
    fn schema_matches_the_parser() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/job.schema.json"),
        )
        .unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        fs::write(t.path().join("r.rules"), "+*\n").unwrap();
        fs::create_dir(t.path().join("jobs.d")).unwrap();
        let job = example(&schema);
        fs::write(t.path().join("jobs.d/all.toml"), &job).unwrap();
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{job}\n{:#?}", l.diagnostics);
        // A key the schema does not list is rejected, and the parser's own list of keys
        // (from its "expected one of" message) is the schema's.
        fs::write(t.path().join("jobs.d/all.toml"), "surprise = 1\n").unwrap();
        let l = load_dir(t.path());
        let msg = &l.errors().next().expect("unknown key rejected").message;
        let mut parser_keys: Vec<&str> = msg
            .split("expected one of ")
            .nth(1)
            .expect("serde lists the fields")
            .split(", ")
            .map(|k| k.trim_matches('`'))
            .collect();
        parser_keys.sort();
        let mut schema_keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        schema_keys.sort();
        assert_eq!(parser_keys, schema_keys);
    }
}
