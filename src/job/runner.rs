//! The job's thread: watches the source, queues what the monitor reports, hands batches to
//! the worker pool and records how each run ended. It does the I/O; when to do what is the
//! [`Schedule`]'s answer, asked with the current time and what the loop sees.
//!
//! The thread sleeps on the job's [`Bell`] until its next deadline: the batch window of a
//! lane, a retry, a periodic verification, a rescan of unwatched directories, an unpaired
//! move the monitor holds, or (`once`) the end of the quiet period. An idle job costs
//! nothing. Failures never lose changes: a failed batch goes back into the queue and is
//! retried with whatever came since.
//!
//! A job owns its monitor; a fan-out target instead follows its job file's hub (`feed`),
//! which does the monitor's side once for every target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use tracing::{debug, error, info, warn};

use crate::config::{Delete, JobConfig};
use crate::handler::{Handler, HandlerError, Outcome};
use crate::model::{Batch, Change};
use crate::monitor::PlatformMonitor;
use crate::queue::Queue;
use crate::rules::Filter;

use super::bell::Bell;
use super::hub::Subscription;
use super::inflight::{DirTimes, InFlight};
use super::loop_guard::LoopGuard;
use super::pool::{Done, Pool};
use super::schedule::{
    Alarm, Failure, Lane, Load, OnceCheck, RunOutcome, SOURCE_WAIT_MAX, Schedule, Success,
};
use super::status::{SharedStatus, State};

mod feed;

/// Why watching the source ended.
enum Exit {
    Stop,
    RootGone,
}

pub(super) struct Runner {
    /// The handler the pool runs, asked for what it reports (its rsync) and how to read
    /// its errors.
    pub(super) handler: Arc<dyn Handler>,
    pub(super) cfg: Arc<JobConfig>,
    pub(super) filter: Arc<Filter>,
    pub(super) status: SharedStatus,
    /// Set by [`super::Job::stop`], which then rings the bell.
    pub(super) stop: Arc<AtomicBool>,
    pub(super) bell: Arc<Bell>,
    pub(super) done: Receiver<Done>,
    pub(super) pool: Pool,
    /// The pending changes of each lane, in [`Lane::ALL`] order.
    pub(super) queues: Lanes,
    pub(super) inflight: InFlight,
    pub(super) next_id: u64,
    pub(super) schedule: Schedule,
    pub(super) stopping: bool,
    /// Run the full sync at the start even with `initial_sync = false`.
    pub(super) force_initial: bool,
    /// The full sync pending is the one that starts the job (not one after the source came
    /// back): the initial sync that `delete = "startup"` lets remove.
    pub(super) starting: bool,
    /// `loop_guard = true`: drops changes that only echo what this job sent.
    pub(super) guard: Option<LoopGuard>,
    /// The handler's rsync was named in the log (see [`Self::report_rsync`]).
    pub(super) reported: bool,
    /// A fan-out target: the hub it follows instead of a monitor of its own.
    pub(super) feed: Option<Subscription>,
}

impl Runner {
    pub(super) fn run(mut self) {
        if let Some(sub) = self.feed.take() {
            self.follow(sub);
            self.shutdown();
            return;
        }
        let mut first = true;
        while !self.stopping {
            let Some(mut mon) = self.watch_source() else {
                break;
            };
            let changes = self.start_watching(&mut mon, first);
            first = false;
            match self.watch(mon, changes) {
                Exit::Stop => break,
                Exit::RootGone => self.source_gone(),
            }
        }
        self.shutdown();
    }

