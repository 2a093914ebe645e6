//! Native mirror handler: keeps a LOCAL destination equal to the source without rsync.
//!
//! After [`MirrorHandler::run`] returns `Ok`, every path of the batch at the destination is
//! what `rsync -a --delete SRC/ DST/` would have produced for it: content, type, permission
//! bits, modification times (files, symlinks and directories), owner and group (when running
//! as root), symlinks as symlinks, fifos and sockets (and devices when root) re-created.
//!
//! How a batch is applied:
//!
//! A batch that may not remove anything ([`Batch::deletes`] false, the job's `delete`)
//! skips every removal below: renames are not replayed (the new name is copied, the old one
//! stays), a vanished source path stays at the destination, walks keep extraneous entries.
//! Replacing an object by one of another type is not a removal and still happens.
//!
//! 1. `renames` are replayed first, in order, as single `rename(2)` calls inside the
//!    destination; this is what makes moving a large directory cheap. A rename that cannot
//!    be replayed (missing at the destination, target is a non-empty directory, filtered, ...)
//!    silently falls back to "delete `from`, sync `to` recursively".
//! 2. Every entry is then brought up to date from the *current* state of the source: a
//!    vanished source path is deleted, files are compared with rsync's quick check (size and
//!    mtime) and otherwise copied into a temporary file in the same directory that is renamed
//!    over the target (a new file in a directory this run created, which holds nothing to
//!    replace and is mode 0700 until step 3, is written under its final name instead; see
//!    `Run::create_final`), symlinks and special files are re-created the same way, directories
//!    are created and, for recursive entries, walked (extraneous destination entries that the
//!    filter does not exclude are deleted). The `to` side of every rename is always walked
//!    (a quick-check walk: stat comparisons only when nothing changed).
//!    With the job's `workers` above 1, once a batch entry's walk has two directories or
//!    more to walk, they are walked by that many threads at once, each directory by one
//!    thread; a large batch's entries are split the same way, an entry and its descendants
//!    staying together (`parallel`: disjoint subtrees, the same result as one thread).
//! 3. Finally, every destination directory that was created, modified or synced gets its
//!    mode, owner and times from the source directory, deepest first, so directory mtimes
//!    match the source like with `rsync -a`.
//!
//! Timeout: with the job's `timeout`, a run checks its deadline between operations (before
//! every batch entry, rename replay, directory walk, directory entry synced or deleted) and
//! between the chunks of a file copy (32 MiB, `COPY_CHUNK`). Past it, the run stops where it is
//! and fails with [`HandlerError::Timeout`]: a file being copied is dropped with its
//! temporary name (never installed half-written), nothing else is started, and only the
//! directories the run changed get their attributes back (stat calls only). The job retries
//! the batch with backoff, and everything finished before the timeout passes the quick check
//! of the next run: it is not copied again. The deadline only stops a run that has changed
//! something at the destination (created, installed, deleted or renamed an object), so every
//! timed-out run leaves less for the next one and retries converge, even when a quick-check
//! walk of what is done already, or the copy of one big file, takes longer than the timeout
//! (a no-op run, e.g. a verification of a tree in sync, is never stopped). One system call
//! stuck on a hung filesystem cannot be interrupted: the deadline is only seen once it
//! returns.
//!
//! Safety (see `docs/security.md`): whoever owns a directory at the destination, or writes
//! the source, may swap any directory for a symlink at any moment. So the run resolves each
//! directory once, beneath a handle on its root with no symlink followed in any component
//! ([`crate::fs`]), and then works in that directory's handle: every `lstat`, creation
//! (`O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`, under a fresh temporary name
//! renamed into place, or under the final name in a directory this run created), rename,
//! removal and attribute change is an `*at` call on it, and attributes go through a handle
//! on the object that was looked at. A destination directory that turns out to be
//! something else is replaced, never followed. A directory its owner moves away mid-run
//! keeps receiving that run's writes wherever it went (only its owner could move it, and
//! they can write there anyway); the next run syncs its old name again. Source files are
//! opened in their directory's handle with `O_NOFOLLOW | O_NONBLOCK` and read only when
//! `fstat` says regular file. Paths are bytes throughout; relative paths containing
//! `.`/`..`/empty components or a leading `/` are rejected.
//!
//! The engine is [`Mirror`]; [`MirrorHandler`] is the job's handler around it. The rsync
//! handler holds a `Mirror` of its own for the paths rsync cannot reach: it uses the engine,
//! not another handler (no handler owns a handler). One run is a [`Run`]: this module holds
//! its state, the batch loop and the deadline; the files beside it hold one step each:
//! `dest` (destination directories through handles, never following a symlink), `source`
//! (source objects likewise), `walk` (entries and directory walks), `copy` (files, symlinks,
//! special files), `install` (temporary names and renaming into place), `remove`
//! (deleting trees), `attrs` (owner, mode and times), `renames` (replaying renames),
//! `parallel` (walking with several threads), `fail` and `paths` (errors and relative
//! paths).

