//! One sync job: a thread that watches the source and batches changes, and a worker pool
//! that runs the handler.
//!
//! The job thread sleeps in `poll` on the monitor's descriptor and a [`Waker`]; its only
//! timers are the deadlines of work it has (a batch window, a retry, an unpaired move), so
//! an idle job costs nothing. Failures never lose changes: a failed batch is put back in the
//! queue and retried with capped exponential backoff, together with whatever came since.

mod bell;
mod confined;
pub mod counters;
mod inflight;
mod loop_guard;
mod pool;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, unbounded};
use tracing::{debug, error, info, info_span, warn};

use crate::config::{JobConfig, Mode};
use crate::handler::Handler;
use crate::handler::command::CommandHandler;
use crate::handler::mirror::MirrorHandler;
use crate::handler::rsync::RsyncHandler;
use crate::model::{Batch, Change};
use crate::monitor::{PlatformMonitor, UNWATCHED_RESCAN};
use crate::queue::Queue;
use crate::rules::Filter;
use bell::Bell;
use inflight::InFlight;
use pool::{Done, Pool};
pub use status::{SharedStatus, State, Status};

/// A missing source is checked again at most this far apart.
const SOURCE_WAIT_MAX: Duration = Duration::from_secs(30);

/// The wait after `failures` consecutive failures: `first`, doubling, capped at `max`.
fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << exp).min(max)
}

fn is_big(source: &mut crate::fs::Lookup, rel: &Path, threshold: u64) -> bool {
    source
        .lstat(rel)
        .is_ok_and(|m| m.is_file() && m.len() >= threshold)
}

/// After this many failed runs in a row that the handler calls permanent (rsync's usage
/// and protocol errors), the job is reported failed: retrying the same call cannot help.
const PERMANENT_AFTER: u32 = 3;

/// A copy-while-changing run (`clsync sync JOB --once`) gives up after this many failed
/// attempts in a row.
const ONCE_MAX_FAILURES: u32 = 5;

enum Msg {
    Stop,
}

/// How a job starts.
#[derive(Debug, Default, Clone)]
pub struct JobOptions {
    /// Run the full sync even with `initial_sync = false` (a restarted job: changes made
    /// while it was down must not be lost).
    pub force_initial_sync: bool,
    /// Sync, then keep syncing until no change arrives for the job's delay, then end.
    pub once: bool,
    /// Poked whenever the job's state changes.
    pub notify: Option<Sender<()>>,
}

/// A running job, as the supervisor holds it.
pub struct Job {
    config: Arc<JobConfig>,
    status: SharedStatus,
    msgs: Sender<Msg>,
    waker: Arc<Bell>,
    thread: Option<JoinHandle<()>>,
}

