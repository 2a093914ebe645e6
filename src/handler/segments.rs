//! Splitting a batch into rsync transfers that each stay within rsync's path limit.
//!
//! rsync refuses names longer than 4,096 bytes below its transfer root. A tree deeper than
//! that is cut into segments: a directory whose path, counted from the root of the segment
//! it is in, is longer than [`SEG`] bytes starts a segment of its own. Every segment is one
//! transfer rooted at that directory; its parent transfer carries the directory itself but
//! excludes its contents (`/DIR/*`), so names in any transfer stay below `SEG` + 256 bytes.
//! For a remote destination only the top segment can be transferred (rsync's remote side
//! cannot work below 4,096 bytes of absolute path); local ones go to the native mirror
//! engine instead.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Batch, Entry};
use crate::longpath::LongPath;
use crate::rules::{Filter, Kind};

/// Longest directory path, relative to its segment's root, that stays in the segment.
pub(crate) const SEG: usize = 2048;

/// One rsync transfer of a [`Plan`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Source-relative directory the transfer is rooted at (`` for the source itself).
    pub anchor: PathBuf,
    /// Entries relative to `anchor` (or a full batch).
    pub batch: Batch,
    /// NUL-terminated anchored rsync excludes, relative to `anchor`: the contents of the
    /// segments below, and what the filter denies in the directories walked.
    pub excludes: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Parents before their children.
    pub segments: Vec<Segment>,
}

#[derive(Default)]
struct Seg {
    full: bool,
    entries: BTreeMap<PathBuf, Entry>,
    nested: BTreeSet<PathBuf>,
    denied: BTreeSet<(PathBuf, bool)>,
}

/// Byte length of the segment root `rel` is in (0: the source root), from `rel`'s proper
/// ancestors only.
fn anchor_len(rel: &[u8]) -> usize {
    let (mut anchor, mut start) = (0, 0);
    for (i, &c) in rel.iter().enumerate() {
        if c == b'/' && i - start > SEG {
            anchor = i;
            start = i + 1;
        }
    }
    anchor
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// (segment root, path relative to it).
pub(crate) fn split(rel: &Path) -> (PathBuf, PathBuf) {
    let b = bytes(rel);
    match anchor_len(b) {
        0 => (PathBuf::new(), rel.to_path_buf()),
        n => (path(&b[..n]), path(&b[n + 1..])),
    }
}

fn join(a: &Path, b: &Path) -> PathBuf {
    crate::relpath::join(a, b)
}

/// An anchored rsync pattern for everything inside directory `rel`: `/REL/*`, with the
/// wildcard characters of `rel` escaped (a newline, which no pattern can hold, becomes `?`).
pub(crate) fn contents_pattern(rel: &Path) -> Vec<u8> {
    let mut out = vec![b'/'];
    for &c in bytes(rel) {
        match c {
            b'\n' | b'\r' => out.push(b'?'),
            b'*' | b'?' | b'[' | b']' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            _ => out.push(c),
        }
    }
    out.extend_from_slice(b"/*");
    out
}

struct Planner<'a> {
    source: &'a Path,
    filter: &'a Filter,
    segs: BTreeMap<PathBuf, Seg>,
    /// (segment root, directory relative to it) to walk.
    work: Vec<(PathBuf, PathBuf)>,
}

impl Planner<'_> {
    fn seg(&mut self, anchor: &Path) -> &mut Seg {
        if !self.segs.contains_key(anchor) {
            self.segs.insert(anchor.to_path_buf(), Seg::default());
            if !anchor.as_os_str().is_empty() {
                // The parent transfer carries the directory itself, not its contents.
                let (parent, r) = split(anchor);
                let p = self.seg(&parent);
                p.nested.insert(r.clone());
                p.entries.entry(r.clone()).or_insert(Entry {
                    rel: r,
                    recursive: false,
                    attrs_only: false,
                });
            }
        }
        self.segs.get_mut(anchor).expect("just inserted")
    }

    fn full(&mut self, anchor: &Path) {
        self.seg(anchor).full = true;
        self.work.push((anchor.to_path_buf(), PathBuf::new()));
    }

    fn add(&mut self, e: &Entry) {
        let is_dir =
            std::fs::symlink_metadata(LongPath::new(self.source, &e.rel)).is_ok_and(|m| m.is_dir());
        if e.rel.as_os_str().is_empty() && e.recursive {
            self.full(Path::new(""));
            return;
        }
        let (a, r) = split(&e.rel);
        let seg = self.seg(&a);
        let x = seg.entries.entry(r.clone()).or_insert(Entry {
            rel: r.clone(),
            recursive: false,
            attrs_only: true,
        });
        x.recursive |= e.recursive;
        x.attrs_only &= e.attrs_only;
        if e.recursive && is_dir {
            if bytes(&r).len() > SEG {
                self.full(&e.rel);
            } else {
                self.work.push((a, r));
            }
        }
    }

    /// Finds the segments and the denied paths below one directory.
    fn walk(&mut self, anchor: PathBuf, dir: PathBuf) {
        let full_dir = join(&anchor, &dir);
        let Ok(rd) = std::fs::read_dir(LongPath::new(self.source, &full_dir)) else {
            return;
        };
        for entry in rd.flatten() {
            let cr = join(&dir, Path::new(&entry.file_name()));
            let full = join(&anchor, &cr);
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(t) if t.is_file() => Kind::File,
                _ => Kind::Other,
            };
            let is_dir = kind == Kind::Dir;
            if !self.filter.allows(&full, kind) || (is_dir && !self.filter.allows_dir_walk(&full)) {
                self.seg(&anchor).denied.insert((cr, is_dir));
            } else if is_dir {
                if bytes(&cr).len() > SEG {
                    self.full(&full);
                } else {
                    self.work.push((anchor.clone(), cr));
                }
            }
        }
    }
}