mod attrs;
mod copy;
mod dest;
mod fail;
mod install;
mod parallel;
mod paths;
mod remove;
mod renames;
mod source;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::tally::Tally;
use super::{Handler, HandlerError, Outcome};
use crate::config::units::off_if_zero;
use crate::fs::{Dirs, Root};
use crate::model::{Batch, Entry, EntrySet, Kind};
use crate::relpath;
use crate::rules::Filter;
use fail::Fail;

/// The mirror engine: what one local destination is synced from, and what every run of it
/// shares. See the module documentation.
pub struct Mirror {
    source: PathBuf,
    destination: PathBuf,
    filter: Arc<Filter>,
    /// Effective uid 0: owners, groups and device files are preserved.
    is_root: bool,
    /// Makes temporary names unique within this process.
    tmp_counter: AtomicU64,
    /// Our process id, part of temporary names (looked up once, not once per file).
    pid: u32,
    /// The job's `timeout`: a run stops at its next deadline check past it.
    timeout: Option<Duration>,
    /// What the engine's runs have done, read live (metrics, `clsync sync`'s progress).
    tally: Arc<Tally>,
    /// Threads that walk a run's directories at once (the job's `workers`; 1: the calling
    /// thread only). See `parallel`.
    workers: usize,
    /// Helper threads not in use by a run now: concurrent runs share `workers - 1` of them,
    /// so the engine never runs more than `workers` walks plus one per extra run in flight.
    spare_helpers: AtomicUsize,
    /// Directories walked and batch entries synced by helper threads (tests: the work was
    /// shared).
    #[cfg(test)]
    helper_work: AtomicUsize,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// An engine that mirrors `source` into the local directory `destination` (created on
    /// the first run if missing), skipping (neither copying nor deleting) what `filter`
    /// excludes, and stopping every run that takes longer than `timeout` (`None` or zero:
    /// no limit) at its next deadline check.
    pub fn new(
        source: PathBuf,
        destination: PathBuf,
        filter: Arc<Filter>,
        timeout: Option<Duration>,
    ) -> Mirror {
        Mirror {
            source,
            destination,
            filter,
            is_root: nix::unistd::geteuid().is_root(),
            tmp_counter: AtomicU64::new(0),
            pid: std::process::id(),
            timeout: timeout.and_then(off_if_zero),
            tally: Arc::default(),
            workers: 1,
            spare_helpers: AtomicUsize::new(0),
            #[cfg(test)]
            helper_work: AtomicUsize::new(0),
        }
    }

