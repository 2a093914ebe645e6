//! A job's worker pool: threads that run the handler on batches and report back. Workers
//! start when a batch waits and end when none does, so a thousand idle jobs hold no worker
//! threads (and an idle job no timer).
//!
//! With the job's sandbox on, a worker hands each batch to its sandboxed companion thread
//! ([`Confined`]) and stays unrestricted itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use tracing::Span;

use crate::config::JobConfig;
use crate::handler::{Handler, HandlerError, Outcome};
use crate::model::Batch;
use crate::sandbox::Policy;

use super::confined::Confined;

/// A finished handler run.
pub struct Done {
    pub id: u64,
    pub batch: Batch,
    pub result: Result<Outcome, HandlerError>,
    pub took: Duration,
}

/// The channel on which a pool of up to `workers` workers reports finished runs.
///
/// Bounded, so that it holds no memory of its own beyond a few slots: an unbounded
/// (list-flavoured) channel keeps a 31-slot block (about 4.5 KB of `Done`s) from its
/// first message for as long as it lives, and a thousand jobs hold a thousand of them. At
/// most `workers` runs are in flight (the job submits only to an idle worker), so with
/// `workers` slots a send never waits; past [`DONE_SLOTS`] a worker whose run ends while
/// that many others wait to be collected waits for the job thread, which every one of
/// them has rung.
pub fn done_channel(workers: usize) -> (Sender<Done>, Receiver<Done>) {
    bounded(workers.clamp(1, DONE_SLOTS))
}

/// The most slots of a [`done_channel`].
const DONE_SLOTS: usize = 4;

/// What every worker of a pool shares.
struct Crew {
    /// The batches waiting for a worker. Not a channel: its buffer is let go whenever it
    /// empties, so an idle job holds none (see [`done_channel`]).
    work: Mutex<VecDeque<(u64, Batch)>>,
    handler: Arc<dyn Handler>,
    /// The job, when its runs are sandboxed: each worker makes the [`Policy`] it needs
    /// when it starts, and lets it go when it ends (a thousand idle jobs need none).
    sandbox: Option<Arc<JobConfig>>,
    done: Sender<Done>,
    notify: Arc<dyn Fn() + Send + Sync>,
    span: Span,
    /// Whether the local destination existed once: if it vanishes later, partial batches
    /// are not enough. (A destination that never existed is created by the first run,
    /// which with `initial_sync = false` is rightly not a full sync.)
    dest_seen: AtomicBool,
    /// Workers running now.
    alive: AtomicUsize,
}

/// Up to `n` workers, started when batches wait and ended when none does: an idle job holds
/// no worker thread and no timer.
pub struct Pool {
    n: usize,
    crew: Arc<Crew>,
    busy: usize,
}

impl Pool {
    /// A pool of at most `n` workers; each finished run is sent on `done` and announced by
    /// `notify`. With `sandbox`, every run is sandboxed by the job's [`Policy`].
    pub fn new(
        n: usize,
        handler: Arc<dyn Handler>,
        sandbox: Option<Arc<JobConfig>>,
        done: Sender<Done>,
        notify: Arc<dyn Fn() + Send + Sync>,
        span: Span,
    ) -> std::io::Result<Pool> {
        let dest_seen = AtomicBool::new(handler.local_destination().is_some_and(|d| d.exists()));
        let crew = Arc::new(Crew {
            work: Mutex::default(),
            handler,
            sandbox,
            done,
            notify,
            span,
            dest_seen,
            alive: AtomicUsize::new(0),
        });
        Ok(Pool {
            n: n.max(1),
            crew,
            busy: 0,
        })
    }

    pub fn size(&self) -> usize {
        self.n
    }

    pub fn idle(&self) -> usize {
        self.size().saturating_sub(self.busy)
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn submit(&mut self, id: u64, batch: Batch) {
        self.crew.queue().push_back((id, batch));
        self.busy += 1;
        // Sent first, counted after: a worker that is leaving either sees this batch or is
        // no longer counted here (see `Crew::next`).
        if self.crew.alive.load(Ordering::SeqCst) < self.busy.min(self.n) {
            self.crew.alive.fetch_add(1, Ordering::SeqCst);
            let crew = self.crew.clone();
            // Detached: a worker's stack goes when it ends (a kept handle would hold it).
            match std::thread::Builder::new()
                .name("clsync-worker".into())
                .spawn(move || crew.work())
            {
                Ok(_) => {}
                Err(e) => {
                    self.crew.alive.fetch_sub(1, Ordering::SeqCst);
                    tracing::error!("cannot start a worker thread: {e}");
                }
            }
        }
    }

    /// A [`Done`] was received: its worker is free for the next batch.
    pub fn collect(&mut self) {
        self.busy = self.busy.saturating_sub(1);
    }
}

impl Crew {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Batch)>> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A waiting batch, if any; the queue's buffer goes when it empties.
    fn take(&self) -> Option<(u64, Batch)> {
        let mut q = self.queue();
        let b = q.pop_front();
        if q.is_empty() && q.capacity() > 0 {
            *q = VecDeque::new();
        }
        b
    }

    /// A worker: runs batches while some wait, then ends.
    fn work(&self) {
        let _g = self.span.enter();
        let mut confined = self
            .sandbox
            .as_deref()
            .and_then(Policy::for_job)
            .map(|p| Confined::new(Arc::new(p), self.handler.clone(), self.span.clone()));
        while let Some((id, batch)) = self.next() {
            let start = Instant::now();
            let (batch, result) = self.run(batch, &mut confined);
            let took = start.elapsed();
            if self
                .done
                .send(Done {
                    id,
                    batch,
                    result,
                    took,
                })
                .is_err()
            {
                break;
            }
            (self.notify)();
        }
    }

    /// The next waiting batch, or `None` (the worker has left the count then).
    fn next(&self) -> Option<(u64, Batch)> {
        if let Some(b) = self.take() {
            return Some(b);
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
        // A batch sent before the submitter read the count is taken here.
        let b = self.take();
        if b.is_some() {
            self.alive.fetch_add(1, Ordering::SeqCst);
        }
        b
    }

    fn run(&self, mut batch: Batch, confined: &mut Option<Confined>) -> (Batch, RunResult) {
        let dest = self.handler.local_destination();
        if !batch.is_full()
            && dest.is_some_and(|d| !d.exists())
            && self.dest_seen.load(Ordering::SeqCst)
        {
            tracing::warn!("the destination directory is gone: running a full sync");
            batch = Batch {
                deletes: batch.deletes,
                ..Batch::full()
            };
        }
        let batch = match self.handler.source() {
            Some(src) => crate::handler::confine(src, batch),
            None => batch,
        };
        let (batch, result) = match confined {
            Some(c) => c.run(batch),
            None => {
                let r = self.handler.run(&batch);
                (batch, r)
            }
        };
        if result.is_ok() && dest.is_some_and(|d| d.exists()) {
            self.dest_seen.store(true, Ordering::SeqCst);
        }
        (batch, result)
    }
}

type RunResult = Result<Outcome, HandlerError>;
