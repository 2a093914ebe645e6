//! The rsync handler: one `rsync` process per batch, whatever the batch's size.
//!
//! A full sync is `rsync -a --delete SRC/ DST/`, or with cores to spare the same as the
//! root and then the top-level directories shared among `workers` runs at once
//! ([`parallel`]). A live batch passes its paths as a
//! NUL-separated `--files-from` list on rsync's stdin (names are data, never arguments),
//! with `-r` so that new directories arrive whole and `--delete-missing-args` so that paths
//! gone from the source are deleted at the destination. A receiver that rejects missing
//! entries ([`receiver`](super::receiver)) gets a batch with deletions as two runs: the
//! deletions through their parent directories ([`deletions`](super::deletions)), then the
//! paths that exist. A batch that may not remove anything (the job's `delete`, see
//! [`Batch::deletes`]) runs without `--delete`, with `--ignore-missing-args` and without a
//! deletion pass, and its renames are not replayed. Excludes go to rsync as
//! `--exclude=PATTERN` so that rsync and the live path agree; regex rules, which rsync does
//! not know, are turned into an anchored exclude list by walking the directories involved.
//!
//! rsync refuses names longer than 4,096 bytes below its transfer root ("filename overflows
//! max-path len"), and its receiver cannot delete a directory whose contents are that deep.
//! For a local destination, a batch that meets such a path is handed to the native mirror
//! engine, which works below any depth and leaves what `rsync -a --delete` would; the
//! common case costs nothing (the check is rsync's own error message).
//!
//! A batch's renames are replayed once, at the destination itself ([`renames`]), before
//! anything else, so that rsync finds a renamed tree in place and only compares it. What
//! is synced after that is the batch's entries as they are: rsync needs them unchanged (an
//! entry's `attrs_only` decides `--ignore-times`). Only when rsync hands the batch over to
//! the mirror or the shallow cut are the renames, already done, given as what is left of
//! them, both sides synced whole ([`renames_as_trees`]): the mirror would otherwise replay
//! them a second time, and undo a swap. (A batch with a path too long for rsync goes to the
//! mirror before anything is replayed, renames included.)
//!
//! The mirror the handler falls back to is the engine ([`Mirror`]), not the mirror's
//! handler; what the command modes share with this handler (arguments, rule excludes, the
//! receiver's knowledge) is the [`RsyncTarget`], which each owns: no handler owns another.
//! Files: `target` (the job's rsync and receiver), `args` (the command line), `excludes`
//! (the regex rules as excludes), `transfer` (running rsync for a batch), `parallel` (a
//! full sync as parts).

mod args;
mod excludes;
mod parallel;
mod target;
#[cfg(test)]
mod tests;
mod transfer;

pub(crate) use args::{Pass, files_from_list, rsync_args};
pub(crate) use excludes::{push_exclude, walk_denied};
pub(crate) use target::RsyncTarget;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::debug;

use super::mirror::Mirror;
use super::{Handler, HandlerError, Outcome, receiver, renames};
use crate::config::{Destination, HandlerOptions};
use crate::model::{Batch, Entry, EntrySet};
use crate::rules::Filter;

/// Syncs each batch with one rsync run (see the module documentation).
pub struct RsyncHandler {
    /// The job's rsync, its receiver, and what both handler kinds share.
    target: RsyncTarget,
    /// Syncs the batches rsync cannot (paths over its 4,096-byte limit); local
    /// destinations without `user` only (the mirror runs inside the daemon, and stops
    /// itself past the job's `timeout`).
    deep: Option<Mirror>,
    /// A remote destination's tree has held paths beyond rsync's limit: every batch is cut
    /// at the deep roots ([`shallow`](super::shallow)), so that what the destination holds
    /// does not depend on how changes were batched.
    deep_seen: AtomicBool,
    /// Itemize full syncs and count their lines: what a verification repaired. Off unless
    /// the job verifies (`verify_interval`): itemizing costs rsync ~2% of an initial sync.
    count_changes: bool,
    /// Full syncs report their progress here (`clsync sync`'s display): rsync runs them with
    /// `--info=progress2`, which this handler follows. `None` in the daemon.
    progress: Option<Arc<super::tally::Tally>>,
    /// A private `0700` directory (the job's `user`'s when it has one) for the exclude
    /// and hide lists, made on first use, removed with the handler: a sandboxed run may
    /// write there, and nowhere else in `$TMPDIR`.
    lists: std::sync::Mutex<Option<tempfile::TempDir>>,
    /// rsync runs a full sync may share its top-level directories among: the job's
    /// `workers`, no more than the cores ([`parallel`]); 1: one run.
    lanes: usize,
}

