//! Adding watches and walking directories into the watch tree: the I/O half of the Linux
//! monitor.
//!
//! A new directory is watched *before* it is listed, so a file created in it meanwhile is
//! seen by the listing or by the watch. Directories are listed and watched through handles
//! beneath the source root, no symlink followed on the way (a directory swapped for a
//! symlink is not watched: its parent's events report the swap); handles are held only while
//! a walk runs, as an open handle on a deleted directory would hold back its
//! `IN_DELETE_SELF`. A directory that cannot be watched or listed (watch limit, permissions)
//! is recorded in [`View::unwatched`], never silently left out.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use inotify::WatchMask;
use tracing::{error, warn};

use super::UNWATCHED_RESCAN;
use super::catch_up::CatchUp;
use super::shared::{RawEvent, Subscription};
use super::translate::View;
use super::tree::{NodeId, ROOT, Tree};
use crate::fs::{Root, open_dir_read, read_entries};
use crate::model::{Change, Kind};
use crate::relpath;
use crate::rules::Filter;

/// The mask of the source root: like [`mask`], but a root given as a symlink is followed, as
/// `rsync SRC/` follows it.
fn root_mask() -> WatchMask {
    mask() - WatchMask::DONT_FOLLOW
}

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
        | WatchMask::EXCL_UNLINK
}

/// Gives the calling thread a working directory of its own (a walk's thread: see
/// [`Watcher::walk_all`]); false where the kernel refuses.
fn private_cwd() -> bool {
    // SAFETY: unshare(2) with CLONE_FS only copies this thread's own filesystem state.
    unsafe { libc::unshare(libc::CLONE_FS) == 0 }
}

/// A failure that means "gone, or no longer a directory (a symlink now)": its parent's
/// events report that, so it is neither a warning nor left to a rescan.
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
    )
}

/// A readable handle on a directory, for listing.
const READ_DIR: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::CLOEXEC);

/// Below this depth a walk keeps its parents' handles for their subdirectories; deeper, a
/// subdirectory's parent is opened again from the root. A walk holds at most one handle per
/// level of the path it is on, so this bounds what a deep tree (one its writer made deep
/// on purpose) can take of the daemon's descriptors.
const HANDLES_MAX: usize = 64;

/// A directory a walk has yet to watch and list: `rel`, under node `parent`, whose parent's
/// handle is `dir` (`None`: open it again). `fresh`: the parent had no children before this
/// walk listed it.
struct Visit {
    parent: NodeId,
    fresh: bool,
    dir: Option<Rc<OwnedFd>>,
    rel: PathBuf,
}

/// One walk: its stack, and what it catches up with.
#[derive(Default)]
struct Walk {
    stack: Vec<Visit>,
    catch_up: Option<CatchUp>,
    /// On a thread with a working directory of its own (see [`Watcher::walk_all`]): the
    /// directory it is in, whose subdirectories are watched by name.
    cwd: Option<Option<Rc<OwnedFd>>>,
}

/// One job's watches in the daemon's inotify instance, over the source at `root`.
pub struct Watcher {
    sub: Subscription,
    root: PathBuf,
    filter: Arc<Filter>,
    /// Set when a watch could not be added for lack of resources; reported once per walk.
    watch_limit_hit: bool,
    /// Walks end early once this is set: the monitor's owner is stopping, and a walk of a
    /// huge tree takes seconds that a SIGTERM or a reload must not wait for.
    stop: Option<Arc<AtomicBool>>,
}

impl Watcher {
    pub fn new(sub: Subscription, root: &Path, filter: Arc<Filter>) -> Watcher {
        Watcher {
            sub,
            root: root.to_path_buf(),
            filter,
            watch_limit_hit: false,
            stop: None,
        }
    }

    /// Walks end early once `flag` is set (what they leave unwatched is the caller's to
    /// drop: it is stopping).
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The events routed to this job since the last call.
    pub fn take(&self) -> Vec<RawEvent> {
        self.sub.take()
    }

    /// Lets go of the watch `wd`.
    pub fn release(&self, wd: i32) {
        self.sub.rm_watch(wd);
    }

    /// Watches the root alone, in a fresh tree in `view` ([`walk_all`](Self::walk_all)
    /// then watches the rest). On error the tree is left as it was.
    pub fn watch_root(&mut self, view: &mut View) -> io::Result<()> {
        self.watch_limit_hit = false;
        view.unwatched.clear();
        let root = self.root.clone();
        let root_wd = self.add_watch_mask(&root, Path::new(""), root_mask())?;
        view.tree = Tree::new(root_wd);
        Ok(())
    }