    /// Starts watching the source, waiting (with backoff) while it cannot be watched.
    /// `None`: stopped, or a `once` run whose source cannot be watched.
    fn watch_source(&mut self) -> Option<PlatformMonitor> {
        let mut last_error = String::new();
        while !self.stopping {
            let bell = self.bell.clone();
            let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || bell.ring());
            let e = match PlatformMonitor::start(&self.cfg.source, self.filter.clone(), wake) {
                Ok(m) => {
                    // No `stop_when`: a walk beside a full sync is what catches up with
                    // directories the sync passed before their watch existed, and the
                    // shutdown's last sync needs all of it.
                    self.schedule.source_watched();
                    return Some(m);
                }
                Err(e) => e,
            };
            let wait = self.schedule.source_unwatchable();
            let msg = format!("cannot watch source {}: {e}", self.cfg.source.display());
            if msg != last_error {
                error!("{msg}; retrying (every {:?} at most)", SOURCE_WAIT_MAX);
            } else {
                debug!("{msg}; retrying in {wait:?}");
            }
            self.record_error(&msg, State::Failed);
            last_error = msg;
            if self.schedule.once() {
                return None;
            }
            self.sleep(wait);
        }
        None
    }

    /// The source's root is watched: watch the rest, and start with the full sync unless
    /// the job skips it. Where the monitor can catch up with changes made meanwhile, the
    /// full sync starts first and the walk runs beside it (a large tree starts at rsync's
    /// own speed); the changes it catches up with are returned, to be queued.
    fn start_watching(&mut self, mon: &mut PlatformMonitor, first: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        if !self.syncs_whole(first) {
            mon.walk(None, &mut |c| changes.push(c));
            info!(
                "watching {} directories (initial sync skipped)",
                mon.watched()
            );
            self.status.lock().watched_dirs = mon.watched();
            self.status.set_state(State::Watching);
            return changes;
        }
        let now = Instant::now();
        self.begin_full_sync(first, now);
        let since = self.catch_up_since(mon);
        let beside = since.is_some();
        if beside {
            self.dispatch(now);
        }
        mon.walk(since, &mut |c| changes.push(c));
        debug!(
            "watched {} directories; the initial sync runs {}",
            mon.watched(),
            if beside { "beside the walk" } else { "now" }
        );
        self.status.lock().watched_dirs = mon.watched();
        changes
    }

    /// Whether watching the source starts with a full sync: always but at the job's start
    /// with `initial_sync = false`.
    fn syncs_whole(&self, first: bool) -> bool {
        !first || self.cfg.initial_sync || self.force_initial
    }

    /// Start, or a source that came back: only a full comparison is right.
    fn begin_full_sync(&mut self, first: bool, now: Instant) {
        self.queues[Lane::Normal].set_full();
        self.queues[Lane::Big] = Queue::default();
        self.starting = first;
        self.schedule.begin_full_sync(now);
        self.status.set_state(State::InitialSync);
    }

    /// Now, if the full sync about to start may run beside the walk (see `start_watching`).
    /// Not with `delete = "running"`: a directory synced whole to catch up would lose the
    /// extraneous files the job keeps there.
    fn catch_up_since(&self, mon: &PlatformMonitor) -> Option<crate::monitor::Since> {
        match self.cfg.delete {
            Delete::Running => None,
            _ => mon.catch_up_from_now(),
        }
    }

    /// Events were lost: the full comparison starts now, and the walk that re-adds the
    /// watches runs beside it, as at the start.
    fn rescan_beside(
        &mut self,
        mon: &mut PlatformMonitor,
        changes: &mut Vec<Change>,
    ) -> Result<(), Exit> {
        let now = Instant::now();
        let since = self.catch_up_since(mon);
        if self.apply(changes, now) {
            return Err(Exit::RootGone);
        }
        if since.is_some() {
            self.dispatch(now);
        }
        if let Err(e) = mon.finish_rescan(since, &mut |c| changes.push(c)) {
            error!("rescan failed: {e}");
            return Err(Exit::RootGone);
        }
        Ok(())
    }

    fn source_gone(&mut self) {
        let msg = format!("source {} disappeared", self.cfg.source.display());
        error!("{msg}: waiting for it to come back");
        self.wait_idle();
        self.queues = Default::default();
        self.schedule.source_lost();
        self.record_error(&msg, State::Failed);
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

    /// Sleeps until something arrives (a stop, a finished run, events for the monitor) or
    /// `timeout` passes, then takes the stop and the finished runs.
    fn wait(&mut self, timeout: Option<Duration>) {
        // Round up so that a deadline a fraction of a millisecond away does not spin.
        self.bell
            .wait(timeout.map(|d| d + Duration::from_micros(999)));
        if self.stop.load(Ordering::SeqCst) {
            self.stopping = true;
        }
        while let Ok(done) = self.done.try_recv() {
            self.record_run(done);
        }
    }

    fn load(&self) -> Load {
        Load {
            queued: Lane::ALL.map(|l| !self.queues[l].is_empty()),
            idle_workers: self.pool.idle(),
            busy_workers: self.pool.busy(),
        }
    }

    fn watch(&mut self, mut mon: PlatformMonitor, mut changes: Vec<Change>) -> Exit {
        loop {
            let now = Instant::now();
            mon.expire(now, &mut |c| changes.push(c));
            if mon.rescan_pending()
                && let Err(exit) = self.rescan_beside(&mut mon, &mut changes)
            {
                return exit;
            }
            if self.schedule.rescan_unwatched(now, mon.unwatched()) {
                mon.rescan_unwatched(&mut |c| changes.push(c));
            }
            let next = match self.step(&mut changes, now, (mon.watched(), mon.unwatched())) {
                Ok(next) => [next, mon.next_deadline()].into_iter().flatten().min(),
                Err(exit) => return exit,
            };
            self.wait(next.map(|t| t.saturating_duration_since(now)));
            if self.stopping {
                return Exit::Stop;
            }
            if let Err(exit) = self.read_events(&mut mon, &mut changes) {
                return exit;
            }
            if mon.rescan_pending()
                && let Err(exit) = self.rescan_beside(&mut mon, &mut changes)
            {
                return exit;
            }
        }
    }

    /// Queues `changes` and starts what is due; `dirs`: the monitor's watched and
    /// unwatched directories. Returns when to wake next for the job's own deadlines, or
    /// `Err` when the source is gone or a `once` run is over.
    fn step(
        &mut self,
        changes: &mut Vec<Change>,
        now: Instant,
        dirs: (usize, usize),
    ) -> Result<Option<Instant>, Exit> {
        if self.apply(changes, now) {
            return Err(Exit::RootGone);
        }
        if self.schedule.start_verification(now) {
            debug!("periodic verification: full sync");
            self.queues[Lane::Normal].set_full();
        }
        self.dispatch(now);
        if !self.reported {
            // After the first dispatch: learning what the job's rsync takes runs it
            // (tens of milliseconds) and the initial sync need not wait for that.
            self.report_rsync(true);
            self.reported = true;
        }
        self.report_load(dirs);
        let quiet_at = self.once_check(now)?;
        let load = self.load();
        Ok([self.schedule.next_wake(&load), quiet_at]
            .into_iter()
            .flatten()
            .min())
    }

    fn report_load(&self, (watched, unwatched): (usize, usize)) {
        let mut s = self.status.lock();
        s.queued = Lane::ALL.iter().map(|&l| self.queues[l].len()).sum();
        s.watched_dirs = watched;
        s.unwatched_dirs = unwatched;
    }

    /// For `once`: when the run ends if nothing more comes, or `Err` when it is over
    /// (quiet long enough, or given up).
    fn once_check(&self, now: Instant) -> Result<Option<Instant>, Exit> {
        if !self.schedule.once() {
            return Ok(None);
        }
        match self.schedule.once_check(now, &self.load()) {
            OnceCheck::Continue(quiet_at) => Ok(quiet_at),
            OnceCheck::Quiet => Err(Exit::Stop),
            OnceCheck::GiveUp => {
                error!(
                    "giving up after {} failed attempts",
                    self.schedule.failures()
                );
                Err(Exit::Stop)
            }
        }
    }

    /// Reads the monitor's events into `changes`; a read error rescans the whole source.
    fn read_events(
        &mut self,
        mon: &mut PlatformMonitor,
        changes: &mut Vec<Change>,
    ) -> Result<(), Exit> {
        let read_from = changes.len();
        if let Err(e) = mon.read(&mut |c| changes.push(c)) {
            error!("reading events failed: {e}; rescanning");
            if let Err(e) = mon.rescan(&mut |c| changes.push(c)) {
                error!("rescan failed: {e}");
                return Err(Exit::RootGone);
            }
        } else if changes[read_from..].contains(&Change::Rescan) {
            // The monitor lost events (an inotify queue overflow) and rescanned.
            self.status.lock().counters.overflows += 1;
        }
        Ok(())
    }

    /// Queues changes; true when the source root is gone.
    fn apply(&mut self, changes: &mut Vec<Change>, now: Instant) -> bool {
        if !changes.is_empty() {
            self.schedule.changes_read(now);
        }
        let mut gone = false;
        for c in changes.drain(..) {
            if c == Change::RootGone {
                gone = true;
                continue;
            }
            if c == Change::Rescan {
                self.status.lock().counters.rescans += 1;
                self.queues[Lane::Big] = Queue::default();
                self.schedule.rescanned();
            }
            if let (Some(g), Change::Content(rel) | Change::Attrib(rel)) = (&self.guard, &c)
                && g.is_echo(&self.cfg.source, rel)
            {
                debug!(path = ?rel, "loop guard: unchanged since this job sent it");
                continue;
            }
            self.queues[Lane::Normal].push(c);
            self.schedule.change_queued(now);
        }
        gone
    }

    /// Runs every lane that is due while workers are free: what overlaps no run in flight
    /// starts, the rest waits in its lane for a run to end.
    fn dispatch(&mut self, now: Instant) {
        for lane in Lane::ALL {
            if !self.schedule.may_dispatch(lane, now, self.pool.idle()) {
                continue;
            }
            if lane == Lane::Normal && self.schedule.holds_big_files() {
                self.hold_big_files(now);
            }
            let batch = self.queues[lane].take();
            self.schedule.taken(lane, batch.is_full());
            if batch.is_empty() {
                continue;
            }
            if batch.is_full() && !self.queues[Lane::Big].take().is_empty() {
                debug!("big-file changes folded into the full sync");
            }
            let split = self.inflight.split(batch);
            if !split.held.is_empty() {
                self.queues[lane].put_back(split.held);
                self.schedule.held(lane);
            }
            if !split.ready.is_empty() {
                self.submit(split.ready);
            }
        }
    }

    /// Moves the normal lane's big files (by their size now) to the big lane.
    fn hold_big_files(&mut self, now: Instant) {
        let Some(threshold) = self.cfg.big_file.as_ref().map(|b| b.threshold) else {
            return;
        };
        let mut moved = Queue::default();
        let mut source = crate::fs::Lookup::new(&self.cfg.source);
        self.queues[Lane::Normal].split_off(&mut moved, |p, recursive| {
            recursive || !is_big(&mut source, p, threshold)
        });
        if !moved.is_empty() {
            self.queues[Lane::Big].requeue(moved.take());
            self.schedule.big_files_held(now);
        }
    }

    fn submit(&mut self, mut batch: Batch) {
        let full = batch.is_full();
        let initial = full && self.starting && self.schedule.initial_pending();
        batch.deletes = self.cfg.delete.removes(full, initial);
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
        let retrying = self.schedule.failures() > 0;
        let mut s = self.status.lock();
        if retrying {
            s.counters.retries += 1;
        }
        // A retry in flight is still "retrying" until it succeeds.
        if s.state != State::InitialSync && !retrying {
            s.state = State::Syncing;
        }
    }

    /// Takes a finished run: counts it, and acts on its success or failure.
    fn record_run(&mut self, done: Done) {
        self.status
            .lock()
            .counters
            .record_run(done.batch.len(), done.took, &done.result);
        if let Some(g) = &mut self.guard {
            g.commit(done.id, done.result.is_ok());
        }
        self.pool.collect();
        let times = dir_times(&*self.handler);
        let regressed = self
            .inflight
            .finish(done.id, &done.batch, done.result.is_ok(), times);
        self.report_rsync(false);
        let now = Instant::now();
        let outcome = match &done.result {
            Ok(_) => RunOutcome::Succeeded {
                full: done.batch.is_full(),
            },
            Err(e) => RunOutcome::Failed {
                progressed: e.made_progress(),
                permanent: self.handler.is_permanent(e),
            },
        };
        let decision = self.schedule.run_done(now, done.id, outcome);
        let Done {
            id,
            batch,
            result,
            took,
        } = done;
        match (decision, result) {
            (Ok(success), Ok(outcome)) => {
                // Ended after a newer run (the schedule's word), or its nodes were set by
                // an older run beside it that may have set them after it did.
                if success.resync_ancestors || (times == DirTimes::Anytime && !regressed.is_empty())
                {
                    self.resync_ancestors(id, regressed, now);
                }
                self.succeeded(id, &batch, took, success, outcome)
            }
            (Err(failure), Err(e)) => self.failed(id, batch, failure, &e),
            _ => unreachable!("the schedule's decision follows the run's result"),
        }
        self.status.changed();
    }

    /// Runs in flight at once may share no path, but rsync also sets the times of every
    /// directory above the paths it is given (the root included, through `./`). When an
    /// older run finishes after a newer one, the directories both set (`dirs`, from
    /// [`InFlight::finish`]) may keep the older run's view of them: their attributes are
    /// synced again. With rsync ([`Handler::sets_root_each_run`]), the root is left out while changes
    /// are queued: the run that takes them starts after this one ended and sets it (it is
    /// above every path). Under churn this keeps the root, which overlaps every path, from
    /// holding back the next window whole. Other handlers need not set the root in every
    /// run (a command may set only the directories it wrote in), so theirs is synced again
    /// like any other directory. (The mirror takes directory attributes from the source
    /// when it finishes, so it needs none of this.)
    ///
    /// A command may set a directory long before it ends ([`DirTimes::Anytime`]): an
    /// attribute run of a directory (a node, which starts beside older runs below it) that
    /// ends after an older run below it may still have been overtaken by it, and the
    /// directory is synced again too.
    fn resync_ancestors(&mut self, id: u64, mut dirs: Vec<PathBuf>, now: Instant) {
        if !self.queues[Lane::Normal].is_empty() && self.handler.sets_root_each_run() {
            dirs.retain(|d| !d.as_os_str().is_empty());
        }
        if !dirs.is_empty() {
            self.schedule.change_queued(now);
        }
        debug!(
            batch = id,
            dirs = dirs.len(),
            "ended beside a run that set the same directories: syncing their attributes again"
        );
        for d in dirs {
            self.queues[Lane::Normal].push(Change::Attrib(d));
        }
    }

    fn succeeded(&mut self, id: u64, batch: &Batch, took: Duration, s: Success, out: Outcome) {
        for w in &out.warnings {
            warn!("{w}");
        }
        // A job failed by its handler's errors is healthy again.
        if s.recovered_after > 0 {
            info!(
                event = "recovered",
                "sync recovered after {} failed attempts", s.recovered_after
            );
        }
        let busy = self.pool.busy();
        let initial_pending = self.schedule.initial_pending();
        let mut st = self.status.lock();
        if s.verified {
            st.last_verify = Some((SystemTime::now(), out.changed));
            st.counters.record_verify(out.changed);
            log_verification(out.changed);
        }
        st.syncs += 1;
        st.consecutive_failures = 0;
        st.last_error_permanent = false;
        st.last_success = Some(SystemTime::now());
        if s.initial_done {
            st.initial_syncs += 1;
            info!(
                event = "initial-sync-done",
                batch = id,
                "initial sync done in {:.3}s; watching {} directories",
                took.as_secs_f64(),
                st.watched_dirs
            );
        } else {
            debug!(
                event = "synced",
                batch = id,
                paths = batch.len(),
                "synced in {:.3}s",
                took.as_secs_f64()
            );
        }
        if busy == 0 && (st.state != State::Failed || s.recovered_after > 0) {
            st.state = if initial_pending {
                State::InitialSync
            } else {
                State::Watching
            };
        }
    }

    fn failed(&mut self, id: u64, batch: Batch, f: Failure, e: &HandlerError) {
        let (paths, wait, attempt) = (batch.len(), f.retry_in, f.attempt);
        match f.alarm {
            Alarm::Hopeless => error!(
                event = "sync-failed",
                batch = id,
                "sync of {paths} paths failed {attempt} times: {e}; rsync rejects the call \
                 itself, which retrying cannot fix (check the job's [rsync] settings and the \
                 receiving rsync); the job is failed, still retrying every {wait:?} with its \
                 changes kept",
            ),
            Alarm::Exhausted => error!(
                event = "sync-failed",
                batch = id,
                "sync of {paths} paths failed {attempt} times: {e}; the job is failed, still retrying every {wait:?} with its changes kept",
            ),
            Alarm::Retrying => warn!(
                event = "sync-failed",
                batch = id,
                "sync of {paths} paths failed (attempt {attempt}): {e}; retrying in {wait:?}",
            ),
        }
        {
            let mut s = self.status.lock();
            s.failures += 1;
            s.consecutive_failures = attempt;
            s.last_error = Some((SystemTime::now(), e.to_string()));
            s.last_error_permanent = f.hopeless;
            s.state = if f.failed {
                State::Failed
            } else {
                State::Retrying
            };
        }
        self.queues[Lane::Normal].requeue(batch);
    }

    /// The graceful end: let runs in flight finish, sync what is pending once more.
    fn shutdown(&mut self) {
        self.wait_idle();
        let big = self.queues[Lane::Big].take();
        self.queues[Lane::Normal].requeue(big);
        if !self.queues[Lane::Normal].is_empty() {
            let batch = self.queues[Lane::Normal].take();
            info!("syncing {} pending paths before stopping", batch.len());
            self.schedule.stopping();
            self.submit(batch);
            self.wait_idle();
            if !self.queues[Lane::Normal].is_empty() {
                warn!("the last sync failed; the next start's initial sync will repair it");
            }
        }
        self.status.set_state(State::Stopped);
        debug!("stopped");
    }
}