/// Longest `--files-from` line rsync accepts, with its `./` prefix (MAXPATHLEN, NUL
/// included), less the room rsync needs for its temporary names.
const RSYNC_NAME_MAX: usize = 4000;

/// `batch` whose renames were replayed already: what is left of each is both of its sides,
/// synced whole (recursive, content not trusted), merged into the entries.
fn renames_as_trees(batch: &Batch) -> Batch {
    let mut entries: EntrySet = batch.entries.iter().cloned().collect();
    for r in &batch.renames {
        for rel in [&r.from, &r.to] {
            entries.add(Entry::tree(rel));
        }
    }
    Batch {
        renames: Vec::new(),
        entries: entries.into_vec(),
        deletes: batch.deletes,
    }
}

/// rsync's exit codes for a call that is wrong in itself: 1 (syntax or usage), 2 (protocol
/// incompatibility), 4 (an action the receiver does not support). Retrying the same call
/// gives the same answer; a new configuration, or another rsync at the receiver, is needed.
pub(crate) fn is_usage_error(e: &HandlerError) -> bool {
    matches!(
        e,
        HandlerError::Exit {
            code: 1 | 2 | 4,
            ..
        }
    )
}

/// rsync's messages for names and deletions beyond MAXPATHLEN.
fn too_deep_for_rsync(e: &HandlerError) -> bool {
    match e {
        HandlerError::Exit {
            code: 23, stderr, ..
        } => {
            // rsync's own messages are not translated; for errno texts, its "(N)" is not.
            stderr.contains("overflows max-path len")
                || stderr.contains("cannot delete non-empty directory")
                || stderr.contains(&format!(" ({})", libc::ENAMETOOLONG))
        }
        _ => false,
    }
}

impl RsyncHandler {
    pub fn new(
        source: PathBuf,
        destination: Destination,
        options: HandlerOptions,
        filter: Arc<Filter>,
    ) -> RsyncHandler {
        let deep = match (&destination, &options.run_as) {
            (Destination::Local(d), None) => Some(Mirror::new(
                source.clone(),
                d.clone(),
                filter.clone(),
                options.timeout,
            )),
            _ => None,
        };
        RsyncHandler {
            target: RsyncTarget::new(source, destination, options, filter),
            deep,
            deep_seen: AtomicBool::new(false),
            count_changes: false,
            progress: None,
            lists: std::sync::Mutex::new(None),
            lanes: 1,
        }
    }

    /// Reports how many paths each full sync changed ([`Outcome::changed`]).
    pub fn counting_changes(mut self, yes: bool) -> RsyncHandler {
        self.count_changes = yes;
        self
    }

    /// A full sync runs as up to `workers` rsync processes at once, no more than the cores,
    /// each on its own top-level directories ([`parallel`]).
    pub fn with_workers(mut self, workers: usize) -> RsyncHandler {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.lanes = workers.min(cores).max(1);
        self
    }

    /// Full syncs report their progress ([`Handler::tally`]); a full sync then itemizes
    /// nothing.
    pub fn showing_progress(mut self, yes: bool) -> RsyncHandler {
        self.progress = yes.then(|| {
            self.deep
                .as_ref()
                .map_or_else(Arc::default, |m| m.tally().clone())
        });
        self
    }
}