    /// Walks the whole source below the watched root into the tree; with `catch_up`, also
    /// reports what changed since its start (see [`CatchUp`]) in the directories whose
    /// watches are not in `held` (held all along: their events tell).
    ///
    /// The walk runs on a thread of its own whose working directory is not shared
    /// (`unshare(CLONE_FS)`), so that each directory is watched by its name in its parent
    /// (one path component, no symlink followed) rather than through its handle's
    /// `/proc/self/fd` link, which costs the kernel twice the watch itself. Nothing else
    /// runs on that thread: no process or thread ever starts in a source directory.
    pub fn walk_all(
        &mut self,
        view: &mut View,
        catch_up: Option<CatchUp>,
        held: &HashSet<i32>,
    ) -> Vec<Change> {
        let mut arg = Some(catch_up);
        // Its messages name the job, as the job thread's do.
        let span = tracing::Span::current();
        let walked = std::thread::scope(|s| {
            let t = std::thread::Builder::new()
                .name("clsync-walk".into())
                .spawn_scoped(s, || {
                    let _g = span.enter();
                    let cwd = private_cwd().then_some(None);
                    self.walk_all_here(view, arg.take().flatten(), held, cwd)
                });
            t.ok().map(|t| t.join())
        });
        match walked {
            Some(Ok(found)) => found,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            // No thread to be had: the walk runs here, watching through handles.
            None => self.walk_all_here(view, arg.take().flatten(), held, None),
        }
    }

    fn walk_all_here(
        &mut self,
        view: &mut View,
        catch_up: Option<CatchUp>,
        held: &HashSet<i32>,
        cwd: Option<Option<Rc<OwnedFd>>>,
    ) -> Vec<Change> {
        let mut walk = Walk {
            catch_up,
            cwd,
            ..Walk::default()
        };
        match self.dir(Path::new("")).and_then(|d| {
            let rd = rustix::fs::openat(&d, ".", READ_DIR, rustix::fs::Mode::empty())?;
            Ok((read_entries(&rd)?, rd))
        }) {
            Ok((entries, fd)) => {
                self.queue_children(view, &mut walk, ROOT, Path::new(""), fd, entries)
            }
            Err(e) => self.not_listed(view, PathBuf::new(), &e),
        }
        self.run(view, &mut walk, held);
        walk.catch_up.map(CatchUp::finish).unwrap_or_default()
    }

    /// The watch limit was already reported: do not report it again.
    pub fn mark_limit_reported(&mut self) {
        self.watch_limit_hit = true;
    }

    /// Watches the directory `rel` that appeared under node `parent` (created or moved in)
    /// and its subtree.
    pub fn watch_new(&mut self, view: &mut View, parent: NodeId, rel: &Path) {
        let parent_rel = relpath::parent(rel).unwrap_or(Path::new(""));
        let dir = match self.dir(parent_rel) {
            Ok(d) => Rc::new(d),
            Err(e) => return self.not_watched(view, rel.to_path_buf(), &e),
        };
        let mut walk = Walk::default();
        walk.stack.push(Visit {
            parent,
            fresh: false,
            dir: Some(dir),
            rel: rel.to_path_buf(),
        });
        self.run(view, &mut walk, &HashSet::new());
    }

    /// Watches, then lists, every directory on the walk's stack and, depth first, every
    /// allowed directory below it, adding nodes to the tree. A directory is opened once (in
    /// its parent's handle, no symlink followed), watched by that handle and listed from it,
    /// so the watch and the listing are of the same directory, and a file created in it
    /// meanwhile is seen by one or the other.
    fn run(&mut self, view: &mut View, walk: &mut Walk, held: &HashSet<i32>) {
        while let Some(v) = walk.stack.pop() {
            if self.stopping() {
                walk.stack.clear();
                return;
            }
            let name = relpath::name(&v.rel).to_os_string();
            let parent = match v.dir {
                Some(d) => Ok(d),
                None => self
                    .dir(relpath::parent(&v.rel).unwrap_or(Path::new("")))
                    .map(Rc::new),
            };
            let watched = parent.and_then(|p| {
                let fd = open_dir_read(&*p, &name)?;
                Ok((
                    self.add_watch_in(&mut walk.cwd, &p, &fd, &name, &v.rel)?,
                    fd,
                ))
            });
            let (wd, fd) = match watched {
                Ok(x) => x,
                Err(e) => {
                    self.not_watched(view, v.rel, &e);
                    continue;
                }
            };
            let (id, dropped) = if v.fresh {
                view.tree.insert_new(v.parent, name.as_bytes(), wd)
            } else {
                view.tree.insert(v.parent, name.as_bytes(), wd)
            };
            for wd in dropped {
                self.release(wd);
            }
            view.unwatched.remove(&v.rel);
            match read_entries(&fd) {
                Ok(entries) => {
                    if let Some(c) = walk.catch_up.as_mut().filter(|_| !held.contains(&wd)) {
                        c.directory(&fd, &v.rel, &entries, &self.filter);
                    }
                    self.queue_children(view, walk, id, &v.rel, fd, entries)
                }
                Err(e) => self.not_listed(view, v.rel, &e),
            }
        }
    }

