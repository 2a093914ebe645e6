//! A job's worker pool: threads that run the handler on batches and report back. Workers
//! start when a batch waits and end when none does, so a thousand idle jobs hold no worker
//! threads (and an idle job no timer).
//!
//! With the job's sandbox on, a worker hands each batch to its sandboxed companion thread
//! ([`Confined`]) and stays unrestricted itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use tracing::Span;

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

/// What every worker of a pool shares.
struct Crew {
    rx: Receiver<(u64, Batch)>,
    handler: Arc<dyn Handler>,
    policy: Option<Arc<Policy>>,
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
    work: Sender<(u64, Batch)>,
    crew: Arc<Crew>,
    busy: usize,
}

impl Pool {
    /// A pool of at most `n` workers; each finished run is sent on `done` and announced by
    /// `notify`. With a `policy`, every run is sandboxed by it.
    pub fn new(
        n: usize,
        handler: Arc<dyn Handler>,
        policy: Option<Arc<Policy>>,
        done: Sender<Done>,
        notify: Arc<dyn Fn() + Send + Sync>,
        span: Span,
    ) -> std::io::Result<Pool> {
        let (tx, rx) = unbounded::<(u64, Batch)>();
        let dest_seen = AtomicBool::new(handler.local_destination().is_some_and(|d| d.exists()));
        let crew = Arc::new(Crew {
            rx,
            handler,
            policy,
            done,
            notify,
            span,
            dest_seen,
            alive: AtomicUsize::new(0),
        });
        Ok(Pool {
            n: n.max(1),
            work: tx,
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
        if self.work.send((id, batch)).is_err() {
            return;
        }
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
    /// A worker: runs batches while some wait, then ends.
    fn work(&self) {
        let _g = self.span.enter();
        let mut confined = self
            .policy
            .clone()
            .map(|p| Confined::new(p, self.handler.clone(), self.span.clone()));
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
        if let Ok(b) = self.rx.try_recv() {
            return Some(b);
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
        // A batch sent before the submitter read the count is taken here.
        match self.rx.try_recv() {
            Ok(b) => {
                self.alive.fetch_add(1, Ordering::SeqCst);
                Some(b)
            }
            Err(_) => None,
        }
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