impl Handler for RsyncHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.target.source)
    }

    /// The fallback engine's; with [`RsyncHandler::showing_progress`], what rsync's full
    /// syncs transfer too.
    fn tally(&self) -> Option<Arc<super::tally::Tally>> {
        self.progress
            .clone()
            .or_else(|| self.deep.as_ref().map(|m| m.tally().clone()))
    }

    fn local_destination(&self) -> Option<&Path> {
        match &self.target.destination {
            Destination::Local(d) => Some(d),
            Destination::Remote(_) => None,
        }
    }

    fn rsync_report(&self) -> Option<receiver::Report> {
        Some(self.target.report())
    }

    fn is_permanent(&self, e: &HandlerError) -> bool {
        is_usage_error(e)
    }

    fn sets_root_each_run(&self) -> bool {
        let args = &self.target.options.args;
        !args
            .iter()
            .any(|a| a == "--no-implied-dirs" || a == "--no-i-d")
    }

    fn sets_dirs_at_end(&self) -> bool {
        true
    }

    fn prepare(&self) -> Result<Vec<PathBuf>, HandlerError> {
        if let Destination::Local(dst) = &self.target.destination {
            super::ensure_local_destination(dst, self.target.options.run_as.as_ref())?;
        }
        Ok(vec![self.lists_dir()?])
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let too_long = batch
            .entries
            .iter()
            .any(|e| e.rel.as_os_str().len() + 2 > RSYNC_NAME_MAX);
        let remote = match &self.target.destination {
            Destination::Remote(d) => crate::config::split_remote(d),
            Destination::Local(_) => None,
        };
        if too_long && remote.is_none() {
            // The mirror takes the whole batch, its renames included.
            return self.run_deep(
                batch,
                "a path of the batch is too long for rsync",
                &"a path of the batch is too long",
            );
        }
        // rsync creates only the last component of a destination.
        if let Destination::Local(dst) = &self.target.destination {
            super::ensure_local_destination(dst, self.target.options.run_as.as_ref())?;
        }
        self.replay_renames(batch);
        if remote.is_some() && (too_long || self.deep_seen.load(Ordering::Relaxed)) {
            return self.run_shallow(batch);
        }
        match self.run_rsync(batch) {
            Err(e) if too_deep_for_rsync(&e) => {
                let rest = &renames_as_trees(batch);
                if remote.is_some() {
                    self.deep_seen.store(true, Ordering::Relaxed);
                    self.run_shallow(rest)
                } else {
                    self.run_deep(rest, "rsync met paths beyond its 4,096-byte limit", &e)
                }
            }
            r => r,
        }
    }
}

impl RsyncHandler {
    /// `batch` synced by the mirror engine, for a local destination it may write (`what`
    /// for the log); else the error that rsync cannot (`why`).
    fn run_deep(
        &self,
        batch: &Batch,
        what: &str,
        why: &dyn std::fmt::Display,
    ) -> Result<Outcome, HandlerError> {
        match &self.deep {
            Some(m) => {
                debug!("{what}: synced natively");
                m.run(batch)
            }
            // rsync would truncate a too long --files-from line silently and exit 0.
            None => Err(HandlerError::Other(format!(
                "{why}; rsync cannot transfer paths longer than 4,096 bytes below the \
                 source to this destination (as `user`, or to an rsync daemon)"
            ))),
        }
    }

    /// `batch`, whose renames were replayed, as one rsync transfer.
    fn run_rsync(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let full = batch.is_full();
        let excludes = self.target.batch_rule_excludes(batch);
        let mut outcome = self.transfer(batch, &excludes, &[])?;
        // Only a full sync is itemized: its count is what a verification repaired.
        if !full || !self.count_changes {
            outcome.changed = None;
        }
        Ok(outcome)
    }

    /// Replays `batch`'s renames at the destination itself (a failure is logged: rsync
    /// then transfers the renamed paths again). A batch that may not remove anything
    /// replays none: the new names are transferred, the old ones stay.
    fn replay_renames(&self, batch: &Batch) {
        if !batch.is_full() && batch.deletes && !batch.renames.is_empty() {
            match &self.target.destination {
                Destination::Local(dst) => {
                    let n = renames::replay_local(dst, &batch.renames);
                    debug!("replayed {n} of {} renames", batch.renames.len());
                }
                Destination::Remote(d) => {
                    match renames::replay_remote(&self.target.options, d, &batch.renames) {
                        Ok(()) => debug!("replayed {} renames remotely", batch.renames.len()),
                        Err(e) => tracing::warn!(
                            "remote move failed ({e}); the renamed paths are transferred again"
                        ),
                    }
                }
            }
        }
    }

    /// A batch (its renames replayed) for a remote destination that holds paths beyond rsync's limit: everything
    /// rsync can reach is synced ([`shallow`](super::shallow), deletions included), and the
    /// directories below which it cannot are reported.
    fn run_shallow(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let part = super::shallow::shallow(&self.target.source, &self.target.filter, batch);
        let mut outcome = self.transfer(&part.batch, &part.excludes, &part.hidden)?;
        outcome.changed = None;
        if let Some(first) = part.deep.first() {
            let n = part.deep.len();
            outcome.warnings.push(format!(
                "{n} {} paths longer than rsync can transfer (4,096 bytes below the source), not synced to this remote destination: {}{}",
                if n == 1 { "directory holds" } else { "directories hold" },
                self.target.source.join(first).display(),
                if n > 1 { " ..." } else { "" }
            ));
        }
        Ok(outcome)
    }
}
