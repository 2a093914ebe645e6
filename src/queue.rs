//! Pending changes of a job, coalesced per path until the next flush.
//!
//! A path is listed once however many events it had: handlers look at the current state of
//! the source, so "changed" is all a path needs to say. Renames are kept in order, and
//! pending paths under a renamed directory are moved with it, so that a change made before
//! a rename is synced under the name the file has now.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::handler::{Batch, Entry, Rename};
use crate::monitor::Change;
use crate::relpath;

/// Past this many pending paths the queue collapses into one full sync: a full rsync is
/// cheaper than a list of millions, and memory stays bounded.
pub const MAX_PENDING: usize = 1_000_000;

/// What is known about one pending path.
#[derive(Debug, Default, Clone, Copy)]
struct Mark {
    recursive: bool,
    /// Its content changed (not only its attributes).
    content: bool,
}

/// The changes collected since the last flush.
#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<PathBuf, Mark>,
    renames: Vec<Rename>,
    full: bool,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        !self.full && self.entries.is_empty() && self.renames.is_empty()
    }

    /// Number of pending paths (a full sync counts as one).
    pub fn len(&self) -> usize {
        if self.full { 1 } else { self.entries.len() }
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    fn mark(&mut self, rel: PathBuf, recursive: bool, content: bool) {
        if self.full {
            return;
        }
        let e = self.entries.entry(rel).or_default();
        e.recursive |= recursive;
        e.content |= content;
        if self.entries.len() > MAX_PENDING {
            self.set_full();
        }
    }

    /// Records one change from the monitor.
    pub fn push(&mut self, change: Change) {
        match change {
            Change::Path(rel) => self.mark(rel, false, true),
            Change::Attrib(rel) => self.mark(rel, false, false),
            Change::Tree(rel) => self.mark(rel, true, true),
            Change::Rename { from, to } => self.rename(from, to),
            Change::Rescan => self.set_full(),
            Change::RootGone => {}
        }
    }

    /// Everything must be compared: individual paths and renames are subsumed.
    pub fn set_full(&mut self) {
        self.full = true;
        self.entries = HashMap::new();
        self.renames.clear();
    }

    fn rename(&mut self, from: PathBuf, to: PathBuf) {
        if self.full {
            return;
        }
        // Pending changes under `from` now live under `to`.
        let moved: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|k| relpath::is_self_or_ancestor(&from, k) && !from.as_os_str().is_empty())
            .cloned()
            .collect();
        for k in moved {
            if let Some(m) = self.entries.remove(&k)
                && let Some(nk) = relpath::rebase(&k, &from, &to)
            {
                self.mark(nk, m.recursive, m.content);
            }
        }
        // `from` is gone (or something new, with its own events): no content to force.
        self.mark(from.clone(), false, false);
        self.mark(to.clone(), true, true);
        self.renames.push(Rename { from, to });
    }

    /// Takes everything pending as one batch, in path order, leaving the queue empty.
    /// Paths covered by a recursive ancestor in the same batch are left out.
    pub fn take(&mut self) -> Batch {
        if std::mem::take(&mut self.full) {
            self.entries = HashMap::new();
            self.renames.clear();
            return Batch::full();
        }
        let entries = std::mem::take(&mut self.entries);
        let recursive: HashSet<&Path> = entries
            .iter()
            .filter(|(_, m)| m.recursive)
            .map(|(p, _)| p.as_path())
            .collect();
        let mut out: Vec<Entry> = entries
            .iter()
            .filter(|(p, _)| !relpath::ancestors(p).any(|a| recursive.contains(a)))
            .map(|(p, m)| Entry {
                rel: p.clone(),
                recursive: m.recursive,
                attrs_only: !m.content && !m.recursive,
            })
            .collect();
        out.sort();
        Batch {
            renames: std::mem::take(&mut self.renames),
            entries: out,
        }
    }

    /// Puts a batch back (its handler run failed), to be retried with whatever came since.
    /// Renames are not replayed: their targets are listed recursively instead.
    pub fn restore(&mut self, batch: Batch) {
        if batch.is_full() {
            self.set_full();
            return;
        }
        for r in batch.renames {
            self.mark(r.from, false, true);
            self.mark(r.to, true, true);
        }
        for e in batch.entries {
            self.mark(e.rel, e.recursive, !e.attrs_only);
        }
    }

    /// Moves the entries for which `keep_here` is false into `other` (big files into the
    /// big-file queue). Renames stay.
    pub fn split_off(&mut self, other: &mut Queue, mut keep_here: impl FnMut(&Path, bool) -> bool) {
        if self.full {
            return;
        }
        let moving: Vec<PathBuf> = self
            .entries
            .iter()
            .filter(|(p, m)| !keep_here(p, m.recursive))
            .map(|(p, _)| p.clone())
            .collect();
        for p in moving {
            if let Some(m) = self.entries.remove(&p) {
                other.mark(p, m.recursive, m.content);
            }
        }
    }
}

