//! Prometheus metrics: one encoder ([`encode`]) of the daemon's and its jobs' facts in the
//! text exposition format (version 0.0.4), served three ways: `clsync metrics` over the
//! control socket, `[daemon] metrics_file` (node_exporter's textfile collector; see
//! [`File`]) and `[daemon] metrics_listen` (a small HTTP responder, [`http`]).
//!
//! Nothing here runs on its own: the file is rewritten when a job reports a change (at most
//! once per `metrics_file_interval`), and the HTTP thread sleeps in `accept`. An idle daemon
//! wakes for neither.

pub mod http;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, after, never};

use crate::config::DaemonConfig;
use crate::config::observability::DEFAULT_METRICS_FILE_INTERVAL;
use crate::job::counters::RunResult;
use crate::job::{State, Status};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics file's mode: node_exporter runs as its own user.
pub const FILE_MODE: u32 = 0o644;

/// The control socket's answer to a metrics request: every metric in the text format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsAnswer {
    pub ok: bool,
    pub metrics: String,
}

/// Daemon-wide facts.
#[derive(Debug, Clone, Default)]
pub struct DaemonFacts {
    pub started: Option<SystemTime>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

/// One job's facts: its name and status (counters included).
pub struct JobFacts<'a> {
    pub name: &'a str,
    pub status: &'a Status,
}

const STATES: [State; 7] = [
    State::Starting,
    State::InitialSync,
    State::Watching,
    State::Syncing,
    State::Retrying,
    State::Failed,
    State::Stopped,
];

/// Escapes a label value (`\`, `"`, newline).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Formats a sample value: integers without a fraction, the infinities as Prometheus spells
/// them.
fn value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

struct Enc(String);

impl Enc {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", value(v));
    }

    /// A family with one sample per job.
    fn per_job(&mut self, jobs: &[JobFacts<'_>], f: &PerJob) {
        self.family(f.name, f.kind, f.help);
        for j in jobs {
            self.sample(f.name, &[("job", j.name)], (f.value)(j.status));
        }
    }
}

/// The daemon's resident set size, where the system tells it cheaply (Linux).
pub fn resident_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()?;
        Some(pages * u64::try_from(page).ok()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A family with one sample per job, read from its status.
struct PerJob {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&Status) -> f64,
}

/// The per-job families listed before the handler runs, in output order.
const SYNC_FAMILIES: &[PerJob] = &[
    PerJob {
        name: "clsync_syncs_total",
        kind: "counter",
        help: "Successful syncs: handler runs (one rsync, mirror or command run per batch) that succeeded.",
        value: |s| s.syncs as f64,
    },
    PerJob {
        name: "clsync_sync_failures_total",
        kind: "counter",
        help: "Failed syncs (each is retried with backoff; nothing is dropped).",
        value: |s| s.failures as f64,
    },
    PerJob {
        name: "clsync_initial_syncs_total",
        kind: "counter",
        help: "Full syncs done at start, at a restart by a reload, and when the source came back.",
        value: |s| s.initial_syncs as f64,
    },
    PerJob {
        name: "clsync_synced_paths_total",
        kind: "counter",
        help: "Paths in the batches synced successfully (a full sync counts as one).",
        value: |s| s.counters.synced_paths as f64,
    },
    PerJob {
        name: "clsync_bytes_copied_total",
        kind: "counter",
        help: "Bytes of file content written by the mirror engine (mode mirror, and rsync mode's fallback for paths too deep for rsync); what rsync transfers itself is not counted.",
        value: |s| s.counters.copied_bytes as f64,
    },
];