    /// Puts the allowed subdirectories of the directory `rel` (node `node`, handle `dir`,
    /// listed as `entries`) on the walk's stack.
    fn queue_children(
        &self,
        view: &View,
        walk: &mut Walk,
        node: NodeId,
        rel: &Path,
        dir: OwnedFd,
        entries: Vec<(OsString, u8)>,
    ) {
        // A directory whose node had no children yet gets only new nodes: no sibling scan
        // per insert (quadratic in flat directories).
        let fresh = view.tree.is_leaf(node);
        let keep = rel.components().count() < HANDLES_MAX;
        let unknown_dir =
            |name: &OsString| crate::fs::Meta::at(&dir, name).is_ok_and(|m| m.is_dir());
        let subdirs: Vec<OsString> = entries
            .into_iter()
            .filter(|(name, dtype)| match *dtype {
                libc::DT_DIR => true,
                libc::DT_UNKNOWN => unknown_dir(name),
                _ => false,
            })
            .map(|(name, _)| name)
            .collect();
        let dir = keep.then(|| Rc::new(dir));
        for name in subdirs {
            let child_rel = relpath::join(rel, Path::new(&name));
            if self.filter.allows_child(&child_rel, Kind::Dir) {
                walk.stack.push(Visit {
                    parent: node,
                    fresh,
                    dir: dir.clone(),
                    rel: child_rel,
                });
            }
        }
    }

    /// A directory that was watched but cannot be listed: its subdirectories are unknown, so
    /// it is rescanned later (unless it is gone).
    fn not_listed(&self, view: &mut View, rel: PathBuf, e: &io::Error) {
        if !is_gone(e) {
            warn!(
                "cannot list {}: {e}",
                relpath::join(&self.root, &rel).display()
            );
            view.unwatched.insert(rel);
        }
    }

    /// Records that `rel` could not be watched (unless it is gone).
    fn not_watched(&self, view: &mut View, rel: PathBuf, e: &io::Error) {
        if is_gone(e) {
            return;
        }
        if e.raw_os_error() != Some(libc::ENOSPC) {
            // Unreadable (EACCES) and the like: rescanned until it can be watched.
            warn!(
                "cannot watch {}: {e}",
                relpath::join(&self.root, &rel).display()
            );
        }
        view.unwatched.insert(rel);
    }

    /// A handle on the source directory `rel`, beneath the root.
    fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        Root::open(&self.root)?.dir(rel)
    }

    /// Watches the directory `name` in `parent`, open as `dir`. On a walk's own thread
    /// (`cwd` is `Some`) by its name from its parent as working directory: a directory
    /// swapped in between the open and the watch is watched instead of the one listed, and
    /// the swap is reported by the parent's watch (added before this one), as any rename.
    fn add_watch_in(
        &mut self,
        cwd: &mut Option<Option<Rc<OwnedFd>>>,
        parent: &Rc<OwnedFd>,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        rel: &Path,
    ) -> io::Result<i32> {
        let Some(cwd) = cwd else {
            return self.add_watch_fd(dir, rel);
        };
        if !cwd.as_ref().is_some_and(|c| Rc::ptr_eq(c, parent)) {
            // SAFETY: fchdir(2) on a descriptor we hold; only this thread's working
            // directory changes (it is private: see `private_cwd`).
            if unsafe { libc::fchdir(parent.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            *cwd = Some(parent.clone());
        }
        self.add_watch_mask(Path::new(name), rel, mask())
    }

    /// Watches the directory open as `dir`; `rel` is its path, for messages. The kernel has
    /// no `inotify_add_watch` on a handle, so the handle is named by its `/proc/self/fd`
    /// link, which is followed: it leads to the very directory opened (with no symlink
    /// followed) and listed next, whatever happens to its name meanwhile.
    fn add_watch_fd(&mut self, dir: &OwnedFd, rel: &Path) -> io::Result<i32> {
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        self.add_watch_mask(Path::new(&path), rel, mask() - WatchMask::DONT_FOLLOW)
    }

    fn add_watch_mask(&mut self, path: &Path, rel: &Path, mask: WatchMask) -> io::Result<i32> {
        let result = self.sub.add_watch(path, mask);
        if let Err(e) = &result
            && e.raw_os_error() == Some(libc::ENOSPC)
            && !self.watch_limit_hit
        {
            self.watch_limit_hit = true;
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .unwrap_or_default();
            error!(
                "inotify watch limit reached (fs.inotify.max_user_watches = {}): {} and other directories are not watched; they are rescanned every {:?} instead until the limit is raised (sysctl fs.inotify.max_user_watches=N)",
                limit.trim(),
                relpath::join(&self.root, rel).display(),
                UNWATCHED_RESCAN
            );
        }
        result
    }
}
