//! The part of a batch that rsync can transfer to a remote destination when the tree holds
//! paths longer than rsync's limit.
//!
//! rsync refuses names longer than 4,096 bytes below its transfer root, and its remote side
//! cannot work below 4,096 bytes of absolute path at all. A directory whose source-relative
//! path is longer than [`DEEP`] bytes is a *deep root*: it is transferred itself, its
//! contents are hidden from rsync (`/DIR/*`), and it is reported. Every name rsync then sees is
//! shorter than `DEEP` + 256 bytes. (Local destinations go to the native mirror engine
//! instead, which has no such limit.)

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::rsync::{push_exclude, walk_denied};
use crate::fs::Lookup;
use crate::model::{Batch, Entry, EntrySet};
use crate::rules::Filter;

/// Longest directory path whose contents rsync is given.
pub(crate) const DEEP: usize = 2048;

/// What [`shallow`] makes of a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Shallow {
    /// The batch without what lies below the deep roots.
    pub batch: Batch,
    /// NUL-terminated anchored rsync excludes: what the filter denies in the directories
    /// walked.
    pub excludes: Vec<u8>,
    /// Anchored patterns for the contents of every deep root, to *hide* from rsync (not
    /// exclude: what an earlier plain rsync run put there is deleted, so the destination
    /// holds the same whatever the batches were).
    pub hidden: Vec<Vec<u8>>,
    /// Source-relative deep roots met.
    pub deep: BTreeSet<PathBuf>,
}

/// An anchored rsync pattern for everything inside directory `rel`: `/REL/*`, with the
/// wildcard characters of `rel` escaped (a newline, which no pattern can hold, becomes `?`).
fn contents_pattern(rel: &Path) -> Vec<u8> {
    let mut out = vec![b'/'];
    for &c in rel.as_os_str().as_bytes() {
        match c {
            b'\n' | b'\r' => out.push(b'?'),
            b'*' | b'?' | b'[' | b']' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            _ => out.push(c),
        }
    }
    out.extend_from_slice(b"/*");
    out
}

/// The shallowest proper ancestor of `rel` that is a deep root.
fn deep_ancestor(rel: &Path) -> Option<&Path> {
    let b = rel.as_os_str().as_bytes();
    let i = (DEEP + 1..b.len()).find(|&i| b[i] == b'/')?;
    Some(Path::new(OsStr::from_bytes(&b[..i])))
}

/// Cuts `batch` at the deep roots (see the module documentation), walking the recursive
/// entries to find those below them.
pub(crate) fn shallow(source: &Path, filter: &Filter, batch: &Batch) -> Shallow {
    let mut look = Lookup::new(source);
    let full = batch.is_full();
    let (entries, mut deep, walk) = if full {
        (EntrySet::new(), BTreeSet::new(), vec![PathBuf::new()])
    } else {
        cut_entries(&mut look, batch)
    };
    let mut denied = BTreeSet::new();
    walk_denied(
        &mut look,
        filter,
        walk,
        |rel, is_dir| {
            denied.insert((rel, is_dir));
        },
        |dir| {
            if dir.as_os_str().len() > DEEP {
                deep.insert(dir.to_path_buf());
                false
            } else {
                true
            }
        },
    );
    let hidden = deep.iter().map(|d| contents_pattern(d)).collect();
    let mut excludes = Vec::new();
    for (d, is_dir) in &denied {
        push_exclude(&mut excludes, d, *is_dir);
    }
    let batch = Batch {
        renames: Vec::new(),
        entries: if full {
            Batch::full().entries
        } else {
            entries.into_vec()
        },
        deletes: batch.deletes,
    };
    Shallow {
        batch,
        excludes,
        hidden,
        deep,
    }
}

