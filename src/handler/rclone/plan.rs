//! What one batch asks of rclone: the regular files to copy (a `--files-from-raw` list,
//! one name a line) and the rules of a sync pass for everything else (deletions, whole
//! subtrees, directories, type changes), as anchored exact patterns after the job's own
//! filter lines.
//!
//! rclone reads both lists line by line: a name holding a line break cannot be listed.
//! Such an entry is widened to its nearest ancestor that can (synced whole), or to the whole
//! tree; the name itself then only travels inside rclone's own walk, never through a list.
//!
//! rclone cannot replace a directory at the destination by a file, nor a file by a
//! directory: [`Plan::in_the_way`] names, for a run that failed, what may stand in the way
//! (beneath each copied file, and each directory synced, as a file), for a deletion before
//! the passes run again.
//!
//! rclone tries every rule on every name it lists, so a sync pass of more than
//! [`MAX_RULED`] paths syncs their parent directories whole instead (and so on up): ten
//! thousand deletions in one directory cost one walk of it, not ten thousand rules per name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::model::Batch;
use crate::rules::rclone::{exact, line_safe, standard};

/// Most paths a sync pass names one by one.
const MAX_RULED: usize = 1000;

/// The two passes of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// The whole tree, one `rclone sync` (the other fields are then empty).
    pub full: bool,
    /// Regular files to `rclone copy`, one per line.
    pub copy: Vec<u8>,
    /// `+` rules of the sync pass (each ends with a newline); empty: no sync pass.
    pub sync: Vec<u8>,
    /// `+` rules of what may be in the way at the destination: what is beneath a copied
    /// file, a file where the source has a directory. Empty for more than [`MAX_RULED`].
    pub in_the_way: Vec<u8>,
}

/// How the source holds an entry's path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    File,
    Dir,
    /// Missing, a symlink or a special file: rclone syncs none of these, so the
    /// destination loses what it holds there.
    Absent,
}

/// The plan of `batch`; `found` says what the source holds at a path.
pub(super) fn plan(batch: &Batch, mut found: impl FnMut(&Path) -> Found) -> Plan {
    if batch.is_full() {
        return Plan {
            full: true,
            ..Plan::default()
        };
    }
    let mut p = Plan::default();
    // Synced as the directory alone (false) or as the whole subtree (true).
    let mut ruled: Vec<(PathBuf, bool)> = Vec::new();
    let mut in_the_way = 0;
    // Both sides of a rename, synced whole.
    let renamed = batch
        .renames
        .iter()
        .flat_map(|r| [&r.from, &r.to])
        .map(|rel| (rel.clone(), true));
    let entries = batch.entries.iter().map(|e| (e.rel.clone(), e.recursive));
    for (rel, recursive) in renamed.chain(entries) {
        let (rel, widened) = listable(&rel);
        if rel.as_os_str().is_empty() {
            return Plan {
                full: true,
                ..Plan::default()
            };
        }
        match (found(&rel), recursive || widened) {
            (Found::File, _) => {
                p.copy.extend_from_slice(&standard(&rel));
                p.copy.push(b'\n');
                rule(&mut p.in_the_way, &rel, "/**");
                in_the_way += 1;
            }
            // A whole subtree, or the directory alone (what is in it has entries of its own).
            (Found::Dir, tree) => {
                rule(&mut p.in_the_way, &rel, "");
                in_the_way += 1;
                ruled.push((rel, tree));
            }
            (Found::Absent, _) => ruled.push((rel, true)),
        }
    }
    if in_the_way > MAX_RULED {
        p.in_the_way.clear();
    }
    if ruled.len() > MAX_RULED {
        let Some(trees) = collapse(ruled.into_iter().map(|(rel, _)| rel).collect()) else {
            return Plan {
                full: true,
                ..Plan::default()
            };
        };
        ruled = trees.into_iter().map(|rel| (rel, true)).collect();
    }
    for (rel, tree) in ruled {
        if tree {
            rule(&mut p.sync, &rel, "");
            rule(&mut p.sync, &rel, "/**");
        } else {
            rule(&mut p.sync, &rel, "/");
        }
    }
    p
}