impl Job {
    /// Starts the job's thread. Fails only when the job cannot be set up at all (bad filter,
    /// no threads); a missing source is waited for by the running job.
    pub fn start(config: JobConfig, opts: JobOptions) -> anyhow::Result<Job> {
        let config = Arc::new(config);
        let filter = config.filter();
        let handler: Arc<dyn Handler> = match (&config.mode, &config.destination) {
            (Mode::Mirror, crate::config::Destination::Local(dst)) => Arc::new(
                MirrorHandler::new(config.source.clone(), dst.clone(), filter.clone())
                    .with_timeout(config.rsync.timeout),
            ),
            (Mode::Mirror, crate::config::Destination::Remote(_)) => {
                anyhow::bail!("mode \"mirror\" needs a local destination")
            }
            (Mode::Rsync, dst) => Arc::new(
                RsyncHandler::new(
                    config.source.clone(),
                    dst.clone(),
                    config.rsync.clone(),
                    filter.clone(),
                )
                .counting_changes(config.verify_interval.is_some()),
            ),
            (Mode::Command(c), dst) => Arc::new(CommandHandler::new(
                config.name.clone(),
                config.source.clone(),
                dst.clone(),
                c.clone(),
                config.rsync.clone(),
                filter.clone(),
            )),
        };
        let status = SharedStatus::new(opts.notify.clone());
        let handler_ref = handler.clone();
        let waker = Arc::new(Bell::new());
        let (tx, rx) = unbounded();
        let span = info_span!("job", name = %config.name);
        let (done_tx, done_rx) = unbounded();
        let wake = waker.clone();
        let policy = crate::sandbox::Policy::for_job(&config)
            .filter(|_| crate::sandbox::support() != crate::sandbox::State::Unsupported)
            .map(Arc::new);
        let pool = Pool::new(
            config.workers,
            handler,
            policy,
            done_tx,
            Arc::new(move || wake.ring()),
            span.clone(),
        )?;
        let runner = Runner {
            handler: handler_ref,
            permanent: 0,
            cfg: config.clone(),
            filter,
            status: status.clone(),
            msgs: rx,
            waker: waker.clone(),
            done: done_rx,
            pool,
            normal: Queue::default(),
            normal_due: None,
            big: Queue::default(),
            big_due: None,
            inflight: InFlight::default(),
            next_id: 0,
            newest_done: 0,
            failures: 0,
            stalled: 0,
            retry_at: None,
            blocked: false,
            announce: false,
            stopping: false,
            once: opts.once,
            force_initial: opts.force_initial_sync,
            last_activity: Instant::now(),
            verify_due: None,
            verifying: false,
            guard: config.loop_guard.then(loop_guard::LoopGuard::default),
        };
        let thread = std::thread::Builder::new()
            .name(format!("clsync-job-{}", config.name))
            .spawn(move || {
                let _g = span.enter();
                runner.run();
            })?;
        Ok(Job {
            config,
            status,
            msgs: tx,
            waker,
            thread: Some(thread),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    pub fn status(&self) -> Status {
        self.status.snapshot()
    }

    /// Asks the job to stop: it finishes the runs in flight, syncs what is pending once
    /// more, and ends. Returns at once; [`join`](Self::join) waits.
    pub fn stop(&self) {
        let _ = self.msgs.send(Msg::Stop);
        self.waker.ring();
    }

    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Waits for a job that ends by itself (`once`), without asking it to stop, and
    /// returns its final status.
    pub fn wait(mut self) -> Status {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.status()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop();
            let _ = t.join();
        }
    }
}

enum Exit {
    Stop,
    RootGone,
}

struct Runner {
    /// The handler the pool runs, asked for what it reports (its rsync) and how to read
    /// its errors.
    handler: Arc<dyn Handler>,
    /// Consecutive failed runs whose error the handler calls permanent.
    permanent: u32,
    cfg: Arc<JobConfig>,
    filter: Arc<Filter>,
    status: SharedStatus,
    msgs: Receiver<Msg>,
    waker: Arc<Bell>,
    done: Receiver<Done>,
    pool: Pool,
    normal: Queue,
    normal_due: Option<Instant>,
    big: Queue,
    big_due: Option<Instant>,
    inflight: InFlight,
    next_id: u64,
    /// The newest run that has finished: a run older than it finishing now finished out of
    /// order (see [`Self::resync_ancestors`]).
    newest_done: u64,
    /// Consecutive failed runs.
    failures: u32,
    /// Consecutive failed runs that made no progress (all but a mirror run stopped by its
    /// timeout, which always changed something first): what `once` gives up on.
    stalled: u32,
    retry_at: Option<Instant>,
    /// The pending batch overlaps one in flight: wait for a run to finish.
    blocked: bool,
    /// Say "watching" once the current full sync succeeds.
    announce: bool,
    stopping: bool,
    once: bool,
    force_initial: bool,
    /// The last change read or sync finished (for `once`).
    last_activity: Instant,
    /// When the next periodic verification (a full sync) is due.
    verify_due: Option<Instant>,
    /// The full sync pending or in flight is a verification.
    verifying: bool,
    /// `loop_guard = true`: drops changes that only echo what this job sent.
    guard: Option<loop_guard::LoopGuard>,
}

impl Runner {
    fn run(mut self) {
        self.report_rsync(true);
        let mut first = true;
        let mut source_failures = 0u32;
        let mut last_error = String::new();
        while !self.stopping {
            let bell = self.waker.clone();
            let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || bell.ring());
            let mon = match PlatformMonitor::new(&self.cfg.source, self.filter.clone(), wake) {
                Ok(m) => m,
                Err(e) => {
                    source_failures += 1;
                    let wait = backoff(source_failures, Duration::from_secs(1), SOURCE_WAIT_MAX);
                    let msg = format!("cannot watch source {}: {e}", self.cfg.source.display());
                    if msg != last_error {
                        error!("{msg}; retrying (every {:?} at most)", SOURCE_WAIT_MAX);
                    } else {
                        debug!("{msg}; retrying in {wait:?}");
                    }
                    self.record_error(&msg, State::Failed);
                    last_error = msg;
                    if self.once {
                        break;
                    }
                    self.sleep(wait);
                    continue;
                }
            };
            source_failures = 0;
            last_error.clear();
            self.status.lock().watched_dirs = mon.watched();
            if first && !self.cfg.initial_sync && !self.force_initial {
                info!(
                    "watching {} directories (initial sync skipped)",
                    mon.watched()
                );
                self.status.set_state(State::Watching);
            } else {
                // Start, or a source that came back: only a full comparison is right.
                debug!(
                    "watching {} directories; starting the initial sync",
                    mon.watched()
                );
                self.normal.set_full();
                self.big = Queue::default();
                self.normal_due = Some(Instant::now());
                self.big_due = None;
                self.announce = true;
                self.status.set_state(State::InitialSync);
            }
            first = false;
            match self.watch(mon) {
                Exit::Stop => break,
                Exit::RootGone => {
                    let msg = format!("source {} disappeared", self.cfg.source.display());
                    error!("{msg}: waiting for it to come back");
                    self.wait_idle();
                    self.normal = Queue::default();
                    self.big = Queue::default();
                    self.normal_due = None;
                    self.big_due = None;
                    self.record_error(&msg, State::Failed);
                    last_error = msg;
                }
            }
        }
        self.shutdown();
    }

    /// Puts the handler's rsync report into the status; `log`: also name it in the log
    /// (a warning when it needs a workaround).
    fn report_rsync(&self, log: bool) {
        let Some(r) = self.handler.rsync_report() else {
            return;
        };
        if log {
            if r.delete_missing_args == Some(false) {
                warn!("{}", r.describe());
            } else {
                info!("{}", r.describe());
            }
        }
        self.status.lock().rsync = Some(r);
    }

    fn record_error(&self, msg: &str, state: State) {
        {
            let mut s = self.status.lock();
            s.last_error = Some((SystemTime::now(), msg.to_string()));
            s.state = state;
        }
        self.status.changed();
    }

    /// Sleeps up to `d`, or until asked to stop; finished runs are handled meanwhile.
    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping {
            let now = Instant::now();
            if now >= until {
                break;
            }
            self.wait(Some(until - now));
        }
    }

