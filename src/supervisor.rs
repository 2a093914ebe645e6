//! The daemon: owns the jobs, turns signals into graceful stops and reloads.
//!
//! A reload is a diff by job name: jobs whose effective configuration is unchanged are not
//! touched (their watches, queues and workers keep running), changed jobs are restarted,
//! removed ones stopped, new ones started. A configuration with any error changes nothing.
//!
//! The supervisor's loop sleeps on three channels: signals, control-socket calls and job
//! state changes (which update systemd and the status file). It has no timer of its own
//! except systemd's watchdog, when systemd asks for one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, never, select, tick, unbounded};
use serde_json::{Value, json};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{debug, error, info, warn};

use crate::config::{self, JobConfig, Loaded};
use crate::control::{self, Call, Request};
use crate::job::{Job, JobOptions, State, Status};
use crate::metrics::Metrics;
use crate::model::Kind;

/// What a reload does, by job name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsDiff {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub change: Vec<String>,
}

impl JobsDiff {
    /// Compares running jobs with a new configuration. Disabled jobs count as absent.
    pub fn new<'a>(
        old: impl IntoIterator<Item = &'a JobConfig>,
        new: impl IntoIterator<Item = &'a JobConfig>,
    ) -> JobsDiff {
        let old: BTreeMap<&str, &JobConfig> = old
            .into_iter()
            .filter(|j| j.enabled)
            .map(|j| (j.name.as_str(), j))
            .collect();
        let new: BTreeMap<&str, &JobConfig> = new
            .into_iter()
            .filter(|j| j.enabled)
            .map(|j| (j.name.as_str(), j))
            .collect();
        let mut d = JobsDiff::default();
        for (name, cfg) in &new {
            match old.get(name) {
                None => d.add.push(name.to_string()),
                Some(o) if *o != *cfg => d.change.push(name.to_string()),
                Some(_) => {}
            }
        }
        for name in old.keys() {
            if !new.contains_key(name) {
                d.remove.push(name.to_string());
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.change.is_empty()
    }
}

/// Logs every diagnostic of a load.
pub fn log_diagnostics(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        match d.severity {
            config::Severity::Error => error!("{d}"),
            config::Severity::Warning => warn!("{d}"),
        }
    }
}

/// RFC 3339 time, to the second, UTC.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The outcome of the last reload, shown by `clsync status`.
#[derive(Debug, Clone)]
struct ReloadResult {
    time: SystemTime,
    ok: bool,
    errors: Vec<String>,
    diff: JobsDiff,
}

impl ReloadResult {
    fn to_json(&self) -> Value {
        json!({
            "time": timestamp(self.time),
            "ok": self.ok,
            "errors": self.errors,
            "added": self.diff.add,
            "changed": self.diff.change,
            "removed": self.diff.remove,
        })
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
    last_reload: Option<ReloadResult>,
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
        let socket = loaded.daemon.socket_path(&loaded.dir);
        let private = loaded.daemon.socket_dir_private();
        let server = match control::Server::start(&socket, private, calls_tx.clone()) {
            Ok(s) => {
                info!("control socket {}", s.path().display());
                Some(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(anyhow::anyhow!(e));
            }
            Err(e) if control::is_unsafe(&e) => {
                return Err(anyhow::anyhow!(
                    "refusing the control socket {}: {e}",
                    socket.display()
                ));
            }
            Err(e) => {
                warn!(
                    "no control socket ({}: {e}): `clsync status` and `clsync reload` will not reach this daemon; SIGHUP still reloads",
                    socket.display()
                );
                None
            }
        };
        let pid_file = match &loaded.daemon.pid_file {
            Some(p) => match PidFile::create(p) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!("cannot write pid file {}: {e}", p.display());
                    None
                }
            },
            None => None,
        };
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