/// The transfers that sync `batch` from `source` within rsync's limits.
pub(crate) fn plan(source: &Path, filter: &Filter, batch: &Batch) -> Plan {
    let mut p = Planner {
        source,
        filter,
        segs: BTreeMap::new(),
        work: Vec::new(),
    };
    for e in &batch.entries {
        p.add(e);
    }
    while let Some((anchor, dir)) = p.work.pop() {
        p.walk(anchor, dir);
    }
    let segments = p
        .segs
        .into_iter()
        .map(|(anchor, s)| {
            let mut excludes = Vec::new();
            for n in &s.nested {
                excludes.extend(contents_pattern(n));
                excludes.push(0);
            }
            for (d, is_dir) in &s.denied {
                excludes.extend(Filter::rsync_anchored(d, *is_dir));
                excludes.push(0);
            }
            let batch = if s.full {
                Batch::full()
            } else {
                Batch {
                    renames: Vec::new(),
                    entries: s.entries.into_values().collect(),
                }
            };
            Segment {
                anchor,
                batch,
                excludes,
            }
        })
        .collect();
    Plan { segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(root: &Path, names: &[String]) -> PathBuf {
        let mut rel = PathBuf::new();
        for n in names {
            rel.push(n);
            std::fs::create_dir(LongPath::new(root, &rel)).unwrap();
        }
        rel
    }

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{i:03}{}", "d".repeat(197)))
            .collect()
    }

    #[test]
    fn anchors_follow_the_length_rule() {
        let n = names(25);
        let rel = path(n.join("/").as_bytes());
        let (a, r) = split(&rel);
        // 200-byte components: the 11th directory (2,210 bytes) starts the first segment,
        // the 22nd (2,211 bytes further) the second, which holds the last three.
        assert_eq!(bytes(&a).len(), 22 * 201 - 1);
        assert_eq!(bytes(&r).len(), 3 * 201 - 1);
        let (a2, r2) = split(&a);
        assert_eq!(bytes(&a2).len(), 11 * 201 - 1);
        assert_eq!(bytes(&r2).len(), 11 * 201 - 1);
        assert_eq!(
            split(Path::new("a/b")),
            (PathBuf::new(), PathBuf::from("a/b"))
        );
    }

    #[test]
    fn full_plan_cuts_deep_trees_and_keeps_names_short() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep(t.path(), &names(30));
        std::fs::write(LongPath::new(t.path(), &rel.join("f")), b"x").unwrap();
        std::fs::write(t.path().join("top.tmp"), b"x").unwrap();
        let filter = Filter::new(&["*.tmp".to_string()], Vec::new()).unwrap();
        let plan = plan(t.path(), &filter, &Batch::full());
        assert_eq!(plan.segments.len(), 3);
        for (i, s) in plan.segments.iter().enumerate() {
            assert!(s.batch.is_full());
            let pats: Vec<&[u8]> = s
                .excludes
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .collect();
            if i + 1 < plan.segments.len() {
                assert!(
                    pats.iter().any(|p| p.ends_with(b"/*")),
                    "{i}: nested excluded"
                );
            }
            for p in pats {
                assert!(p.len() < SEG + 260);
            }
        }
        assert!(
            plan.segments[0]
                .excludes
                .windows(8)
                .any(|w| w == b"/top.tmp")
        );
    }

    #[test]
    fn live_entries_land_in_their_segment() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep(t.path(), &names(25));
        let file = rel.join("new");
        std::fs::write(LongPath::new(t.path(), &file), b"x").unwrap();
        let batch = Batch {
            renames: Vec::new(),
            entries: vec![
                Entry {
                    rel: file.clone(),
                    recursive: false,
                    attrs_only: false,
                },
                Entry {
                    rel: rel.join("gone"),
                    recursive: false,
                    attrs_only: false,
                },
            ],
        };
        let filter = Filter::new(&[], Vec::new()).unwrap();
        let plan = plan(t.path(), &filter, &batch);
        let last = plan.segments.last().unwrap();
        assert!(file.starts_with(&last.anchor));
        let names: Vec<&[u8]> = last.batch.entries.iter().map(|e| bytes(&e.rel)).collect();
        assert!(names.contains(&b"new".as_slice()) || names.iter().any(|n| n.ends_with(b"/new")));
        // Each parent lists the root of the segment below, and excludes its contents.
        for w in plan.segments.windows(2) {
            let (p, c) = (&w[0], &w[1]);
            let r = c.anchor.strip_prefix(&p.anchor).unwrap();
            assert!(p.batch.entries.iter().any(|e| e.rel == r && !e.recursive));
            assert!(p.excludes.windows(2).any(|w| w == b"/*"));
        }
    }
}
