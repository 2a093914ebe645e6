//! A job's worker pool: threads that run the handler on batches and report back.
//!
//! With the job's sandbox on, a worker hands each batch to its sandboxed companion thread
//! ([`Confined`]) and stays unrestricted itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};
use tracing::Span;

use crate::handler::{Batch, Handler, HandlerError, Outcome};
use crate::sandbox::Policy;

use super::confined::Confined;

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
                    let mut confined =
                        policy.map(|p| Confined::new(p, handler.clone(), span.clone()));
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
                        let (batch, result) = match &mut confined {
                            Some(c) => c.run(batch),
                            None => {
                                let r = handler.run(&batch);
                                (batch, r)
                            }
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

impl Drop for Pool {
    fn drop(&mut self) {
        self.work = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
