//! One sync job: a thread that watches the source and batches changes (`runner`), the
//! decisions of when to sync (`schedule`), and a worker pool that runs the handler
//! (`pool`) chosen for the job's mode (`factory`). The targets of a fan-out share the
//! monitor of their job file's `hub` instead of each watching the source.
//!
//! [`Job`] is what the supervisor (and `clsync sync`) holds: start it, read its status,
//! stop it. Stopping is graceful: runs in flight finish and what is pending is synced once
//! more.

mod bell;
mod confined;
pub mod counters;
mod factory;
mod hub;
mod inflight;
mod loop_guard;
mod pool;
mod runner;
mod schedule;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use tracing::info_span;

use crate::config::JobConfig;
use crate::handler::tally::Tally;
use bell::Bell;
use inflight::InFlight;
use pool::Pool;
use runner::Runner;
use schedule::{Schedule, Timing};
use status::SharedStatus;
pub use status::{State, Status};

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
    /// Full syncs report their progress ([`Job::tally`]) in every mode that can: `clsync
    /// sync`'s display. The mirror always counts; rsync then follows its own progress.
    pub progress: bool,
}

/// A running job, as the supervisor holds it.
pub struct Job {
    config: Arc<JobConfig>,
    /// The handler's live counters, when it keeps them.
    tally: Option<Arc<Tally>>,
    status: SharedStatus,
    stop: Arc<AtomicBool>,
    bell: Arc<Bell>,
    thread: Option<JoinHandle<()>>,
}

impl Job {
    /// Starts the job's thread. Fails only when the job cannot be set up at all (a mode its
    /// destination cannot take, no threads); a missing source is waited for by the running job.
    pub fn start(config: JobConfig, opts: JobOptions) -> anyhow::Result<Job> {
        let config = Arc::new(config);
        let filter = config.filter();
        let handler = factory::handler_for(&config, &filter, opts.progress)?;
        let tally = handler.tally();
        let status = SharedStatus::new(opts.notify.clone());
        let bell = Arc::new(Bell::new());
        let stop = Arc::new(AtomicBool::new(false));
        let span = info_span!("job", name = %config.name);
        let (done_tx, done_rx) = pool::done_channel(config.workers);
        let ring = bell.clone();
        // The policy itself is made by each worker (see `Pool::new`).
        let sandbox = (config.sandbox.enabled
            && crate::sandbox::support() != crate::sandbox::State::Unsupported)
            .then(|| config.clone());
        // A fan-out target subscribes now, before its thread asks for anything: the hub's
        // `Watched` then comes after the subscription (see `hub`). `once` runs alone.
        let feed = match (&config.target_of, opts.once) {
            (Some(_), false) => Some(hub::join(&config, bell.clone(), status.clone())?),
            _ => None,
        };
        let pool = Pool::new(
            config.workers,
            handler.clone(),
            sandbox,
            done_tx,
            Arc::new(move || ring.ring()),
            span.clone(),
        )?;
        let runner = Runner {
            handler,
            cfg: config.clone(),
            filter,
            status: status.clone(),
            stop: stop.clone(),
            bell: bell.clone(),
            done: done_rx,
            pool,
            queues: Default::default(),
            inflight: InFlight::default(),
            next_id: 0,
            schedule: Schedule::new(Timing::of(&config, opts.once), Instant::now()),
            stopping: false,
            force_initial: opts.force_initial_sync,
            starting: false,
            guard: config.loop_guard.then(loop_guard::LoopGuard::default),
            reported: false,
            feed,
        };
        let thread = std::thread::Builder::new()
            .name(format!("clsync-job-{}", config.name))
            .spawn(move || {
                let _g = span.enter();
                runner.run();
            })?;
        Ok(Job {
            config,
            tally,
            status,
            stop,
            bell,
            thread: Some(thread),
        })
    }

    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// The job's status, the handler's live counters included.
    pub fn status(&self) -> Status {
        let mut s = self.status.snapshot();
        if let Some(t) = &self.tally {
            s.counters.copied_bytes = t.read().copied;
        }
        s
    }

    /// The handler's live counters (objects made equal, bytes copied), when it keeps them:
    /// the mirror, and rsync's fallback engine. `clsync sync` shows them as progress.
    pub fn tally(&self) -> Option<Arc<Tally>> {
        self.tally.clone()
    }

    /// Asks the job to stop: it finishes the runs in flight, syncs what is pending once
    /// more, and ends. Returns at once; [`join`](Self::join) waits.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.bell.ring();
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
