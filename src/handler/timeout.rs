//! Kills a handler's process group when it runs longer than the job's `timeout`.
//!
//! A thread waits on a channel with a deadline instead of polling the child: if the handler
//! exits first, [`Watchdog::killed`] wakes it at once; otherwise it sends SIGTERM to the
//! whole process group (rsync and its ssh), then SIGKILL if that was not enough.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a handler gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

pub struct Watchdog {
    done: Sender<()>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    /// Watches process group `pgid` (the handler was started with `process_group(0)`).
    pub fn start(pgid: i32, timeout: Duration) -> Watchdog {
        let (done, rx) = bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(timeout).is_ok() {
                return false;
            }
            tracing::warn!("handler still running after {timeout:?}: killing it");
            let pg = Pid::from_raw(pgid);
            let _ = killpg(pg, Signal::SIGTERM);
            if rx.recv_timeout(GRACE).is_err() {
                let _ = killpg(pg, Signal::SIGKILL);
            }
            true
        });
        Watchdog { done, thread }
    }

    /// Stops watching, once the handler has exited; true when the watchdog had to kill it.
    pub fn killed(self) -> bool {
        let _ = self.done.send(());
        self.thread.join().unwrap_or(false)
    }
}
