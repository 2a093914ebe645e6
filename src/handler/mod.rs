//! Sync handlers: what turns a batch of changed paths into a destination that matches the
//! source.
//!
//! A handler receives a [`Batch`] and must leave every listed path at the destination equal
//! to the *current* state of the same path at the source (not the state at event time):
//! a path that no longer exists at the source is deleted at the destination, a path that
//! exists is copied, and a `recursive` entry makes the whole subtree equal (including
//! deletion of extraneous entries that the filter does not exclude). Because handlers look at
//! the current state, replaying a batch is always safe, which is what makes retries simple.
//!
//! The four handlers are `rsync` (one rsync process per batch), `mirror` (the native engine
//! for local destinations), `rclone` (rclone remotes) and `command` (a user's program per
//! batch). No handler owns
//! another: the rsync handler falls back to the mirror *engine*, and the command modes that
//! run rsync share the rsync handler's [`RsyncTarget`](rsync::RsyncTarget), not the handler.
//! Beside them: `launch` (starting a handler program), `process` (running it), `timeout` (its watchdog), `receiver`
//! (what the receiving rsync accepts), `deletions` (deletions as a pass of their own),
//! `shallow` (the part of a batch rsync can send to a remote destination), `renames`
//! (replaying renames at the destination), `remote` (ssh destinations), `tally` (what a
//! handler has done, counted live).

pub mod command;
pub(crate) mod deletions;
pub(crate) mod launch;
pub mod mirror;
mod process;
pub mod rclone;
pub mod receiver;
pub mod remote;
pub(crate) mod renames;
pub mod rsync;
pub(crate) mod shallow;
pub mod tally;
pub(crate) mod timeout;

pub(crate) use launch::Launch;
pub(crate) use process::{Stdout, ensure_local_destination, run_process, run_process_with};

use std::path::PathBuf;

use crate::model::{Batch, Entry, EntrySet};

/// Why a handler run failed. Every failure is retried by the job with backoff.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited with status {code}{}", stderr_tail(.stderr))]
    Exit {
        program: String,
        code: i32,
        stderr: String,
    },
    #[error("{program} was killed by signal {signal}")]
    Signaled { program: String, signal: i32 },
    #[error(
        "{program} ran longer than the timeout of {timeout:?} and was {}",
        if *.killed { "killed" } else { "stopped" }
    )]
    Timeout {
        program: String,
        timeout: std::time::Duration,
        /// A handler process killed by the watchdog; false for the mirror, which stops
        /// cooperatively between operations.
        killed: bool,
        /// The run changed the destination before it stopped, so a retry has less to do:
        /// the mirror, which only stops a run that has made progress. Unknown (false) for
        /// a killed process.
        progressed: bool,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl HandlerError {
    /// The failed run still changed the destination (see [`HandlerError::Timeout`]): not
    /// a sign that the job is stuck.
    pub fn made_progress(&self) -> bool {
        matches!(
            self,
            HandlerError::Timeout {
                progressed: true,
                ..
            }
        )
    }
}

fn stderr_tail(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        let tail: Vec<&str> = s.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(": {}", tail.join(" | "))
    }
}

/// What a handler reports on success, for logs and counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Non-fatal problems (e.g. rsync's "some files vanished"): logged, not retried.
    pub warnings: Vec<String>,
    /// How many paths the run changed at the destination, when the handler can tell (rsync's
    /// itemized full syncs): what a verification repaired.
    pub changed: Option<u64>,
}