    /// Applies a new configuration as a diff; with any error in it, changes nothing.
    pub fn reload(&mut self) -> Value {
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        ]);
        let loaded = config::load_dir(&self.dir);
        log_diagnostics(&loaded);
        let result = if loaded.has_errors() {
            let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
            error!(
                "reload refused: {} error(s) in the configuration; every job keeps running as before",
                errors.len()
            );
            ReloadResult {
                time: SystemTime::now(),
                ok: false,
                errors,
                diff: JobsDiff::default(),
            }
        } else {
            let diff = JobsDiff::new(self.jobs.values().map(|j| j.config()), loaded.jobs.iter());
            if diff.is_empty() {
                info!("reload: no job changed");
            } else {
                info!(
                    "reload: starting {:?}, restarting {:?}, stopping {:?}",
                    diff.add, diff.change, diff.remove
                );
            }
            let mut stopping = diff.remove.clone();
            stopping.extend(diff.change.iter().cloned());
            self.stop_jobs(&stopping);
            for cfg in &loaded.jobs {
                if diff.add.contains(&cfg.name) {
                    self.start_job(cfg.clone(), false);
                } else if diff.change.contains(&cfg.name) {
                    self.start_job(cfg.clone(), true);
                }
            }
            if loaded.daemon != self.daemon {
                warn!("[daemon] settings changed: they take effect at the next restart");
            }
            self.disabled = loaded.jobs.iter().filter(|j| !j.enabled).cloned().collect();
            self.invalid = Vec::new();
            ReloadResult {
                time: SystemTime::now(),
                ok: true,
                errors: Vec::new(),
                diff,
            }
        };
        let answer = json!({"ok": result.ok, "reload": result.to_json()});
        self.metrics.reloaded(result.ok);
        self.last_reload = Some(result);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        self.state_changed();
        answer
    }

    /// The daemon's status as JSON (the `clsync status --json` format).
    pub fn status(&self) -> Value {
        let mut jobs: Vec<Value> = Vec::new();
        for job in self.jobs.values() {
            jobs.push(job_json(job.config(), true, &job.status()));
        }
        for cfg in &self.disabled {
            let s = Status {
                state: State::Stopped,
                ..Status::default()
            };
            jobs.push(job_json(cfg, false, &s));
        }
        for inv in &self.invalid {
            jobs.push(json!({
                "name": inv.name,
                "enabled": true,
                "state": State::Failed.as_str(),
                "mode": null, "source": null, "destination": null,
                "watched_dirs": 0, "unwatched_dirs": 0, "queued": 0, "syncs": 0, "failures": 0,
                "consecutive_failures": 0, "initial_syncs": 0,
                "last_success": null,
                "last_error": {"time": timestamp(self.started), "message": format!("invalid configuration: {}", inv.error)},
            }));
        }
        jobs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        json!({
            "ok": true,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config_dir": self.dir.display().to_string(),
            "started": timestamp(self.started),
            "ready": self.all_settled(),
            "last_reload": self.last_reload.as_ref().map(|r| r.to_json()),
            "jobs": jobs,
        })
    }

    fn explain(&self, job: &str, path: &str) -> Value {
        let Some(cfg) = self
            .jobs
            .get(job)
            .map(|j| j.config())
            .or_else(|| self.disabled.iter().find(|c| c.name == job))
        else {
            return json!({"ok": false, "error": format!("no job named {job:?}")});
        };
        let filter = cfg.filter();
        let p = Path::new(path);
        let rel = if p.is_absolute() {
            match p.strip_prefix(&cfg.source) {
                Ok(r) => r.to_path_buf(),
                Err(_) => {
                    return json!({"ok": false, "error": format!(
                        "{path} is not inside the source of job {job} ({})", cfg.source.display())});
                }
            }
        } else {
            p.components().collect()
        };
        let meta = crate::fs::lstat_beneath(&cfg.source, &rel);
        let kind = match &meta {
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(m) if m.is_file() => Kind::File,
            Ok(_) => Kind::Other,
            Err(_) if path.ends_with('/') => Kind::Dir,
            Err(_) => Kind::File,
        };
        let e = filter.explain(&rel, kind);
        json!({
            "ok": true,
            "job": job,
            "path": rel.display().to_string(),
            "kind": match kind { Kind::Dir => "directory", Kind::File => "file", Kind::Other => "other" },
            "exists": meta.is_ok(),
            "allowed": e.allowed,
            "explanation": e.to_string(),
        })
    }

    fn handle(&mut self, call: Call) {
        let answer = match &call.request {
            Request::Status => self.status(),
            Request::Reload => {
                info!("reload requested on the control socket");
                self.reload()
            }
            Request::Explain { job, path } => self.explain(job, path),
            Request::Metrics => json!({"ok": true, "metrics": self.metrics_text()}),
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
            let text = serde_json::to_vec_pretty(&self.status()).unwrap_or_default();
            if let Err(e) = write_atomic(path, &text, self.daemon.status_file_mode()) {
                warn!("cannot write status file {}: {e}", path.display());
            }
        }
        if self.metrics.file_due() {
            self.write_metrics_file();
        }
    }

    /// Every metric, in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
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
    pub fn shutdown(mut self) {
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

fn job_json(cfg: &JobConfig, enabled: bool, s: &Status) -> Value {
    json!({
        "name": cfg.name,
        "enabled": enabled,
        "state": s.state.as_str(),
        "mode": cfg.mode.as_str(),
        "source": cfg.source.display().to_string(),
        "destination": cfg.destination.to_string(),
        "target_of": cfg.target_of,
        "watched_dirs": s.watched_dirs,
        "unwatched_dirs": s.unwatched_dirs,
        "queued": s.queued,
        "syncs": s.syncs,
        "failures": s.failures,
        "consecutive_failures": s.consecutive_failures,
        "initial_syncs": s.initial_syncs,
        "last_success": s.last_success.map(timestamp),
        "last_verify": s.last_verify.map(|(t, n)| json!({"time": timestamp(t), "repaired": n})),
        "last_error": s.last_error.as_ref().map(|(t, m)| json!({
            "time": timestamp(*t),
            "message": m,
            "permanent": s.last_error_permanent,
        })),
        "rsync": s.rsync,
        "sandbox": crate::sandbox::state(cfg.sandbox.enabled).as_str(),
    })
}

/// Writes `path` through a temporary file and a rename, so readers never see half of it.
///
/// Nothing is done through a path that could be a symlink: the temporary file is created in
/// `path`'s directory with `O_CREAT|O_EXCL` (a name planted there fails the create instead
/// of being followed), its mode is set on its descriptor, and the rename replaces whatever
/// is at `path` (a symlink included) instead of writing through it.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".clsync.")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The pid file: written at start, removed when dropped.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic(path, format!("{}\n", std::process::id()).as_bytes(), 0o644)?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, HandlerOptions, Mode};
    use std::time::Duration;

    fn job(name: &str, delay_ms: u64, enabled: bool) -> JobConfig {
        JobConfig {
            name: name.into(),
            file: PathBuf::from(format!("/etc/clsync/jobs.d/{name}.toml")),
            fan_out: vec![Destination::Local(PathBuf::from("/dst"))],
            target_of: None,
            enabled,
            source: PathBuf::from("/src"),
            destination: Destination::Local(PathBuf::from("/dst")),
            mode: Mode::Rsync,
            delay: Duration::from_millis(delay_ms),
            filter: Default::default(),
            initial_sync: true,
            big_file: None,
            workers: 2,
            verify_interval: None,
            loop_guard: false,
            retry: Default::default(),
            rsync: HandlerOptions {
                ignore_exit_codes: vec![24],
                ..Default::default()
            },
            sandbox: Default::default(),
        }
    }

    #[test]
    fn diff_by_name_and_value() {
        let cases: &[(&[JobConfig], &[JobConfig], JobsDiff)] = &[
            (&[], &[], JobsDiff::default()),
            (
                &[job("a", 1, true)],
                &[job("a", 1, true)],
                JobsDiff::default(),
            ),
            (
                &[job("a", 1, true), job("b", 1, true)],
                &[job("a", 2, true), job("c", 1, true)],
                JobsDiff {
                    add: vec!["c".into()],
                    remove: vec!["b".into()],
                    change: vec!["a".into()],
                },
            ),
            (
                &[job("a", 1, true)],
                &[job("a", 1, false)],
                JobsDiff {
                    remove: vec!["a".into()],
                    ..JobsDiff::default()
                },
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(&JobsDiff::new(old.iter(), new.iter()), want);
        }
    }
}
