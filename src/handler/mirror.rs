//! Native mirror handler: keeps a LOCAL destination equal to the source without rsync.
//!
//! After [`MirrorHandler::run`] returns `Ok`, every path of the batch at the destination is
//! what `rsync -a --delete SRC/ DST/` would have produced for it: content, type, permission
//! bits, modification times (files, symlinks and directories), owner and group (when running
//! as root), symlinks as symlinks, fifos and sockets (and devices when root) re-created.
//!
//! How a batch is applied:
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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Permissions};
use std::io;
use std::ops::Bound;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, OFlags};

use super::{Handler, HandlerError, Outcome};
use crate::fs::{Attrs, Dirs, Meta, Root, list, mknod_at, open_dir, set_attrs_at, set_attrs_fd};
use crate::model::{Batch, Kind, Rename};
use crate::relpath;
use crate::rules::Filter;

/// How often one path is re-examined when the source keeps changing type under us.
const MAX_ATTEMPTS: usize = 4;

/// Bytes copied between two deadline checks: big enough that a copy costs no more system
/// calls than it has to (one `copy_file_range` per chunk), small enough that a timeout is
/// noticed within a fraction of a second on a local disk.
const COPY_CHUNK: u64 = 32 << 20;

/// The native handler for local destinations. See the module documentation.
pub struct MirrorHandler {
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
}

impl std::fmt::Debug for MirrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorHandler")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl MirrorHandler {
    /// A handler that mirrors `source` into the local directory `destination` (created on
    /// the first run if missing), skipping (neither copying nor deleting) what `filter`
    /// excludes.
    pub fn new(source: PathBuf, destination: PathBuf, filter: Arc<Filter>) -> MirrorHandler {
        MirrorHandler {
            source,
            destination,
            filter,
            is_root: nix::unistd::geteuid().is_root(),
            tmp_counter: AtomicU64::new(0),
            pid: std::process::id(),
            timeout: None,
        }
    }

    /// Stops every run that takes longer than `timeout` (`None`: no limit) at its next
    /// deadline check, failing it with [`HandlerError::Timeout`]. See the module
    /// documentation.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> MirrorHandler {
        self.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn destination(&self) -> &Path {
        &self.destination
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
            .all(|a| self.filter.allows(a, Kind::Dir) && self.filter.allows_dir_walk(a))
            && self.allows(rel, kind)
    }

    /// An extraneous destination object may be deleted: the filter does not exclude it, and
    /// a directory is one we may look into (excluded content inside is kept).
    fn deletable(&self, rel: &Path, kind: Kind) -> bool {
        !rel.as_os_str().is_empty()
            && self.filter.allows(rel, kind)
            && (kind != Kind::Dir || self.filter.allows_dir_walk(rel))
    }
}

impl Handler for MirrorHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.source)
    }

    fn local_destination(&self) -> Option<&Path> {
        Some(&self.destination)
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let mut run = Run::new(self)?;

        // Path -> (recursive, content changed).
        let mut entries: BTreeMap<PathBuf, (bool, bool)> = BTreeMap::new();
        for e in &batch.entries {
            let v = entries.entry(e.rel.clone()).or_default();
            v.0 |= e.recursive;
            v.1 |= !e.attrs_only;
        }
        for r in &batch.renames {
            // Stopping between replays is safe: the retry finds the replayed ones gone at
            // the destination (not replayed again) and their `to` side already in place.
            if run.expired() {
                break;
            }
            let renamed = run.rename(r);
            tracing::debug!(from = ?r.from, to = ?r.to, renamed, "mirror: rename replay");
            // Whether or not the rename could be replayed, both sides are synced from the
            // current source state: `from` is normally gone (a cheap no-op delete), and `to`
            // gets a quick-check walk (or the full copy when the rename fell back).
            entries.insert(r.from.clone(), (true, false));
            entries.insert(r.to.clone(), (true, false));
        }
        run.track_fresh = true;

        // Sorted by components, so a recursive entry's descendants follow it directly and
        // are covered by it.
        let mut cover: Option<&Path> = None;
        // Any entry changed its source parent's mtime (created, deleted, renamed in or out),
        // even when the destination had nothing to do for it (a file created and renamed
        // away before it was ever synced): every parent gets its times from the source.
        for rel in entries.keys() {
            run.touch_parent(rel);
        }
        for (rel, &(recursive, content)) in &entries {
            if run.expired() {
                break;
            }
            if cover.is_some_and(|c| relpath::is_self_or_ancestor(c, rel)) {
                continue;
            }
            run.force_copy = content && !recursive;
            run.entry(rel, recursive);
            run.force_copy = false;
            if recursive {
                cover = Some(rel);
            }
        }

        run.fixup_dirs();
        if run.timed_out {
            return Err(HandlerError::Timeout {
                program: "mirror".into(),
                timeout: self.timeout.unwrap_or_default(),
                killed: false,
            });
        }
        match run.first_error {
            Some(e) => Err(e),
            None => Ok(Outcome {
                warnings: run.warnings,
                changed: None,
            }),
        }
    }
}

/// An internal failure.
enum Fail {
    /// The source object vanished or changed type while we were looking at it: look again.
    Changed,
    /// The run's deadline passed: stop (the run reports [`HandlerError::Timeout`]).
    Timeout,
    Io(PathBuf, io::Error),
}

impl From<Fail> for HandlerError {
    fn from(f: Fail) -> HandlerError {
        match f {
            Fail::Io(path, source) => HandlerError::Io { path, source },
            Fail::Changed => HandlerError::Other("source changed during sync".into()),
            Fail::Timeout => HandlerError::Other("mirror: timeout".into()),
        }
    }
}

/// [`io_err`] for [`set_attrs_at`]: an object swapped since its `lstat` is `Changed` (looked
/// at again).
fn attr_err(path: PathBuf) -> impl FnOnce(io::Error) -> Fail {
    move |e| {
        if e.raw_os_error() == Some(libc::ESTALE) {
            Fail::Changed
        } else {
            Fail::Io(path, e)
        }
    }
}

fn io_err(path: PathBuf) -> impl FnOnce(io::Error) -> Fail {
    move |e| Fail::Io(path, e)
}

/// A directory handle, shared by the run's cache and the objects made in it.
type Handle = Rc<OwnedFd>;

/// State of one `run` call.
struct Run<'a> {
    h: &'a MirrorHandler,
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
}