/// The per-job families listed after the run durations, in output order.
const JOB_FAMILIES: &[PerJob] = &[
    PerJob {
        name: "clsync_queued_paths",
        kind: "gauge",
        help: "Changed paths waiting for a sync (the queue depth).",
        value: |s| s.queued as f64,
    },
    PerJob {
        name: "clsync_watched_directories",
        kind: "gauge",
        help: "Directories of the source being watched.",
        value: |s| s.watched_dirs as f64,
    },
    PerJob {
        name: "clsync_unwatched_directories",
        kind: "gauge",
        help: "Directories the watch limit (fs.inotify.max_user_watches) left unwatched; rescanned every 30 s.",
        value: |s| s.unwatched_dirs as f64,
    },
    PerJob {
        name: "clsync_monitor_overflows_total",
        kind: "counter",
        help: "Times the monitor lost events (an inotify queue overflow) and the whole source was rescanned.",
        value: |s| s.counters.overflows as f64,
    },
    PerJob {
        name: "clsync_rescans_total",
        kind: "counter",
        help: "Whole-source rescans (after an overflow or a monitor error), each followed by a full sync.",
        value: |s| s.counters.rescans as f64,
    },
    PerJob {
        name: "clsync_retries_total",
        kind: "counter",
        help: "Handler runs started to retry after a failed one.",
        value: |s| s.counters.retries as f64,
    },
    PerJob {
        name: "clsync_consecutive_failures",
        kind: "gauge",
        help: "Failed runs since the last success (0 when healthy).",
        value: |s| f64::from(s.consecutive_failures),
    },
    PerJob {
        name: "clsync_last_success_timestamp_seconds",
        kind: "gauge",
        help: "When the last successful sync ended, in seconds since the Unix epoch (0: none yet).",
        value: |s| s.last_success.map_or(0.0, secs),
    },
    PerJob {
        name: "clsync_verifications_total",
        kind: "counter",
        help: "Periodic verifications (verify_interval full syncs) done.",
        value: |s| s.counters.verifications as f64,
    },
    PerJob {
        name: "clsync_verify_repaired_paths_total",
        kind: "counter",
        help: "Paths that verifications found different and repaired (rsync mode tells; others count 0).",
        value: |s| s.counters.verify_repaired as f64,
    },
];

