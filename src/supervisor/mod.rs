//! The daemon: owns the jobs, turns signals into graceful stops and reloads ([`reload`]),
//! and answers the control socket: its [`status`] report, [`explain`], the metrics.
//!
//! A reload is a diff by job name (`diff::JobsDiff`): jobs whose effective configuration is
//! unchanged are not touched (their watches, queues and workers keep running), changed jobs
//! are restarted, removed ones stopped, new ones started. A configuration with any error
//! changes nothing.
//!
//! The supervisor's loop sleeps on three channels: signals, control-socket calls and job
//! state changes (which update systemd and the status file). It has no timer of its own
//! except systemd's watchdog, when systemd asks for one.

mod diff;
pub mod explain;
mod pidfile;
pub mod reload;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, never, select, tick, unbounded};
use serde::Serialize;
use serde_json::Value;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{debug, error, info, warn};

use crate::atomic_file::write_atomic;
use crate::config::{self, JobConfig, Loaded};
use crate::control::{self, Call, Refusal, Request};
use crate::job::{Job, JobOptions, State, Status};
use crate::metrics::{Metrics, MetricsAnswer};
use pidfile::PidFile;
use status::{JobReport, ReloadReport, StatusReport};

/// Logs every diagnostic of a load.
pub fn log_diagnostics(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        match d.severity {
            config::Severity::Error => error!("{d}"),
            config::Severity::Warning => warn!("{d}"),
        }
    }
}

/// A job file that did not load: shown in status as failed, with its first error.
#[derive(Debug, Clone)]
struct Invalid {
    name: String,
    error: String,
}

fn invalid_jobs(loaded: &Loaded) -> Vec<Invalid> {
    let mut out: Vec<Invalid> = Vec::new();
    for d in loaded.errors() {
        let Some(name) = d
            .file
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "jobs.d"))
            .and(d.file.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
        else {
            continue;
        };
        if !out.iter().any(|i| i.name == name) {
            out.push(Invalid {
                name: name.to_string(),
                error: d.to_string(),
            });
        }
    }
    out
}

pub struct Supervisor {
    dir: PathBuf,
    daemon: config::DaemonConfig,
    jobs: BTreeMap<String, Job>,
    /// Jobs with `enabled = false`, for status.
    disabled: Vec<JobConfig>,
    invalid: Vec<Invalid>,
    started: SystemTime,
    last_reload: Option<ReloadReport>,
    changed_tx: crossbeam_channel::Sender<()>,
    changed_rx: Receiver<()>,
    ready_sent: bool,
    signals: Receiver<i32>,
    calls: Receiver<Call>,
    /// Dropped (socket removed) when the daemon stops.
    server: Option<control::Server>,
    /// Reload counts and the metrics file (see [`crate::metrics`]).
    metrics: Metrics,
    _pid_file: Option<PidFile>,
}

