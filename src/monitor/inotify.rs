//! The Linux monitor: raw inotify with our own watch tree.
//!
//! Three rules keep it from losing changes:
//! - a new directory is watched *before* it is listed, and the whole new subtree is reported
//!   as one [`Change::Tree`], so files created in between are seen by one or the other;
//! - moves are paired by cookie: a rename inside the tree re-parents one node (no watch is
//!   touched), a move out removes the subtree's watches, a move in watches the new subtree;
//! - anything uncertain (queue overflow) becomes a rescan of the whole tree.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, WatchMask};
use tracing::{debug, error, trace, warn};

use super::UNWATCHED_RESCAN;
use super::shared::{Subscription, shared};
use super::tree::{NodeId, ROOT, Tree};
use crate::fs::{Root, list};
use crate::model::{Change, Kind};
use crate::relpath;
use crate::rules::Filter;

/// How long a `MOVED_FROM` waits for its `MOVED_TO` before it counts as a move out. The
/// kernel queues both in one rename, so this only covers a read that split the pair.
const MOVE_GRACE: Duration = Duration::from_millis(20);

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

struct PendingMove {
    at: Instant,
    parent: NodeId,
    name: Vec<u8>,
    rel: PathBuf,
    is_dir: bool,
}

/// A recursive inotify watcher for one job's source tree.
pub struct InotifyMonitor {
    /// This monitor's share of the daemon's inotify instance.
    sub: Subscription,
    /// The source root. Directories are listed and watched through handles beneath it, no
    /// symlink followed on the way (a directory swapped for a symlink is not watched: its
    /// parent's events report the swap). Handles are held only while a walk runs: an open
    /// handle on a deleted directory would hold back its `IN_DELETE_SELF`.
    root: PathBuf,
    filter: Arc<Filter>,
    tree: Tree,
    moves: HashMap<u32, PendingMove>,
    /// Set when a watch could not be added for lack of resources; reported once per walk.
    watch_limit_hit: bool,
    /// Directories left unwatched by the watch limit (their subtrees are unwatched too):
    /// synced by periodic rescans until watches can be added.
    unwatched: BTreeSet<PathBuf>,
}