/// Every metric, in the text format. Jobs are listed in the order given.
pub fn encode(daemon: &DaemonFacts, jobs: &[JobFacts<'_>]) -> String {
    let mut e = Enc(String::with_capacity(4096 + jobs.len() * 3072));
    encode_daemon(&mut e, daemon);
    encode_states(&mut e, jobs);
    for f in SYNC_FAMILIES {
        e.per_job(jobs, f);
    }
    encode_runs(&mut e, jobs);
    for f in JOB_FAMILIES {
        e.per_job(jobs, f);
    }
    e.0
}

/// The daemon's own families: version, start time, memory, reloads.
fn encode_daemon(e: &mut Enc, daemon: &DaemonFacts) {
    e.family(
        "clsync_build_info",
        "gauge",
        "The running clsync's version (always 1).",
    );
    e.sample(
        "clsync_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    if let Some(t) = daemon.started {
        e.family(
            "process_start_time_seconds",
            "gauge",
            "When the daemon started, in seconds since the Unix epoch.",
        );
        e.sample("process_start_time_seconds", &[], secs(t));
    }
    if let Some(rss) = resident_bytes() {
        e.family(
            "process_resident_memory_bytes",
            "gauge",
            "The daemon's resident memory (RSS) in bytes.",
        );
        e.sample("process_resident_memory_bytes", &[], rss as f64);
    }
    e.family(
        "clsync_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP, clsync reload) by result: ok, or failed (nothing changed).",
    );
    e.sample(
        "clsync_reloads_total",
        &[("result", "ok")],
        daemon.reloads_ok as f64,
    );
    e.sample(
        "clsync_reloads_total",
        &[("result", "failed")],
        daemon.reloads_failed as f64,
    );
}

/// `clsync_job_state`: 1 for each job's state, 0 for the others.
fn encode_states(e: &mut Enc, jobs: &[JobFacts<'_>]) {
    e.family(
        "clsync_job_state",
        "gauge",
        "1 for the state each job is in, 0 for the others.",
    );
    for j in jobs {
        for s in STATES {
            e.sample(
                "clsync_job_state",
                &[("job", j.name), ("state", s.as_str())],
                if j.status.state == s { 1.0 } else { 0.0 },
            );
        }
    }
}

/// Handler runs by result, and their durations as a histogram.
fn encode_runs(e: &mut Enc, jobs: &[JobFacts<'_>]) {
    e.family(
        "clsync_handler_runs_total",
        "counter",
        "Handler runs by result: ok, warning (succeeded with a warning such as an ignored rsync exit code), failed, timeout.",
    );
    for j in jobs {
        for r in RunResult::ALL {
            e.sample(
                "clsync_handler_runs_total",
                &[("job", j.name), ("result", r.as_str())],
                j.status.counters.runs(r) as f64,
            );
        }
    }
    let name = "clsync_sync_duration_seconds";
    e.family(name, "histogram", "Duration of handler runs, every result.");
    for j in jobs {
        let h = &j.status.counters.duration;
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            e.sample(&bucket, &[("job", j.name), ("le", &value(le))], n as f64);
        }
        e.sample(&bucket, &[("job", j.name), ("le", "+Inf")], h.count as f64);
        e.sample(&format!("{name}_sum"), &[("job", j.name)], h.sum);
        e.sample(&format!("{name}_count"), &[("job", j.name)], h.count as f64);
    }
}

/// `[daemon] metrics_file`: rewritten (temporary file and rename) when something changed,
/// at most once per interval. Between rewrites a single timer waits for the next allowed
/// one, armed only while a change is pending.
pub struct File {
    path: PathBuf,
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
    timer: Receiver<Instant>,
}

impl File {
    pub fn new(daemon: &DaemonConfig) -> Option<File> {
        Some(File {
            path: daemon.metrics_file.clone()?,
            interval: daemon
                .metrics_file_interval
                .unwrap_or(DEFAULT_METRICS_FILE_INTERVAL),
            last: None,
            pending: false,
            timer: never(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Something changed: true when the file may be rewritten now; otherwise the timer is
    /// armed for the next allowed rewrite.
    pub fn changed(&mut self, now: Instant) -> bool {
        self.pending = true;
        match self.last {
            Some(last) if now < last + self.interval => {
                if !self.armed() {
                    self.timer = after(last + self.interval - now);
                }
                false
            }
            _ => true,
        }
    }

    fn armed(&self) -> bool {
        // `never()` has no capacity; `after()` has one slot.
        self.timer.capacity() != Some(0)
    }

    /// The timer to select on (never fires when nothing is pending).
    pub fn timer(&self) -> Receiver<Instant> {
        self.timer.clone()
    }

    /// The timer fired: true when a rewrite is pending.
    pub fn fired(&mut self) -> bool {
        self.timer = never();
        self.pending
    }

    /// Writes `text`; logs a failure (once per change of error).
    pub fn write(&mut self, text: &str, now: Instant) -> std::io::Result<()> {
        self.pending = false;
        self.last = Some(now);
        self.timer = never();
        crate::atomic_file::write_atomic(&self.path, text.as_bytes(), FILE_MODE)
    }

    /// Removes the file (at exit: a stopped daemon's metrics would look current).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The supervisor's part: reload counts, the metrics file, the HTTP responder.
#[derive(Default)]
pub struct Metrics {
    reloads_ok: u64,
    reloads_failed: u64,
    file: Option<File>,
    /// Where the HTTP responder listens.
    pub http: Option<std::net::SocketAddr>,
}

impl Metrics {
    /// Starts the HTTP responder when `metrics_listen` is set (a failure to bind is logged:
    /// the jobs run without it).
    pub fn start(
        daemon: &DaemonConfig,
        calls: crossbeam_channel::Sender<crate::control::Call>,
    ) -> Metrics {
        let http = daemon
            .metrics_listen
            .and_then(|addr| match http::start(addr, calls) {
                Ok(a) => {
                    tracing::info!("metrics: http://{a}/metrics");
                    Some(a)
                }
                Err(e) => {
                    tracing::error!(
                        "metrics: cannot listen on {addr}: {e}; no HTTP metrics (`clsync metrics` still answers)"
                    );
                    None
                }
            });
        Metrics {
            file: File::new(daemon),
            http,
            ..Metrics::default()
        }
    }

    pub fn reloaded(&mut self, ok: bool) {
        if ok {
            self.reloads_ok += 1;
        } else {
            self.reloads_failed += 1;
        }
    }

    pub fn facts(&self, started: SystemTime) -> DaemonFacts {
        DaemonFacts {
            started: Some(started),
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
        }
    }

    /// Something changed: true when the metrics file should be rewritten now.
    pub fn file_due(&mut self) -> bool {
        self.file
            .as_mut()
            .is_some_and(|f| f.changed(Instant::now()))
    }

    /// The metrics file's timer (never fires without a file or a pending change).
    pub fn timer(&self) -> Receiver<Instant> {
        self.file.as_ref().map_or_else(never, File::timer)
    }

    /// The timer fired: true when the file should be rewritten now.
    pub fn timer_fired(&mut self) -> bool {
        self.file.as_mut().is_some_and(File::fired)
    }

    pub fn write_file(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write(text, Instant::now())
        {
            tracing::warn!("cannot write metrics file {}: {e}", f.path().display());
        }
    }

    pub fn remove_file(&self) {
        if let Some(f) = &self.file {
            f.remove();
        }
    }
}

/// A sample: metric name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a metrics text (a simple reading of what [`encode`] writes, for tests and
/// scripts; `promtool check metrics` is the real check).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, v) = line.rsplit_once(' ').unwrap_or((line, ""));
        let v = match v {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| {
                        let (k, v) = p.split_once("=\"")?;
                        Some((k.to_string(), v.trim_end_matches('"').to_string()))
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (head.to_string(), Vec::new()),
        };
        out.push((name, labels, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        let mut s = Status {
            state: State::Watching,
            syncs: 3,
            queued: 2,
            last_success: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)),
            ..Status::default()
        };
        s.counters.record_run(
            4,
            Duration::from_millis(30),
            &Ok(crate::handler::Outcome::default()),
        );
        s.counters.copied_bytes = 12_345;
        s
    }

    #[test]
    fn families_and_samples() {
        let s = status();
        let text = encode(
            &DaemonFacts {
                started: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10)),
                reloads_ok: 2,
                reloads_failed: 1,
            },
            &[JobFacts {
                name: "www",
                status: &s,
            }],
        );
        for want in [
            "# TYPE clsync_syncs_total counter\nclsync_syncs_total{job=\"www\"} 3\n",
            "clsync_job_state{job=\"www\",state=\"watching\"} 1\n",
            "clsync_job_state{job=\"www\",state=\"failed\"} 0\n",
            "clsync_handler_runs_total{job=\"www\",result=\"ok\"} 1\n",
            "clsync_sync_duration_seconds_bucket{job=\"www\",le=\"0.01\"} 0\n",
            "clsync_sync_duration_seconds_bucket{job=\"www\",le=\"0.05\"} 1\n",
            "clsync_sync_duration_seconds_bucket{job=\"www\",le=\"300\"} 1\n",
            "clsync_sync_duration_seconds_bucket{job=\"www\",le=\"+Inf\"} 1\n",
            "clsync_sync_duration_seconds_count{job=\"www\"} 1\n",
            "clsync_synced_paths_total{job=\"www\"} 4\n",
            "# TYPE clsync_bytes_copied_total counter\nclsync_bytes_copied_total{job=\"www\"} 12345\n",
            "clsync_queued_paths{job=\"www\"} 2\n",
            "clsync_last_success_timestamp_seconds{job=\"www\"} 1.5\n",
            "clsync_reloads_total{result=\"failed\"} 1\n",
            "process_start_time_seconds 10\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        // Each family is described once, before its samples.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut dedup = types.clone();
        dedup.dedup();
        assert_eq!(types, dedup);
        let parsed = samples(&text);
        assert!(parsed.iter().any(|(n, l, v)| n == "clsync_syncs_total"
            && l == &[("job".to_string(), "www".to_string())]
            && *v == 3.0));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(value(3.0), "3");
        assert_eq!(value(0.25), "0.25");
        assert_eq!(value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn the_file_is_rewritten_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DaemonConfig {
            metrics_file: Some(dir.path().join("m.prom")),
            metrics_file_interval: Some(Duration::from_secs(60)),
            ..DaemonConfig::default()
        };
        let mut f = File::new(&cfg).unwrap();
        let t0 = Instant::now();
        assert!(f.changed(t0));
        f.write("a 1\n", t0).unwrap();
        assert!(!f.armed());
        // A change within the interval arms the timer instead.
        assert!(!f.changed(t0 + Duration::from_secs(1)));
        assert!(f.armed());
        assert!(f.fired());
        f.write("a 2\n", t0 + Duration::from_secs(60)).unwrap();
        assert!(!f.fired());
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "a 2\n");
        f.remove();
        assert!(!f.path().exists());
        assert!(File::new(&DaemonConfig::default()).is_none());
    }
}