impl Outcome {
    /// Adds what a further run of the same batch reported.
    pub fn absorb(&mut self, other: Outcome) {
        self.warnings.extend(other.warnings);
        self.changed = match (self.changed, other.changed) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// A sync handler. Implementations must be safe to call from several worker threads at once
/// on batches whose paths are disjoint (the job guarantees disjointness).
pub trait Handler: Send + Sync {
    /// Brings every path of `batch` at the destination up to date with the source.
    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError>;

    /// The destination directory, when it is local: if it disappears (removed by hand, a
    /// disk unmounted), only a full sync can make it whole again, and the job checks for that.
    fn local_destination(&self) -> Option<&std::path::Path> {
        None
    }

    /// The source directory, so that batches can be kept inside it ([`confine`]).
    fn source(&self) -> Option<&std::path::Path> {
        None
    }

    /// What the handler has done so far, counted live, when it counts: the mirror engine's
    /// objects and bytes (the mirror handler's, and the rsync handler's fallback engine).
    fn tally(&self) -> Option<std::sync::Arc<tally::Tally>> {
        None
    }

    /// The job's rsync and what its receiver accepts, for handlers that run rsync.
    fn rsync_report(&self) -> Option<receiver::Report> {
        None
    }

    /// True when every run of a live batch sets the root's attributes as it finds them at
    /// the source (rsync sends `.` as the implied directory of each `./PATH`): the job
    /// then leaves the root out of the repair of a run that ended after a newer one while
    /// changes are queued, since the next run sets it.
    fn sets_root_each_run(&self) -> bool {
        false
    }

    /// True when a run sets the attributes of its directories when it ends, as it saw them
    /// (rsync sets every directory of its list again then; the mirror reads the source as
    /// it sets them): runs then set them in the order they end. A command may set one at
    /// any time in its run.
    fn sets_dirs_at_end(&self) -> bool {
        false
    }

    /// True when `e` says the call itself is wrong (rsync's usage, protocol and
    /// unsupported-action errors): retrying the same call cannot help, and the job says so.
    fn is_permanent(&self, _e: &HandlerError) -> bool {
        false
    }

    /// Makes ready, before a sandboxed run and outside its sandbox, what the run writes
    /// into without being able to create it there: a missing local destination (made as
    /// the run would make it), and the handler's lists directory, whose path is returned
    /// for the sandbox ([`crate::sandbox`]) to let the run write beneath it.
    fn prepare(&self) -> Result<Vec<PathBuf>, HandlerError> {
        if let Some(d) = self.local_destination() {
            ensure_local_destination(d, None)?;
        }
        Ok(Vec::new())
    }
}

/// Keeps a batch inside the source: an entry whose path goes through something that is no
/// longer a real directory (a directory swapped for a symlink, or removed) is replaced by the
/// highest such ancestor. Without this, rsync and the mirror would follow a symlinked parent
/// and copy what lies outside the source (e.g. `/etc`) into the destination; with it, the
/// ancestor itself is synced (as a symlink, or deleted).
pub fn confine(source: &std::path::Path, batch: Batch) -> Batch {
    use std::collections::HashMap;
    if batch.is_full() {
        return batch;
    }
    let mut real: HashMap<PathBuf, bool> = HashMap::new();
    let mut look = crate::fs::Lookup::new(source);
    let mut out = EntrySet::new();
    for e in batch.entries {
        let mut ancestors: Vec<&std::path::Path> = crate::relpath::ancestors(&e.rel).collect();
        ancestors.pop(); // the root itself
        let bad = ancestors.into_iter().rev().find(|a| {
            !*real
                .entry(a.to_path_buf())
                .or_insert_with(|| look.lstat(a).is_ok_and(|m| m.is_dir()))
        });
        let e = match bad {
            Some(a) => Entry {
                rel: a.to_path_buf(),
                recursive: false,
                attrs_only: false,
            },
            None => e,
        };
        out.add(e);
    }
    Batch {
        renames: batch.renames,
        entries: out.into_vec(),
        deletes: batch.deletes,
    }
}

#[cfg(test)]
mod confine_tests {
    use super::*;

    #[test]
    fn entries_below_a_symlink_or_a_missing_dir_become_that_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        std::fs::create_dir_all(s.join("real/dir")).unwrap();
        std::fs::write(s.join("real/dir/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", s.join("link")).unwrap();
        let e = |p: &str| Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        };
        let b = confine(
            s,
            Batch {
                renames: vec![],
                entries: vec![
                    e("real/dir/f"),
                    e("link/passwd"),
                    e("link"),
                    e("gone/deep/x"),
                    e("top"),
                ],
                deletes: true,
            },
        );
        let got: Vec<String> = b
            .entries
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect();
        assert_eq!(got, ["gone", "link", "real/dir/f", "top"]);
    }
}