    /// Walks the directories of a run with up to `workers` threads at once (the calling one
    /// included; 0 counts as 1). See `parallel`.
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
        self.spare_helpers = AtomicUsize::new(self.workers - 1);
    }

    /// What the engine's runs have done so far: objects made equal, bytes copied.
    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }

    /// Brings every path of `batch` at the destination up to date with the source (the
    /// contract of [`Handler::run`]); renames are replayed first.
    pub fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let mut run = Run::new(self)?;
        run.deletes = batch.deletes;
        let mut entries: EntrySet = batch.entries.iter().cloned().collect();
        for r in &batch.renames {
            // Stopping between replays is safe: the retry finds the replayed ones gone at
            // the destination (not replayed again) and their `to` side already in place.
            if run.expired() {
                break;
            }
            // Without deletions the old name stays: `to` is copied by its walk below.
            let renamed = batch.deletes && run.rename(r);
            tracing::debug!(from = ?r.from, to = ?r.to, renamed, "mirror: rename replay");
            // Whether or not the rename could be replayed, both sides are synced from the
            // current source state: `from` is normally gone (a cheap no-op delete), and `to`
            // gets a quick-check walk (or the full copy when the rename fell back).
            for rel in [&r.from, &r.to] {
                entries.add(Entry {
                    rel: rel.clone(),
                    recursive: true,
                    attrs_only: true,
                });
            }
        }
        run.track_fresh = true;
        run.entries(&entries.into_vec());
        run.fixup_dirs();
        run.into_result()
    }

    /// The source object `rel`, as messages show it.
    fn src(&self, rel: &Path) -> PathBuf {
        relpath::join(&self.source, rel)
    }

    /// The destination object `rel`, as messages show it.
    fn dst(&self, rel: &Path) -> PathBuf {
        relpath::join(&self.destination, rel)
    }

    /// Short, independent of the file name (names may already be 255 bytes long).
    fn tmp_name(&self) -> String {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        format!(".clsync.{}.{}.tmp", self.pid, n)
    }

    fn allows(&self, rel: &Path, kind: Kind) -> bool {
        rel.as_os_str().is_empty() || self.filter.allows(rel, kind)
    }

    /// `rel` passes the filter, and so do all its ancestors below the root (as walkable
    /// directories). Used for batch entries, which do not come from a walk.
    fn allowed_path(&self, rel: &Path, kind: Kind) -> bool {
        relpath::ancestors(rel)
            .filter(|a| !a.as_os_str().is_empty())
            .all(|a| self.filter.allows_child(a, Kind::Dir))
            && self.allows(rel, kind)
    }

    /// An extraneous destination object may be deleted: the filter does not exclude it, and
    /// a directory is one we may look into (excluded content inside is kept).
    fn deletable(&self, rel: &Path, kind: Kind) -> bool {
        !rel.as_os_str().is_empty() && self.filter.allows_child(rel, kind)
    }
}

/// The native handler for local destinations: the [`Mirror`] engine as a job's handler.
#[derive(Debug)]
pub struct MirrorHandler(Mirror);

impl MirrorHandler {
    /// A handler that mirrors `source` into the local directory `destination` (created on
    /// the first run if missing), skipping (neither copying nor deleting) what `filter`
    /// excludes.
    pub fn new(source: PathBuf, destination: PathBuf, filter: Arc<Filter>) -> MirrorHandler {
        MirrorHandler(Mirror::new(source, destination, filter, None))
    }

    /// Stops every run that takes longer than `timeout` (`None`: no limit) at its next
    /// deadline check, failing it with [`HandlerError::Timeout`]. See the module
    /// documentation.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> MirrorHandler {
        self.0.timeout = timeout.and_then(off_if_zero);
        self
    }

    /// Walks the directories of a run (a full sync, a new or renamed tree) with up to
    /// `workers` threads, each on its own directories (the job's `workers`; 1: one thread).
    pub fn with_workers(mut self, workers: usize) -> MirrorHandler {
        self.0.set_workers(workers);
        self
    }
}

