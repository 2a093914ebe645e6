//! The shared vocabulary of the data path: what a monitor reports ([`Change`]), what the
//! queue hands a handler ([`Batch`] of [`Entry`]s and [`Rename`]s), and what kind of object a
//! path names ([`Kind`]).
//!
//! Every layer speaks these types and none of them depends on a layer: config, rules,
//! monitor, queue and handlers all import from here, never from each other, for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A rename observed inside the source tree, in source-relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// One path to bring up to date. `rel` is relative to the source root; the root is ``.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub rel: PathBuf,
    /// Sync the whole subtree below `rel` too (new or moved-in directory, rescan, initial sync).
    pub recursive: bool,
    /// Only attributes changed (chmod, chown, touch): a handler may trust a size and mtime
    /// match instead of copying the content again. When false, the content is known to have
    /// changed even if a rewrite kept the size and put the old mtime back.
    pub attrs_only: bool,
}

/// The unit of work handed to a handler: one handler run (one rsync call) per batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Renames inside the tree, in the order they happened. A handler that can replay them
    /// cheaply (mirror) does so first; the others treat `from` as deleted and `to` as a
    /// recursive entry (both are also listed in `entries`).
    pub renames: Vec<Rename>,
    /// Sorted, without duplicates.
    pub entries: Vec<Entry>,
    /// The run may remove things at the destination (paths gone from the source,
    /// extraneous entries, a rename's old name). Without it nothing is removed: renames
    /// are not replayed (their new name is copied) and gone paths stay. The job sets it
    /// from its `delete` setting ([`crate::config::Delete`]); true by default.
    pub deletes: bool,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            renames: Vec::new(),
            entries: Vec::new(),
            deletes: true,
        }
    }
}

impl Batch {
    /// A batch that makes the whole destination equal to the source.
    pub fn full() -> Batch {
        Batch {
            renames: Vec::new(),
            entries: vec![Entry {
                rel: PathBuf::new(),
                recursive: true,
                attrs_only: false,
            }],
            deletes: true,
        }
    }

    /// True when this batch syncs the whole tree.
    pub fn is_full(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.recursive && e.rel.as_os_str().is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.renames.is_empty()
    }

    /// Number of paths in the batch (for logs and status).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a monitor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This path's content or existence changed (created, written, deleted).
    Content(PathBuf),
    /// Only this path's attributes changed (mode, owner, times).
    Attrib(PathBuf),
    /// This directory and everything below it must be synced (a new or moved-in directory).
    Tree(PathBuf),
    /// A rename inside the tree.
    Rename { from: PathBuf, to: PathBuf },
    /// The monitor lost track (overflow, errors): the whole tree must be compared.
    Rescan,
    /// The source root itself was removed, moved away or unmounted.
    RootGone,
}

/// What kind of filesystem object a path is (from `lstat`, or guessed from an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, fifos, sockets, devices.
    Other,
}

impl Entry {
    /// `rel` and everything below it, content not trusted.
    pub fn tree(rel: &Path) -> Entry {
        Entry {
            rel: rel.to_path_buf(),
            recursive: true,
            attrs_only: false,
        }
    }

    /// Folds another entry for the same path into this one: the subtree is synced if either
    /// asked for it, and the content is trusted only if neither saw it change.
    pub fn absorb(&mut self, other: &Entry) {
        self.recursive |= other.recursive;
        self.attrs_only &= other.attrs_only;
    }
}

/// Entries keyed by path, merged with [`Entry::absorb`]: the one way a batch's entries are
/// deduplicated, so that every handler agrees on what two entries for one path mean.
#[derive(Debug, Default)]
pub struct EntrySet(BTreeMap<PathBuf, Entry>);

impl EntrySet {
    pub fn new() -> EntrySet {
        EntrySet::default()
    }

    /// Adds `e`, merging it into an entry already present for the same path.
    pub fn add(&mut self, e: Entry) {
        match self.0.get_mut(&e.rel) {
            Some(x) => x.absorb(&e),
            None => {
                self.0.insert(e.rel.clone(), e);
            }
        }
    }

    /// The entries, sorted by path, one per path.
    pub fn into_vec(self) -> Vec<Entry> {
        self.0.into_values().collect()
    }
}

impl FromIterator<Entry> for EntrySet {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> EntrySet {
        let mut set = EntrySet::new();
        for e in iter {
            set.add(e);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel: &str, recursive: bool, attrs_only: bool) -> Entry {
        Entry {
            rel: PathBuf::from(rel),
            recursive,
            attrs_only,
        }
    }

    #[test]
    fn entries_for_one_path_merge() {
        let set: EntrySet = [
            e("b", false, true),
            e("a", false, true),
            e("b", true, true),
            e("a", false, false),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.into_vec(), [e("a", false, false), e("b", true, true)]);
    }
}
