//! The watch tree: one node per watched directory (parent, name, watch descriptor).
//!
//! An inotify watch follows the inode, so a directory renamed inside the tree keeps its
//! watch descriptor and everything below it: a rename is a re-parent of one node, and the
//! path of any event is rebuilt from the node chain when needed.
//!
//! Memory is what limits trees of millions of directories, so a node is 28 bytes in
//! fixed-size chunks (no copy when a big tree grows; only the first chunk grows by doubling,
//! so that a thousand jobs with small trees do not pay a full chunk each), and names live in one byte
//! arena, compacted when more than half of it belongs to removed or renamed nodes: about
//! 50 bytes per directory with the watch-descriptor index.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Index of a node; the root is always [`ROOT`].
pub type NodeId = u32;
pub const ROOT: NodeId = 0;
const NONE: u32 = u32::MAX;
/// The `wd` of a free slot.
const FREE: i32 = i32::MIN;
const CHUNK: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Node {
    parent: u32,
    first_child: u32,
    next: u32,
    prev: u32,
    wd: i32,
    name_off: u32,
    /// Names are at most 255 bytes (NAME_MAX).
    name_len: u8,
}

const EMPTY: Node = Node {
    parent: NONE,
    first_child: NONE,
    next: NONE,
    prev: NONE,
    wd: FREE,
    name_off: 0,
    name_len: 0,
};

/// Watched directories of one job, by node id and by watch descriptor.
#[derive(Debug)]
pub struct Tree {
    /// `CHUNK` nodes each (the last one may be shorter).
    chunks: Vec<Vec<Node>>,
    /// Slots handed out so far (live or free).
    slots: u32,
    free: Vec<u32>,
    names: Vec<u8>,
    /// Arena bytes that belong to no live node.
    names_dead: usize,
    by_wd: HashMap<i32, NodeId>,
}

impl Tree {
    /// A tree holding only the root, watched as `wd`.
    pub fn new(root_wd: i32) -> Tree {
        let mut t = Tree {
            chunks: Vec::new(),
            slots: 0,
            free: Vec::new(),
            names: Vec::new(),
            names_dead: 0,
            by_wd: HashMap::new(),
        };
        let root = t.alloc();
        debug_assert_eq!(root, ROOT);
        t.node_mut(ROOT).wd = root_wd;
        t.by_wd.insert(root_wd, ROOT);
        t
    }

    fn alloc(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            return id;
        }
        if (self.slots as usize).is_multiple_of(CHUNK) {
            let cap = if self.chunks.is_empty() { 8 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        self.chunks.last_mut().expect("a chunk").push(EMPTY);
        self.slots += 1;
        self.slots - 1
    }

    fn node(&self, id: NodeId) -> &Node {
        let n = &self.chunks[id as usize / CHUNK][id as usize % CHUNK];
        debug_assert!(n.wd != FREE, "live node");
        n
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    fn name(&self, id: NodeId) -> &[u8] {
        let n = self.node(id);
        &self.names[n.name_off as usize..n.name_off as usize + n.name_len as usize]
    }

    fn set_name(&mut self, id: NodeId, name: &[u8]) {
        let len = name.len().min(u8::MAX as usize);
        let old = self.node(id).name_len as usize;
        self.names_dead += old;
        let off = self.names.len() as u32;
        self.names.extend_from_slice(&name[..len]);
        let n = self.node_mut(id);
        n.name_off = off;
        n.name_len = len as u8;
        if self.names_dead > 64 * 1024 && self.names_dead * 2 > self.names.len() {
            self.compact_names();
        }
    }

    /// Rewrites the name arena with the live names only.
    fn compact_names(&mut self) {
        let mut names = Vec::with_capacity(self.names.len() - self.names_dead);
        for id in 0..self.slots {
            let n = self.chunks[id as usize / CHUNK][id as usize % CHUNK];
            if n.wd == FREE {
                continue;
            }
            let (off, len) = (n.name_off as usize, n.name_len as usize);
            let new_off = names.len() as u32;
            names.extend_from_slice(&self.names[off..off + len]);
            self.node_mut(id).name_off = new_off;
        }
        self.names = names;
        self.names_dead = 0;
    }

    /// Number of watched directories.
    pub fn len(&self) -> usize {
        self.by_wd.len()
    }

    pub fn by_wd(&self, wd: i32) -> Option<NodeId> {
        self.by_wd.get(&wd).copied()
    }

    /// The child directory of `parent` called `name`, if watched.
    pub fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let mut c = self.node(parent).first_child;
        while c != NONE {
            if self.name(c) == name {
                return Some(c);
            }
            c = self.node(c).next;
        }
        None
    }

    /// The node of the directory at `rel` (relative to the root), if watched.
    pub fn node_at(&self, rel: &Path) -> Option<NodeId> {
        let mut node = ROOT;
        for c in rel.components() {
            node = self.child(node, c.as_os_str().as_bytes())?;
        }
        Some(node)
    }

    /// The path of a node relative to the root (the root is the empty path).
    pub fn path(&self, id: NodeId) -> PathBuf {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        while cur != ROOT && cur != NONE {
            parts.push(self.name(cur));
            cur = self.node(cur).parent;
        }
        let mut out: Vec<u8> = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for p in parts.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(p);
        }
        PathBuf::from(OsStr::from_bytes(&out))
    }

