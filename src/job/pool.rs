//! A job's worker pool: threads that run the handler on batches and report back.
//!
//! With the job's sandbox on, each run gets a thread of its own that enters the sandbox
//! before running the handler ([`crate::sandbox`]: Landlock restricts a thread for good,
//! and what it starts inherits that); the worker itself stays unrestricted, so the next
//! run's rules are made afresh (a destination removed and made again is a new inode).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};
use tracing::Span;

use crate::handler::{Batch, Handler, HandlerError, Outcome};
use crate::sandbox::Policy;

/// A finished handler run.
pub struct Done {
    pub id: u64,
    pub batch: Batch,
    pub result: Result<Outcome, HandlerError>,
    pub took: Duration,
}

pub struct Pool {
    work: Option<Sender<(u64, Batch)>>,
    threads: Vec<JoinHandle<()>>,
    busy: usize,
}

impl Pool {
    /// Starts `n` workers; each finished run is sent on `done` and announced by `notify`.
    /// With a `policy`, every run is sandboxed by it.
    pub fn new(
        n: usize,
        handler: Arc<dyn Handler>,
        policy: Option<Arc<Policy>>,
        done: Sender<Done>,
        notify: Arc<dyn Fn() + Send + Sync>,
        span: Span,
    ) -> std::io::Result<Pool> {
        let (tx, rx) = unbounded::<(u64, Batch)>();
        let mut threads = Vec::with_capacity(n);
        // Whether the local destination existed once: if it vanishes later, partial batches
        // are not enough. (A destination that never existed is created by the first run,
        // which with `initial_sync = false` is rightly not a full sync.)
        let dest_seen = Arc::new(AtomicBool::new(
            handler.local_destination().is_some_and(|d| d.exists()),
        ));
        for i in 0..n {
            let (rx, handler, done, notify, span) = (
                rx.clone(),
                handler.clone(),
                done.clone(),
                notify.clone(),
                span.clone(),
            );
            let dest_seen = dest_seen.clone();
            let policy = policy.clone();
            let t = std::thread::Builder::new()
                .name(format!("clsync-worker-{i}"))
                .spawn(move || {
                    let _g = span.enter();
                    for (id, mut batch) in rx {
                        let start = Instant::now();
                        let dest = handler.local_destination();
                        if !batch.is_full()
                            && dest.is_some_and(|d| !d.exists())
                            && dest_seen.load(Ordering::SeqCst)
                        {
                            tracing::warn!(
                                "the destination directory is gone: running a full sync"
                            );
                            batch = Batch::full();
                        }
                        let batch = match handler.source() {
                            Some(src) => crate::handler::confine(src, batch),
                            None => batch,
                        };
                        let result = match &policy {
                            Some(p) => sandboxed(p, &*handler, &batch),
                            None => handler.run(&batch),
                        };
                        if result.is_ok() && dest.is_some_and(|d| d.exists()) {
                            dest_seen.store(true, Ordering::SeqCst);
                        }
                        let took = start.elapsed();
                        if done
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
                        notify();
                    }
                })?;
            threads.push(t);
        }
        Ok(Pool {
            work: Some(tx),
            threads,
            busy: 0,
        })
    }

    pub fn size(&self) -> usize {
        self.threads.len()
    }

    pub fn idle(&self) -> usize {
        self.size() - self.busy
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn submit(&mut self, id: u64, batch: Batch) {
        if let Some(tx) = &self.work
            && tx.send((id, batch)).is_ok()
        {
            self.busy += 1;
        }
    }

    /// Called for every [`Done`] received.
    pub fn finished(&mut self) {
        self.busy = self.busy.saturating_sub(1);
    }
}

/// Runs `handler` on `batch` in a thread of its own, confined by `policy`.
fn sandboxed(
    policy: &Policy,
    handler: &dyn Handler,
    batch: &Batch,
) -> Result<Outcome, HandlerError> {
    let lists = handler.prepare()?;
    let span = Span::current();
    std::thread::scope(|s| {
        let run = std::thread::Builder::new()
            .name("clsync-sandboxed".into())
            .spawn_scoped(s, || {
                let _g = span.enter();
                policy.enter(&lists).map_err(|e| {
                    HandlerError::Other(format!("cannot enter the job's sandbox: {e}"))
                })?;
                handler.run(batch)
            })
            .map_err(|e| HandlerError::Other(format!("cannot start a sandboxed run: {e}")))?;
        run.join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.work = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
