//! A pool worker's sandboxed companion: a thread that entered the job's sandbox
//! ([`crate::sandbox`]) and runs the handler on the batches its worker hands it.
//!
//! Landlock restricts a thread for good, so the worker itself stays unrestricted: before
//! each run it makes ready what the run writes into ([`Handler::prepare`]) and checks that
//! the companion's rules still fit ([`Policy::key`]: the source, destination, lists
//! directories and programs are the same ones); if not, or when the previous run failed (a
//! path the run needed may have appeared since), it replaces the companion by one with
//! rules made now. Making rules costs a few hundred microseconds; a companion kept for the
//! next runs costs a message each. A companion lives as long as its worker (see
//! [`super::pool`]).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use tracing::Span;

use crate::handler::{Handler, HandlerError, Outcome};
use crate::model::Batch;
use crate::sandbox::Policy;

type Done = (Batch, Result<Outcome, HandlerError>);

/// A worker's companion, replaced when its rules no longer fit.
pub struct Confined {
    policy: Arc<Policy>,
    handler: Arc<dyn Handler>,
    span: Span,
    current: Option<Companion>,
    /// The last run failed: the next one gets rules made then.
    stale: bool,
}

struct Companion {
    key: Vec<Option<(u64, u64)>>,
    /// `None` once let go.
    work: Option<Sender<Batch>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Confined {
    /// No companion yet: the first run starts it, with rules for what that run writes
    /// into (its lists directory included).
    pub fn new(policy: Arc<Policy>, handler: Arc<dyn Handler>, span: Span) -> Confined {
        Confined {
            policy,
            handler,
            span,
            current: None,
            stale: false,
        }
    }

    /// Runs `batch` in the sandbox; gives it back with the result.
    pub fn run(&mut self, batch: Batch) -> Done {
        let lists = match self.handler.prepare() {
            Ok(l) => l,
            Err(e) => return (batch, Err(e)),
        };
        let key = self.policy.key(&lists);
        if (self.stale || self.current.as_ref().is_none_or(|c| c.key != key))
            && let Err(e) = self.replace(&lists, key)
        {
            return (batch, Err(e));
        }
        let (batch, result) = self.hand_over(batch);
        self.stale = result.is_err();
        (batch, result)
    }

    /// Sends `batch` to the companion and waits for its run; a companion that panicked
    /// passes the panic on.
    fn hand_over(&mut self, batch: Batch) -> Done {
        let c = self.current.as_mut().expect("a companion");
        if let Some(w) = &c.work
            && w.send(batch).is_ok()
            && let Ok(done) = c.done.recv()
        {
            return done;
        }
        c.work = None;
        let thread = c.thread.take().expect("a running companion");
        self.current = None;
        match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("a companion ends only when its worker lets it go"),
        }
    }

    /// Ends the current companion and starts one with rules made now for `lists` (the
    /// thread is replaced, so a job's threads do not vary).
    fn replace(
        &mut self,
        lists: &[std::path::PathBuf],
        key: Vec<Option<(u64, u64)>>,
    ) -> Result<(), HandlerError> {
        self.current = None;
        let rules = self
            .policy
            .rules(lists)
            .map_err(|e| HandlerError::Other(format!("cannot make the job's sandbox: {e}")))?;
        let (work, work_rx) = bounded::<Batch>(1);
        let (done_tx, done) = bounded::<Done>(1);
        let (handler, span) = (self.handler.clone(), self.span.clone());
        let thread = std::thread::Builder::new()
            .name("clsync-sandboxed".into())
            .spawn(move || {
                let _g = span.enter();
                let entered = rules.enter();
                for batch in work_rx {
                    let result = match &entered {
                        Ok(()) => handler.run(&batch),
                        Err(e) => Err(HandlerError::Other(format!(
                            "cannot enter the job's sandbox: {e}"
                        ))),
                    };
                    if done_tx.send((batch, result)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| HandlerError::Other(format!("cannot start a sandboxed thread: {e}")))?;
        self.current = Some(Companion {
            key,
            work: Some(work),
            done,
            thread: Some(thread),
        });
        Ok(())
    }
}

impl Drop for Companion {
    /// Lets the companion go (its loop ends with the channel) and waits for it.
    fn drop(&mut self) {
        self.work = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