impl<'a> Run<'a> {
    /// Opens both roots. The source root must be a directory (a vanished source must never
    /// empty the destination); the destination root is created when missing. Both roots'
    /// own paths come from the configuration and may be symlinks.
    fn new(h: &'a MirrorHandler) -> Result<Run<'a>, HandlerError> {
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
        let mut run = Run {
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
        };
        let root = run.dst.get(Path::new("")).map_err(dst_err)?;
        run.make_writable(Path::new(""), &root)?;
        run.touched.insert(PathBuf::new());
        Ok(run)
    }

    fn note(&mut self, f: Fail) {
        if let Fail::Timeout = f {
            self.timed_out = true;
            return;
        }
        let e = HandlerError::from(f);
        tracing::warn!("mirror: {e}");
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// True once the deadline has passed and the run has made progress (and from then on).
    fn expired(&mut self) -> bool {
        if !self.timed_out && self.progressed && self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            tracing::debug!("mirror: timeout reached, stopping the run");
            self.timed_out = true;
        }
        self.timed_out
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

    /// Forgets what we knew about the destination `rel` and everything below it (it was
    /// removed or moved).
    fn forget(&mut self, rel: &Path) {
        self.dst.forget(rel);
        let doomed: Vec<PathBuf> = self
            .fresh
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .take_while(|p| relpath::is_self_or_ancestor(rel, p))
            .cloned()
            .collect();
        for p in doomed {
            self.fresh.remove(&p);
        }
    }

    /// When not root, a destination directory must be writable and searchable by us to
    /// change its entries; its real mode is restored by the final fixup.
    fn make_writable(&mut self, rel: &Path, dir: &OwnedFd) -> Result<(), Fail> {
        if self.h.is_root {
            return Ok(());
        }
        let m = Meta::of(dir).map_err(io_err(self.h.dst(rel)))?;
        if m.mode() & 0o300 == 0o300 {
            return Ok(());
        }
        let attrs = Attrs {
            mode: Some((m.mode() | 0o700) & 0o7777),
            ..Attrs::default()
        };
        set_attrs_fd(dir.as_fd(), attrs).map_err(io_err(self.h.dst(rel)))?;
        self.touched.insert(rel.to_path_buf());
        Ok(())
    }

    /// The handle on the destination directory `dir`, a real directory all the way up.
    /// With `create`, missing directories are created and anything else in the way (a
    /// symlink included) is replaced, never followed; without it, `None` when that would be
    /// needed.
    fn dst_dir(&mut self, dir: &Path, create: bool) -> Result<Option<Handle>, Fail> {
        if let Some(fd) = self.dst.cached(dir) {
            return Ok(Some(fd));
        }
        // The common case: all there, one resolution beneath the root.
        match self.dst.root().dir(dir) {
            Ok(fd) => {
                self.make_writable(dir, &fd)?;
                let fd = Rc::new(fd);
                self.dst.put(dir, fd.clone());
                return Ok(Some(fd));
            }
            Err(e)
                if matches!(
                    errno(&e),
                    libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EACCES
                ) => {}
            Err(e) => return Err(Fail::Io(self.h.dst(dir), e)),
        }
        let mut chain: Vec<&Path> = relpath::ancestors(dir).collect();
        chain.reverse();
        chain.push(dir);
        let mut cur = self
            .dst
            .get(Path::new(""))
            .map_err(io_err(self.h.destination.clone()))?;
        for p in chain.into_iter().skip(1) {
            if let Some(fd) = self.dst.cached(p) {
                cur = fd;
                continue;
            }
            let Some(fd) = self.dst_dir_in(&cur, p, create)? else {
                return Ok(None);
            };
            self.make_writable(p, &fd)?;
            let fd = Rc::new(fd);
            self.dst.put(p, fd.clone());
            cur = fd;
        }
        Ok(Some(cur))
    }

    /// [`Self::dst_dir`] with `create`.
    fn need_dst_dir(&mut self, dir: &Path) -> Result<Handle, Fail> {
        match self.dst_dir(dir, true)? {
            Some(fd) => Ok(fd),
            None => Err(Fail::Io(
                self.h.dst(dir),
                io::Error::from_raw_os_error(libc::ENOTDIR),
            )),
        }
    }

    /// The directory `rel` in the directory handle `parent`: opened, or (with `create`)
    /// made, replacing whatever else is there.
    fn dst_dir_in(
        &mut self,
        parent: &OwnedFd,
        rel: &Path,
        create: bool,
    ) -> Result<Option<OwnedFd>, Fail> {
        let name = relpath::name(rel);
        match open_dir(parent, name) {
            Ok(fd) => return Ok(Some(fd)),
            Err(_) if !create => return Ok(None),
            Err(e) if errno(&e) == libc::ENOENT => {}
            Err(e) if matches!(errno(&e), libc::ENOTDIR | libc::ELOOP) => {
                // Something else (maybe a symlink pointing anywhere) where we need a
                // directory: replace it, never follow it.
                rustix::fs::unlinkat(parent, name, AtFlags::empty())
                    .map_err(|e| Fail::Io(self.h.dst(rel), e.into()))?;
                self.touch_parent(rel);
            }
            Err(e) => return Err(Fail::Io(self.h.dst(rel), e)),
        }
        self.mkdir_in(parent, rel)?;
        open_dir(parent, name)
            .map(Some)
            .map_err(io_err(self.h.dst(rel)))
    }

    /// Creates the destination directory `rel`; mode, owner and times come from the source
    /// in the final fixup.
    fn mkdir(&mut self, rel: &Path) -> Result<(), Fail> {
        let parent = self.need_dst_dir(parent_of(rel))?;
        self.mkdir_in(&parent, rel)
    }

    /// [`Self::mkdir`] in the directory handle `parent`.
    fn mkdir_in(&mut self, parent: &OwnedFd, rel: &Path) -> Result<(), Fail> {
        let name = relpath::name(rel);
        match rustix::fs::mkdirat(parent, name, rustix::fs::Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                if self.track_fresh {
                    self.fresh.insert(rel.to_path_buf());
                }
            }
            Err(rustix::io::Errno::EXIST) => match Meta::at(parent, name) {
                Ok(m) if m.is_dir() => {}
                _ => {
                    return Err(Fail::Io(
                        self.h.dst(rel),
                        io::ErrorKind::AlreadyExists.into(),
                    ));
                }
            },
            Err(e) => return Err(Fail::Io(self.h.dst(rel), e.into())),
        }
        self.progressed = true;
        self.touch_parent(rel);
        self.touched.insert(rel.to_path_buf());
        Ok(())
    }

    /// `lstat` of the destination `rel` in its directory's handle `dir`; `None` if absent.
    fn dst_meta(&self, dir: &OwnedFd, rel: &Path) -> Result<Option<Meta>, Fail> {
        match Meta::at(dir, relpath::name(rel)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Fail::Io(self.h.dst(rel), e)),
        }
    }

    /// Removes the destination object `rel` (whose lstat is `meta`; `parent` is its
    /// directory's handle) without following symlinks. Directories are removed recursively
    /// (with an explicit stack: trees may be nested thousands of levels deep), except for
    /// entries the filter excludes; returns false when something had to be left (the
    /// directories holding it stay then).
    fn remove_tree(&mut self, parent: &Handle, rel: &Path, meta: &Meta) -> Result<bool, Fail> {
        if !meta.is_dir() {
            match rustix::fs::unlinkat(&**parent, relpath::name(rel), AtFlags::empty()) {
                Ok(()) => self.progressed = true,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(Fail::Io(self.h.dst(rel), e.into())),
            }
            self.touch_parent(rel);
            return Ok(true);
        }
        self.forget(rel);
        let mut stack = vec![self.open_for_removal(parent, rel)?];
        loop {
            // Stopping halfway leaves a partly emptied directory, which the retry removes.
            self.check_deadline()?;
            let top = stack.last_mut().expect("non-empty removal stack");
            if let Some(name) = top.names.pop() {
                let dir = top.handle(&self.dst, self.h)?;
                let child = join_rel(&top.rel, &name);
                match self.remove_entry(&dir, &child) {
                    Ok(Removal::Done) => {}
                    Ok(Removal::Kept) => top.complete = false,
                    Ok(Removal::Descend(frame)) => {
                        stack.push(frame);
                        let n = stack.len();
                        if n > FRAME_HANDLES {
                            // Deep trees: only the nearest directories keep their handles.
                            stack[n - 1 - FRAME_HANDLES].fd = None;
                        }
                    }
                    Err(f) => {
                        top.complete = false;
                        self.note(f);
                    }
                }
                continue;
            }
            let done = stack.pop().expect("non-empty removal stack");
            let dir = match stack.last_mut() {
                Some(up) => up.handle(&self.dst, self.h)?,
                None => parent.clone(),
            };
            let mut removed = done.complete;
            if removed {
                match rustix::fs::unlinkat(&*dir, relpath::name(&done.rel), AtFlags::REMOVEDIR) {
                    Ok(()) => self.progressed = true,
                    Err(rustix::io::Errno::NOENT) => {}
                    Err(e) if stack.is_empty() => {
                        return Err(Fail::Io(self.h.dst(&done.rel), e.into()));
                    }
                    Err(e) => {
                        removed = false;
                        self.note(Fail::Io(self.h.dst(&done.rel), e.into()));
                    }
                }
            }
            if removed {
                self.touch_parent(&done.rel);
            } else {
                // Kept (holds excluded entries): its mode and times are restored at the end.
                self.touched.insert(done.rel);
            }
            match stack.last_mut() {
                Some(up) => up.complete &= removed,
                None => return Ok(removed),
            }
        }
    }

    /// One entry of a directory being removed: unlinked, kept (excluded), or a directory to
    /// empty first.
    fn remove_entry(&mut self, dir: &Handle, child: &Path) -> Result<Removal, Fail> {
        let Some(m) = self.dst_meta(dir, child)? else {
            return Ok(Removal::Done);
        };
        if !self.h.deletable(child, m.kind()) {
            return Ok(Removal::Kept);
        }
        if m.is_dir() {
            return Ok(Removal::Descend(self.open_for_removal(dir, child)?));
        }
        match rustix::fs::unlinkat(&**dir, relpath::name(child), AtFlags::empty()) {
            Ok(()) => self.progressed = true,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(Fail::Io(self.h.dst(child), e.into())),
        }
        Ok(Removal::Done)
    }

    fn open_for_removal(&mut self, parent: &OwnedFd, rel: &Path) -> Result<RemovalFrame, Fail> {
        let fd = open_dir(parent, relpath::name(rel)).map_err(io_err(self.h.dst(rel)))?;
        self.make_writable(rel, &fd)?;
        let names = list(&fd).map_err(io_err(self.h.dst(rel)))?;
        Ok(RemovalFrame {
            rel: rel.to_path_buf(),
            fd: Some(Rc::new(fd)),
            names: names.into_iter().map(|(n, _)| n).collect(),
            complete: true,
        })
    }

    /// Removes a destination directory that is in the way of a non-directory.
    fn clear_dir(&mut self, parent: &Handle, rel: &Path, meta: &Meta) -> Result<(), Fail> {
        if self.remove_tree(parent, rel, meta)? {
            Ok(())
        } else {
            Err(Fail::Io(
                self.h.dst(rel),
                io::Error::new(
                    io::ErrorKind::DirectoryNotEmpty,
                    "directory in the way holds excluded or undeletable entries",
                ),
            ))
        }
    }

