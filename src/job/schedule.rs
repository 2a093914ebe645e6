//! When a job syncs: a pure state machine, told the time and what the job observed, that
//! answers when each lane of changes is due, when to retry, when to verify and when a `once`
//! run is over. It does no I/O and reads no clock, so every decision is table-tested below;
//! the job's loop ([`super::runner`]) does the I/O and obeys it.
//!
//! Two lanes wait for a free worker: `Normal` (due the job's `delay` after its first change)
//! and `Big` (files over `big_file.threshold`, held back `big_file.delay`). A failed run puts
//! its batch back into the normal lane, which then waits for the retry time, growing as
//! [`backoff`] says; a successful full sync arms the next periodic verification.
//!
//! A due batch that overlaps runs in flight is split ([`super::inflight`]): what is free
//! starts, the rest is [`held`](Schedule::held) in its lane. A held lane is due again when a
//! run ends, or, if changes come meanwhile, when their own window closes: then the lane is
//! split anew, so that a window closing while a long run is in flight still goes to a free
//! worker, and a path waits for the run that touches it, never for the batches after it.
//! Held paths go with a window already open rather than alone the moment a run ends: under
//! churn a window is always open, and a run of the few paths a batch held back would cost
//! a whole handler run (an rsync) for them and take a worker from the next window.

use std::time::{Duration, Instant};

use crate::config::{JobConfig, Mode, RetryOptions};
use crate::monitor::UNWATCHED_RESCAN;

/// A missing source is checked again at most this far apart.
pub const SOURCE_WAIT_MAX: Duration = Duration::from_secs(30);

/// The first wait for a missing source.
const SOURCE_WAIT_FIRST: Duration = Duration::from_secs(1);

/// After this many failed runs in a row that the handler calls permanent (rsync's usage
/// and protocol errors), the job is reported failed: retrying the same call cannot help.
pub const PERMANENT_AFTER: u32 = 3;

/// A copy-while-changing run (`clsync sync JOB`) gives up after this many failed attempts
/// in a row that made no progress.
pub const ONCE_MAX_FAILURES: u32 = 5;

/// A `once` run ends after at least this much quiet, even with `delay = 0`.
const ONCE_MIN_QUIET: Duration = Duration::from_millis(50);

/// The wait after `failures` consecutive failures: `first`, doubling, capped at `max`.
pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << exp).min(max)
}

/// A queue of pending changes waiting for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Normal,
    /// Big files, held back so that a file still being written is copied once.
    Big,
}

impl Lane {
    /// In dispatch order: the normal lane first (a full sync there covers the big files).
    pub const ALL: [Lane; 2] = [Lane::Normal, Lane::Big];

    fn index(self) -> usize {
        self as usize
    }
}

/// The job's settings the schedule follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How long changes gather before a batch is due.
    pub delay: Duration,
    pub retry: RetryOptions,
    /// A full sync this long after the last successful one (`verify_interval`).
    pub verify_interval: Option<Duration>,
    /// How long big files are held back (`big_file.delay`); `None`: no big-file lane.
    pub big_file_delay: Option<Duration>,
    /// Copy while changing, then end once quiet (`clsync sync JOB`).
    pub once: bool,
    /// A run finishing after a newer one syncs its directories' attributes again (every
    /// mode but the mirror, which sets them itself).
    pub resync_ancestors: bool,
}

impl Timing {
    pub fn of(cfg: &JobConfig, once: bool) -> Timing {
        Timing {
            delay: cfg.delay,
            retry: cfg.retry.clone(),
            verify_interval: cfg.verify_interval,
            big_file_delay: cfg.big_file.as_ref().map(|b| b.delay),
            once,
            resync_ancestors: cfg.mode != Mode::Mirror,
        }
    }
}

/// What the loop sees of the job when it asks what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Whether each lane (in [`Lane::ALL`] order) holds changes.
    pub queued: [bool; 2],
    pub idle_workers: usize,
    pub busy_workers: usize,
}

/// How a handler run ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded {
        /// The batch was a full sync.
        full: bool,
    },
    Failed {
        /// The run changed something before it stopped (a mirror run stopped by its
        /// timeout): `once` does not count it towards giving up.
        progressed: bool,
        /// The handler calls the error permanent (retrying the same call cannot help).
        permanent: bool,
    },
}