fn log_verification(repaired: Option<u64>) {
    match repaired {
        Some(0) => info!(event = "verified", "verification: destination was in sync"),
        Some(n) => warn!(
            event = "verified",
            repaired = n,
            "verification repaired {n} path(s) that differed (changed outside the daemon's view)"
        ),
        None => info!(event = "verified", "verification: full sync done"),
    }
}

/// When the job's handler sets the attributes of directories ([`Handler::sets_dirs_at_end`]).
fn dir_times(handler: &dyn Handler) -> DirTimes {
    if handler.sets_dirs_at_end() {
        DirTimes::AtEnd
    } else {
        DirTimes::Anytime
    }
}

fn is_big(source: &mut crate::fs::Lookup, rel: &Path, threshold: u64) -> bool {
    source
        .lstat(rel)
        .is_ok_and(|m| m.is_file() && m.len() >= threshold)
}

/// The job's queue of each lane.
#[derive(Default)]
pub(super) struct Lanes([Queue; 2]);

impl std::ops::Index<Lane> for Lanes {
    type Output = Queue;
    fn index(&self, lane: Lane) -> &Queue {
        &self.0[lane as usize]
    }
}

impl std::ops::IndexMut<Lane> for Lanes {
    fn index_mut(&mut self, lane: Lane) -> &mut Queue {
        &mut self.0[lane as usize]
    }
}