    /// Opens the source object `rel` in its directory's handle, beneath the source root: a
    /// symlink anywhere on the way (a directory swapped for one) fails with `ELOOP` or
    /// `ENOTDIR` instead of leading out of the source.
    fn open_source(&mut self, rel: &Path, flags: OFlags) -> io::Result<fs::File> {
        let dir = self.src.get(parent_of(rel))?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*dir, relpath::name(rel), flags, rustix::fs::Mode::empty())?;
        Ok(fs::File::from(fd))
    }

    /// `lstat` of the source object `rel`, in its directory's handle beneath the source root
    /// (a directory swapped for a symlink on the way fails instead of describing what lies
    /// outside).
    fn src_meta(&mut self, rel: &Path) -> io::Result<Meta> {
        let dir = self.src.get(parent_of(rel))?;
        Meta::at(&*dir, relpath::name(rel))
    }

    /// Creates a fresh object under a temporary name in the destination directory `dir`
    /// (`rel`'s): `make` gets the directory and the name.
    fn temp<T>(
        &self,
        dir: &Handle,
        rel: &Path,
        mut make: impl FnMut(BorrowedFd, &OsStr) -> io::Result<T>,
    ) -> Result<(TempGuard, T), Fail> {
        for _ in 0..64 {
            let name = OsString::from(self.h.tmp_name());
            match make(dir.as_fd(), &name) {
                Ok(t) => return Ok((TempGuard::new(dir, name, false), t)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Fail::Io(self.h.dst(rel), e)),
            }
        }
        Err(Fail::Io(
            self.h.dst(rel),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    /// Creates a fresh object directly under its final name `rel` in `dir`, which is known
    /// to hold nothing of that name (a directory this run created, see [`Self::walk`]);
    /// `None` when something is there after all (`make` must fail with `AlreadyExists`
    /// then: O_EXCL, mkdir, symlink, mknod never replace or follow an existing name).
    ///
    /// Why no temporary name is needed here: temp+rename exists so that a reader never
    /// sees a half-written object *replace a good one*. Here there is nothing to replace,
    /// and the directory is still mode 0700 (until the final fixup), so nobody but us and
    /// root can look into it while the object is being written. If the run stops midway
    /// (error, timeout) the guard removes the object; if the process dies, the leftover has
    /// the current time as its mtime (times are set last), so the next run's quick check
    /// copies it again, like any other differing file.
    ///
    /// The guard holds the final name; [`Self::install`] then only disarms it.
    fn create_final<T>(
        &self,
        dir: &Handle,
        rel: &Path,
        make: impl FnOnce(BorrowedFd, &OsStr) -> io::Result<T>,
    ) -> Result<Option<(TempGuard, T)>, Fail> {
        let name = relpath::name(rel);
        match make(dir.as_fd(), name) {
            Ok(t) => Ok(Some((TempGuard::new(dir, name.to_os_string(), true), t))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Fail::Io(self.h.dst(rel), e)),
        }
    }

    /// Moves a finished temporary object over the destination `rel` (whose previous lstat is
    /// `old`) in the same directory: a directory in the way is removed first, anything else
    /// is replaced atomically.
    fn install(&mut self, tmp: TempGuard, rel: &Path, old: Option<&Meta>) -> Result<(), Fail> {
        if !tmp.in_place {
            if let Some(d) = old.filter(|d| d.is_dir()) {
                self.clear_dir(&tmp.dir, rel, d)?;
            }
            rustix::fs::renameat(&*tmp.dir, &tmp.name, &*tmp.dir, relpath::name(rel))
                .map_err(|e| Fail::Io(self.h.dst(rel), e.into()))?;
        }
        tmp.disarm();
        self.progressed = true;
        self.touch_parent(rel);
        Ok(())
    }

    /// Owner, mode and times of a symlink or special file we just created under a
    /// temporary name: through a handle on that very object (someone who can write the
    /// directory could have put another in its place).
    fn set_new_attrs(&self, tmp: &TempGuard, rel: &Path, src: &Meta) -> Result<(), Fail> {
        let made = Meta::at(&*tmp.dir, &tmp.name).map_err(io_err(self.h.dst(rel)))?;
        self.fix_attrs(rel, &tmp.dir, &tmp.name, &made, src, true)
    }

    /// Brings owner, permission bits and (with `times`) atime/mtime of the existing
    /// destination object `name` in `dir` (lstat `d`, not a symlink unless it is one at the
    /// source too; `rel` names it in messages) to those of the source object `s`, through a
    /// handle on the object `d` describes ([`set_attrs_at`]): an object swapped since is
    /// `Changed`, one with other names is refused.
    fn fix_attrs(
        &self,
        rel: &Path,
        dir: &OwnedFd,
        name: &OsStr,
        d: &Meta,
        s: &Meta,
        times: bool,
    ) -> Result<(), Fail> {
        let set = |attrs| set_attrs_at(dir.as_fd(), name, d, attrs);
        let mut owner = None;
        if self.h.is_root {
            if d.uid() != s.uid() || d.gid() != s.gid() {
                owner = Some((Some(s.uid()), Some(s.gid())));
            }
        } else if d.gid() != s.gid() {
            // Best effort: we may not be in that group.
            let group = Attrs {
                owner: Some((None, Some(s.gid()))),
                ..Attrs::default()
            };
            if set(group).is_ok() {
                owner = Some((None, None));
            }
        }
        // chown may clear set-id bits, so the mode goes after it.
        let chowned = owner.is_some();
        let mode = (!d.is_symlink() && (chowned || d.mode() & 0o7777 != s.mode() & 0o7777))
            .then_some(s.mode() & 0o7777);
        let times = (times && d.mtime() != s.mtime()).then(|| (s.atime(), s.mtime()));
        if !chowned && mode.is_none() && times.is_none() {
            return Ok(());
        }
        let attrs = Attrs {
            owner: owner.filter(|o| o.0.is_some() || o.1.is_some()),
            mode,
            times,
        };
        set(attrs).map_err(attr_err(self.h.dst(rel)))
    }

    fn entry(&mut self, rel: &Path, recursive: bool) {
        if let Err(e) = check_rel(rel) {
            self.note(e);
            return;
        }
        if let Err(f) = self.sync_path(rel, recursive, true, None) {
            self.note(f);
        }
        while let Some(dir) = self.pending.pop() {
            if self.expired() {
                self.pending.clear();
                return;
            }
            match self.walk(&dir) {
                Ok(()) => {}
                Err(Fail::Changed) => {
                    // The source directory vanished or was replaced while we got to it:
                    // sync whatever is there now; if it is a directory again, its content
                    // was not walked, so fail the batch (it is retried).
                    let res = self.sync_path(&dir, false, false, None);
                    if let Err(f) = res {
                        self.note(f);
                    } else if self.src_meta(&dir).is_ok_and(|m| m.is_dir()) {
                        self.note(Fail::Io(
                            self.h.src(&dir),
                            io::Error::other("directory replaced while being synced"),
                        ));
                    }
                }
                Err(f) => self.note(f),
            }
        }
    }

    /// Makes destination `rel` equal to source `rel` (the subtree too with `recursive`).
    /// `top`: a batch entry (its ancestors are checked against the filter), not a walk child.
    /// `new`: the destination is known to hold nothing at `rel` (a child of a directory
    /// this run created, see [`Self::walk`]): no `lstat` there, and new objects are created
    /// directly under their final names. It holds the `d_type` the source listing gave.
    fn sync_path(
        &mut self,
        rel: &Path,
        recursive: bool,
        top: bool,
        new: Option<u8>,
    ) -> Result<(), Fail> {
        let absent = new.is_some();
        for attempt in 0..MAX_ATTEMPTS {
            // A new regular file (as the listing says): no lstat of the source either. The
            // file is opened with O_NOFOLLOW | O_NONBLOCK and its fstat decides (anything
            // but a regular file is `Changed` and looked at again with lstat); the filter
            // sees the kind it would get from lstat.
            if attempt == 0 && !top && new == Some(libc::DT_REG) && self.h.allows(rel, Kind::File) {
                match self.sync_file(rel, None, false, true) {
                    Err(Fail::Changed) => continue,
                    other => return other,
                }
            }
            let meta = match self.src_meta(rel) {
                Ok(m) => m,
                // (A directory on the way that became a symlink: the path is gone as such.)
                Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => {
                    return self.delete(rel, top);
                }
                Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
            };
            let kind = meta.kind();
            let allowed = if top {
                self.h.allowed_path(rel, kind)
            } else {
                self.h.allows(rel, kind)
            };
            if !allowed {
                return Ok(());
            }
            let res = if meta.is_dir() {
                self.sync_dir(rel, recursive, absent)
            } else if meta.is_file() {
                // An event-driven entry says the content changed, even if a rewrite kept the
                // size and put the mtime back; only walks use the quick check.
                self.sync_file(rel, Some(&meta), top && self.force_copy, absent)
            } else if meta.is_symlink() {
                self.sync_symlink(rel, &meta)
            } else {
                self.sync_special(rel, &meta)
            };
            match res {
                Err(Fail::Changed) => continue,
                other => return other,
            }
        }
        Err(Fail::Io(
            self.h.src(rel),
            io::Error::other("source keeps changing while being synced"),
        ))
    }

    /// The source `rel` does not exist (anymore): delete it at the destination.
    fn delete(&mut self, rel: &Path, top: bool) -> Result<(), Fail> {
        if rel.as_os_str().is_empty() {
            return Err(Fail::Io(
                self.h.source.clone(),
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "source root vanished; not touching the destination",
                ),
            ));
        }
        // When a destination ancestor is not a real directory, there is nothing below it to
        // delete (and a symlink there must not be followed).
        let Some(dir) = self.dst_dir(parent_of(rel), false)? else {
            return Ok(());
        };
        let Some(m) = self.dst_meta(&dir, rel)? else {
            return Ok(());
        };
        let kind = m.kind();
        if self.h.deletable(rel, kind) && (!top || self.h.allowed_path(rel, kind)) {
            self.remove_tree(&dir, rel, &m)?;
        }
        Ok(())
    }

    fn sync_dir(&mut self, rel: &Path, recursive: bool, absent: bool) -> Result<(), Fail> {
        // mkdir(2) never follows or replaces anything: when something unexpected is in the
        // way after all, the normal path below looks at it.
        let made = absent && self.mkdir(rel).is_ok();
        if !made {
            self.need_dst_dir(rel)?;
        }
        self.synced.insert(rel.to_path_buf());
        if recursive && (rel.as_os_str().is_empty() || self.h.filter.allows_dir_walk(rel)) {
            // Walked by `entry` with an explicit stack (trees may be very deep).
            self.pending.push(rel.to_path_buf());
        }
        Ok(())
    }

    /// Makes the destination directory `rel` hold what the source directory holds,
    /// recursively.
    fn walk(&mut self, rel: &Path) -> Result<(), Fail> {
        let listed = self.src.get(rel).and_then(|d| list(&*d));
        let mut names = match listed {
            Ok(v) => v,
            Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        names.sort();
        // A directory this run created after the rename replays (`fresh`) is still empty
        // when it is walked: a directory is walked right after the recursive entry or walk
        // step that created it, with only its siblings (and their subtrees) synced in
        // between; batch entries below it sort after the recursive entry that walks it and
        // are covered by it; removals drop it from `fresh`. Nobody else writes there: it was
        // created moments ago with mode 0700 (until the final fixup), so only its owner
        // (us) and root can, and a destination written by others while we sync is outside
        // what any run can keep equal anyway. So its listing is skipped and its children
        // are known to be absent. Even if that assumption broke, nothing unsafe follows:
        // creations use O_EXCL / mkdir(2), which never replace or follow anything (an
        // object found in the way sends the child down the normal path), and the next run
        // removes what this one did not see.
        let absent = self.fresh.remove(rel);
        let dir = self.need_dst_dir(rel)?;
        let dnames = if absent {
            Vec::new()
        } else {
            list(&*dir).map_err(io_err(self.h.dst(rel)))?
        };

        let present: HashSet<&OsStr> = names.iter().map(|(n, _)| n.as_os_str()).collect();
        for (name, _) in dnames
            .iter()
            .filter(|(n, _)| !present.contains(n.as_os_str()))
        {
            self.check_deadline()?;
            let child = join_rel(rel, name);
            let res = match self.dst_meta(&dir, &child) {
                Ok(Some(m)) if self.h.deletable(&child, m.kind()) => {
                    self.remove_tree(&dir, &child, &m).map(|_| ())
                }
                Ok(_) => Ok(()),
                Err(f) => Err(f),
            };
            if let Err(f) = res {
                self.note(f);
            }
        }
        for (name, dtype) in &names {
            self.check_deadline()?;
            let child = join_rel(rel, name);
            let new = absent.then_some(*dtype);
            if let Err(f) = self.sync_path(&child, true, false, new) {
                self.note(f);
            }
        }
        Ok(())
    }

    /// `meta`: the source's lstat (`None`: not taken; only with `absent`, where there is no
    /// destination object to quick-check against).
    fn sync_file(
        &mut self,
        rel: &Path,
        meta: Option<&Meta>,
        force: bool,
        absent: bool,
    ) -> Result<(), Fail> {
        let dir = self.need_dst_dir(parent_of(rel))?;
        let name = relpath::name(rel);
        let dmeta = if absent {
            None
        } else {
            self.dst_meta(&dir, rel)?
        };
        if !force
            && let Some(d) = &dmeta
            && let Some(meta) = meta
            && d.is_file()
            && d.nlink() == 1
            && d.len() == meta.len()
            && d.mtime() == meta.mtime()
        {
            // (A file with other names is copied anew: its other name may be anywhere.)
            return self.fix_attrs(rel, &dir, name, d, meta, false);
        }

        let sfile = match self.open_source(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
        {
            Ok(f) => f,
            Err(e)
                if vanished(&e) || matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) =>
            {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        // The attributes that go with the content we copy. Taken before copying, so that a
        // file modified during the copy gets an older mtime and is copied again next time.
        let smeta = Meta::of(&sfile).map_err(io_err(self.h.src(rel)))?;
        if !smeta.is_file() {
            return Err(Fail::Changed);
        }
        let create = |dir: BorrowedFd, name: &OsStr| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            let mode = rustix::fs::Mode::from_raw_mode(0o600);
            Ok(fs::File::from(rustix::fs::openat(
                dir,
                name,
                flags | OFlags::CLOEXEC,
                mode,
            )?))
        };
        let (tmp, mut tfile) = if absent {
            match self.create_final(&dir, rel, create)? {
                Some(made) => made,
                // Something is there after all: the normal path looks at it.
                None => return self.sync_file(rel, Some(&smeta), force, false),
            }
        } else {
            self.temp(&dir, rel, create)?
        };
        let shown = self.h.dst(rel);
        self.copy_content(&sfile, &mut tfile, smeta.len(), &shown)?;
        if self.h.is_root {
            std::os::unix::fs::fchown(&tfile, Some(smeta.uid()), Some(smeta.gid()))
                .map_err(io_err(shown.clone()))?;
        } else if nix::unistd::getegid().as_raw() != smeta.gid() {
            let _ = std::os::unix::fs::fchown(&tfile, None, Some(smeta.gid()));
        }
        tfile
            .set_permissions(Permissions::from_mode(smeta.mode() & 0o7777))
            .map_err(io_err(shown.clone()))?;
        filetime::set_file_handle_times(&tfile, Some(smeta.atime()), Some(smeta.mtime()))
            .map_err(io_err(shown))?;
        drop(tfile);
        self.install(tmp, rel, dmeta.as_ref())
    }

    /// Copies the first `len` bytes of `from` (at its start; `len` is its size as `fstat`
    /// saw it before the copy, like rsync sends the size it stat'ed) to `to` in chunks of
    /// [`COPY_CHUNK`] bytes, checking the deadline between chunks. Each chunk is one
    /// `copy_file_range` call that the kernel may turn into a reflink or a server-side copy;
    /// knowing the length saves the extra calls of a generic copy (two `fstat`s and a final
    /// call that returns 0). A file that shrank stops the copy early; one that grew (or was
    /// rewritten) after its `fstat` has a newer size or mtime than the copy gets, so the
    /// quick check of the next run copies it again. Where `copy_file_range` is not usable
    /// (another filesystem type, an old kernel, ...) the rest goes through `io::copy`
    /// (which falls back to `sendfile` or read/write) until end of file.
    fn copy_content(
        &mut self,
        from: &fs::File,
        to: &mut fs::File,
        len: u64,
        dp: &Path,
    ) -> Result<(), Fail> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            let mut left = len;
            while left > 0 {
                let want = left.min(COPY_CHUNK) as usize;
                // SAFETY: two open descriptors; NULL offsets use (and advance) the files'
                // own offsets, which the fallback below continues from.
                let n = unsafe {
                    libc::copy_file_range(
                        from.as_raw_fd(),
                        std::ptr::null_mut(),
                        to.as_raw_fd(),
                        std::ptr::null_mut(),
                        want,
                        0,
                    )
                };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // Unsupported here (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, ...) or a real
                    // error, which the generic copy meets again and reports.
                    break;
                }
                if n == 0 {
                    return Ok(());
                }
                left -= n as u64;
                if left > 0 {
                    self.check_deadline()?;
                }
            }
            if left == 0 {
                return Ok(());
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = len;
        loop {
            let n = io::copy(&mut io::Read::take(from, COPY_CHUNK), to)
                .map_err(io_err(dp.to_path_buf()))?;
            if n < COPY_CHUNK {
                return Ok(());
            }
            self.check_deadline()?;
        }
    }

    fn sync_symlink(&mut self, rel: &Path, meta: &Meta) -> Result<(), Fail> {
        let target = match self
            .src
            .get(parent_of(rel))
            .and_then(|d| read_link_at(&d, relpath::name(rel)))
        {
            Ok(t) => t,
            Err(e)
                if vanished(&e) || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ELOOP)) =>
            {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        let dir = self.need_dst_dir(parent_of(rel))?;
        let name = relpath::name(rel);
        let dmeta = self.dst_meta(&dir, rel)?;
        if let Some(d) = &dmeta
            && d.is_symlink()
            && read_link_at(&dir, name).map_err(io_err(self.h.dst(rel)))? == target
        {
            return self.fix_attrs(rel, &dir, name, d, meta, true);
        }
        let (tmp, ()) = self.temp(&dir, rel, |dir, name| {
            Ok(rustix::fs::symlinkat(target.as_os_str(), dir, name)?)
        })?;
        self.set_new_attrs(&tmp, rel, meta)?;
        self.install(tmp, rel, dmeta.as_ref())
    }

    /// Fifos, sockets and (root only) devices.
    fn sync_special(&mut self, rel: &Path, meta: &Meta) -> Result<(), Fail> {
        let is_dev = meta.is_device();
        if is_dev && !self.h.is_root {
            self.warnings.push(format!(
                "{}: not creating a device file (not running as root)",
                self.h.dst(rel).display()
            ));
            return Ok(());
        }
        let dir = self.need_dst_dir(parent_of(rel))?;
        let dmeta = self.dst_meta(&dir, rel)?;
        if let Some(d) = &dmeta
            && d.format() == meta.format()
            && (!is_dev || d.rdev() == meta.rdev())
        {
            return self.fix_attrs(rel, &dir, relpath::name(rel), d, meta, true);
        }
        let (tmp, ()) = self.temp(&dir, rel, |dir, name| {
            mknod_at(dir, name, meta.format(), 0o600, meta.rdev())
        })?;
        self.set_new_attrs(&tmp, rel, meta)?;
        self.install(tmp, rel, dmeta.as_ref())
    }

    /// Replays one rename inside the destination. False when it could not be (the caller
    /// then syncs both sides from the source).
    fn rename(&mut self, r: &Rename) -> bool {
        let (from, to) = (r.from.as_path(), r.to.as_path());
        if check_rel(from).is_err()
            || check_rel(to).is_err()
            || from.as_os_str().is_empty()
            || to.as_os_str().is_empty()
            || relpath::is_self_or_ancestor(from, to)
            || relpath::is_self_or_ancestor(to, from)
        {
            return false;
        }
        match self.try_rename(from, to) {
            Ok(done) => done,
            Err(f) => {
                let e = HandlerError::from(f);
                tracing::debug!("mirror: rename {from:?} -> {to:?} not replayed: {e}");
                false
            }
        }
    }

    fn try_rename(&mut self, from: &Path, to: &Path) -> Result<bool, Fail> {
        let Some(fdir) = self.dst_dir(parent_of(from), false)? else {
            return Ok(false);
        };
        let Some(fm) = self.dst_meta(&fdir, from)? else {
            return Ok(false);
        };
        let kind = fm.kind();
        if !self.h.allowed_path(from, kind) || !self.h.allowed_path(to, kind) {
            return Ok(false);
        }
        let tdir = self.need_dst_dir(parent_of(to))?;
        if let Err(e) = rustix::fs::renameat(&*fdir, relpath::name(from), &*tdir, relpath::name(to))
        {
            tracing::debug!("mirror: rename {from:?} -> {to:?}: {e}");
            return Ok(false);
        }
        self.progressed = true;
        self.forget(from);
        self.forget(to);
        self.touch_parent(from);
        self.touch_parent(to);
        Ok(true)
    }

    /// Gives every touched destination directory the mode, owner and times of its source
    /// directory, deepest first (descendants sort after their ancestors).
    /// After a timeout only the directories the run changed are fixed (the work stays
    /// proportional to what the run did).
    fn fixup_dirs(&mut self) {
        let mut dirs = std::mem::take(&mut self.touched);
        let synced = std::mem::take(&mut self.synced);
        if !self.timed_out {
            dirs.extend(synced);
        }
        for rel in dirs.iter().rev() {
            if let Err(f) = self.fixup_dir(rel) {
                self.note(f);
            }
        }
    }

    fn fixup_dir(&mut self, rel: &Path) -> Result<(), Fail> {
        let smeta = match self.src_meta(rel) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Ok(()),
            Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        let Some(dir) = self.dst_dir(parent_of(rel), false)? else {
            return Ok(());
        };
        match self.dst_meta(&dir, rel)? {
            Some(d) if d.is_dir() => {
                self.fix_attrs(rel, &dir, relpath::name(rel), &d, &smeta, true)
            }
            _ => Ok(()),
        }
    }
}

/// Directories of a removal that keep their handles (the deepest ones); those above are
/// resolved again when the removal climbs back to them.
const FRAME_HANDLES: usize = 64;

/// A destination directory being emptied by [`Run::remove_tree`].
struct RemovalFrame {
    rel: PathBuf,
    /// Its handle (`None`: dropped, see [`FRAME_HANDLES`]).
    fd: Option<Handle>,
    /// Entries not looked at yet.
    names: Vec<OsString>,
    /// Everything looked at so far could be removed.
    complete: bool,
}

impl RemovalFrame {
    /// The directory's handle, resolved again beneath the root if it was dropped.
    fn handle(&mut self, dst: &Dirs, h: &MirrorHandler) -> Result<Handle, Fail> {
        if let Some(fd) = &self.fd {
            return Ok(fd.clone());
        }
        let fd = Rc::new(
            dst.root()
                .dir(&self.rel)
                .map_err(io_err(h.dst(&self.rel)))?,
        );
        self.fd = Some(fd.clone());
        Ok(fd)
    }
}

/// What [`Run::remove_entry`] did.
enum Removal {
    Done,
    /// Excluded: left in place (so is its directory).
    Kept,
    /// A directory: empty it first.
    Descend(RemovalFrame),
}

/// A new object under its name in a destination directory: removed when dropped, unless
/// disarmed. `in_place`: the name is the object's final name ([`Run::create_final`]), not
/// a temporary one.
struct TempGuard {
    dir: Handle,
    name: OsString,
    armed: bool,
    in_place: bool,
}

impl TempGuard {
    fn new(dir: &Handle, name: OsString, in_place: bool) -> TempGuard {
        TempGuard {
            dir: dir.clone(),
            name,
            armed: true,
            in_place,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::empty());
        }
    }
}

fn join_rel(rel: &Path, name: &OsStr) -> PathBuf {
    if rel.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        rel.join(name)
    }
}