impl Handler for MirrorHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.0.source)
    }

    fn sets_dirs_at_end(&self) -> bool {
        true
    }

    fn local_destination(&self) -> Option<&Path> {
        Some(&self.0.destination)
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        self.0.run(batch)
    }

    fn tally(&self) -> Option<Arc<Tally>> {
        Some(self.0.tally.clone())
    }
}

/// A directory handle, shared by the run's cache and the objects made in it.
type Handle = Rc<OwnedFd>;

/// What the threads of one run share about its deadline (each thread has its own [`Run`]).
#[derive(Debug, Default)]
struct Shared {
    /// Some thread of the run has changed something at the destination.
    progressed: AtomicBool,
    /// Some thread of the run has seen the deadline pass: every thread stops.
    stopped: AtomicBool,
}

/// State of one `run` call.
struct Run<'a> {
    h: &'a Mirror,
    /// Source directories: files are read and directories listed through handles beneath
    /// the source root, no symlink followed in any component ([`crate::fs`]).
    src: Dirs,
    /// Destination directories: every entry is looked at, created, replaced, renamed and
    /// removed through a handle on its directory, resolved beneath the destination root.
    /// A directory swapped for a symlink after the run resolved it is never followed.
    dst: Dirs,
    /// Destination directories to receive mode, owner and times from the source at the end:
    /// those the run created or changed (entries added, removed, renamed; made writable).
    touched: BTreeSet<PathBuf>,
    /// Directories synced without a change of our own (their attributes may still differ
    /// from the source's): fixed at the end too, unless the run timed out.
    synced: BTreeSet<PathBuf>,
    /// Directories synced by a recursive entry whose content is still to be walked.
    pending: Vec<PathBuf>,
    /// Destination directories this run created (`mkdir`, mode 0700 until the final fixup)
    /// after the rename replays, not walked yet: known to be empty, see [`Self::walk`].
    fresh: BTreeSet<PathBuf>,
    /// Directories created from now on go into `fresh` (false during rename replays, which
    /// may move things into a directory they create).
    track_fresh: bool,
    first_error: Option<HandlerError>,
    warnings: Vec<String>,
    /// The current batch entry's content is known to have changed: copy it even when size
    /// and mtime match.
    force_copy: bool,
    /// When the handler's `timeout` runs out.
    deadline: Option<Instant>,
    /// The run has changed something at the destination that a retry will not have to do
    /// again (created, installed, deleted, renamed). Only then does the deadline stop it:
    /// every timed-out run has made progress, so retries converge.
    progressed: bool,
    /// The deadline has passed: nothing more is started.
    timed_out: bool,
    /// What this run's threads tell each other (see `parallel`): one of them has made
    /// progress, one of them has stopped.
    shared: Arc<Shared>,
    /// The batch may remove things ([`Batch::deletes`]): paths gone from the source and
    /// extraneous destination entries are deleted, renames replayed.
    deletes: bool,
}

