//! Pending changes of a job, coalesced per path until the next flush.
//!
//! A path is listed once however many events it had: handlers look at the current state of
//! the source, so "changed" is all a path needs to say. Renames are kept in order, and
//! pending paths under a renamed directory are moved with it, so that a change made before
//! a rename is synced under the name the file has now.

use std::collections::HashSet;
use std::collections::btree_set::BTreeSet;
use std::collections::hash_map::{Entry as Slot, HashMap};
use std::ffi::{OsStr, OsString};
use std::ops::Bound;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::model::{Batch, Change, Entry, Rename};
use crate::relpath;

/// Past this many pending paths the queue collapses into one full sync: a full rsync is
/// cheaper than a list of millions, and memory stays bounded.
pub const MAX_PENDING: usize = 1_000_000;

/// Renames handled by a scan of every pending path before the queue builds its
/// [`index`](Queue::index). A scan costs 4 to 20 ns per pending path (warm or cold cache),
/// building the index about 200 (`bench_queue`): after a few dozen renames the index has paid
/// for itself, and a batch with a handful of renames, the common case, never pays for it nor
/// for keeping it up to date.
const SCANS_BEFORE_INDEX: u32 = 32;

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
    /// Pending paths, keyed by their bytes.
    entries: HashMap<Vec<u8>, Mark>,
    /// The keys of `entries` in byte order, so that a rename finds the paths under the
    /// renamed directory with one range query instead of a scan of everything pending.
    /// Built by the [`SCANS_BEFORE_INDEX`]th rename since the queue was last emptied
    /// (coalescing stays one hash lookup, and most batches have few renames or none), then
    /// kept in step with `entries` until the queue is emptied.
    index: Option<BTreeSet<Box<[u8]>>>,
    /// Renames that scanned `entries` since the queue was last emptied.
    scans: u32,
    renames: Vec<Rename>,
    full: bool,
}

fn key(rel: PathBuf) -> Vec<u8> {
    rel.into_os_string().into_vec()
}

fn as_path(key: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(key))
}