/// A live batch's entries cut at the deep roots (an entry below one becomes the deep root
/// itself), the deep roots met, and the directories among the entries to walk for more.
fn cut_entries(look: &mut Lookup, batch: &Batch) -> (EntrySet, BTreeSet<PathBuf>, Vec<PathBuf>) {
    let mut entries = EntrySet::new();
    let mut deep = BTreeSet::new();
    let mut walk = Vec::new();
    for e in &batch.entries {
        let e = match deep_ancestor(&e.rel) {
            // Only the deep root itself is transferred.
            Some(root) => {
                deep.insert(root.to_path_buf());
                Entry {
                    rel: root.to_path_buf(),
                    recursive: false,
                    attrs_only: false,
                }
            }
            None => e.clone(),
        };
        // rsync is run with `-r` on every entry: a directory entry recurses whether or not
        // it is marked recursive (an attribute change), so its deep roots must be found too.
        if look.lstat(&e.rel).is_ok_and(|m| m.is_dir()) {
            if e.rel.as_os_str().len() > DEEP {
                deep.insert(e.rel.clone());
            } else {
                walk.push(e.rel.clone());
            }
        }
        entries.add(e);
    }
    (entries, deep, walk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::longpath::LongPath;

    fn deep_dirs(root: &Path, n: usize) -> PathBuf {
        let mut rel = PathBuf::new();
        for i in 0..n {
            rel.push(format!("{i:03}{}", "d".repeat(197)));
            std::fs::create_dir(LongPath::new(root, &rel)).unwrap();
        }
        rel
    }

    fn patterns(s: &Shallow) -> Vec<&[u8]> {
        s.excludes
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .collect()
    }

    #[test]
    fn full_batch_stops_at_the_first_deep_root() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep_dirs(t.path(), 30);
        std::fs::write(LongPath::new(t.path(), &rel.join("f")), b"x").unwrap();
        std::fs::write(t.path().join("top.tmp"), b"x").unwrap();
        let filter = Filter::new(&["*.tmp".to_string()], Vec::new()).unwrap();
        let s = shallow(t.path(), &filter, &Batch::full());
        assert!(s.batch.is_full());
        // 200-byte components: the 11th directory (2,210 bytes) is the first deep root.
        assert_eq!(s.deep.len(), 1);
        let root = s.deep.first().unwrap();
        assert_eq!(root.as_os_str().len(), 11 * 201 - 1);
        assert_eq!(s.hidden, vec![contents_pattern(root)]);
        assert_eq!(patterns(&s), vec![b"/top.tmp".as_slice()]);
        assert!(s.hidden.iter().all(|p| p.len() < DEEP + 260));
    }

    #[test]
    fn deep_entries_become_their_deep_root() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep_dirs(t.path(), 25);
        let batch = Batch {
            renames: Vec::new(),
            entries: vec![
                Entry {
                    rel: rel.join("new"),
                    recursive: false,
                    attrs_only: false,
                },
                Entry {
                    rel: "shallow".into(),
                    recursive: false,
                    attrs_only: true,
                },
            ],
            deletes: true,
        };
        let filter = Filter::new(&[], Vec::new()).unwrap();
        let s = shallow(t.path(), &filter, &batch);
        let root = deep_ancestor(&rel.join("new")).unwrap().to_path_buf();
        assert_eq!(s.deep, BTreeSet::from([root.clone()]));
        let rels: Vec<&Path> = s.batch.entries.iter().map(|e| e.rel.as_path()).collect();
        assert_eq!(rels, vec![root.as_path(), Path::new("shallow")]);
        assert!(s.batch.entries.iter().all(|e| !e.recursive));
        assert_eq!(deep_ancestor(Path::new("a/b")), None);
    }

    /// rsync gets `-r` for every entry: a directory entry that is not marked recursive (a
    /// chmod) still makes rsync recurse, so its deep roots must be hidden too.
    #[test]
    fn non_recursive_directory_entries_hide_their_deep_roots() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep_dirs(t.path(), 25);
        let top = PathBuf::from(rel.components().next().unwrap().as_os_str());
        let batch = Batch {
            renames: Vec::new(),
            entries: vec![Entry {
                rel: top,
                recursive: false,
                attrs_only: true,
            }],
            deletes: true,
        };
        let filter = Filter::new(&[], Vec::new()).unwrap();
        let s = shallow(t.path(), &filter, &batch);
        assert_eq!(s.deep.len(), 1, "{:?}", s.deep);
        assert_eq!(s.hidden.len(), 1);
    }
}