    /// The path of `name` inside directory node `parent`.
    pub fn child_path(&self, parent: NodeId, name: &[u8]) -> PathBuf {
        let mut p = self.path(parent).into_os_string().into_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        PathBuf::from(OsString::from_vec(p))
    }

    fn link(&mut self, id: NodeId, parent: NodeId) {
        let first = self.node(parent).first_child;
        {
            let n = self.node_mut(id);
            n.parent = parent;
            n.prev = NONE;
            n.next = first;
        }
        if first != NONE {
            self.node_mut(first).prev = id;
        }
        self.node_mut(parent).first_child = id;
    }

    fn unlink(&mut self, id: NodeId) {
        let (parent, prev, next) = {
            let n = self.node(id);
            (n.parent, n.prev, n.next)
        };
        if prev != NONE {
            self.node_mut(prev).next = next;
        } else if parent != NONE {
            self.node_mut(parent).first_child = next;
        }
        if next != NONE {
            self.node_mut(next).prev = prev;
        }
        let n = self.node_mut(id);
        n.prev = NONE;
        n.next = NONE;
        n.parent = NONE;
    }

    /// True when `id` has no child node yet.
    pub fn is_leaf(&self, id: NodeId) -> bool {
        self.node(id).first_child == NONE
    }

    /// Adds directory `name` under `parent`, known to hold no node of that name (its parent
    /// was a leaf when the listing that found `name` began): skips the sibling scan, which
    /// would make a directory with N subdirectories cost N² on a walk.
    pub fn insert_new(&mut self, parent: NodeId, name: &[u8], wd: i32) -> (NodeId, Vec<i32>) {
        if self.by_wd.contains_key(&wd) {
            return self.insert(parent, name, wd);
        }
        let id = self.alloc();
        *self.node_mut(id) = Node { wd, ..EMPTY };
        self.set_name(id, name);
        self.link(id, parent);
        self.by_wd.insert(wd, id);
        (id, Vec::new())
    }

    /// Adds directory `name` under `parent` with watch `wd`. A node already there under that
    /// name (a directory replaced before we saw its removal) is dropped with its subtree; the
    /// watch descriptors of dropped nodes are returned so the caller can remove the watches.
    pub fn insert(&mut self, parent: NodeId, name: &[u8], wd: i32) -> (NodeId, Vec<i32>) {
        let mut dropped = Vec::new();
        if let Some(&existing) = self.by_wd.get(&wd) {
            // The same inode is already watched (seen again by a rescan or a late event):
            // move it where it now is.
            if existing == ROOT {
                return (ROOT, dropped);
            }
            if self.node(existing).parent == parent && self.name(existing) == name {
                return (existing, dropped);
            }
            dropped = self.rename(existing, parent, name);
            return (existing, dropped);
        }
        if let Some(old) = self.child(parent, name) {
            dropped = self.remove(old);
        }
        let id = self.alloc();
        *self.node_mut(id) = Node { wd, ..EMPTY };
        self.set_name(id, name);
        self.link(id, parent);
        self.by_wd.insert(wd, id);
        (id, dropped)
    }

    /// Moves node `id` to `name` under `new_parent`, replacing any node already there.
    /// Returns the watch descriptors of replaced nodes.
    pub fn rename(&mut self, id: NodeId, new_parent: NodeId, name: &[u8]) -> Vec<i32> {
        let mut dropped = Vec::new();
        if let Some(old) = self.child(new_parent, name)
            && old != id
        {
            dropped = self.remove(old);
        }
        // A directory cannot be moved below itself; if our view says so it is stale.
        if self.is_ancestor(id, new_parent) {
            dropped.extend(self.remove(id));
            return dropped;
        }
        self.unlink(id);
        self.set_name(id, name);
        self.link(id, new_parent);
        dropped
    }

    fn is_ancestor(&self, anc: NodeId, mut id: NodeId) -> bool {
        while id != NONE {
            if id == anc {
                return true;
            }
            id = self.node(id).parent;
        }
        false
    }