fn into_path(key: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(key))
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
        let e = match self.entries.entry(key(rel)) {
            Slot::Occupied(e) => e.into_mut(),
            Slot::Vacant(v) => {
                if let Some(index) = &mut self.index {
                    index.insert(v.key().as_slice().into());
                }
                v.insert(Mark::default())
            }
        };
        e.recursive |= recursive;
        e.content |= content;
        if self.entries.len() > MAX_PENDING {
            self.set_full();
        }
    }

    /// Records one change from the monitor.
    pub fn push(&mut self, change: Change) {
        match change {
            Change::Content(rel) => self.mark(rel, false, true),
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
        self.clear_entries();
        self.renames.clear();
    }

    /// Forgets every pending path (and the index over them).
    fn clear_entries(&mut self) -> HashMap<Vec<u8>, Mark> {
        self.index = None;
        self.scans = 0;
        std::mem::take(&mut self.entries)
    }

    /// Removes and returns the pending paths at or under `dir` (not empty).
    fn remove_subtree(&mut self, dir: &[u8]) -> Vec<(Vec<u8>, Mark)> {
        let Queue {
            entries,
            index,
            scans,
            ..
        } = self;
        if index.is_none() && *scans < SCANS_BEFORE_INDEX {
            *scans += 1;
            return entries
                .extract_if(|k, _| relpath::is_self_or_ancestor(as_path(dir), as_path(k)))
                .collect();
        }
        let index =
            index.get_or_insert_with(|| entries.keys().map(|k| k.as_slice().into()).collect());
        // In byte order `dir` and `dir/…` are not adjacent: `dir-x` (b'-' < b'/') sorts
        // between them, `dir0` and `dirX` after. What starts with `dir/` is one run, though,
        // beginning at `dir/` itself.
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        let mut moved: Vec<(Vec<u8>, Mark)> = index
            .range::<[u8], _>((Bound::Included(prefix.as_slice()), Bound::Unbounded))
            .take_while(|k| k.starts_with(&prefix))
            .filter_map(|k| entries.remove_entry(&k[..]))
            .collect();
        moved.extend(entries.remove_entry(dir));
        for (k, _) in &moved {
            index.remove(&k[..]);
        }
        moved
    }

    fn rename(&mut self, from: PathBuf, to: PathBuf) {
        if self.full {
            return;
        }
        // Pending changes under `from` now live under `to`.
        if !from.as_os_str().is_empty() {
            for (k, m) in self.remove_subtree(from.as_os_str().as_bytes()) {
                if let Some(nk) = relpath::rebase(as_path(&k), &from, &to) {
                    self.mark(nk, m.recursive, m.content);
                }
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
        let entries = self.clear_entries();
        if std::mem::take(&mut self.full) {
            self.renames.clear();
            return Batch::full();
        }
        let recursive: HashSet<Vec<u8>> = entries
            .iter()
            .filter(|(_, m)| m.recursive)
            .map(|(k, _)| k.clone())
            .collect();
        let covered = |k: &[u8]| {
            !recursive.is_empty()
                && relpath::ancestors(as_path(k))
                    .any(|a| recursive.contains(a.as_os_str().as_bytes()))
        };
        let mut out: Vec<Entry> = entries
            .into_iter()
            .filter(|(k, _)| !covered(k))
            .map(|(k, m)| Entry {
                rel: into_path(k),
                recursive: m.recursive,
                attrs_only: !m.content && !m.recursive,
            })
            .collect();
        out.sort_unstable();
        Batch {
            renames: std::mem::take(&mut self.renames),
            entries: out,
            deletes: true,
        }
    }

    /// Queues a batch's paths again (a failed run's, or paths moved from the other lane),
    /// merged with whatever came since. Renames are not replayed: their two sides are listed
    /// instead, the new one recursively.
    pub fn requeue(&mut self, batch: Batch) {
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
        let moving: Vec<(Vec<u8>, Mark)> = self
            .entries
            .extract_if(|k, m| !keep_here(as_path(k), m.recursive))
            .collect();
        for (k, m) in moving {
            if let Some(index) = &mut self.index {
                index.remove(&k[..]);
            }
            other.mark(into_path(k), m.recursive, m.content);
        }
    }
}

impl Queue {
    /// Puts back a batch [`take`](Queue::take)n just before, renames included (it could not
    /// be dispatched yet). Anything queued meanwhile is kept.
    pub fn put_back(&mut self, batch: Batch) {
        if !self.is_empty() {
            self.requeue(batch);
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
            let k = key(e.rel);
            if let Some(index) = &mut self.index {
                index.insert(k.as_slice().into());
            }
            self.entries.insert(k, m);
        }
        self.renames = batch.renames;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
            q.push(Change::Content(p("a")));
        }
        q.push(Change::Content(p("b")));
        let b = q.take();
        assert_eq!(entries(&b), [("a".into(), false), ("b".into(), false)]);
        assert!(q.is_empty());
    }

    #[test]
    fn recursive_entries_cover_their_subtree() {
        let mut q = Queue::default();
        q.push(Change::Content(p("d/x")));
        q.push(Change::Tree(p("d")));
        q.push(Change::Content(p("d/e/f")));
        q.push(Change::Content(p("dd")));
        q.push(Change::Content(p("d")));
        let b = q.take();
        assert_eq!(entries(&b), [("d".into(), true), ("dd".into(), false)]);
    }

    #[test]
    fn renames_move_pending_changes() {
        let mut q = Queue::default();
        q.push(Change::Content(p("a/f")));
        q.push(Change::Content(p("ab")));
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
        q.push(Change::Content(p("b")));
        let b = q.take();
        let flags: Vec<bool> = b.entries.iter().map(|e| e.attrs_only).collect();
        assert_eq!(flags, [true, false]);
        q.requeue(b);
        let flags: Vec<bool> = q.take().entries.iter().map(|e| e.attrs_only).collect();
        assert_eq!(flags, [true, false]);
    }

    #[test]
    fn too_many_pending_paths_collapse_into_a_full_sync() {
        let mut q = Queue::default();
        for i in 0..=MAX_PENDING {
            q.push(Change::Content(PathBuf::from(format!("f{i}"))));
        }
        assert!(q.is_full(), "memory stays bounded");
        assert_eq!(q.len(), 1);
        assert!(q.take().is_full());
    }

    #[test]
    fn overflow_makes_a_full_sync() {
        let mut q = Queue::default();
        q.push(Change::Content(p("a")));
        q.push(Change::Rescan);
        q.push(Change::Content(p("b")));
        assert!(q.take().is_full());
        assert!(q.is_empty());
    }

    #[test]
    fn requeue_replays_renames_as_trees() {
        let mut q = Queue::default();
        q.push(Change::Rename {
            from: p("x"),
            to: p("y"),
        });
        let b = q.take();
        q.requeue(b);
        q.push(Change::Content(p("z")));
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
        q.push(Change::Content(p("small")));
        q.push(Change::Content(p("huge.img")));
        q.split_off(&mut big, |p, _| !p.ends_with("huge.img"));
        assert_eq!(entries(&q.take()), [("small".into(), false)]);
        assert_eq!(entries(&big.take()), [("huge.img".into(), false)]);
    }

    fn b(bytes: &[u8]) -> PathBuf {
        into_path(bytes.to_vec())
    }

    fn rename(q: &mut Queue, from: &[u8], to: &[u8]) {
        q.push(Change::Rename {
            from: b(from),
            to: b(to),
        });
    }

    /// The pending paths with their (recursive, content) flags, after checking that the
    /// index, when there is one, lists exactly them.
    fn pending(q: &Queue) -> BTreeMap<Vec<u8>, (bool, bool)> {
        let map: BTreeMap<Vec<u8>, (bool, bool)> = q
            .entries
            .iter()
            .map(|(k, m)| (k.clone(), (m.recursive, m.content)))
            .collect();
        if let Some(index) = &q.index {
            let keys: Vec<&[u8]> = index.iter().map(|k| &k[..]).collect();
            let want: Vec<&[u8]> = map.keys().map(|k| &k[..]).collect();
            assert_eq!(keys, want, "index out of step");
        }
        map
    }

    /// Builds the index now, as the queue does after [`SCANS_BEFORE_INDEX`] renames.
    fn force_index(q: &mut Queue) {
        if q.index.is_none() {
            q.index = Some(q.entries.keys().map(|k| k.as_slice().into()).collect());
        }
    }

    /// A queue whose renames scan, and one whose renames use the index.
    fn queues() -> [Queue; 2] {
        let mut indexed = Queue::default();
        force_index(&mut indexed);
        [Queue::default(), indexed]
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
                q.push(Change::Content(b(p)));
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
            q.push(Change::Content(p("src/f")));
            q.push(Change::Attrib(p("src/g")));
            q.push(Change::Attrib(p("dst")));
            q.push(Change::Content(p("dst/old")));
            q.push(Change::Attrib(p("dst/f")));
            q.push(Change::Tree(p("dst/g")));
            q.push(Change::Content(p("tmp")));
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
            q.push(Change::Content(p("a/x")));
            q.push(Change::Attrib(p("a/y/z")));
            q.push(Change::Content(p("b-sib")));
            q.push(Change::Content(p("b0")));
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

    #[test]
    fn many_renames_in_a_batch_switch_to_the_index() {
        let mut q = Queue::default();
        for i in 0..100 {
            q.push(Change::Content(PathBuf::from(format!("d{}/f{i}", i % 10))));
        }
        let n = SCANS_BEFORE_INDEX as usize + 5;
        for i in 0..n {
            rename(
                &mut q,
                format!("d{i}").as_bytes(),
                format!("d{}", i + 1).as_bytes(),
            );
            assert_eq!(q.index.is_some(), i >= SCANS_BEFORE_INDEX as usize);
        }
        // d0 … d9 were moved one into the next, all of them ending under d{n}.
        let map = pending(&q);
        let under: Vec<&Vec<u8>> = map.keys().filter(|k| k.contains(&b'/')).collect();
        assert_eq!(under.len(), 100);
        let last = format!("d{n}/");
        assert!(under.iter().all(|k| k.starts_with(last.as_bytes())));
        q.take();
        assert!(q.index.is_none() && q.scans == 0, "a new batch scans again");
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push(Change),
            Take,
            Untake,
            Split(u8),
        }

        fn rel() -> impl Strategy<Value = PathBuf> {
            let name = prop_oneof![
                Just(&b"a"[..]),
                Just(&b"a-b"[..]),
                Just(&b"a0"[..]),
                Just(&b"ab"[..]),
                Just(&b"b"[..]),
                Just(&b"\xff"[..]),
                Just(&b"a\xff"[..]),
                Just(&b"x\ny"[..]),
            ];
            proptest::collection::vec(name, 0..=3).prop_map(|names| b(&names.join(&b'/')))
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => rel().prop_map(|r| Op::Push(Change::Content(r))),
                1 => rel().prop_map(|r| Op::Push(Change::Attrib(r))),
                1 => rel().prop_map(|r| Op::Push(Change::Tree(r))),
                4 => (rel(), rel()).prop_map(|(from, to)| Op::Push(Change::Rename { from, to })),
                1 => Just(Op::Take),
                1 => Just(Op::Untake),
                1 => any::<u8>().prop_map(Op::Split),
            ]
        }

        proptest! {
            /// A queue whose renames scan everything pending, one that switches to the index
            /// after a few renames and one that always has it agree after every step.
            #[test]
            fn scanning_and_indexed_renames_agree(ops in proptest::collection::vec(op(), 1..80)) {
                let mut qs = [Queue::default(), Queue::default(), Queue::default()];
                let mut others = [Queue::default(), Queue::default(), Queue::default()];
                for op in ops {
                    let mut taken = Vec::new();
                    for (i, (q, other)) in qs.iter_mut().zip(&mut others).enumerate() {
                        match i {
                            0 => q.scans = 0,
                            2 => force_index(q),
                            _ => {}
                        }
                        match op.clone() {
                            Op::Push(c) => q.push(c),
                            Op::Take => taken.push(q.take()),
                            Op::Untake => {
                                let batch = q.take();
                                q.put_back(batch);
                            }
                            Op::Split(x) => q.split_off(other, |p, _| {
                                p.as_os_str().len() % 3 != usize::from(x % 3)
                            }),
                        }
                    }
                    let state = |q: &Queue| (pending(q), q.renames.clone(), q.full);
                    prop_assert_eq!(state(&qs[0]), state(&qs[1]));
                    prop_assert_eq!(state(&qs[0]), state(&qs[2]));
                    prop_assert_eq!(state(&others[0]), state(&others[1]));
                    prop_assert_eq!(state(&others[0]), state(&others[2]));
                    if let [a, rest @ ..] = &taken[..] {
                        for t in rest {
                            prop_assert_eq!(a, t);
                        }
                    }
                }
            }
        }
    }

    /// The micro benchmark and its helpers.
    mod bench {
        use super::*;
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
                q.push(Change::Content(path(i)));
            }
            q
        }
        const RUNS: usize = 5;
        // The best time of pushing `changes` into the queue `start` makes (the queue and the
        // changes are made outside the timing).
        fn pushing(start: impl Fn() -> Queue, changes: &[Change]) -> Duration {
            best(RUNS, || {
                let mut q = start();
                let changes = changes.to_vec();
                timed(move || {
                    for c in changes {
                        q.push(c);
                    }
                    q
                })
            })
        }
        fn rename(from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> Change {
            Change::Rename {
                from: from.into(),
                to: to.into(),
            }
        }

        /// Micro benchmark of the queue's hot paths. Run it with
        /// `cargo test --release --lib queue::tests::bench -- --ignored --nocapture`.
        #[test]
        #[ignore = "benchmark: run in release with --ignored --nocapture"]
        fn bench_queue() {
            // 100k pending paths (most cases start there).
            let full = || filled(100_000);

            // 10k renames of single files.
            let renames: Vec<Change> = (0..10_000)
                .map(|i| {
                    rename(
                        path(i * 10),
                        format!("src/m{}/sub{}/moved_{i:05}.rs", i % 97, i % 7),
                    )
                })
                .collect();
            let d = pushing(full, &renames);
            println!("bench 10k file renames over 100k pending: {d:?}");

            // The 97 top directories renamed one by one (~1k paths each).
            let dir_renames: Vec<Change> = (0..97)
                .map(|i| rename(format!("src/m{i}"), format!("lib/m{i}")))
                .collect();
            let d = pushing(full, &dir_renames);
            println!("bench 97 dir renames moving 100k pending: {d:?}");

            // 10k distinct paths, each changed 100 times, interleaved.
            let hot: Vec<Change> = (0..1_000_000)
                .map(|i| Change::Content(path(i % 10_000)))
                .collect();
            let d = pushing(Queue::default, &hot);
            println!("bench 1M coalescing inserts over 10k paths: {d:?}");

            // 200k distinct paths, 5 times each.
            let wide: Vec<Change> = (0..1_000_000)
                .map(|i| Change::Content(path(i % 200_000)))
                .collect();
            let d = pushing(Queue::default, &wide);
            println!("bench 1M coalescing inserts over 200k paths: {d:?}");

            // Distinct paths.
            let fresh: Vec<Change> = (0..500_000).map(|i| Change::Content(path(i))).collect();
            let d = pushing(Queue::default, &fresh);
            println!("bench 500k distinct inserts: {d:?}");

            // A batch with a single rename.
            let one = [rename("src/m5/sub3", "src/m5/sub9")];
            let d = pushing(full, &one);
            println!("bench 1 dir rename over 100k pending: {d:?}");

            // Distinct paths after 100 renames in the same batch (the queue has built its index by
            // then, and keeps it up to date).
            let renamed = || {
                let mut q = Queue::default();
                for i in 0..100 {
                    q.push(rename(format!("x{i}"), format!("y{i}")));
                }
                q
            };
            let d = pushing(renamed, &fresh);
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
}
