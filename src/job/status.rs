//! What a job reports about itself: its state and counters, shared with the supervisor.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub state: State,
    pub watched_dirs: usize,
    pub queued: usize,
    pub syncs: u64,
    pub failures: u64,
    pub initial_syncs: u64,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: State::Starting,
            watched_dirs: 0,
            queued: 0,
            syncs: 0,
            failures: 0,
            initial_syncs: 0,
            last_success: None,
            last_error: None,
        }
    }
}

/// A job's status, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct SharedStatus(Arc<Mutex<Status>>);

impl SharedStatus {
    pub fn lock(&self) -> MutexGuard<'_, Status> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Status {
        self.lock().clone()
    }

    pub fn set_state(&self, state: State) {
        self.lock().state = state;
    }
}