    /// Removes `id` and its subtree; returns their watch descriptors. Removing the root only
    /// clears its children.
    pub fn remove(&mut self, id: NodeId) -> Vec<i32> {
        let mut wds = Vec::new();
        if id != ROOT {
            self.unlink(id);
        }
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            let mut c = self.node(cur).first_child;
            while c != NONE {
                stack.push(c);
                c = self.node(c).next;
            }
            if cur == ROOT {
                self.node_mut(ROOT).first_child = NONE;
                continue;
            }
            let n = *self.node(cur);
            if self.by_wd.get(&n.wd) == Some(&cur) {
                self.by_wd.remove(&n.wd);
            }
            wds.push(n.wd);
            self.names_dead += n.name_len as usize;
            *self.node_mut(cur) = EMPTY;
            self.free.push(cur);
        }
        wds
    }

    /// Every watch descriptor in the tree.
    pub fn wds(&self) -> impl Iterator<Item = i32> + '_ {
        self.by_wd.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_renames() {
        let mut t = Tree::new(1);
        let (a, _) = t.insert(ROOT, b"a", 2);
        let (b, _) = t.insert(a, b"b", 3);
        let (c, _) = t.insert(b, b"c", 4);
        assert_eq!(t.path(c), Path::new("a/b/c"));
        assert!(t.rename(b, ROOT, b"B").is_empty());
        assert_eq!(t.path(c), Path::new("B/c"));
        assert_eq!(t.child(ROOT, b"B"), Some(b));
        assert_eq!(t.child(a, b"b"), None);
        assert_eq!(t.by_wd(4), Some(c));
        assert_eq!(t.child_path(c, b"f"), Path::new("B/c/f"));
    }

    #[test]
    fn removal_drops_the_subtree_and_reuses_slots() {
        let mut t = Tree::new(1);
        let (a, _) = t.insert(ROOT, b"a", 2);
        let (b, _) = t.insert(a, b"b", 3);
        t.insert(b, b"c", 4);
        let (x, _) = t.insert(ROOT, b"x", 5);
        let mut wds = t.remove(a);
        wds.sort();
        assert_eq!(wds, vec![2, 3, 4]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.by_wd(3), None);
        let (y, _) = t.insert(x, b"y", 6);
        assert_eq!(t.path(y), Path::new("x/y"));
        assert_eq!(t.slots, 5, "freed slots are reused");
    }

    #[test]
    fn replacing_a_name_drops_the_old_node() {
        let mut t = Tree::new(1);
        let (a, _) = t.insert(ROOT, b"a", 2);
        t.insert(a, b"in", 3);
        let (_, dropped) = t.insert(ROOT, b"a", 9);
        assert_eq!(dropped.len(), 2);
        let (b, _) = t.insert(ROOT, b"b", 10);
        let (_, d2) = t.insert(ROOT, b"c", 11);
        assert!(d2.is_empty());
        let dropped = t.rename(b, ROOT, b"c");
        assert_eq!(dropped, vec![11]);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn names_survive_compaction() {
        let mut t = Tree::new(1);
        let (a, _) = t.insert(ROOT, b"keep", 2);
        let (b, _) = t.insert(a, b"deep", 3);
        // Churn: renames leave dead names behind until the arena is compacted.
        let (x, _) = t.insert(ROOT, b"x", 4);
        for i in 0..20_000 {
            t.rename(x, ROOT, format!("name-{i:08}").as_bytes());
        }
        assert!(t.names.len() < 200_000, "compacted: {}", t.names.len());
        assert_eq!(t.path(b), Path::new("keep/deep"));
        assert_eq!(t.path(x), Path::new("name-00019999"));
        assert_eq!(t.child(ROOT, b"name-00019999"), Some(x));
    }

    #[test]
    fn grows_past_a_chunk() {
        let mut t = Tree::new(1);
        let mut last = ROOT;
        for i in 0..(CHUNK as i32 * 2 + 10) {
            last = t.insert(ROOT, format!("d{i}").as_bytes(), i + 2).0;
        }
        assert_eq!(t.len(), CHUNK * 2 + 11);
        assert_eq!(t.path(last), Path::new(&format!("d{}", CHUNK * 2 + 9)));
        assert_eq!(std::mem::size_of::<Node>(), 28);
    }

    #[test]
    fn same_wd_seen_elsewhere_is_moved() {
        let mut t = Tree::new(1);
        let (a, _) = t.insert(ROOT, b"a", 2);
        let (b, _) = t.insert(ROOT, b"b", 3);
        let (moved, _) = t.insert(b, b"a2", 2);
        assert_eq!(moved, a);
        assert_eq!(t.path(a), Path::new("b/a2"));
        // Never below itself.
        let dropped = t.rename(b, a, b"loop");
        assert!(!dropped.is_empty());
    }
}
