//! What a job reports about itself: its state and counters, shared with the supervisor.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crossbeam_channel::Sender;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Starting,
    InitialSync,
    Watching,
    Syncing,
    Retrying,
    Failed,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::InitialSync => "initial-sync",
            State::Watching => "watching",
            State::Syncing => "syncing",
            State::Retrying => "retrying",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// A job's counters. Times are wall-clock, for humans and scripts.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub watched_dirs: usize,
    /// Directories the inotify watch limit left unwatched (rescanned periodically).
    pub unwatched_dirs: usize,
    pub queued: usize,
    pub syncs: u64,
    pub failures: u64,
    /// Failed runs since the last success (0 when healthy).
    pub consecutive_failures: u32,
    pub initial_syncs: u64,
    pub last_success: Option<SystemTime>,
    /// The last periodic verification: when, and how many paths it repaired (if the handler
    /// can tell).
    pub last_verify: Option<(SystemTime, Option<u64>)>,
    pub last_error: Option<(SystemTime, String)>,
    /// The last error repeated on every recent attempt and retrying cannot fix it (rsync's
    /// usage, protocol and unsupported-action errors): it needs the administrator.
    pub last_error_permanent: bool,
    /// The job's rsync and what its receiver accepts (rsync and `%RSYNC-ARGS%` modes).
    pub rsync: Option<crate::handler::receiver::Report>,
    /// What the metrics count beyond the fields above.
    pub counters: super::counters::Counters,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: State::Starting,
            watched_dirs: 0,
            unwatched_dirs: 0,
            queued: 0,
            syncs: 0,
            failures: 0,
            consecutive_failures: 0,
            initial_syncs: 0,
            last_success: None,
            last_verify: None,
            last_error: None,
            last_error_permanent: false,
            rsync: None,
            counters: Default::default(),
        }
    }
}

/// A job's status, readable from any thread. Changes worth telling (state, errors,
/// syncs) are announced on an optional channel, so the supervisor can update systemd and
/// the status file without polling.
#[derive(Debug, Clone, Default)]
pub struct SharedStatus {
    status: Arc<Mutex<Status>>,
    notify: Option<Sender<()>>,
}

impl SharedStatus {
    pub fn new(notify: Option<Sender<()>>) -> SharedStatus {
        SharedStatus {
            status: Arc::default(),
            notify,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Status {
        self.lock().clone()
    }

    pub fn set_state(&self, state: State) {
        let changed = {
            let mut s = self.lock();
            std::mem::replace(&mut s.state, state) != state
        };
        if changed {
            self.changed();
        }
    }

    /// Tells the supervisor that something it shows has changed.
    pub fn changed(&self) {
        if let Some(n) = &self.notify {
            let _ = n.try_send(());
        }
    }
}