/// What follows a successful run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Success {
    /// The job had failed this many times in a row before: it has recovered.
    pub recovered_after: u32,
    /// The run finished after a newer one: sync its directories' attributes again.
    pub resync_ancestors: bool,
    /// The run was a periodic verification.
    pub verified: bool,
    /// The run was the initial sync (or the full sync after the source came back).
    pub initial_done: bool,
}

/// How loudly a failure is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// A transient failure: retried.
    Retrying,
    /// The `retries`-th failure in a row: from now on the job is reported failed.
    Exhausted,
    /// The [`PERMANENT_AFTER`]-th permanent error in a row: the call itself is wrong.
    Hopeless,
}

/// What follows a failed run: its batch goes back into the normal lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failed runs in a row, this one included.
    pub attempt: u32,
    pub retry_in: Duration,
    pub alarm: Alarm,
    /// The same permanent error repeats: it needs the administrator.
    pub hopeless: bool,
    /// The job is to be reported failed (not merely retrying).
    pub failed: bool,
}

/// What a `once` run does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceCheck {
    /// Keep going; if idle, end at this time unless a change comes.
    Continue(Option<Instant>),
    /// Quiet for long enough: done.
    Quiet,
    /// Too many failed attempts without progress.
    GiveUp,
}

/// The schedule of one job.
#[derive(Debug, Clone)]
pub struct Schedule {
    timing: Timing,
    /// When each lane's batch is due (in [`Lane::ALL`] order).
    due: [Option<Instant>; 2],
    retry_at: Option<Instant>,
    /// Consecutive failed runs.
    failures: u32,
    /// Consecutive failed runs whose error the handler calls permanent.
    permanent: u32,
    /// Consecutive failed runs that made no progress: what `once` gives up on.
    stalled: u32,
    /// Whether each lane holds paths that overlap a run in flight: due when a run ends.
    held: [bool; 2],
    /// A full sync is pending or running that starts (or restarts) the watching.
    initial_pending: bool,
    verify_due: Option<Instant>,
    /// The full sync pending or in flight is a verification.
    verifying: bool,
    /// The last change read or run finished (for `once`).
    last_activity: Instant,
    /// The newest successful run: an older one succeeding after it finished out of order.
    newest_done: u64,
    /// Consecutive failures to watch the source.
    source_failures: u32,
    /// The watch limit left part of the tree unwatched: when to rescan it next.
    unwatched_due: Option<Instant>,
}

impl Schedule {
    pub fn new(timing: Timing, now: Instant) -> Schedule {
        Schedule {
            timing,
            due: [None, None],
            retry_at: None,
            failures: 0,
            permanent: 0,
            stalled: 0,
            held: [false, false],
            initial_pending: false,
            verify_due: None,
            verifying: false,
            last_activity: now,
            newest_done: 0,
            source_failures: 0,
            unwatched_due: None,
        }
    }

    pub fn once(&self) -> bool {
        self.timing.once
    }

    /// Consecutive failed runs (0 when healthy).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The initial sync (or the one after the source came back) has not succeeded yet.
    pub fn initial_pending(&self) -> bool {
        self.initial_pending
    }

    /// The source cannot be watched: how long to wait before trying again.
    pub fn source_unwatchable(&mut self) -> Duration {
        self.source_failures += 1;
        backoff(self.source_failures, SOURCE_WAIT_FIRST, SOURCE_WAIT_MAX)
    }

    /// The source is watched again.
    pub fn source_watched(&mut self) {
        self.source_failures = 0;
        self.unwatched_due = None;
    }

    /// True when the directories the watch limit left unwatched (`unwatched` of them) are to
    /// be rescanned now: every [`UNWATCHED_RESCAN`] while there are any.
    pub fn rescan_unwatched(&mut self, now: Instant, unwatched: usize) -> bool {
        if unwatched == 0 {
            self.unwatched_due = None;
            return false;
        }
        if self.unwatched_due.is_some_and(|d| d > now) {
            return false;
        }
        let due = self.unwatched_due.is_some();
        self.unwatched_due = Some(now + UNWATCHED_RESCAN);
        due
    }

    /// A full sync is needed now (start, or a source that came back); the big lane is
    /// folded into it.
    pub fn begin_full_sync(&mut self, now: Instant) {
        self.due = [Some(now), None];
        self.initial_pending = true;
    }

