//! [`Bell`]: what a job's thread sleeps on when it has nothing to do.
//!
//! Workers that finish a run, the supervisor and the daemon's inotify thread ring it; the
//! job thread waits for a ring or its next deadline, never on a timer of its own and never
//! on a descriptor (a thousand jobs must not hold a thousand pipes). Rings coalesce: one
//! pending ring stands for any number.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

#[derive(Debug)]
pub struct Bell {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Bell {
    pub fn new() -> Bell {
        let (tx, rx) = bounded(1);
        Bell { tx, rx }
    }

    pub fn ring(&self) {
        let _ = self.tx.try_send(());
    }

    /// Sleeps until rung (true) or `timeout` passes (false); `None`: no timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        match timeout {
            None => self.rx.recv().is_ok(),
            Some(d) => self.rx.recv_timeout(d).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_coalesce_and_a_wait_times_out() {
        let b = Bell::new();
        b.ring();
        b.ring();
        assert!(b.wait(Some(Duration::ZERO)));
        assert!(!b.wait(Some(Duration::from_millis(1))));
    }
}