    /// Waits until no run is in flight.
    fn wait_idle(&mut self) {
        while self.pool.busy() > 0 {
            self.wait(None);
        }
    }

    /// Sleeps until something arrives (a message, a finished run, events for the monitor)
    /// or `timeout` passes, then takes the messages and finished runs.
    fn wait(&mut self, timeout: Option<Duration>) {
        // Round up so that a deadline a fraction of a millisecond away does not spin.
        self.waker
            .wait(timeout.map(|d| d + Duration::from_micros(999)));
        while let Ok(msg) = self.msgs.try_recv() {
            match msg {
                Msg::Stop => self.stopping = true,
            }
        }
        while let Ok(done) = self.done.try_recv() {
            self.finished(done);
        }
    }

    fn watch(&mut self, mut mon: PlatformMonitor) -> Exit {
        let mut changes = Vec::new();
        let mut unwatched_due: Option<Instant> = None;
        loop {
            let now = Instant::now();
            mon.expire(now, &mut |c| changes.push(c));
            // The watch limit left part of the tree unwatched: rescan it periodically.
            if mon.unwatched() == 0 {
                unwatched_due = None;
            } else if unwatched_due.is_none_or(|d| d <= now) {
                if unwatched_due.is_some() {
                    mon.rescan_unwatched(&mut |c| changes.push(c));
                }
                unwatched_due = Some(now + UNWATCHED_RESCAN);
            }
            if self.apply(&mut changes, now) {
                return Exit::RootGone;
            }
            if self.verify_due.is_some_and(|d| d <= now) {
                debug!("periodic verification: full sync");
                self.verify_due = None;
                self.verifying = true;
                self.normal.set_full();
                self.normal_due.get_or_insert(now);
            }
            self.dispatch(now);
            {
                let mut s = self.status.lock();
                s.queued = self.normal.len() + self.big.len();
                s.watched_dirs = mon.watched();
                s.unwatched_dirs = mon.unwatched();
            }
            let mut timeout = self.next_timeout(&mon, now);
            for d in [unwatched_due, self.verify_due].into_iter().flatten() {
                let left = d.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if self.once {
                match self.once_deadline() {
                    Some(d) if d <= now => return Exit::Stop,
                    Some(d) => {
                        let left = d - now;
                        timeout = Some(timeout.map_or(left, |t| t.min(left)));
                    }
                    None => {}
                }
                if self.stalled >= ONCE_MAX_FAILURES {
                    error!("giving up after {} failed attempts", self.failures);
                    return Exit::Stop;
                }
            }
            self.wait(timeout);
            if self.stopping {
                return Exit::Stop;
            }
            let read_from = changes.len();
            if let Err(e) = mon.read(&mut |c| changes.push(c)) {
                error!("reading events failed: {e}; rescanning");
                if let Err(e) = mon.rescan(&mut |c| changes.push(c)) {
                    error!("rescan failed: {e}");
                    return Exit::RootGone;
                }
            } else if changes[read_from..].contains(&Change::Rescan) {
                // The monitor lost events (an inotify queue overflow) and rescanned.
                self.status.lock().counters.overflows += 1;
            }
        }
    }

    /// For `once`: when the job may end, if it is idle (initial sync done, nothing queued or
    /// in flight, no failure waiting for a retry).
    fn once_deadline(&self) -> Option<Instant> {
        let idle = !self.announce
            && self.normal.is_empty()
            && self.big.is_empty()
            && self.pool.busy() == 0
            && self.failures == 0;
        idle.then(|| self.last_activity + self.cfg.delay.max(Duration::from_millis(50)))
    }

    /// Queues changes; true when the source root is gone.
    fn apply(&mut self, changes: &mut Vec<Change>, now: Instant) -> bool {
        if !changes.is_empty() {
            self.last_activity = now;
        }
        let mut gone = false;
        for c in changes.drain(..) {
            if c == Change::RootGone {
                gone = true;
                continue;
            }
            if c == Change::Rescan {
                self.status.lock().counters.rescans += 1;
                self.big = Queue::default();
                self.big_due = None;
            }
            if let (Some(g), Change::Content(rel) | Change::Attrib(rel)) = (&self.guard, &c)
                && g.is_echo(&self.cfg.source, rel)
            {
                debug!(path = ?rel, "loop guard: unchanged since this job sent it");
                continue;
            }
            self.normal.push(c);
            if self.normal_due.is_none() {
                self.normal_due = Some(now + self.cfg.delay);
            }
        }
        gone
    }

    fn next_timeout(&self, mon: &PlatformMonitor, now: Instant) -> Option<Duration> {
        let mut next = mon.next_deadline();
        if !self.blocked && self.pool.idle() > 0 {
            for (q, due) in [(&self.normal, self.normal_due), (&self.big, self.big_due)] {
                if let Some(due) = due.filter(|_| !q.is_empty()) {
                    let due = self.retry_at.map_or(due, |r| r.max(due));
                    next = Some(next.map_or(due, |n: Instant| n.min(due)));
                }
            }
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    fn dispatch(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|r| r > now) {
            return;
        }
        for big in [false, true] {
            if self.blocked || self.pool.idle() == 0 {
                return;
            }
            let due = if big { self.big_due } else { self.normal_due };
            if due.is_none_or(|d| d > now) {
                continue;
            }
            // Copy-while-changing runs do not hold big files back.
            if !big
                && !self.once
                && let Some(bf) = self.cfg.big_file.clone()
            {
                let mut moved = Queue::default();
                let mut source = crate::fs::Lookup::new(&self.cfg.source);
                self.normal.split_off(&mut moved, |p, rec| {
                    rec || !is_big(&mut source, p, bf.threshold)
                });
                if !moved.is_empty() {
                    self.big.restore(moved.take());
                    self.big_due.get_or_insert(now + bf.delay);
                }
            }
            let queue = if big { &mut self.big } else { &mut self.normal };
            let batch = queue.take();
            if big {
                self.big_due = None;
            } else {
                self.normal_due = None;
            }
            if batch.is_empty() {
                continue;
            }
            if batch.is_full() {
                // A full sync covers the big files too.
                let pending = self.big.take();
                if !pending.is_empty() {
                    debug!("big-file changes folded into the full sync");
                }
                self.big_due = None;
            }
            if self.inflight.conflicts(&batch) {
                let queue = if big { &mut self.big } else { &mut self.normal };
                queue.untake(batch);
                if big {
                    self.big_due = Some(now);
                } else {
                    self.normal_due = Some(now);
                }
                self.blocked = true;
                return;
            }
            self.submit(batch);
        }
    }

    fn submit(&mut self, batch: Batch) {
        self.next_id += 1;
        let id = self.next_id;
        // The first few paths, so that a debug log shows what is being synced.
        let sample: Vec<_> = batch.entries.iter().take(5).map(|e| &e.rel).collect();
        debug!(
            event = "sync-started",
            batch = id,
            paths = batch.len(),
            full = batch.is_full(),
            "sync started: {sample:?}{}",
            if batch.len() > 5 { " …" } else { "" }
        );
        self.inflight.add(id, &batch);
        if let Some(g) = &mut self.guard {
            g.dispatched(&self.cfg.source, id, &batch);
        }
        self.pool.submit(id, batch);
        let mut s = self.status.lock();
        if self.failures > 0 {
            s.counters.retries += 1;
        }
        // A retry in flight is still "retrying" until it succeeds.
        if s.state != State::InitialSync && self.failures == 0 {
            s.state = State::Syncing;
        }
    }

    fn finished(&mut self, done: Done) {
        self.finish(done);
        self.status.changed();
    }

    /// Runs in flight at once may share no path, but rsync also sets the times of every
    /// directory above the paths it is given (the root included, through `./`). When an
    /// older run finishes after a newer one, those directories may keep the older run's
    /// view of them: their attributes are synced again. (The mirror takes directory
    /// attributes from the source when it finishes, so it needs none of this.)
    fn resync_ancestors(&mut self, done: &Done, now: Instant) {
        let out_of_order = done.id < self.newest_done;
        self.newest_done = self.newest_done.max(done.id);
        if !out_of_order || done.batch.is_full() || self.cfg.mode == Mode::Mirror {
            return;
        }
        let mut dirs: Vec<PathBuf> = done
            .batch
            .entries
            .iter()
            .flat_map(|e| crate::relpath::ancestors(&e.rel).map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        debug!(
            batch = done.id,
            dirs = dirs.len(),
            "finished after a newer run: syncing the attributes of its directories again"
        );
        for d in dirs {
            self.normal.push(Change::Attrib(d));
        }
        self.normal_due.get_or_insert(now + self.cfg.delay);
    }

    fn finish(&mut self, done: Done) {
        self.status
            .lock()
            .counters
            .record_run(done.batch.len(), done.took, &done.result);
        if let Some(g) = &mut self.guard {
            g.finished(done.id, done.result.is_ok());
        }
        self.pool.finished();
        self.inflight.remove(done.id);
        self.blocked = false;
        self.report_rsync(false);
        let now = Instant::now();
        self.last_activity = now;
        if done.result.is_ok() {
            self.resync_ancestors(&done, now);
        }
        match done.result {
            Ok(outcome) => {
                for w in outcome.warnings {
                    warn!("{w}");
                }
                // A job failed by its handler's errors is healthy again.
                let recovered = self.failures > 0;
                if recovered {
                    info!(
                        event = "recovered",
                        "sync recovered after {} failed attempts", self.failures
                    );
                }
                self.failures = 0;
                self.permanent = 0;
                self.stalled = 0;
                self.retry_at = None;
                let full = done.batch.is_full();
                if full && let Some(every) = self.cfg.verify_interval {
                    self.verify_due = Some(now + every);
                }
                let mut s = self.status.lock();
                if full && std::mem::take(&mut self.verifying) && !self.announce {
                    s.last_verify = Some((SystemTime::now(), outcome.changed));
                    s.counters.record_verify(outcome.changed);
                    match outcome.changed {
                        Some(0) => {
                            info!(event = "verified", "verification: destination was in sync")
                        }
                        Some(n) => warn!(
                            event = "verified",
                            repaired = n,
                            "verification repaired {n} path(s) that differed (changed outside the daemon's view)"
                        ),
                        None => info!(event = "verified", "verification: full sync done"),
                    }
                }
                s.syncs += 1;
                s.consecutive_failures = 0;
                s.last_error_permanent = false;
                s.last_success = Some(SystemTime::now());
                if full && self.announce {
                    self.announce = false;
                    s.initial_syncs += 1;
                    info!(
                        event = "initial-sync-done",
                        batch = done.id,
                        "initial sync done in {:.3}s; watching {} directories",
                        done.took.as_secs_f64(),
                        s.watched_dirs
                    );
                } else {
                    debug!(
                        event = "synced",
                        batch = done.id,
                        paths = done.batch.len(),
                        "synced in {:.3}s",
                        done.took.as_secs_f64()
                    );
                }
                if self.pool.busy() == 0 && (s.state != State::Failed || recovered) {
                    s.state = if self.announce {
                        State::InitialSync
                    } else {
                        State::Watching
                    };
                }
            }
            Err(e) => {
                self.failures += 1;
                if !matches!(
                    e,
                    crate::handler::HandlerError::Timeout { killed: false, .. }
                ) {
                    self.stalled += 1;
                }
                let r = &self.cfg.retry;
                let wait = backoff(self.failures, r.delay, r.max_delay);
                if self.handler.is_permanent(&e) {
                    self.permanent += 1;
                } else {
                    self.permanent = 0;
                }
                let hopeless = self.permanent >= PERMANENT_AFTER;
                // Past `retries` attempts, or when the call itself is wrong, the job is
                // reported failed, but it keeps its pending changes and keeps trying at the
                // capped interval: nothing is lost when the target comes back.
                let exhausted = r.retries > 0 && self.failures >= r.retries;
                if self.permanent == PERMANENT_AFTER {
                    error!(
                        event = "sync-failed",
                        batch = done.id,
                        "sync of {} paths failed {} times: {e}; rsync rejects the call itself, \
                         which retrying cannot fix (check the job's [rsync] settings and the \
                         receiving rsync); the job is failed, still retrying every {wait:?} \
                         with its changes kept",
                        done.batch.len(),
                        self.failures
                    );
                } else if exhausted && self.failures == r.retries {
                    error!(
                        event = "sync-failed",
                        batch = done.id,
                        "sync of {} paths failed {} times: {e}; the job is failed, still retrying every {wait:?} with its changes kept",
                        done.batch.len(),
                        self.failures
                    );
                } else {
                    warn!(
                        event = "sync-failed",
                        batch = done.id,
                        "sync of {} paths failed (attempt {}): {e}; retrying in {wait:?}",
                        done.batch.len(),
                        self.failures
                    );
                }
                self.retry_at = Some(now + wait);
                {
                    let mut s = self.status.lock();
                    s.failures += 1;
                    s.consecutive_failures = self.failures;
                    s.last_error = Some((SystemTime::now(), e.to_string()));
                    s.last_error_permanent = hopeless;
                    s.state = if exhausted || hopeless {
                        State::Failed
                    } else {
                        State::Retrying
                    };
                }
                self.normal.restore(done.batch);
                self.normal_due.get_or_insert(now);
            }
        }
    }

    /// The graceful end: let runs in flight finish, sync what is pending once more.
    fn shutdown(&mut self) {
        self.wait_idle();
        let big = self.big.take();
        self.normal.restore(big);
        if !self.normal.is_empty() {
            let batch = self.normal.take();
            info!("syncing {} pending paths before stopping", batch.len());
            self.retry_at = None;
            self.submit(batch);
            self.wait_idle();
            if !self.normal.is_empty() {
                warn!("the last sync failed; the next start's initial sync will repair it");
            }
        }
        self.status.set_state(State::Stopped);
        debug!("stopped");
    }
}