impl InotifyMonitor {
    /// Watches `root` and every directory below it that the filter lets through; `wake`
    /// is called whenever events arrive (from the daemon's inotify thread), and
    /// [`read`](Self::read) then handles them.
    pub fn new(
        root: &Path,
        filter: Arc<Filter>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> io::Result<InotifyMonitor> {
        let mut m = InotifyMonitor {
            sub: shared()?.subscribe(wake),
            root: root.to_path_buf(),
            filter,
            tree: Tree::new(-1),
            moves: HashMap::new(),
            watch_limit_hit: false,
            unwatched: BTreeSet::new(),
        };
        m.tree = m.build_tree()?;
        Ok(m)
    }

    /// Number of watched directories.
    pub fn watched(&self) -> usize {
        self.tree.len()
    }

    /// When [`expire`](Self::expire) must run next (an unpaired move is waiting), if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.moves.values().map(|m| m.at + MOVE_GRACE).min()
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
        match self.sub.add_watch(path, mask) {
            Ok(wd) => Ok(wd),
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOSPC) && !self.watch_limit_hit {
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
                Err(e)
            }
        }
    }

    fn rm_watch(&self, wd: i32) {
        self.sub.rm_watch(wd);
    }

    /// Builds a tree of the whole source by walking it from the root.
    fn build_tree(&mut self) -> io::Result<Tree> {
        self.watch_limit_hit = false;
        self.unwatched.clear();
        let root = self.root.clone();
        let root_wd = self.add_watch_mask(&root, Path::new(""), root_mask())?;
        let mut tree = Tree::new(root_wd);
        self.walk(&mut tree, ROOT, PathBuf::new());
        Ok(tree)
    }

    /// Watches, then lists, every allowed directory below node `start` (whose relative path is
    /// `start_rel`), adding nodes to `tree`.
    fn walk(&mut self, tree: &mut Tree, start: NodeId, start_rel: PathBuf) {
        let mut stack = vec![(start, start_rel)];
        while let Some((node, rel)) = stack.pop() {
            let listed = self.dir(&rel).and_then(|d| Ok((list(&d)?, d)));
            let (entries, dir) = match listed {
                Ok(e) => e,
                Err(e) => {
                    // Gone, or no longer a directory (a symlink now): its parent's events
                    // report that.
                    if !matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) {
                        warn!(
                            "cannot list {}: {e}",
                            relpath::join(&self.root, &rel).display()
                        );
                        // Its subdirectories are unknown, so unwatched: rescan it later.
                        self.unwatched.insert(rel.clone());
                    }
                    continue;
                }
            };
            // A directory whose node had no children yet gets only new nodes: no sibling
            // scan per insert (quadratic in flat directories).
            let fresh = tree.is_leaf(node);
            for (name, dtype) in entries {
                let is_dir = match dtype {
                    libc::DT_DIR => true,
                    libc::DT_UNKNOWN => crate::fs::Meta::at(&dir, &name).is_ok_and(|m| m.is_dir()),
                    _ => false,
                };
                if !is_dir {
                    continue;
                }
                let child_rel = if rel.as_os_str().is_empty() {
                    PathBuf::from(&name)
                } else {
                    rel.join(&name)
                };
                if !self.filter.allows_dir_walk(&child_rel)
                    || !self.filter.allows(&child_rel, Kind::Dir)
                {
                    continue;
                }
                match self.add_watch(&dir, &name, &child_rel) {
                    Ok(wd) => {
                        let (id, dropped) = if fresh {
                            tree.insert_new(node, name.as_bytes(), wd)
                        } else {
                            tree.insert(node, name.as_bytes(), wd)
                        };
                        for wd in dropped {
                            self.rm_watch(wd);
                        }
                        stack.push((id, child_rel));
                    }
                    Err(e) => match e.raw_os_error() {
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => {}
                        Some(libc::ENOSPC) => {
                            self.unwatched.insert(child_rel);
                        }
                        _ => {
                            // Unreadable (EACCES) and the like: rescanned until it can be
                            // watched, never silently left out.
                            warn!("cannot watch {}: {e}", self.root.join(&child_rel).display());
                            self.unwatched.insert(child_rel);
                        }
                    },
                }
            }
        }
    }

    /// Watches a directory that appeared under `parent` (created or moved in) and its subtree.
    fn watch_new(&mut self, parent: NodeId, name: &[u8], rel: &Path) {
        let parent_rel = relpath::parent(rel).unwrap_or(Path::new(""));
        let watched = self
            .dir(parent_rel)
            .and_then(|d| self.add_watch(&d, relpath::name(rel), rel));
        match watched {
            Ok(wd) => {
                self.unwatched.remove(rel);
                let mut tree = std::mem::replace(&mut self.tree, Tree::new(-1));
                let (id, dropped) = tree.insert(parent, name, wd);
                for wd in dropped {
                    self.rm_watch(wd);
                }
                self.walk(&mut tree, id, rel.to_path_buf());
                self.tree = tree;
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => {}
                Some(libc::ENOSPC) => {
                    self.unwatched.insert(rel.to_path_buf());
                }
                _ => {
                    warn!(
                        "cannot watch {}: {e}",
                        relpath::join(&self.root, rel).display()
                    );
                    self.unwatched.insert(rel.to_path_buf());
                }
            },
        }
    }

    /// A handle on the source directory `rel`, beneath the root.
    fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        Root::open(&self.root)?.dir(rel)
    }

    /// Number of directories (subtree roots) that could not be watched.
    pub fn unwatched(&self) -> usize {
        self.unwatched.len()
    }

    /// Tries again to watch the directories the watch limit left out, and asks for a sync of
    /// every one of them (watched now or not): the periodic rescan of the unwatched part.
    pub fn rescan_unwatched(&mut self, out: &mut impl FnMut(Change)) {
        let dirs = std::mem::take(&mut self.unwatched);
        self.watch_limit_hit = true; // already reported
        for rel in dirs {
            let parent = relpath::parent(&rel).unwrap_or(Path::new(""));
            let Some(name) = rel.file_name().map(|n| n.as_bytes().to_vec()) else {
                continue;
            };
            if let Some(p) = self.node_of(parent) {
                self.watch_new(p, &name, &rel);
            }
            out(Change::Tree(rel));
        }
        if self.unwatched.is_empty() {
            tracing::info!("every directory is watched again");
        }
    }

    /// The watched node of a relative directory path.
    fn node_of(&self, rel: &Path) -> Option<NodeId> {
        let mut node = ROOT;
        for c in rel.components() {
            node = self.tree.child(node, c.as_os_str().as_bytes())?;
        }
        Some(node)
    }

    fn drop_subtree(&mut self, id: NodeId) {
        for wd in self.tree.remove(id) {
            self.rm_watch(wd);
        }
    }

    /// Re-walks the whole source: watches what is missing, drops what is gone, and asks for
    /// a full comparison. Used after a queue overflow.
    pub fn rescan(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        let started = Instant::now();
        self.moves.clear();
        let old: HashSet<i32> = self.tree.wds().collect();
        let tree = self.build_tree()?;
        for wd in old {
            if tree.by_wd(wd).is_none() {
                self.rm_watch(wd);
            }
        }
        self.tree = tree;
        debug!(
            "rescan watched {} directories in {:?}",
            self.tree.len(),
            started.elapsed()
        );
        out(Change::Rescan);
        Ok(())
    }

    /// Resolves moves whose partner did not come in time: a move out of the tree.
    pub fn expire(&mut self, now: Instant, out: &mut impl FnMut(Change)) {
        let due: Vec<u32> = self
            .moves
            .iter()
            .filter(|(_, m)| now >= m.at + MOVE_GRACE)
            .map(|(c, _)| *c)
            .collect();
        for cookie in due {
            if let Some(m) = self.moves.remove(&cookie) {
                self.moved_out(m, out);
            }
        }
    }

    fn moved_out(&mut self, m: PendingMove, out: &mut impl FnMut(Change)) {
        if m.is_dir
            && let Some(id) = self.tree.child(m.parent, &m.name)
        {
            self.drop_subtree(id);
        }
        out(Change::Content(m.rel));
    }

    /// Handles every event routed to this monitor since the last call, reporting changes
    /// through `out`.
    pub fn read(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        for ev in self.sub.take() {
            self.handle(ev.wd, ev.mask, ev.cookie, ev.name.as_deref(), out)?;
        }
        Ok(())
    }

    fn handle(
        &mut self,
        wd: i32,
        mask: EventMask,
        cookie: u32,
        name: Option<&[u8]>,
        out: &mut impl FnMut(Change),
    ) -> io::Result<()> {
        trace!(wd, ?mask, cookie, name = ?name.map(OsStr::from_bytes), "inotify");
        if mask.contains(EventMask::Q_OVERFLOW) {
            warn!("inotify queue overflowed: rescanning the whole source");
            return self.rescan(out);
        }
        let Some(node) = self.tree.by_wd(wd) else {
            return Ok(()); // a watch we already dropped
        };
        if mask.intersects(EventMask::IGNORED | EventMask::UNMOUNT) {
            if node == ROOT {
                out(Change::RootGone);
            } else {
                self.drop_subtree(node);
            }
            return Ok(());
        }
        let Some(name) = name else {
            // An event about a watched directory itself; its parent reports it with a name,
            // except for the root.
            if node == ROOT {
                if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                    out(Change::RootGone);
                } else if mask.contains(EventMask::ATTRIB) {
                    out(Change::Attrib(PathBuf::new()));
                }
            }
            return Ok(());
        };
        let rel = self.tree.child_path(node, name);
        let is_dir = mask.contains(EventMask::ISDIR);
        let kind = if is_dir { Kind::Dir } else { Kind::File };
        let allowed =
            self.filter.allows(&rel, kind) && (!is_dir || self.filter.allows_dir_walk(&rel));
        if !allowed {
            return Ok(());
        }
        if mask.contains(EventMask::MOVED_FROM) {
            self.moves.insert(
                cookie,
                PendingMove {
                    at: Instant::now(),
                    parent: node,
                    name: name.to_vec(),
                    rel,
                    is_dir,
                },
            );
        } else if mask.contains(EventMask::MOVED_TO) {
            match self.moves.remove(&cookie) {
                Some(m) => {
                    if m.is_dir {
                        match self.tree.child(m.parent, &m.name) {
                            Some(id) => {
                                for wd in self.tree.rename(id, node, name) {
                                    self.rm_watch(wd);
                                }
                            }
                            None => self.watch_new(node, name, &rel),
                        }
                    } else if let Some(id) = self.tree.child(node, name) {
                        // A file renamed over a directory we watched (only possible for an
                        // empty one, via another tool's replace): drop the stale watch.
                        self.drop_subtree(id);
                    }
                    out(Change::Rename {
                        from: m.rel,
                        to: rel,
                    });
                }
                None => {
                    if is_dir {
                        self.watch_new(node, name, &rel);
                        out(Change::Tree(rel));
                    } else {
                        out(Change::Content(rel));
                    }
                }
            }
        } else if is_dir && mask.contains(EventMask::CREATE) {
            self.watch_new(node, name, &rel);
            out(Change::Tree(rel));
        } else {
            if is_dir
                && mask.contains(EventMask::DELETE)
                && let Some(id) = self.tree.child(node, name)
            {
                self.drop_subtree(id);
            }
            if is_dir
                && mask.contains(EventMask::ATTRIB)
                && self.unwatched.contains(&rel)
                && self.tree.child(node, name).is_none()
            {
                // A directory we could not watch changed its permissions: maybe now we can.
                self.watch_new(node, name, &rel);
                if self.tree.child(node, name).is_some() {
                    out(Change::Tree(rel));
                    return Ok(());
                }
            }
            if mask.contains(EventMask::ATTRIB)
                && !mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE | EventMask::CREATE)
            {
                out(Change::Attrib(rel));
            } else {
                out(Change::Content(rel));
            }
        }
        Ok(())
    }
}