/// `paths` replaced by their parents, level after level, until at most [`MAX_RULED`]
/// remain; `None` when that reaches the root.
fn collapse(mut paths: BTreeSet<PathBuf>) -> Option<BTreeSet<PathBuf>> {
    while paths.len() > MAX_RULED {
        paths = paths
            .iter()
            .map(|p| p.parent().unwrap_or(Path::new("")).to_path_buf())
            .collect();
        if paths.iter().any(|p| p.as_os_str().is_empty()) {
            return None;
        }
    }
    Some(paths)
}

/// `rel`, or its nearest ancestor whose name can be listed (true: widened to it).
fn listable(rel: &Path) -> (PathBuf, bool) {
    let mut widened = false;
    let mut r = rel;
    while !line_safe(r) {
        widened = true;
        r = r.parent().unwrap_or(Path::new(""));
    }
    (r.to_path_buf(), widened)
}

/// `+ /REL{suffix}` and a newline.
fn rule(out: &mut Vec<u8>, rel: &Path, suffix: &str) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(&exact(rel));
    out.extend_from_slice(suffix.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entry, Rename};

    fn entry(rel: &str, recursive: bool) -> Entry {
        Entry {
            rel: PathBuf::from(rel),
            recursive,
            attrs_only: false,
        }
    }

    #[test]
    fn files_are_copied_the_rest_synced() {
        let b = Batch {
            deletes: true,
            renames: vec![Rename {
                from: "old".into(),
                to: "new".into(),
            }],
            entries: vec![
                entry("f", false),
                entry("d", false),
                entry("t", true),
                entry("gone", false),
            ],
        };
        let p = plan(&b, |r| match r.to_str().unwrap() {
            "f" | "new" => Found::File,
            "d" | "t" => Found::Dir,
            _ => Found::Absent,
        });
        assert!(!p.full);
        assert_eq!(p.copy, b"new\nf\n");
        assert_eq!(
            String::from_utf8(p.in_the_way).unwrap(),
            "+ /new/**\n+ /f/**\n+ /d\n+ /t\n"
        );
        assert_eq!(
            String::from_utf8(p.sync).unwrap(),
            "+ /old\n+ /old/**\n+ /d/\n+ /t\n+ /t/**\n+ /gone\n+ /gone/**\n"
        );
    }

    #[test]
    fn many_ruled_paths_become_their_parents() {
        let mut entries: Vec<Entry> = (0..1500)
            .map(|i| entry(&format!("a/d{}/gone{i}", i % 3), false))
            .collect();
        entries.push(entry("b/gone", false));
        let b = Batch {
            deletes: true,
            renames: vec![],
            entries,
        };
        let p = plan(&b, |_| Found::Absent);
        assert_eq!(
            String::from_utf8(p.sync).unwrap(),
            "+ /a/d0\n+ /a/d0/**\n+ /a/d1\n+ /a/d1/**\n+ /a/d2\n+ /a/d2/**\n+ /b\n+ /b/**\n"
        );
        let top: Vec<Entry> = (0..1001).map(|i| entry(&format!("x{i}"), false)).collect();
        let b = Batch {
            deletes: true,
            renames: vec![],
            entries: top,
        };
        assert!(plan(&b, |_| Found::Absent).full);
    }

    #[test]
    fn a_name_with_a_line_break_widens_to_its_parent_or_the_tree() {
        let b = Batch {
            deletes: true,
            renames: vec![],
            entries: vec![entry("dir/a\nb", false)],
        };
        let p = plan(&b, |_| Found::Dir);
        assert_eq!(p.sync, b"+ /dir\n+ /dir/**\n");
        let b = Batch {
            deletes: true,
            renames: vec![],
            entries: vec![entry("x\ry", false)],
        };
        assert!(plan(&b, |_| Found::File).full);
    }
}