impl<'a> Run<'a> {
    /// Opens both roots. The source root must be a directory (a vanished source must never
    /// empty the destination); the destination root is created when missing. Both roots'
    /// own paths come from the configuration and may be symlinks.
    fn new(h: &'a Mirror) -> Result<Run<'a>, HandlerError> {
        let src = Root::open(&h.source).map_err(|e| HandlerError::Io {
            path: h.source.clone(),
            source: e,
        })?;
        let dst_err = |e| HandlerError::Io {
            path: h.destination.clone(),
            source: e,
        };
        let dst = match Root::open(&h.destination) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&h.destination).map_err(dst_err)?;
                Root::open(&h.destination).map_err(dst_err)?
            }
            other => other.map_err(dst_err)?,
        };
        let mut run = Run::on_roots(h, src, dst, Arc::default());
        let root = run.dst.get(Path::new("")).map_err(dst_err)?;
        run.make_writable(Path::new(""), &root)?;
        run.touched.insert(PathBuf::new());
        Ok(run)
    }

    /// A run's state on the opened roots `src` and `dst`, sharing `shared` with the run's
    /// other threads.
    fn on_roots(h: &'a Mirror, src: Root, dst: Root, shared: Arc<Shared>) -> Run<'a> {
        Run {
            h,
            src: Dirs::new(src),
            dst: Dirs::new(dst),
            touched: BTreeSet::new(),
            synced: BTreeSet::new(),
            pending: Vec::new(),
            fresh: BTreeSet::new(),
            track_fresh: false,
            first_error: None,
            warnings: Vec::new(),
            force_copy: false,
            deadline: h.timeout.map(|t| Instant::now() + t),
            progressed: false,
            timed_out: false,
            shared,
            deletes: true,
        }
    }

    fn note(&mut self, f: Fail) {
        if let Fail::Timeout = f {
            self.stop();
            return;
        }
        let e = HandlerError::from(f);
        tracing::warn!("mirror: {e}");
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// True once the deadline has passed and the run (this thread or another of the run)
    /// has made progress, or another thread of the run has stopped (and from then on).
    fn expired(&mut self) -> bool {
        if self.timed_out {
            return true;
        }
        let shared = &self.shared;
        if self.progressed && !shared.progressed.load(Ordering::Relaxed) {
            shared.progressed.store(true, Ordering::Relaxed);
        }
        if shared.stopped.load(Ordering::Relaxed) {
            self.timed_out = true;
        } else if (self.progressed || shared.progressed.load(Ordering::Relaxed))
            && self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            tracing::debug!("mirror: timeout reached, stopping the run");
            self.stop();
        }
        self.timed_out
    }

    /// Stops this thread of the run and, at their next deadline check, the others.
    fn stop(&mut self) {
        self.timed_out = true;
        self.shared.stopped.store(true, Ordering::Relaxed);
    }

    fn check_deadline(&mut self) -> Result<(), Fail> {
        if self.expired() {
            Err(Fail::Timeout)
        } else {
            Ok(())
        }
    }

    fn touch_parent(&mut self, rel: &Path) {
        if let Some(p) = relpath::parent(rel) {
            self.touched.insert(p.to_path_buf());
        }
    }

    /// Syncs the batch's `entries` (sorted, one per path) in order, until the deadline.
    fn entries(&mut self, entries: &[Entry]) {
        // Any entry changed its source parent's mtime (created, deleted, renamed in or out),
        // even when the destination had nothing to do for it (a file created and renamed
        // away before it was ever synced): every parent gets its times from the source.
        for e in entries {
            self.touch_parent(&e.rel);
        }
        if entries.len() >= parallel::SPLIT_ENTRIES && self.h.workers > 1 {
            self.entries_parallel(entries);
        } else {
            self.entry_group(entries);
        }
    }

    /// Syncs `entries` (sorted, one per path) in order, until the deadline.
    fn entry_group(&mut self, entries: &[Entry]) {
        // Sorted by components, so a recursive entry's descendants follow it directly and
        // are covered by it.
        let mut cover: Option<&Path> = None;
        for e in entries {
            if self.expired() {
                break;
            }
            if cover.is_some_and(|c| relpath::is_self_or_ancestor(c, &e.rel)) {
                continue;
            }
            self.force_copy = !e.attrs_only && !e.recursive;
            self.entry(&e.rel, e.recursive);
            self.force_copy = false;
            if e.recursive {
                cover = Some(&e.rel);
            }
        }
    }

    /// What the run reports: a timeout (which only ever stops a run that changed
    /// something, so it made progress), else its first error, else its warnings.
    fn into_result(self) -> Result<Outcome, HandlerError> {
        if self.timed_out {
            return Err(HandlerError::Timeout {
                program: "mirror".into(),
                timeout: self.h.timeout.unwrap_or_default(),
                killed: false,
                progressed: true,
            });
        }
        match self.first_error {
            Some(e) => Err(e),
            None => Ok(Outcome {
                warnings: self.warnings,
                changed: None,
            }),
        }
    }
}