fn parent_of(rel: &Path) -> &Path {
    relpath::parent(rel).unwrap_or(Path::new(""))
}

/// The target of the symlink `name` in `dir`.
fn read_link_at(dir: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Batch paths must be normalized and relative: no leading `/`, no empty, `.` or `..`
/// components (nothing may escape the destination).
fn check_rel(rel: &Path) -> Result<(), Fail> {
    let b = rel.as_os_str().as_bytes();
    if b.is_empty() {
        return Ok(());
    }
    if b.split(|&c| c == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(Fail::Io(
            rel.to_path_buf(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a normalized source-relative path",
            ),
        ));
    }
    Ok(())
}

/// "The source is not there (anymore)".
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;
    use filetime::FileTime;
    use nix::sys::stat::{Mode, SFlag};
    use std::fs::OpenOptions;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::os::unix::net::UnixListener;
    use std::process::Command;
    use tempfile::TempDir;

    fn p(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(bytes))
    }

    fn with_slash(path: &Path) -> OsString {
        let mut s = path.as_os_str().to_owned();
        s.push("/");
        s
    }

    /// What `rsync -anci --delete` would still change: empty when the trees are equal
    /// (content, type, perms, owner/group as root, times including directories').
    fn rsync_diff(src: &Path, dst: &Path) -> String {
        let out = Command::new("rsync")
            .arg("-anci")
            .arg("--delete")
            .arg(with_slash(src))
            .arg(with_slash(dst))
            .output()
            .expect("run rsync");
        assert!(
            out.status.success(),
            "rsync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    fn assert_same(src: &Path, dst: &Path) {
        let d = rsync_diff(src, dst);
        assert!(d.is_empty(), "trees differ:\n{d}");
    }

    struct Fixture {
        src: TempDir,
        dst: TempDir,
        h: MirrorHandler,
    }

    impl Fixture {
        fn new() -> Fixture {
            let src = TempDir::new().unwrap();
            let dst = TempDir::new().unwrap();
            let h = MirrorHandler::new(
                src.path().to_path_buf(),
                dst.path().to_path_buf(),
                Arc::new(Filter::allow_all()),
            );
            Fixture { src, dst, h }
        }
        fn s(&self, rel: &str) -> PathBuf {
            self.src.path().join(rel)
        }
        fn d(&self, rel: &str) -> PathBuf {
            self.dst.path().join(rel)
        }
        #[track_caller]
        fn run(&self, batch: Batch) -> Outcome {
            self.h.run(&batch).expect("mirror run")
        }
        #[track_caller]
        fn full(&self) {
            self.run(Batch::full());
            self.check();
        }
        #[track_caller]
        fn check(&self) {
            assert_same(self.src.path(), self.dst.path());
        }
    }

    fn entries(list: &[(&str, bool)]) -> Batch {
        let mut entries: Vec<Entry> = list
            .iter()
            .map(|&(rel, recursive)| Entry {
                rel: PathBuf::from(rel),
                recursive,
                attrs_only: false,
            })
            .collect();
        entries.sort();
        entries.dedup();
        Batch {
            renames: Vec::new(),
            entries,
        }
    }

    fn renames(list: &[(&str, &str)], ents: &[(&str, bool)]) -> Batch {
        let mut b = entries(ents);
        b.renames = list
            .iter()
            .map(|&(from, to)| Rename {
                from: PathBuf::from(from),
                to: PathBuf::from(to),
            })
            .collect();
        b
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn set_mtime(path: &Path, secs: i64) {
        filetime::set_symlink_file_times(
            path,
            FileTime::from_unix_time(secs, 0),
            FileTime::from_unix_time(secs, 123_456_789),
        )
        .unwrap();
    }

    fn ino(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().ino()
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A tree with everything `rsync -a` cares about.
    fn build_mixed_tree(root: &Path) {
        let w = |rel: &Path, data: &[u8]| fs::write(root.join(rel), data).unwrap();
        fs::create_dir_all(root.join("sub/deeper/deepest")).unwrap();
        w(Path::new("file.txt"), b"hello world\n");
        w(Path::new("empty"), b"");
        w(Path::new("sub/a"), b"aaa");
        w(Path::new("sub/deeper/deepest/leaf"), &vec![7u8; 100_000]);
        w(Path::new("private"), b"secret");
        set_mode(&root.join("private"), 0o600);
        w(Path::new("script"), b"#!/bin/sh\n");
        set_mode(&root.join("script"), 0o755);
        w(Path::new("readonly"), b"ro");
        set_mode(&root.join("readonly"), 0o444);
        // Odd names.
        for name in [
            &b"new\nline"[..],
            b"caf\xe9",
            b"-rf",
            b"$(touch x)",
            b" spaced name ",
            b"star*and?glob[",
            &[b'x'; 255][..],
        ] {
            w(&p(name), name);
        }
        fs::create_dir(root.join(p(b"dir\nwith\xffbyte"))).unwrap();
        w(&p(b"dir\nwith\xffbyte/inner"), b"inner");
        // Symlinks: absolute, relative, dangling, to a directory.
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../file.txt", root.join("sub/rel-link")).unwrap();
        std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("dir-link")).unwrap();
        set_mtime(&root.join("abs-link"), 1_100_000_000);
        // Specials.
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
        drop(UnixListener::bind(root.join("sock")).unwrap());
        if is_root() {
            nix::sys::stat::mknod(
                &root.join("null-dev"),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                libc::makedev(1, 3),
            )
            .unwrap();
            w(Path::new("owned"), b"owned by someone else");
            std::os::unix::fs::lchown(root.join("owned"), Some(1234), Some(5678)).unwrap();
            std::os::unix::fs::lchown(root.join("abs-link"), Some(4321), Some(8765)).unwrap();
            w(Path::new("setuid"), b"suid");
            std::os::unix::fs::chown(root.join("setuid"), Some(1000), Some(1000)).unwrap();
            set_mode(&root.join("setuid"), 0o4755);
        }
        // A read-only directory with content.
        fs::create_dir(root.join("ro-dir")).unwrap();
        w(Path::new("ro-dir/f"), b"in ro dir");
        set_mode(&root.join("ro-dir"), 0o500);
        set_mtime(&root.join("file.txt"), 1_000_000_000);
        set_mtime(&root.join("sub"), 1_200_000_000);
        set_mtime(&root.join("ro-dir"), 1_300_000_000);
    }

    #[test]
    fn full_sync_of_mixed_tree() {
        let f = Fixture::new();
        build_mixed_tree(f.src.path());
        let out = f.run(Batch::full());
        assert!(out.warnings.is_empty() || !is_root(), "{:?}", out.warnings);
        f.check();
        assert!(fs::symlink_metadata(f.d("dir-link")).unwrap().is_symlink());
        assert!(
            fs::symlink_metadata(f.d("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        // Idempotent: a second run changes nothing and is still equal.
        let before = ino(&f.d("sub/a"));
        f.full();
        assert_eq!(before, ino(&f.d("sub/a")), "quick check must not re-copy");
        // No temporary files are left behind.
        let leftovers = Command::new("find")
            .arg(f.dst.path())
            .args(["-name", ".clsync.*"])
            .output()
            .unwrap();
        assert!(leftovers.stdout.is_empty());
    }

    #[test]
    fn full_sync_deletes_extraneous_and_fixes_attributes() {
        let f = Fixture::new();
        build_mixed_tree(f.src.path());
        // Pre-existing junk and wrong attributes at the destination.
        fs::create_dir_all(f.d("junk/dir/deep")).unwrap();
        fs::write(f.d("junk/dir/deep/x"), b"x").unwrap();
        fs::write(f.d("file.txt"), b"HELLO WORLD\n").unwrap(); // same size, other mtime
        fs::create_dir(f.d("empty")).unwrap(); // dir where source has a file
        fs::write(f.d("sub"), b"file where source has a dir").unwrap();
        std::os::unix::fs::symlink("/", f.d("fifo")).unwrap();
        f.full();
    }

    #[test]
    fn incremental_entries() {
        let f = Fixture::new();
        fs::create_dir_all(f.s("a/b")).unwrap();
        fs::write(f.s("a/b/f"), b"hello").unwrap();
        fs::create_dir_all(f.s("tree/x/y")).unwrap();
        fs::write(f.s("tree/x/y/z"), b"z").unwrap();
        fs::write(f.s("tree/t"), b"t").unwrap();
        f.full();

        // Create.
        fs::write(f.s("a/new"), b"new file").unwrap();
        f.run(entries(&[("a/new", false)]));
        f.check();

        // Modify: same size, different mtime.
        let old = ino(&f.d("a/b/f"));
        fs::write(f.s("a/b/f"), b"world").unwrap();
        set_mtime(&f.s("a/b/f"), 1_500_000_000);
        f.run(entries(&[("a/b/f", false)]));
        f.check();
        assert_eq!(fs::read(f.d("a/b/f")).unwrap(), b"world");
        assert_ne!(
            old,
            ino(&f.d("a/b/f")),
            "replaced atomically via a temp file"
        );

        // Append.
        let mut file = OpenOptions::new().append(true).open(f.s("a/b/f")).unwrap();
        io::Write::write_all(&mut file, b" and more").unwrap();
        drop(file);
        f.run(entries(&[("a/b/f", false)]));
        f.check();

        // Chmod only (an attributes-only entry): no copy.
        let old = ino(&f.d("a/b/f"));
        set_mode(&f.s("a/b/f"), 0o640);
        let mut b = entries(&[("a/b/f", false)]);
        b.entries[0].attrs_only = true;
        f.run(b);
        f.check();
        assert_eq!(old, ino(&f.d("a/b/f")));

        // Rewritten with the same size and the old mtime put back: still copied, because
        // the entry says the content changed.
        let m = fs::metadata(f.s("a/b/f")).unwrap();
        let before = filetime::FileTime::from_last_modification_time(&m);
        let len = m.len() as usize;
        fs::write(f.s("a/b/f"), vec![b'Z'; len]).unwrap();
        filetime::set_file_mtime(f.s("a/b/f"), before).unwrap();
        f.run(entries(&[("a/b/f", false)]));
        f.check();
        assert_eq!(fs::read(f.d("a/b/f")).unwrap(), vec![b'Z'; len]);

        // Delete a file.
        fs::remove_file(f.s("a/new")).unwrap();
        f.run(entries(&[("a/new", false)]));
        f.check();

        // Delete a directory tree (non-recursive entry still removes the whole dst tree).
        fs::remove_dir_all(f.s("tree")).unwrap();
        f.run(entries(&[("tree", false)]));
        f.check();
        assert!(!f.d("tree").exists());

        // File -> directory.
        fs::remove_file(f.s("a/b/f")).unwrap();
        fs::create_dir(f.s("a/b/f")).unwrap();
        fs::write(f.s("a/b/f/inside"), b"inside").unwrap();
        f.run(entries(&[("a/b/f", true)]));
        f.check();

        // And back: directory -> file.
        fs::remove_dir_all(f.s("a/b/f")).unwrap();
        fs::write(f.s("a/b/f"), b"file again").unwrap();
        f.run(entries(&[("a/b/f", false)]));
        f.check();

        // Symlink -> file -> symlink.
        std::os::unix::fs::symlink("b/f", f.s("a/l")).unwrap();
        f.run(entries(&[("a/l", false)]));
        f.check();
        fs::remove_file(f.s("a/l")).unwrap();
        fs::write(f.s("a/l"), b"now a file").unwrap();
        f.run(entries(&[("a/l", false)]));
        f.check();

        // Deleting something that is already gone everywhere is fine.
        f.run(entries(&[("never/existed", false), ("nope", true)]));
        f.check();

        // New nested path whose destination parents are missing.
        fs::create_dir_all(f.s("n1/n2/n3")).unwrap();
        set_mode(&f.s("n1/n2"), 0o750);
        fs::write(f.s("n1/n2/n3/leaf"), b"leaf").unwrap();
        f.run(entries(&[("n1/n2/n3/leaf", false)]));
        f.check();
    }

    /// Read-only directories at the destination must still be updatable (as non-root this
    /// needs a temporary u+w that the final fixup takes back) and deletable.
    #[test]
    fn read_only_directories() {
        let f = Fixture::new();
        fs::create_dir_all(f.s("ro/inner")).unwrap();
        fs::write(f.s("ro/inner/f"), b"f").unwrap();
        fs::write(f.s("ro/g"), b"g").unwrap();
        set_mode(&f.s("ro/inner"), 0o500);
        set_mode(&f.s("ro"), 0o555);
        f.full();

        // Add, modify and delete inside the read-only directories.
        set_mode(&f.s("ro"), 0o755);
        set_mode(&f.s("ro/inner"), 0o700);
        fs::write(f.s("ro/inner/new"), b"new").unwrap();
        fs::write(f.s("ro/inner/f"), b"changed").unwrap();
        fs::remove_file(f.s("ro/g")).unwrap();
        set_mode(&f.s("ro/inner"), 0o500);
        set_mode(&f.s("ro"), 0o555);
        f.run(entries(&[
            ("ro/inner/new", false),
            ("ro/inner/f", false),
            ("ro/g", false),
        ]));
        f.check();

        // Delete the whole read-only tree.
        set_mode(&f.s("ro"), 0o755);
        set_mode(&f.s("ro/inner"), 0o755);
        fs::remove_dir_all(f.s("ro")).unwrap();
        f.run(entries(&[("ro", false)]));
        f.check();
        assert!(!f.d("ro").exists());
    }

    /// Deep directory nesting (1200 levels, 512 KiB stack) must not overflow a worker thread's stack, neither
    /// when copying nor when deleting. (Too deep for rsync to compare.)
    #[test]
    fn deep_tree() {
        let f = Fixture::new();
        let longest = f
            .src
            .path()
            .as_os_str()
            .len()
            .max(f.dst.path().as_os_str().len());
        let rel = vec!["a"; ((4000 - longest) / 2).min(1200)].join("/");
        fs::create_dir_all(f.s(&rel)).unwrap();
        fs::write(f.s(&format!("{rel}/leaf")), b"deep").unwrap();
        let run_small_stack = |batch: Batch| {
            std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(512 << 10)
                    .spawn_scoped(s, || f.h.run(&batch).unwrap())
                    .unwrap()
                    .join()
                    .unwrap()
            })
        };
        run_small_stack(Batch::full());
        assert_eq!(fs::read(f.d(&format!("{rel}/leaf"))).unwrap(), b"deep");
        fs::rename(f.s("a"), f.s("b")).unwrap();
        run_small_stack(entries(&[("a", false)]));
        assert!(!f.d("a").exists());
    }

    #[test]
    fn file_rename_is_replayed() {
        let f = Fixture::new();
        fs::create_dir(f.s("d")).unwrap();
        fs::write(f.s("d/a"), b"content").unwrap();
        f.full();
        let before = ino(&f.d("d/a"));
        fs::create_dir(f.s("e")).unwrap();
        fs::rename(f.s("d/a"), f.s("e/b")).unwrap();
        f.run(renames(
            &[("d/a", "e/b")],
            &[("d/a", false), ("e/b", false)],
        ));
        f.check();
        assert_eq!(before, ino(&f.d("e/b")));
    }

    #[test]
    fn big_directory_rename_is_one_rename() {
        let f = Fixture::new();
        for d in 0..10 {
            let dir = f.s(&format!("big/d{d}"));
            fs::create_dir_all(&dir).unwrap();
            for i in 0..1000 {
                fs::write(dir.join(format!("f{i}")), format!("file {d}/{i}")).unwrap();
            }
        }
        f.full();
        let before = ino(&f.d("big/d5/f500"));
        fs::rename(f.s("big"), f.s("moved")).unwrap();
        let batch = renames(&[("big", "moved")], &[("big", false), ("moved", true)]);
        let t = Instant::now();
        f.run(batch);
        let took = t.elapsed();
        eprintln!("mirror: rename batch of a 10,000-file directory took {took:?}");
        assert_eq!(before, ino(&f.d("moved/d5/f500")), "renamed, not re-copied");
        assert!(!f.d("big").exists());
        f.check();
    }

    #[test]
    fn rename_chain() {
        let f = Fixture::new();
        fs::write(f.s("a"), b"file a").unwrap();
        fs::create_dir(f.s("da")).unwrap();
        fs::write(f.s("da/x"), b"x").unwrap();
        f.full();
        let (fa, fx) = (ino(&f.d("a")), ino(&f.d("da/x")));
        fs::rename(f.s("a"), f.s("b")).unwrap();
        fs::rename(f.s("b"), f.s("c")).unwrap();
        fs::rename(f.s("da"), f.s("db")).unwrap();
        fs::rename(f.s("db"), f.s("dc")).unwrap();
        f.run(renames(
            &[("a", "b"), ("b", "c"), ("da", "db"), ("db", "dc")],
            &[
                ("a", false),
                ("b", false),
                ("c", false),
                ("da", false),
                ("db", true),
                ("dc", true),
            ],
        ));
        f.check();
        assert_eq!(fa, ino(&f.d("c")));
        assert_eq!(fx, ino(&f.d("dc/x")));
    }

    #[test]
    fn rename_falls_back_when_it_cannot_be_replayed() {
        let f = Fixture::new();
        fs::create_dir(f.s("keep")).unwrap();
        f.full();
        // `x` never reached the destination before it was renamed.
        fs::create_dir(f.s("x")).unwrap();
        fs::write(f.s("x/f"), b"f").unwrap();
        fs::rename(f.s("x"), f.s("y")).unwrap();
        f.run(renames(&[("x", "y")], &[("x", false), ("y", true)]));
        f.check();

        // Target is a non-empty directory at the destination (ENOTEMPTY).
        fs::create_dir(f.s("full")).unwrap();
        fs::write(f.s("full/old"), b"old").unwrap();
        f.full();
        fs::remove_dir_all(f.s("full")).unwrap();
        fs::rename(f.s("y"), f.s("full")).unwrap();
        f.run(renames(&[("y", "full")], &[("y", false), ("full", true)]));
        f.check();

        // Stale rename whose source path is gone from the source too.
        f.run(renames(
            &[("ghost", "ghost2")],
            &[("ghost", false), ("ghost2", true)],
        ));
        f.check();
    }

    #[test]
    fn destination_symlinks_are_never_followed() {
        let f = Fixture::new();
        let outside = TempDir::new().unwrap();
        let outside2 = TempDir::new().unwrap();
        fs::write(outside2.path().join("victim"), b"must survive").unwrap();
        fs::create_dir(f.s("a")).unwrap();
        fs::write(f.s("a/f"), b"data").unwrap();
        fs::create_dir(f.s("b")).unwrap();
        std::os::unix::fs::symlink(outside.path(), f.d("a")).unwrap();
        std::os::unix::fs::symlink(outside2.path(), f.d("b")).unwrap();

        // A single nested entry: the symlinked parent is replaced by a real directory.
        f.run(entries(&[("a/f", false)]));
        assert!(fs::symlink_metadata(f.d("a")).unwrap().is_dir());
        assert_eq!(fs::read(f.d("a/f")).unwrap(), b"data");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

        // Deleting below a symlinked destination directory must not delete outside.
        f.run(entries(&[("b/victim", false)]));
        assert!(outside2.path().join("victim").exists());

        f.full();
        assert!(outside2.path().join("victim").exists());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(fs::symlink_metadata(f.d("b")).unwrap().is_dir());
    }

    #[test]
    fn bad_paths_are_rejected() {
        let f = Fixture::new();
        fs::write(f.s("ok"), b"ok").unwrap();
        let err =
            f.h.run(&entries(&[("../escape", false), ("ok", false)]))
                .unwrap_err();
        assert!(matches!(err, HandlerError::Io { .. }), "{err}");
        // The good entry was still synced.
        assert_eq!(fs::read(f.d("ok")).unwrap(), b"ok");
        // A rename with a bad path is not replayed and does not escape.
        let b = renames(&[("ok", "../../x")], &[]);
        f.h.run(&b).unwrap_err();
        assert!(f.d("ok").exists());
    }

    #[test]
    fn vanished_source_root_is_an_error_and_keeps_destination() {
        let src = TempDir::new().unwrap();
        let dst = TempDir::new().unwrap();
        fs::write(dst.path().join("precious"), b"x").unwrap();
        let h = MirrorHandler::new(
            src.path().join("gone"),
            dst.path().to_path_buf(),
            Arc::new(Filter::allow_all()),
        );
        assert!(h.run(&Batch::full()).is_err());
        assert!(dst.path().join("precious").exists());
    }

    #[test]
    fn destination_root_is_created() {
        let f = Fixture::new();
        fs::write(f.s("x"), b"x").unwrap();
        let dst = f.dst.path().join("new/root");
        let h = MirrorHandler::new(
            f.src.path().to_path_buf(),
            dst.clone(),
            Arc::new(Filter::allow_all()),
        );
        h.run(&Batch::full()).unwrap();
        assert_same(f.src.path(), &dst);
    }

    #[test]
    fn concurrent_disjoint_batches() {
        let f = Fixture::new();
        for d in ["left", "right"] {
            for i in 0..200 {
                let dir = f.s(&format!("{d}/{}", i % 10));
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join(format!("f{i}")), format!("{d}{i}")).unwrap();
            }
        }
        let h = &f.h;
        std::thread::scope(|s| {
            for d in ["left", "right"] {
                s.spawn(move || h.run(&entries(&[(d, true)])).unwrap());
            }
        });
        f.check();
    }

    /// Every object below `root` (relative path -> inode), temporary names included.
    fn dst_objects(root: &Path) -> BTreeMap<PathBuf, u64> {
        let mut out = BTreeMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(root.join(&rel)).unwrap() {
                let e = e.unwrap();
                let child = rel.join(e.file_name());
                let m = fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    stack.push(child.clone());
                }
                out.insert(child, m.ino());
            }
        }
        out
    }

    #[track_caller]
    fn assert_no_temporaries(objects: &BTreeMap<PathBuf, u64>) {
        let temps: Vec<&PathBuf> = objects
            .keys()
            .filter(|p| p.file_name().unwrap().as_bytes().starts_with(b".clsync."))
            .collect();
        assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
    }

    fn with_timeout(f: &Fixture, timeout: Duration) -> MirrorHandler {
        MirrorHandler::new(
            f.src.path().to_path_buf(),
            f.dst.path().to_path_buf(),
            Arc::new(Filter::allow_all()),
        )
        .with_timeout(Some(timeout))
    }

    /// A tiny timeout stops a full sync of many files with `Timeout`; every stopped run has
    /// made progress, what it installed is not copied again, and the retries converge.
    #[test]
    fn timeout_stops_the_run_and_retries_converge() {
        let f = Fixture::new();
        for d in 0..10 {
            fs::create_dir(f.s(&format!("d{d}"))).unwrap();
            for i in 0..30 {
                fs::write(
                    f.s(&format!("d{d}/f{i:02}")),
                    format!("{d}/{i}\n").repeat(500),
                )
                .unwrap();
            }
        }
        let h = with_timeout(&f, Duration::from_millis(1));
        let err = h.run(&Batch::full()).unwrap_err();
        assert!(
            matches!(err, HandlerError::Timeout { killed: false, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("stopped"), "{err}");
        let first = dst_objects(f.dst.path());
        assert_no_temporaries(&first);
        assert!(!first.is_empty(), "the stopped run made progress");

        let mut seen = first.len();
        let mut runs = 1;
        loop {
            runs += 1;
            assert!(runs <= 400, "no convergence after {runs} runs");
            match h.run(&Batch::full()) {
                Ok(_) => break,
                Err(HandlerError::Timeout { .. }) => {
                    let now = dst_objects(f.dst.path());
                    assert_no_temporaries(&now);
                    assert!(now.len() > seen, "run {runs} made no progress");
                    seen = now.len();
                }
                Err(e) => panic!("run {runs}: {e}"),
            }
        }
        eprintln!("mirror: full sync with a 1 ms timeout converged in {runs} runs");
        f.check();
        let last = dst_objects(f.dst.path());
        for (rel, ino) in &first {
            assert_eq!(last.get(rel), Some(ino), "{rel:?} was copied again");
        }
        // A run with nothing to change is never stopped, however short the timeout.
        h.run(&Batch::full()).unwrap();
        assert_eq!(last, dst_objects(f.dst.path()));
    }

    /// A copy checks the deadline between chunks; a timed-out copy leaves no temporary file
    /// and nothing under the real name; a file bigger than one run can copy is still
    /// synced (a run that has not changed anything yet is not stopped).
    #[test]
    fn timeout_between_copy_chunks() {
        let f = Fixture::new();
        let len = 2 * COPY_CHUNK as usize + 12_345;
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        fs::write(f.s("big"), &content).unwrap();
        let h = with_timeout(&f, Duration::from_nanos(1));

        // The chunk loop itself: one chunk once the deadline has passed and the run has
        // made progress; the whole file otherwise.
        let mut run = Run::new(&h).unwrap();
        run.deadline = Some(Instant::now());
        let out = f.dst.path().join("out");
        let copy = |run: &mut Run| {
            let mut to = fs::File::create(&out).unwrap();
            let from = fs::File::open(f.s("big")).unwrap();
            let res = run.copy_content(&from, &mut to, len as u64, &out);
            (res, fs::metadata(&out).unwrap().len())
        };
        let (res, copied) = copy(&mut run);
        assert!(res.is_ok());
        assert_eq!(copied, len as u64, "no progress yet: the whole file");
        run.progressed = true;
        let (res, copied) = copy(&mut run);
        assert!(matches!(res, Err(Fail::Timeout)));
        assert_eq!(copied, COPY_CHUNK, "stopped after the first chunk");
        fs::remove_file(&out).unwrap();

        // sync_file stopped mid-copy: the temporary file is gone, nothing is installed.
        let mut run = Run::new(&h).unwrap();
        run.deadline = Some(Instant::now());
        run.progressed = true;
        let meta = Meta::at(fs::File::open(f.src.path()).unwrap(), OsStr::new("big")).unwrap();
        assert!(matches!(
            run.sync_file(Path::new("big"), Some(&meta), false, false),
            Err(Fail::Timeout)
        ));
        drop(run);
        assert!(dst_objects(f.dst.path()).is_empty());

        // Whole runs: the big file takes longer than the timeout, but is the run's first
        // change, so it is copied.
        h.run(&Batch::full()).unwrap();
        f.check();
        // Now a small file comes first: installed, then the run stops before the changed
        // big file, whose old version stays in place; the next run copies it.
        fs::write(f.s("a"), b"small").unwrap();
        let changed: Vec<u8> = content.iter().map(|b| b.wrapping_add(1)).collect();
        fs::write(f.s("big"), &changed).unwrap();
        set_mtime(&f.s("big"), 1_600_000_000);
        let err = h.run(&Batch::full()).unwrap_err();
        assert!(matches!(err, HandlerError::Timeout { .. }), "{err}");
        assert_eq!(fs::read(f.d("a")).unwrap(), b"small");
        assert!(
            fs::read(f.d("big")).unwrap() == content,
            "old version intact"
        );
        assert_no_temporaries(&dst_objects(f.dst.path()));
        let a = ino(&f.d("a"));
        h.run(&Batch::full()).unwrap();
        f.check();
        assert_eq!(a, ino(&f.d("a")), "not copied again");
    }

    /// Timing comparison (run with `--ignored --nocapture`): full sync of 10,000 small files
    /// in 100 directories into an empty destination, then a no-op rerun, alternating mirror
    /// and `rsync -a` for a few rounds.
    #[test]
    #[ignore]
    fn full_sync_speed_compared_with_rsync() {
        let src = TempDir::new().unwrap();
        for d in 0..100 {
            let dir = src.path().join(format!("d{d:03}"));
            fs::create_dir(&dir).unwrap();
            for i in 0..100 {
                fs::write(
                    dir.join(format!("file{i:03}")),
                    format!("small file {d} {i}\n"),
                )
                .unwrap();
            }
        }
        let rsync = |dst: &Path| {
            let st = Command::new("rsync")
                .arg("-a")
                .arg("--delete")
                .arg(with_slash(src.path()))
                .arg(with_slash(dst))
                .status()
                .unwrap();
            assert!(st.success());
        };
        // Flush pending writes first: the destination creates would otherwise wait for the
        // journal commit of whatever was written just before (the source tree, the previous
        // destination), which favours whichever side runs second.
        let time = |f: &dyn Fn()| {
            nix::unistd::sync();
            let t = Instant::now();
            f();
            t.elapsed()
        };
        for round in 0..3 {
            let mdst = TempDir::new().unwrap();
            let h = MirrorHandler::new(
                src.path().to_path_buf(),
                mdst.path().to_path_buf(),
                Arc::new(Filter::allow_all()),
            );
            let full = || {
                h.run(&Batch::full()).unwrap();
            };
            let m = time(&full);
            let m_noop = time(&full);
            let rdst = TempDir::new().unwrap();
            let r = time(&|| rsync(rdst.path()));
            let r_noop = time(&|| rsync(rdst.path()));
            eprintln!(
                "round {round}: 10,000 small files: mirror {m:?} (no-op {m_noop:?}), \
                 rsync -a {r:?} (no-op {r_noop:?})"
            );
            assert_same(src.path(), mdst.path());
        }
    }

    /// Files new in a directory the run created are made under their final names: a
    /// timed-out copy leaves nothing there, and an object found in the way after all (a
    /// file, a symlink pointing outside) sends the path through the normal replace logic,
    /// never writing through the symlink.
    #[test]
    fn new_files_in_created_directories() {
        let f = Fixture::new();
        fs::create_dir_all(f.s("d/sub")).unwrap();
        fs::write(f.s("d/file"), b"new content").unwrap();
        fs::write(f.s("d/link"), b"not a link at the source").unwrap();
        fs::write(f.s("d/sub/inner"), b"inner").unwrap();
        let big = vec![1u8; 2 * COPY_CHUNK as usize + 1];
        fs::write(f.s("d/big"), &big).unwrap();
        let outside = TempDir::new().unwrap();
        fs::write(outside.path().join("victim"), b"keep").unwrap();

        // Timeout in the middle of a file created under its final name.
        let h = with_timeout(&f, Duration::from_nanos(1));
        let mut run = Run::new(&h).unwrap();
        run.track_fresh = true;
        assert!(run.mkdir(Path::new("d")).is_ok());
        assert!(run.fresh.contains(Path::new("d")));
        run.deadline = Some(Instant::now());
        run.progressed = true;
        assert!(matches!(
            run.sync_path(Path::new("d/big"), true, false, Some(libc::DT_REG)),
            Err(Fail::Timeout)
        ));
        drop(run);
        assert!(
            !f.d("d/big").exists(),
            "no half-written file under the real name"
        );

        // Objects in the way of a "fresh" directory's children (written by someone else).
        let mut run = Run::new(&f.h).unwrap();
        run.track_fresh = true;
        fs::remove_dir(f.d("d")).unwrap();
        assert!(run.mkdir(Path::new("d")).is_ok());
        fs::write(f.d("d/file"), b"old").unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), f.d("d/link")).unwrap();
        assert!(run.walk(Path::new("d")).is_ok());
        while let Some(dir) = run.pending.pop() {
            assert!(run.walk(&dir).is_ok());
        }
        run.fixup_dirs();
        assert!(run.first_error.is_none());
        assert_eq!(fs::read(outside.path().join("victim")).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(f.d("d/link")).unwrap().is_symlink());
        f.check();
        assert_no_temporaries(&dst_objects(f.dst.path()));
    }
}
