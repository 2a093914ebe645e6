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

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotify::WatchMask;
use tracing::{error, warn};

use super::UNWATCHED_RESCAN;
use super::shared::{RawEvent, Subscription};
use super::translate::View;
use super::tree::{NodeId, ROOT, Tree};
use crate::fs::{Root, list};
use crate::model::Kind;
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

/// A failure that means "gone, or no longer a directory (a symlink now)": its parent's
/// events report that, so it is neither a warning nor left to a rescan.
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
    )
}

/// One job's watches in the daemon's inotify instance, over the source at `root`.
pub struct Watcher {
    sub: Subscription,
    root: PathBuf,
    filter: Arc<Filter>,
    /// Set when a watch could not be added for lack of resources; reported once per walk.
    watch_limit_hit: bool,
}

impl Watcher {
    pub fn new(sub: Subscription, root: &Path, filter: Arc<Filter>) -> Watcher {
        Watcher {
            sub,
            root: root.to_path_buf(),
            filter,
            watch_limit_hit: false,
        }
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The events routed to this job since the last call.
    pub fn take(&self) -> Vec<RawEvent> {
        self.sub.take()
    }

    /// Lets go of the watch `wd`.
    pub fn release(&self, wd: i32) {
        self.sub.rm_watch(wd);
    }

    /// Watches the root and walks the whole source into a fresh tree in `view`, whose
    /// `unwatched` starts over (the old tree's watches are the caller's to let go). On error
    /// (the root cannot be watched) the tree is left as it was.
    pub fn rebuild(&mut self, view: &mut View) -> io::Result<()> {
        self.watch_limit_hit = false;
        view.unwatched.clear();
        let root = self.root.clone();
        let root_wd = self.add_watch_mask(&root, Path::new(""), root_mask())?;
        view.tree = Tree::new(root_wd);
        self.walk(view, ROOT, PathBuf::new());
        Ok(())
    }

    /// The watch limit was already reported: do not report it again.
    pub fn mark_limit_reported(&mut self) {
        self.watch_limit_hit = true;
    }

    /// Watches the directory `rel` that appeared under node `parent` (created or moved in)
    /// and its subtree.
    pub fn watch_new(&mut self, view: &mut View, parent: NodeId, rel: &Path) {
        let parent_rel = relpath::parent(rel).unwrap_or(Path::new(""));
        let name = relpath::name(rel);
        let watched = self
            .dir(parent_rel)
            .and_then(|d| self.add_watch(&d, name, rel));
        match watched {
            Ok(wd) => {
                view.unwatched.remove(rel);
                let (id, dropped) = view.tree.insert(parent, name.as_bytes(), wd);
                for wd in dropped {
                    self.release(wd);
                }
                self.walk(view, id, rel.to_path_buf());
            }
            Err(e) => self.not_watched(view, rel.to_path_buf(), &e),
        }
    }

    /// Watches, then lists, every allowed directory below node `start` (whose relative path
    /// is `start_rel`), adding nodes to the tree.
    fn walk(&mut self, view: &mut View, start: NodeId, start_rel: PathBuf) {
        let mut stack = vec![(start, start_rel)];
        while let Some((node, rel)) = stack.pop() {
            let listed = self.dir(&rel).and_then(|d| Ok((list(&d)?, d)));
            let (entries, dir) = match listed {
                Ok(e) => e,
                Err(e) => {
                    if !is_gone(&e) {
                        warn!(
                            "cannot list {}: {e}",
                            relpath::join(&self.root, &rel).display()
                        );
                        // Its subdirectories are unknown, so unwatched: rescan it later.
                        view.unwatched.insert(rel);
                    }
                    continue;
                }
            };
            // A directory whose node had no children yet gets only new nodes: no sibling
            // scan per insert (quadratic in flat directories).
            let fresh = view.tree.is_leaf(node);
            for (name, dtype) in entries {
                let is_dir = match dtype {
                    libc::DT_DIR => true,
                    libc::DT_UNKNOWN => crate::fs::Meta::at(&dir, &name).is_ok_and(|m| m.is_dir()),
                    _ => false,
                };
                if !is_dir {
                    continue;
                }
                let child_rel = relpath::join(&rel, Path::new(&name));
                if !self.filter.allows_child(&child_rel, Kind::Dir) {
                    continue;
                }
                match self.add_watch(&dir, &name, &child_rel) {
                    Ok(wd) => {
                        let (id, dropped) = if fresh {
                            view.tree.insert_new(node, name.as_bytes(), wd)
                        } else {
                            view.tree.insert(node, name.as_bytes(), wd)
                        };
                        for wd in dropped {
                            self.release(wd);
                        }
                        stack.push((id, child_rel));
                    }
                    Err(e) => self.not_watched(view, child_rel, &e),
                }
            }
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

    /// Watches the directory `name` (not followed if a symlink) in the directory handle
    /// `dir`; `rel` is its path, for messages. The kernel has no `inotify_add_watch` relative
    /// to a handle, so the handle is named by its `/proc/self/fd` link: no path length limit,
    /// and no component but `name` is looked up.
    fn add_watch(&mut self, dir: &OwnedFd, name: &OsStr, rel: &Path) -> io::Result<i32> {
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.as_bytes());
        self.add_watch_mask(Path::new(OsStr::from_bytes(&path)), rel, mask())
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