impl Supervisor {
    /// Starts every valid, enabled job of `loaded`. Invalid job files are reported and
    /// skipped: one bad file does not keep the good jobs from running.
    ///
    /// Signals are caught and the control socket bound *before* any job starts, so that a
    /// second daemon for the same configuration refuses to start without syncing anything.
    pub fn start(loaded: &Loaded) -> anyhow::Result<Supervisor> {
        let signals = signal_channel()?;
        let (calls_tx, calls) = unbounded::<Call>();
        let server = control_socket(loaded, calls_tx.clone())?;
        let pid_file = loaded
            .daemon
            .pid_file
            .as_ref()
            .and_then(|p| match PidFile::create(p) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!("cannot write pid file {}: {e}", p.display());
                    None
                }
            });
        let (changed_tx, changed_rx) = crossbeam_channel::bounded(1);
        let metrics = Metrics::start(&loaded.daemon, calls_tx);
        let mut sup = Supervisor {
            metrics,
            signals,
            calls,
            server,
            _pid_file: pid_file,
            dir: loaded.dir.clone(),
            daemon: loaded.daemon.clone(),
            jobs: BTreeMap::new(),
            disabled: loaded.jobs.iter().filter(|j| !j.enabled).cloned().collect(),
            invalid: invalid_jobs(loaded),
            started: SystemTime::now(),
            last_reload: None,
            changed_tx,
            changed_rx,
            ready_sent: false,
        };
        for cfg in loaded.jobs.iter().filter(|j| j.enabled) {
            sup.start_job(cfg.clone(), false);
        }
        info!(
            "started {} job(s){}",
            sup.jobs.len(),
            if sup.disabled.is_empty() {
                String::new()
            } else {
                format!(", {} disabled", sup.disabled.len())
            }
        );
        if sup.jobs.is_empty() {
            warn!(
                "no job to run: add job files to {}/jobs.d/ and reload (SIGHUP)",
                sup.dir.display()
            );
        }
        Ok(sup)
    }

    fn start_job(&mut self, cfg: JobConfig, restart: bool) {
        let name = cfg.name.clone();
        let opts = JobOptions {
            force_initial_sync: restart,
            once: false,
            notify: Some(self.changed_tx.clone()),
            progress: false,
        };
        match Job::start(cfg, opts) {
            Ok(job) => {
                self.jobs.insert(name, job);
            }
            Err(e) => error!("job {name}: cannot start: {e:#}"),
        }
    }

    fn stop_jobs(&mut self, names: &[String]) {
        let jobs: Vec<Job> = names.iter().filter_map(|n| self.jobs.remove(n)).collect();
        for j in &jobs {
            j.stop();
        }
        for j in jobs {
            j.join();
        }
    }

    /// The daemon's status (the `clsync status --json` format).
    fn status(&self) -> StatusReport {
        let mut jobs: Vec<JobReport> = Vec::new();
        for job in self.jobs.values() {
            jobs.push(JobReport::of(job.config(), true, &job.status()));
        }
        for cfg in &self.disabled {
            let s = Status {
                state: State::Stopped,
                ..Status::default()
            };
            jobs.push(JobReport::of(cfg, false, &s));
        }
        for inv in &self.invalid {
            jobs.push(JobReport::invalid(&inv.name, &inv.error, self.started));
        }
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        StatusReport {
            ok: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config_dir: self.dir.display().to_string(),
            started: self.started,
            ready: self.all_settled(),
            last_reload: self.last_reload.clone(),
            jobs,
        }
    }

    fn explain(&self, job: &str, path: &str) -> Value {
        let cfg = self
            .jobs
            .get(job)
            .map(|j| j.config())
            .or_else(|| self.disabled.iter().find(|c| c.name == job));
        match cfg
            .ok_or_else(|| format!("no job named {job:?}"))
            .and_then(|cfg| explain::explain(cfg, path))
        {
            Ok(report) => to_json(&report),
            Err(error) => to_json(&Refusal::new(error)),
        }
    }

    fn handle(&mut self, call: Call) {
        let answer = match &call.request {
            Request::Status => to_json(&self.status()),
            Request::Reload => {
                info!("reload requested on the control socket");
                to_json(&self.reload())
            }
            Request::Explain { job, path } => self.explain(job, path),
            Request::Metrics => to_json(&MetricsAnswer {
                ok: true,
                metrics: self.metrics_text(),
            }),
        };
        let _ = call.reply.send(answer);
    }

    /// True when no enabled job is still starting or in its initial sync.
    fn all_settled(&self) -> bool {
        self.jobs
            .values()
            .all(|j| !matches!(j.status().state, State::Starting | State::InitialSync))
    }

    fn state_changed(&mut self) {
        if !self.ready_sent && self.all_settled() {
            self.ready_sent = true;
            info!("ready: every job finished its initial sync (or is retrying)");
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        }
        let summary = self.summary();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&summary)]);
        if let Some(path) = &self.daemon.status_file {
            let text = serde_json::to_vec_pretty(&to_json(&self.status())).unwrap_or_default();
            if let Err(e) = write_atomic(path, &text, self.daemon.status_file_mode()) {
                warn!("cannot write status file {}: {e}", path.display());
            }
        }
        if self.metrics.file_due() {
            self.write_metrics_file();
        }
    }

    /// Every metric, in Prometheus' text format.
    fn metrics_text(&self) -> String {
        let statuses: Vec<(&str, Status)> = self
            .jobs
            .iter()
            .map(|(n, j)| (n.as_str(), j.status()))
            .chain(self.invalid.iter().map(|i| {
                let s = Status {
                    state: State::Failed,
                    ..Status::default()
                };
                (i.name.as_str(), s)
            }))
            .collect();
        let jobs: Vec<crate::metrics::JobFacts<'_>> = statuses
            .iter()
            .map(|(name, status)| crate::metrics::JobFacts { name, status })
            .collect();
        crate::metrics::encode(&self.metrics.facts(self.started), &jobs)
    }

    fn write_metrics_file(&mut self) {
        let text = self.metrics_text();
        self.metrics.write_file(&text);
    }

    fn summary(&self) -> String {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for j in self.jobs.values() {
            *counts.entry(j.status().state.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{} job(s): {}", self.jobs.len(), parts.join(", "))
    }

    /// Stops every job gracefully.
    fn shutdown(mut self) {
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        self.stop_jobs(&names);
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads; the control socket answers meanwhile.
    pub fn run(mut self) -> anyhow::Result<()> {
        let signals = self.signals.clone();
        let calls_rx = self.calls.clone();
        let watchdog = match sd_notify::watchdog_enabled() {
            Some(d) => tick(d / 2),
            None => never(),
        };
        self.state_changed();
        let stop_signal = loop {
            let metrics_timer = self.metrics.timer();
            select! {
                recv(signals) -> sig => match sig {
                    Ok(SIGHUP) => {
                        info!("SIGHUP: reloading {}", self.dir.display());
                        self.reload();
                    }
                    Ok(sig) => break sig,
                    Err(_) => break SIGTERM,
                },
                recv(calls_rx) -> call => {
                    if let Ok(call) = call {
                        self.handle(call);
                    }
                }
                recv(self.changed_rx) -> _ => self.state_changed(),
                recv(metrics_timer) -> _ => {
                    if self.metrics.timer_fired() {
                        self.write_metrics_file();
                    }
                }
                recv(watchdog) -> _ => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        };
        info!("signal {stop_signal}: finishing syncs in flight and stopping");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let started = Instant::now();
        self.server = None;
        let status_file = self.daemon.status_file.clone();
        let metrics = std::mem::take(&mut self.metrics);
        self.shutdown();
        // A status file saying "watching" would outlive the daemon: remove it, like the pid
        // file and the socket.
        if let Some(p) = status_file {
            let _ = std::fs::remove_file(p);
        }
        metrics.remove_file();
        debug!("jobs stopped in {:?}", started.elapsed());
        info!("stopped");
        Ok(())
    }
}

/// `value` as JSON (keys in order: the socket's answers and the status file list them
/// sorted).
fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Binds the control socket: refused when another daemon listens there or when another user
/// could replace it; without it (another error) the daemon runs, reloaded by SIGHUP only.
fn control_socket(
    loaded: &Loaded,
    calls: crossbeam_channel::Sender<Call>,
) -> anyhow::Result<Option<control::Server>> {
    let socket = loaded.daemon.socket_path(&loaded.dir);
    let private = loaded.daemon.socket_dir_private();
    match control::Server::start(&socket, private, calls) {
        Ok(s) => {
            info!("control socket {}", s.path().display());
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(e)),
        Err(e) if control::is_unsafe(&e) => Err(anyhow::anyhow!(
            "refusing the control socket {}: {e}",
            socket.display()
        )),
        Err(e) => {
            warn!(
                "no control socket ({}: {e}): `clsync status` and `clsync reload` will not reach this daemon; SIGHUP still reloads",
                socket.display()
            );
            Ok(None)
        }
    }
}

fn signal_channel() -> anyhow::Result<Receiver<i32>> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("clsync-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if tx.send(s).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}