    /// The source is gone: nothing is due until it is watched again.
    pub fn source_lost(&mut self) {
        self.due = [None, None];
    }

    /// Changes were read from the monitor.
    pub fn changes_read(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// A change went into the normal lane: it is due after the job's delay, unless it
    /// already is.
    pub fn change_queued(&mut self, now: Instant) {
        self.due[Lane::Normal.index()].get_or_insert(now + self.timing.delay);
    }

    /// The tree was rescanned: the normal lane covers everything, the big lane is dropped.
    pub fn rescanned(&mut self) {
        self.due[Lane::Big.index()] = None;
    }

    /// True when the periodic verification is due now: the normal lane becomes a full
    /// sync, due at once.
    pub fn start_verification(&mut self, now: Instant) -> bool {
        if self.verify_due.is_none_or(|d| d > now) {
            return false;
        }
        self.verify_due = None;
        self.verifying = true;
        self.due[Lane::Normal.index()].get_or_insert(now);
        true
    }

    /// Whether `lane`'s batch may be taken and run now.
    pub fn may_dispatch(&self, lane: Lane, now: Instant, idle_workers: usize) -> bool {
        self.retry_at.is_none_or(|r| r <= now)
            && idle_workers > 0
            && self.due[lane.index()].is_some_and(|d| d <= now)
    }

    /// Whether the normal lane's big files move to the big lane before it runs (not in a
    /// `once` run, which copies while the files change).
    pub fn holds_big_files(&self) -> bool {
        !self.timing.once && self.timing.big_file_delay.is_some()
    }

    /// Big files moved to the big lane: due after the big-file delay, unless already due.
    pub fn big_files_held(&mut self, now: Instant) {
        let delay = self.timing.big_file_delay.unwrap_or_default();
        self.due[Lane::Big.index()].get_or_insert(now + delay);
    }

    /// `lane`'s batch was taken (a full one takes the big lane's changes too).
    pub fn taken(&mut self, lane: Lane, full: bool) {
        self.due[lane.index()] = None;
        if full {
            self.due[Lane::Big.index()] = None;
        }
    }

    /// What `lane` could not start overlaps a run in flight: it was put back, due when the
    /// window of a change queued meanwhile closes, or else when a run ends.
    pub fn held(&mut self, lane: Lane) {
        self.due[lane.index()] = None;
        self.held[lane.index()] = true;
    }

    /// The daemon stops: the last sync of what is pending does not wait for a retry time.
    pub fn stopping(&mut self) {
        self.retry_at = None;
    }

    /// The next time something is due: a lane (not before a retry time, and only while a
    /// worker is free), a verification or a rescan of unwatched directories. `None`:
    /// nothing until an event comes.
    pub fn next_wake(&self, load: &Load) -> Option<Instant> {
        let mut next = [self.verify_due, self.unwatched_due]
            .into_iter()
            .flatten()
            .min();
        if load.idle_workers > 0 {
            for lane in Lane::ALL {
                if let Some(due) = self.due[lane.index()].filter(|_| load.queued[lane.index()]) {
                    let due = self.retry_at.map_or(due, |r| r.max(due));
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }

    /// For a `once` run: end when idle (initial sync done, nothing queued or running, no
    /// failure waiting for a retry) for the job's delay, or give up after
    /// [`ONCE_MAX_FAILURES`] runs without progress.
    pub fn once_check(&self, now: Instant, load: &Load) -> OnceCheck {
        let idle = !self.initial_pending
            && load.queued == [false, false]
            && load.busy_workers == 0
            && self.failures == 0;
        let quiet_at = idle.then(|| self.last_activity + self.timing.delay.max(ONCE_MIN_QUIET));
        match quiet_at {
            Some(d) if d <= now => OnceCheck::Quiet,
            _ if self.stalled >= ONCE_MAX_FAILURES => OnceCheck::GiveUp,
            d => OnceCheck::Continue(d),
        }
    }

    /// A run ended; returns what follows.
    pub fn run_done(
        &mut self,
        now: Instant,
        id: u64,
        outcome: RunOutcome,
    ) -> Result<Success, Failure> {
        self.last_activity = now;
        for lane in Lane::ALL {
            if std::mem::take(&mut self.held[lane.index()]) {
                self.due[lane.index()].get_or_insert(now);
            }
        }
        match outcome {
            RunOutcome::Succeeded { full } => Ok(self.succeeded(now, id, full)),
            RunOutcome::Failed {
                progressed,
                permanent,
            } => Err(self.failed(now, progressed, permanent)),
        }
    }

    fn succeeded(&mut self, now: Instant, id: u64, full: bool) -> Success {
        let out_of_order = id < self.newest_done;
        self.newest_done = self.newest_done.max(id);
        let resync_ancestors = out_of_order && !full && self.timing.resync_ancestors;
        if resync_ancestors {
            self.change_queued(now);
        }
        let recovered_after = std::mem::take(&mut self.failures);
        self.permanent = 0;
        self.stalled = 0;
        self.retry_at = None;
        if full && let Some(every) = self.timing.verify_interval {
            self.verify_due = Some(now + every);
        }
        let verified = full && std::mem::take(&mut self.verifying) && !self.initial_pending;
        let initial_done = full && std::mem::take(&mut self.initial_pending);
        Success {
            recovered_after,
            resync_ancestors,
            verified,
            initial_done,
        }
    }

    fn failed(&mut self, now: Instant, progressed: bool, permanent: bool) -> Failure {
        self.failures += 1;
        if !progressed {
            self.stalled += 1;
        }
        let r = &self.timing.retry;
        let retry_in = backoff(self.failures, r.delay, r.max_delay);
        self.permanent = if permanent { self.permanent + 1 } else { 0 };
        let hopeless = self.permanent >= PERMANENT_AFTER;
        // Past `retries` attempts the job is reported failed, but it keeps its changes and
        // keeps trying at the capped interval: nothing is lost when the target comes back.
        let exhausted = r.retries > 0 && self.failures >= r.retries;
        let alarm = if self.permanent == PERMANENT_AFTER {
            Alarm::Hopeless
        } else if exhausted && self.failures == r.retries {
            Alarm::Exhausted
        } else {
            Alarm::Retrying
        };
        self.retry_at = Some(now + retry_in);
        self.due[Lane::Normal.index()].get_or_insert(now);
        Failure {
            attempt: self.failures,
            retry_in,
            alarm,
            hopeless,
            failed: exhausted || hopeless,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timing() -> Timing {
        Timing {
            delay: S,
            retry: RetryOptions {
                retries: 3,
                delay: S,
                max_delay: 4 * S,
            },
            verify_interval: Some(100 * S),
            big_file_delay: Some(10 * S),
            once: false,
            resync_ancestors: true,
        }
    }

    fn ok(full: bool) -> RunOutcome {
        RunOutcome::Succeeded { full }
    }

    fn err(progressed: bool, permanent: bool) -> RunOutcome {
        RunOutcome::Failed {
            progressed,
            permanent,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cases = [(0, 1), (1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8)];
        for (failures, want) in cases {
            assert_eq!(
                backoff(failures, S, 8 * S),
                want * S,
                "after {failures} failures"
            );
        }
        assert_eq!(
            backoff(u32::MAX, Duration::MAX, Duration::MAX),
            Duration::MAX
        );
    }

    /// A schedule at time `t0` after `setup`, then one more step; checks what the step
    /// decided and what the schedule says next.
    struct Case {
        name: &'static str,
        setup: fn(&mut Schedule, Instant),
        /// Which lanes may run at `t0 + at` with one idle worker.
        at: Duration,
        dispatch: [bool; 2],
    }

    /// Which lanes may run after each setup.
    const LANE_CASES: &[Case] = &[
        Case {
            name: "nothing queued",
            setup: |_, _| {},
            at: Duration::from_secs(5),
            dispatch: [false, false],
        },
        Case {
            name: "a change waits the delay",
            setup: |s, t| s.change_queued(t),
            at: Duration::from_millis(500),
            dispatch: [false, false],
        },
        Case {
            name: "a change is due after the delay",
            setup: |s, t| s.change_queued(t),
            at: S,
            dispatch: [true, false],
        },
        Case {
            name: "later changes do not push the deadline",
            setup: |s, t| {
                s.change_queued(t);
                s.change_queued(t + S / 2);
            },
            at: S,
            dispatch: [true, false],
        },
        Case {
            name: "a full sync is due at once",
            setup: |s, t| s.begin_full_sync(t),
            at: Duration::ZERO,
            dispatch: [true, false],
        },
        Case {
            name: "big files wait their own delay",
            setup: |s, t| s.big_files_held(t),
            at: Duration::from_secs(9),
            dispatch: [false, false],
        },
        Case {
            name: "big files are due after it",
            setup: |s, t| s.big_files_held(t),
            at: Duration::from_secs(10),
            dispatch: [false, true],
        },
        Case {
            name: "a rescan drops the big lane",
            setup: |s, t| {
                s.big_files_held(t);
                s.rescanned();
            },
            at: Duration::from_secs(10),
            dispatch: [false, false],
        },
        Case {
            name: "a full batch takes the big lane too",
            setup: |s, t| {
                s.begin_full_sync(t);
                s.big_files_held(t);
                s.taken(Lane::Normal, true);
            },
            at: Duration::from_secs(10),
            dispatch: [false, false],
        },
        Case {
            name: "paths overlapping a run wait for it to end",
            setup: |s, t| {
                s.change_queued(t);
                s.taken(Lane::Normal, false);
                s.held(Lane::Normal);
            },
            at: Duration::from_secs(10),
            dispatch: [false, false],
        },
        Case {
            name: "a held normal lane does not hold the big lane",
            setup: |s, t| {
                s.big_files_held(t);
                s.held(Lane::Normal);
            },
            at: Duration::from_secs(10),
            dispatch: [false, true],
        },
        Case {
            name: "a run ending makes held paths due at once",
            setup: |s, t| {
                s.held(Lane::Normal);
                let _ = s.run_done(t, 1, ok(false));
            },
            at: Duration::ZERO,
            dispatch: [true, false],
        },
        Case {
            name: "a run ending does not hurry a lane that holds nothing",
            setup: |s, t| {
                s.change_queued(t);
                let _ = s.run_done(t, 1, ok(false));
            },
            at: Duration::from_millis(500),
            dispatch: [false, false],
        },
        Case {
            name: "a change after the hold waits for its own window",
            setup: |s, t| {
                s.held(Lane::Normal);
                s.change_queued(t);
            },
            at: Duration::from_millis(500),
            dispatch: [false, false],
        },
        Case {
            name: "whose closing is due, a run in flight or not",
            setup: |s, t| {
                s.held(Lane::Normal);
                s.change_queued(t);
            },
            at: S,
            dispatch: [true, false],
        },
        Case {
            name: "held paths go with a window open when a run ends",
            setup: |s, t| {
                s.held(Lane::Normal);
                s.change_queued(t);
                let _ = s.run_done(t, 1, ok(false));
            },
            at: Duration::from_millis(500),
            dispatch: [false, false],
        },
        Case {
            name: "when it closes",
            setup: |s, t| {
                s.held(Lane::Normal);
                s.change_queued(t);
                let _ = s.run_done(t, 1, ok(false));
            },
            at: S,
            dispatch: [true, false],
        },
        Case {
            name: "a run ending is due only once",
            setup: |s, t| {
                s.held(Lane::Normal);
                let _ = s.run_done(t, 1, ok(false));
                s.taken(Lane::Normal, false);
                let _ = s.run_done(t, 2, ok(false));
            },
            at: Duration::from_secs(10),
            dispatch: [false, false],
        },
        Case {
            name: "a failed batch waits for its retry",
            setup: |s, t| {
                let _ = s.run_done(t, 1, err(false, false));
            },
            at: Duration::from_millis(500),
            dispatch: [false, false],
        },
        Case {
            name: "and is retried then",
            setup: |s, t| {
                let _ = s.run_done(t, 1, err(false, false));
            },
            at: S,
            dispatch: [true, false],
        },
        Case {
            name: "stopping does not wait for the retry",
            setup: |s, t| {
                let _ = s.run_done(t, 1, err(false, false));
                s.stopping();
            },
            at: Duration::ZERO,
            dispatch: [true, false],
        },
        Case {
            name: "the source gone: nothing is due",
            setup: |s, t| {
                s.begin_full_sync(t);
                s.big_files_held(t);
                s.source_lost();
            },
            at: Duration::from_secs(20),
            dispatch: [false, false],
        },
    ];

    #[test]
    fn lanes_are_due_after_their_delay_and_wait_for_retries_and_conflicts() {
        let t0 = Instant::now();
        for c in LANE_CASES {
            let mut s = Schedule::new(timing(), t0);
            (c.setup)(&mut s, t0);
            let got = Lane::ALL.map(|l| s.may_dispatch(l, t0 + c.at, 1));
            assert_eq!(got, c.dispatch, "{}", c.name);
            let none_idle = Lane::ALL.map(|l| s.may_dispatch(l, t0 + c.at, 0));
            assert_eq!(none_idle, [false, false], "{}: no idle worker", c.name);
        }
    }

    #[test]
    fn failures_back_off_and_are_reported_failed_after_retries() {
        // (outcome, expected attempt, wait in s, alarm, failed, hopeless)
        let cases = [
            (err(false, false), 1, 1, Alarm::Retrying, false, false),
            (err(false, false), 2, 2, Alarm::Retrying, false, false),
            (err(false, false), 3, 4, Alarm::Exhausted, true, false),
            (err(false, false), 4, 4, Alarm::Retrying, true, false),
            (err(false, true), 5, 4, Alarm::Retrying, true, false),
            (err(false, true), 6, 4, Alarm::Retrying, true, false),
            (err(false, true), 7, 4, Alarm::Hopeless, true, true),
            (err(false, true), 8, 4, Alarm::Retrying, true, true),
            (err(false, false), 9, 4, Alarm::Retrying, true, false),
        ];
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(), t0);
        for (i, (outcome, attempt, wait, alarm, failed, hopeless)) in cases.into_iter().enumerate()
        {
            let f = s.run_done(t0, i as u64 + 1, outcome).unwrap_err();
            let want = Failure {
                attempt,
                retry_in: wait * S,
                alarm,
                failed,
                hopeless,
            };
            assert_eq!(f, want, "failure {}", i + 1);
            assert_eq!(s.failures(), attempt);
        }
        let ok = s.run_done(t0, 10, ok(false)).unwrap();
        assert_eq!(ok.recovered_after, 9);
        assert_eq!(s.failures(), 0);
        assert!(
            s.may_dispatch(Lane::Normal, t0, 1),
            "the retry time is cleared"
        );
    }

    #[test]
    fn never_reported_failed_with_retries_zero() {
        let mut t = timing();
        t.retry.retries = 0;
        let t0 = Instant::now();
        let mut s = Schedule::new(t, t0);
        for id in 1..10 {
            let f = s.run_done(t0, id, err(false, false)).unwrap_err();
            assert_eq!(
                (f.alarm, f.failed),
                (Alarm::Retrying, false),
                "failure {id}"
            );
        }
    }

    #[test]
    fn successes_tell_initial_sync_verification_and_order() {
        // (setup, run id, outcome) → expected success
        type Setup = fn(&mut Schedule, Instant);
        let cases: [(&str, Setup, u64, RunOutcome, Success); 6] = [
            (
                "a partial batch",
                |_, _| {},
                1,
                ok(false),
                Success::default(),
            ),
            (
                "the initial sync",
                |s, t| s.begin_full_sync(t),
                1,
                ok(true),
                Success {
                    initial_done: true,
                    ..Success::default()
                },
            ),
            (
                "a partial batch during the initial sync",
                |s, t| s.begin_full_sync(t),
                1,
                ok(false),
                Success::default(),
            ),
            (
                "a verification",
                |s, t| {
                    let _ = s.run_done(t, 1, ok(true));
                    assert!(!s.start_verification(t + 99 * S));
                    assert!(s.start_verification(t + 100 * S));
                },
                2,
                ok(true),
                Success {
                    verified: true,
                    ..Success::default()
                },
            ),
            (
                "an older run after a newer one",
                |s, t| {
                    let _ = s.run_done(t, 3, ok(false));
                },
                2,
                ok(false),
                Success {
                    resync_ancestors: true,
                    ..Success::default()
                },
            ),
            (
                "an older full sync after a newer run",
                |s, t| {
                    let _ = s.run_done(t, 3, ok(false));
                },
                2,
                ok(true),
                Success::default(),
            ),
        ];
        let t0 = Instant::now();
        for (name, setup, id, outcome, want) in cases {
            let mut s = Schedule::new(timing(), t0);
            setup(&mut s, t0);
            assert_eq!(s.run_done(t0, id, outcome), Ok(want), "{name}");
        }
    }

    #[test]
    fn the_mirror_does_not_resync_ancestors() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Timing {
                resync_ancestors: false,
                ..timing()
            },
            t0,
        );
        let _ = s.run_done(t0, 3, ok(false));
        assert_eq!(s.run_done(t0, 2, ok(false)), Ok(Success::default()));
    }

    #[test]
    fn next_wake_is_the_earliest_due_lane_or_verification() {
        let t0 = Instant::now();
        let queued = Load {
            queued: [true, true],
            idle_workers: 1,
            busy_workers: 0,
        };
        let mut s = Schedule::new(timing(), t0);
        assert_eq!(s.next_wake(&queued), None);
        s.big_files_held(t0);
        s.change_queued(t0);
        assert_eq!(s.next_wake(&queued), Some(t0 + S));
        let empty_normal = Load {
            queued: [false, true],
            ..queued
        };
        assert_eq!(s.next_wake(&empty_normal), Some(t0 + 10 * S));
        let busy = Load {
            idle_workers: 0,
            ..queued
        };
        assert_eq!(s.next_wake(&busy), None, "no worker free");
        let _ = s.run_done(t0, 1, err(false, false));
        let _ = s.run_done(t0, 2, err(false, false));
        assert_eq!(s.next_wake(&queued), Some(t0 + 2 * S), "the retry time");
        let _ = s.run_done(t0, 3, ok(true));
        assert_eq!(
            s.next_wake(&Load::default()),
            Some(t0 + 100 * S),
            "verification"
        );
    }

    #[test]
    fn once_ends_when_quiet_or_gives_up() {
        let once = Timing {
            once: true,
            ..timing()
        };
        let idle = Load::default();
        let t0 = Instant::now();
        let mut s = Schedule::new(once.clone(), t0);
        assert!(!s.holds_big_files(), "once copies big files at once");
        s.begin_full_sync(t0);
        assert_eq!(
            s.once_check(t0 + 5 * S, &idle),
            OnceCheck::Continue(None),
            "initial sync pending"
        );
        let _ = s.run_done(t0, 1, ok(true));
        assert_eq!(s.once_check(t0, &idle), OnceCheck::Continue(Some(t0 + S)));
        let queued = Load {
            queued: [true, false],
            ..idle
        };
        assert_eq!(s.once_check(t0 + S, &queued), OnceCheck::Continue(None));
        assert_eq!(s.once_check(t0 + S, &idle), OnceCheck::Quiet);
        s.changes_read(t0 + S);
        assert_eq!(
            s.once_check(t0 + S, &idle),
            OnceCheck::Continue(Some(t0 + 2 * S))
        );

        let mut s = Schedule::new(
            Timing {
                delay: Duration::ZERO,
                ..once
            },
            t0,
        );
        assert_eq!(
            s.once_check(t0, &idle),
            OnceCheck::Continue(Some(t0 + ONCE_MIN_QUIET))
        );
        for id in 1..ONCE_MAX_FAILURES as u64 {
            let _ = s.run_done(t0, id, err(false, false));
            let _ = s.run_done(t0, 100 + id, err(true, false));
            assert_eq!(s.once_check(t0, &idle), OnceCheck::Continue(None));
        }
        let _ = s.run_done(t0, 99, err(false, false));
        assert_eq!(s.once_check(t0, &idle), OnceCheck::GiveUp);
    }

    #[test]
    fn unwatched_directories_are_rescanned_periodically() {
        let t0 = Instant::now();
        let r = UNWATCHED_RESCAN;
        // (time, unwatched directories, rescan now?)
        let steps = [
            (t0, 0, false),
            (t0, 3, false),
            (t0 + r / 2, 3, false),
            (t0 + r, 3, true),
            (t0 + r + r / 2, 3, false),
            (t0 + 2 * r, 0, false),
            (t0 + 2 * r, 2, false),
            (t0 + 3 * r, 2, true),
        ];
        let mut s = Schedule::new(timing(), t0);
        for (i, (now, unwatched, want)) in steps.into_iter().enumerate() {
            assert_eq!(s.rescan_unwatched(now, unwatched), want, "step {i}");
        }
        assert_eq!(s.next_wake(&Load::default()), Some(t0 + 4 * r));
        s.source_watched();
        assert_eq!(s.next_wake(&Load::default()), None);
    }

    #[test]
    fn a_missing_source_is_retried_with_backoff() {
        let mut s = Schedule::new(timing(), Instant::now());
        let waits: Vec<u64> = (0..7).map(|_| s.source_unwatchable().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        s.source_watched();
        assert_eq!(s.source_unwatchable(), S);
    }
}