impl Queue {
    /// Undoes a [`take`](Queue::take) made just before, renames included (the batch could not
    /// be dispatched yet). Anything queued meanwhile is kept.
    pub fn untake(&mut self, batch: Batch) {
        if !self.is_empty() {
            self.restore(batch);
            return;
        }
        if batch.is_full() {
            self.set_full();
            return;
        }
        for e in batch.entries {
            let m = Mark {
                recursive: e.recursive,
                content: !e.attrs_only,
            };
            self.entries.insert(e.rel, m);
        }
        self.renames = batch.renames;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn entries(b: &Batch) -> Vec<(String, bool)> {
        b.entries
            .iter()
            .map(|e| (e.rel.display().to_string(), e.recursive))
            .collect()
    }

    #[test]
    fn coalesces_per_path() {
        let mut q = Queue::default();
        for _ in 0..3 {
            q.push(Change::Path(p("a")));
        }
        q.push(Change::Path(p("b")));
        let b = q.take();
        assert_eq!(entries(&b), [("a".into(), false), ("b".into(), false)]);
        assert!(q.is_empty());
    }

    #[test]
    fn recursive_entries_cover_their_subtree() {
        let mut q = Queue::default();
        q.push(Change::Path(p("d/x")));
        q.push(Change::Tree(p("d")));
        q.push(Change::Path(p("d/e/f")));
        q.push(Change::Path(p("dd")));
        q.push(Change::Path(p("d")));
        let b = q.take();
        assert_eq!(entries(&b), [("d".into(), true), ("dd".into(), false)]);
    }

    #[test]
    fn renames_move_pending_changes() {
        let mut q = Queue::default();
        q.push(Change::Path(p("a/f")));
        q.push(Change::Path(p("ab")));
        q.push(Change::Rename {
            from: p("a"),
            to: p("b"),
        });
        let b = q.take();
        assert_eq!(b.renames.len(), 1);
        assert_eq!(
            entries(&b),
            [
                ("a".into(), false),
                ("ab".into(), false),
                ("b".into(), true)
            ]
        );
    }

    #[test]
    fn attribute_changes_stay_attribute_only_until_content_changes() {
        let mut q = Queue::default();
        q.push(Change::Attrib(p("a")));
        q.push(Change::Attrib(p("b")));
        q.push(Change::Path(p("b")));
        let b = q.take();
        let flags: Vec<bool> = b.entries.iter().map(|e| e.attrs_only).collect();
        assert_eq!(flags, [true, false]);
        q.restore(b);
        let flags: Vec<bool> = q.take().entries.iter().map(|e| e.attrs_only).collect();
        assert_eq!(flags, [true, false]);
    }

    #[test]
    fn too_many_pending_paths_collapse_into_a_full_sync() {
        let mut q = Queue::default();
        for i in 0..=MAX_PENDING {
            q.push(Change::Path(PathBuf::from(format!("f{i}"))));
        }
        assert!(q.is_full(), "memory stays bounded");
        assert_eq!(q.len(), 1);
        assert!(q.take().is_full());
    }

    #[test]
    fn overflow_makes_a_full_sync() {
        let mut q = Queue::default();
        q.push(Change::Path(p("a")));
        q.push(Change::Rescan);
        q.push(Change::Path(p("b")));
        assert!(q.take().is_full());
        assert!(q.is_empty());
    }

    #[test]
    fn restore_replays_renames_as_trees() {
        let mut q = Queue::default();
        q.push(Change::Rename {
            from: p("x"),
            to: p("y"),
        });
        let b = q.take();
        q.restore(b);
        q.push(Change::Path(p("z")));
        let b = q.take();
        assert!(b.renames.is_empty());
        assert_eq!(
            entries(&b),
            [("x".into(), false), ("y".into(), true), ("z".into(), false)]
        );
    }

    #[test]
    fn split_moves_selected_paths() {
        let mut q = Queue::default();
        let mut big = Queue::default();
        q.push(Change::Path(p("small")));
        q.push(Change::Path(p("huge.img")));
        q.split_off(&mut big, |p, _| !p.ends_with("huge.img"));
        assert_eq!(entries(&q.take()), [("small".into(), false)]);
        assert_eq!(entries(&big.take()), [("huge.img".into(), false)]);
    }

    fn b(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes.to_vec()))
    }

    fn rename(q: &mut Queue, from: &[u8], to: &[u8]) {
        q.push(Change::Rename {
            from: b(from),
            to: b(to),
        });
    }

    /// The pending paths with their (recursive, content) flags.
    fn pending(q: &Queue) -> BTreeMap<Vec<u8>, (bool, bool)> {
        q.entries
            .iter()
            .map(|(k, m)| (k.as_os_str().as_bytes().to_vec(), (m.recursive, m.content)))
            .collect()
    }

    /// The queues each rename test runs on.
    fn queues() -> [Queue; 1] {
        [Queue::default()]
    }

    fn expect(list: &[(&[u8], (bool, bool))]) -> BTreeMap<Vec<u8>, (bool, bool)> {
        list.iter().map(|(k, f)| (k.to_vec(), *f)).collect()
    }

    const CHANGED: (bool, bool) = (false, true);
    const ATTRS: (bool, bool) = (false, false);
    const TREE: (bool, bool) = (true, true);

    #[test]
    fn rename_moves_exactly_the_renamed_subtree() {
        for mut q in queues() {
            let changed: &[&[u8]] = &[
                b"a",
                b"a-b",
                b"a-b/x",
                b"a0",
                b"ab",
                b"a/\xff",
                b"a/x\ny",
                b"a\xff",
                b"a\xff/y",
                b"a\xff\xff",
                b"b0",
                b"\xff/a",
            ];
            for p in changed {
                q.push(Change::Path(b(p)));
            }
            q.push(Change::Attrib(p("a/b")));
            q.push(Change::Tree(p("a/b/c")));
            rename(&mut q, b"a", b"z");
            rename(&mut q, b"a\xff", b"q\n");
            assert_eq!(
                pending(&q),
                expect(&[
                    (b"a", ATTRS),
                    (b"a-b", CHANGED),
                    (b"a-b/x", CHANGED),
                    (b"a0", CHANGED),
                    (b"ab", CHANGED),
                    (b"a\xff", ATTRS),
                    (b"a\xff\xff", CHANGED),
                    (b"b0", CHANGED),
                    (b"q\n", TREE),
                    (b"q\n/y", CHANGED),
                    (b"z", TREE),
                    (b"z/b", ATTRS),
                    (b"z/b/c", TREE),
                    (b"z/x\ny", CHANGED),
                    (b"z/\xff", CHANGED),
                    (b"\xff/a", CHANGED),
                ])
            );
            let batch = q.take();
            assert_eq!(
                batch.renames,
                [
                    Rename {
                        from: p("a"),
                        to: p("z")
                    },
                    Rename {
                        from: b(b"a\xff"),
                        to: b(b"q\n")
                    }
                ]
            );
            // The moved paths are covered by their recursive new parents.
            let rels: Vec<PathBuf> = batch.entries.iter().map(|e| e.rel.clone()).collect();
            assert!(rels.contains(&p("z")) && !rels.contains(&p("z/b")));
            assert!(rels.contains(&b(b"q\n")) && !rels.contains(&b(b"q\n/y")));
        }
    }

    #[test]
    fn rename_onto_a_path_with_pending_changes_merges_them() {
        for mut q in queues() {
            q.push(Change::Path(p("src/f")));
            q.push(Change::Attrib(p("src/g")));
            q.push(Change::Attrib(p("dst")));
            q.push(Change::Path(p("dst/old")));
            q.push(Change::Attrib(p("dst/f")));
            q.push(Change::Tree(p("dst/g")));
            q.push(Change::Path(p("tmp")));
            q.push(Change::Attrib(p("file")));
            rename(&mut q, b"src", b"dst");
            rename(&mut q, b"tmp", b"file");
            assert_eq!(
                pending(&q),
                expect(&[
                    (b"dst", TREE),
                    // Attributes only until the content moved onto it.
                    (b"dst/f", CHANGED),
                    (b"dst/g", TREE),
                    (b"dst/old", CHANGED),
                    (b"file", TREE),
                    (b"src", ATTRS),
                    (b"tmp", ATTRS),
                ])
            );
        }
    }

    #[test]
    fn chained_renames_carry_pending_changes_to_the_last_name() {
        for mut q in queues() {
            q.push(Change::Path(p("a/x")));
            q.push(Change::Attrib(p("a/y/z")));
            q.push(Change::Path(p("b-sib")));
            q.push(Change::Path(p("b0")));
            rename(&mut q, b"a", b"b");
            rename(&mut q, b"b", b"c");
            assert_eq!(
                pending(&q),
                expect(&[
                    (b"a", ATTRS),
                    (b"b", ATTRS),
                    (b"b-sib", CHANGED),
                    (b"b0", CHANGED),
                    (b"c", TREE),
                    (b"c/x", CHANGED),
                    (b"c/y/z", ATTRS),
                ])
            );
            let batch = q.take();
            assert_eq!(batch.renames.len(), 2);
            assert_eq!(
                entries(&batch),
                [
                    ("a".into(), false),
                    ("b".into(), false),
                    ("b-sib".into(), false),
                    ("b0".into(), false),
                    ("c".into(), true)
                ]
            );
        }
    }

    /// Micro benchmark of the queue's hot paths. Run it with
    /// `cargo test --release --lib queue::tests::bench -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: run in release with --ignored --nocapture"]
    fn bench_queue() {
        use std::time::{Duration, Instant};

        // A path like a source tree's: `src/m17/sub3/file_00042.rs`.
        fn path(i: usize) -> PathBuf {
            PathBuf::from(format!("src/m{}/sub{}/file_{i:05}.rs", i % 97, i % 7))
        }
        fn best<T>(runs: usize, mut f: impl FnMut() -> (Duration, T)) -> Duration {
            (0..runs).map(|_| f().0).min().unwrap()
        }
        fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
            let t = Instant::now();
            let out = f();
            (t.elapsed(), std::hint::black_box(out))
        }
        fn filled(n: usize) -> Queue {
            let mut q = Queue::default();
            for i in 0..n {
                q.push(Change::Path(path(i)));
            }
            q
        }
        const RUNS: usize = 5;

        // 100k pending paths, then 10k renames of single files.
        let renames: Vec<Change> = (0..10_000)
            .map(|i| Change::Rename {
                from: path(i * 10),
                to: PathBuf::from(format!("src/m{}/sub{}/moved_{i:05}.rs", i % 97, i % 7)),
            })
            .collect();
        let d = best(RUNS, || {
            let mut q = filled(100_000);
            let changes = renames.clone();
            timed(move || {
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 10k file renames over 100k pending: {d:?}");

        // 100k pending paths, then the 97 top directories renamed one by one (~1k paths each).
        let dir_renames: Vec<Change> = (0..97)
            .map(|i| Change::Rename {
                from: PathBuf::from(format!("src/m{i}")),
                to: PathBuf::from(format!("lib/m{i}")),
            })
            .collect();
        let d = best(RUNS, || {
            let mut q = filled(100_000);
            let changes = dir_renames.clone();
            timed(move || {
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 97 dir renames moving 100k pending: {d:?}");

        // 1M coalescing inserts: 10k distinct paths, each changed 100 times, interleaved.
        let hot: Vec<Change> = (0..1_000_000)
            .map(|i| Change::Path(path(i % 10_000)))
            .collect();
        let d = best(RUNS, || {
            let changes = hot.clone();
            timed(move || {
                let mut q = Queue::default();
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 1M coalescing inserts over 10k paths: {d:?}");

        // 1M coalescing inserts over a large set: 200k distinct paths, 5 times each.
        let wide: Vec<Change> = (0..1_000_000)
            .map(|i| Change::Path(path(i % 200_000)))
            .collect();
        let d = best(RUNS, || {
            let changes = wide.clone();
            timed(move || {
                let mut q = Queue::default();
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 1M coalescing inserts over 200k paths: {d:?}");

        // 500k inserts of distinct paths.
        let fresh: Vec<Change> = (0..500_000).map(|i| Change::Path(path(i))).collect();
        let d = best(RUNS, || {
            let changes = fresh.clone();
            timed(move || {
                let mut q = Queue::default();
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 500k distinct inserts: {d:?}");

        // One directory rename over 100k pending paths (a batch with a single rename).
        let d = best(RUNS, || {
            let mut q = filled(100_000);
            let c = Change::Rename {
                from: PathBuf::from("src/m5/sub3"),
                to: PathBuf::from("src/m5/sub9"),
            };
            timed(move || {
                q.push(c);
                q
            })
        });
        println!("bench 1 dir rename over 100k pending: {d:?}");

        // 500k distinct inserts after 100 renames in the same batch (the queue has built its
        // index by then, and keeps it up to date).
        let d = best(RUNS, || {
            let mut q = Queue::default();
            for i in 0..100 {
                q.push(Change::Rename {
                    from: PathBuf::from(format!("x{i}")),
                    to: PathBuf::from(format!("y{i}")),
                });
            }
            let changes = fresh.clone();
            timed(move || {
                for c in changes {
                    q.push(c);
                }
                q
            })
        });
        println!("bench 500k distinct inserts after 100 renames: {d:?}");

        // take() of 100k pending paths, some of them recursive.
        let d = best(RUNS, || {
            let mut q = filled(100_000);
            for i in 0..97 {
                q.push(Change::Tree(PathBuf::from(format!("src/m{i}/sub0"))));
            }
            timed(move || q.take())
        });
        println!("bench take of 100k pending: {d:?}");
    }
}
