//! The `clsync` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use clsync::config::{self, Loaded, Severity};
use clsync::control::{self, Request};
use clsync::job::{Job, JobOptions};
use clsync::supervisor::{self, Supervisor};

mod manpages;

/// Exit status for an invalid configuration (`check`, or `run` with nothing usable).
const EXIT_CONFIG: u8 = 1;
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
    /// Show every job's state, counters, last success and last error, and the last reload.
    ///
    /// Exit status: 0 when every enabled job is healthy, 4 when a job is failing or
    /// retrying, 3 when the daemon cannot be reached.
    Status {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print the status as JSON (stable field names, for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to reload its configuration (like SIGHUP), and report the
    /// result: which jobs started, restarted or stopped, or every configuration error.
    Reload {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Tell which exclude pattern or rule decides whether PATH is synced by JOB.
    Explain {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
        /// The job's name (its file stem).
        job: String,
        /// A path inside the job's source: absolute, or relative to the source.
        path: String,
    },
    /// Print the daemon's metrics in Prometheus' text format: the same text that
    /// `[daemon] metrics_file` and `metrics_listen` serve.
    Metrics {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Run one job without the daemon: a full sync, then keep syncing changes until none
    /// arrives for the job's delay, then exit (copy a tree that is still being written).
    Sync {
        /// Configuration directory (holds clsync.toml and jobs.d/).
        #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
        config_dir: PathBuf,
        /// Log filter, as for `run`.
        #[arg(long, env = "CLSYNC_LOG")]
        log_level: Option<String>,
        /// Exit once the source is quiet (the only mode for now; required for clarity).
        #[arg(long, required = true)]
        once: bool,
        /// The job's name (its file stem).
        job: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// The package installs them; by hand e.g. `clsync completions bash >
    /// /etc/bash_completion.d/clsync`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages clsync(8), clsync-COMMAND(8) and clsync.toml(5) into DIR
    /// (used to build the package).
    #[command(hide = true)]
    Man {
        /// Output directory (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// How a client command finds the daemon.
#[derive(clap::Args)]
struct DaemonArgs {
    /// Configuration directory of the daemon to talk to; its clsync.toml names the socket.
    #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// The control socket (overrides the one from the configuration directory).
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl DaemonArgs {
    fn socket(&self) -> PathBuf {
        match &self.socket {
            Some(s) => s.clone(),
            None => config::load_dir(&self.config_dir)
                .daemon
                .socket_path(&self.config_dir),
        }
    }

    fn call(&self, req: &Request) -> Result<serde_json::Value, ExitCode> {
        control::request(&self.socket(), req).map_err(|e| {
            eprintln!("clsync: {e}");
            ExitCode::from(EXIT_RUNTIME)
        })
    }
}

/// Logging to `[daemon] log_target` (see `clsync::logging`).
fn init_logging(level: &str, daemon: &config::DaemonConfig) {
    clsync::logging::init(level, daemon);
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

/// The configuration directory as an absolute path, so that reloads and `status` do not
/// depend on the working directory.
fn absolute(dir: PathBuf) -> PathBuf {
    dir.canonicalize().unwrap_or(dir)
}

fn run(config_dir: PathBuf, log_level: Option<String>) -> ExitCode {
    let config_dir = absolute(config_dir);
    let loaded = config::load_dir(&config_dir);
    let level = log_level
        .or_else(|| loaded.daemon.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(&level, &loaded.daemon);
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

fn status(daemon: DaemonArgs, as_json: bool) -> ExitCode {
    let v = match daemon.call(&Request::Status) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    let unhealthy = jobs.iter().any(|j| {
        j["enabled"] == true && matches!(j["state"].as_str(), Some("failed" | "retrying"))
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", format_status(&v));
    }
    if unhealthy {
        ExitCode::from(EXIT_UNHEALTHY)
    } else {
        ExitCode::SUCCESS
    }
}

/// The human-readable `clsync status`.
fn format_status(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "clsync {} (pid {}), config {}, up since {}{}",
        s(&v["version"]),
        s(&v["pid"]),
        s(&v["config_dir"]),
        s(&v["started"]),
        if v["ready"] == true {
            ""
        } else {
            ", initial syncs running"
        }
    );
    let rows: Vec<[String; 9]> = v["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            [
                s(&j["name"]),
                if j["enabled"] == true {
                    s(&j["state"])
                } else {
                    "disabled".into()
                },
                s(&j["sandbox"]),
                s(&j["watched_dirs"]),
                s(&j["queued"]),
                s(&j["syncs"]),
                s(&j["failures"]),
                s(&j["last_success"]),
                match &j["last_error"] {
                    serde_json::Value::Null => "-".into(),
                    e if e["permanent"] == true => format!(
                        "{} (retrying cannot fix this) {}",
                        s(&e["time"]),
                        s(&e["message"])
                    ),
                    e => format!("{} {}", s(&e["time"]), s(&e["message"])),
                },
            ]
        })
        .collect();
    let head = [
        "JOB",
        "STATE",
        "SANDBOX",
        "DIRS",
        "QUEUED",
        "SYNCS",
        "FAILURES",
        "LAST SUCCESS",
        "LAST ERROR",
    ];
    let mut width = head.map(|h| h.len());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()).take(8) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 9]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 8 {
                let _ = write!(l, "{:<w$}  ", c, w = width[i]);
            } else {
                l.push_str(c);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line(r.each_ref().map(|c| c.as_str())));
    }
    if rows.is_empty() {
        out.push_str("(no jobs)\n");
    }
    match &v["last_reload"] {
        serde_json::Value::Null => out.push_str("last reload: none\n"),
        r if r["ok"] == true => {
            let _ = writeln!(
                out,
                "last reload: {} ok (added {}, changed {}, removed {})",
                s(&r["time"]),
                r["added"],
                r["changed"],
                r["removed"]
            );
        }
        r => {
            let _ = writeln!(
                out,
                "last reload: {} FAILED, nothing changed:",
                s(&r["time"])
            );
            for e in r["errors"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "  {}", s(e));
            }
        }
    }
    out
}

fn reload(daemon: DaemonArgs) -> ExitCode {
    let v = match daemon.call(&Request::Reload) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let r = &v["reload"];
    if v["ok"] == true {
        println!(
            "reloaded: added {}, changed {}, removed {}",
            r["added"], r["changed"], r["removed"]
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("reload refused, nothing changed:");
        for e in r["errors"].as_array().into_iter().flatten() {
            eprintln!("{}", e.as_str().unwrap_or_default());
        }
        if let Some(e) = v["error"].as_str() {
            eprintln!("{e}");
        }
        ExitCode::from(EXIT_CONFIG)
    }
}

fn explain(daemon: DaemonArgs, as_json: bool, job: String, path: String) -> ExitCode {
    let v = match daemon.call(&Request::Explain { job, path }) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if v["ok"] != true {
        eprintln!("clsync: {}", v["error"].as_str().unwrap_or("failed"));
        return ExitCode::from(EXIT_RUNTIME);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{} ({}{}): {}",
            v["path"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
            if v["exists"] == true {
                ""
            } else {
                ", does not exist"
            },
            v["explanation"].as_str().unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

fn metrics(daemon: DaemonArgs) -> ExitCode {
    let v = match daemon.call(&Request::Metrics) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match v["metrics"].as_str() {
        Some(text) if v["ok"] == true => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "clsync: {}",
                v["error"].as_str().unwrap_or("the daemon sent no metrics")
            );
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn sync_once(config_dir: PathBuf, log_level: Option<String>, name: String) -> ExitCode {
    let config_dir = absolute(config_dir);
    let loaded = config::load_dir(&config_dir);
    init_logging(
        &log_level
            .or_else(|| loaded.daemon.log_level.clone())
            .unwrap_or_else(|| "info".into()),
        &loaded.daemon,
    );
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config_dir,
            log_level,
        } => run(config_dir, log_level),
        Command::Check { config_dir, files } => check(config_dir, files),
        Command::Status { daemon, json } => status(daemon, json),
        Command::Reload { daemon } => reload(daemon),
        Command::Explain {
            daemon,
            json,
            job,
            path,
        } => explain(daemon, json, job, path),
        Command::Metrics { daemon } => metrics(daemon),
        Command::Sync {
            config_dir,
            log_level,
            once: _,
            job,
        } => sync_once(config_dir, log_level, job),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "clsync", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => match manpages::write_all(Cli::command(), &dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("clsync: {}: {e}", dir.display());
                ExitCode::from(EXIT_RUNTIME)
            }
        },
    }
}
