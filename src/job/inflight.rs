//! The paths of batches being synced, so that two runs never touch the same path at once
//! and a later change never overtakes an earlier one.
//!
//! A batch due while others are in flight is [`split`](InFlight::split): what shares no path
//! with a run in flight may start now, on a free worker; the rest waits in the queue for
//! the run it overlaps to end. Under sustained churn nearly every batch shares a path or
//! two with the run before it (a file appended to again, a directory above a busy path);
//! holding back only those paths, not the whole batch, is what lets the job's workers
//! pipeline batches instead of one growing list waiting for the last run.
//!
//! Renames are replayed in order, so a rename is held back with everything it overlaps:
//! one that shares a path with a run in flight, or with a rename held before it, waits,
//! and so does every entry overlapping a held rename. What starts now is then independent
//! of what waits, and what waits runs after the run it overlaps, in its own order.
//!
//! An attribute change (a `chmod`, `touch`, or a directory's times synced again, below) is
//! a node, not a subtree: its run sets that path's attributes and nothing below it, as
//! every run sets the directories above its paths. So it neither waits for nor holds back
//! runs below it. (Should the path vanish or change type before its run, the run may
//! remove or copy what is below it; but that comes with an event on the path itself, a
//! subtree that waits for the node's run, and is synced after it.) The root stays a
//! subtree: its attributes pass lists its entries and removes extraneous ones.
//!
//! Runs in flight at once share directories above their paths, whose attributes each
//! handler run sets (rsync sends every directory above a listed path). When a run ends
//! after a newer one, the directories both set may keep the older view:
//! [`finish`](InFlight::finish) names them, from what it remembers of the newer runs that
//! ended while an older one was in flight, so that only those are synced again. Every other
//! directory the older run set was set by no newer finished run: a change to it after the
//! older run looked is a change below it, which a run started later (or one still in
//! flight, checked again when it ends) sets. Under churn, two batches of a few hundred paths
//! in a thousand directories share tens of directories, not the hundreds each sets.
//!
//! That takes the order runs end in for the order they set those directories, as rsync
//! does (it sets every directory of its list again when it ends) and the mirror (it reads
//! the source as it sets them): [`DirTimes::AtEnd`]. A command may set a directory long
//! before it ends ([`DirTimes::Anytime`]): an older run that ends first may have set it
//! after. For the nodes of a run, which start beside older runs below them, `finish` names
//! those an older run that ended beside it set too. The directories above paths are still
//! taken in the order runs end: naming them after every two runs side by side would sync
//! the root again (for a command, the whole tree) after nearly every run under churn.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::model::{Batch, Entry, Rename};
use crate::relpath;

#[derive(Debug, Default)]
pub struct InFlight {
    /// Each run in flight.
    batches: Vec<Running>,
    /// Runs that succeeded while another that may be compared with them was still in
    /// flight, with the directories they set: kept while such a run is in flight.
    finished: Vec<Finished>,
    /// How many runs have ended: orders a run's start against other runs' ends.
    ended: u64,
}

#[derive(Debug)]
struct Running {
    id: u64,
    full: bool,
    claims: Claims,
    /// [`InFlight::ended`] when it started: a run whose end is counted above it ended
    /// while this one was in flight.
    started: u64,
}

#[derive(Debug)]
struct Finished {
    id: u64,
    /// Its place among the ends ([`InFlight::ended`] counting it).
    ended: u64,
    /// The directories it set (sorted).
    dirs: Vec<PathBuf>,
}

/// When a handler's run sets the attributes of the directories above its paths, and of its
/// nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirTimes {
    /// When it ends (rsync sets every directory of its list again then, as it saw it when
    /// it started; the mirror reads the source when it sets them): runs set them in the
    /// order they end.
    AtEnd,
    /// At any time during the run (a command working path by path): one that ends first
    /// may have set them last.
    Anytime,
}

/// The paths whose attributes alone a run of `batch` sets, which another run in flight
/// may set too: every directory above its paths, and its nodes. Sorted.
fn dirs_above(batch: &Batch) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = batch
        .entries
        .iter()
        .flat_map(|e| relpath::ancestors(&e.rel).map(Path::to_path_buf))
        .chain(
            batch
                .entries
                .iter()
                .filter(|e| node_only(e))
                .map(|e| e.rel.clone()),
        )
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A batch split by [`InFlight::split`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Shares no path with a run in flight: may start now.
    pub ready: Batch,
    /// Overlaps a run in flight (or a rename that does): waits for a run to end.
    pub held: Batch,
}

/// Whether `e` claims only itself, not its subtree: an attribute change of a path other
/// than the root, not recursive (see the module documentation).
fn node_only(e: &Entry) -> bool {
    e.attrs_only && !e.recursive && !e.rel.as_os_str().is_empty()
}

/// What a run claims: subtrees and single nodes.
#[derive(Debug)]
struct Claims {
    trees: Vec<PathBuf>,
    nodes: Vec<PathBuf>,
}

/// What a run of `batch` claims. A rename's sides are subtrees.
fn paths(batch: &Batch) -> Claims {
    let (nodes, trees): (Vec<&Entry>, Vec<&Entry>) =
        batch.entries.iter().partition(|e| node_only(e));
    let mut trees: Vec<PathBuf> = trees.into_iter().map(|e| e.rel.clone()).collect();
    for r in &batch.renames {
        trees.push(r.from.clone());
        trees.push(r.to.clone());
    }
    Claims {
        trees,
        nodes: nodes.into_iter().map(|e| e.rel.clone()).collect(),
    }
}

/// A set of paths, and what overlaps it: the same path, one above it, or one below it (a
/// directory synced recursively covers its subtree, and rsync sets the attributes of the
/// directories above the paths it is given).
///
/// A node (an attribute change, [`node_only`]) is the path itself: its run sets that path's
/// attributes and nothing below it, like the directories above any path. So a node in
/// flight holds back that path and the directories above it (whose runs would recurse
/// into it), not what lies below it; and a node entry waits for that path or a subtree
/// around it, not for runs below it.
#[derive(Default)]
struct Region<'a> {
    /// Subtrees claimed.
    paths: HashSet<&'a Path>,
    /// Single nodes claimed.
    nodes: HashSet<&'a Path>,
    /// Every proper ancestor of `paths` and `nodes`.
    above: HashSet<&'a Path>,
}

impl<'a> Region<'a> {
    fn add(&mut self, p: &'a Path) {
        if self.paths.insert(p) {
            self.above.extend(relpath::ancestors(p));
        }
    }

    fn add_node(&mut self, p: &'a Path) {
        if self.nodes.insert(p) {
            self.above.extend(relpath::ancestors(p));
        }
    }

    /// Whether `p` (a subtree, or with `node` the path alone) overlaps the region.
    fn overlaps(&self, p: &Path, node: bool) -> bool {
        (!self.paths.is_empty() || !self.nodes.is_empty())
            && (self.paths.contains(p)
                || self.nodes.contains(p)
                || (!node && self.above.contains(p))
                || relpath::ancestors(p).any(|a| self.paths.contains(a)))
    }
}

impl InFlight {
    pub fn add(&mut self, id: u64, batch: &Batch) {
        self.batches.push(Running {
            id,
            full: batch.is_full(),
            claims: paths(batch),
            started: self.ended,
        });
    }

    /// Run `id` of `batch` ended (`ok`: it succeeded); `times`: when the handler's runs
    /// set directories. Returns the directories it set that a newer run, already ended,
    /// set too: where it may have put back an older view (see the module documentation).
    /// With [`DirTimes::Anytime`], also its nodes that an older run, ended while this one
    /// was in flight, set: that run may have set them after this one did. Sorted; empty
    /// when no such run has ended.
    pub fn finish(&mut self, id: u64, batch: &Batch, ok: bool, times: DirTimes) -> Vec<PathBuf> {
        let started = self
            .batches
            .iter()
            .find(|r| r.id == id)
            .map_or(self.ended, |r| r.started);
        self.batches.retain(|r| r.id != id);
        self.ended += 1;
        let anytime = times == DirTimes::Anytime;
        let mut regressed = Vec::new();
        if ok && !batch.is_full() {
            let mine = dirs_above(batch);
            let nodes = paths(batch).nodes;
            let set_too = |d: &PathBuf| {
                self.finished.iter().any(|f| {
                    let newer = f.id > id;
                    let older_beside = anytime && f.id < id && f.ended > started;
                    (newer || (older_beside && nodes.contains(d)))
                        && f.dirs.binary_search(d).is_ok()
                })
            };
            regressed = mine.iter().filter(|d| set_too(d)).cloned().collect();
            // Kept for the runs in flight that may end after it: the older ones, and
            // with `Anytime` every one (each started before this end).
            if self.batches.iter().any(|r| r.id < id || anytime) {
                self.finished.push(Finished {
                    id,
                    ended: self.ended,
                    dirs: mine,
                });
            }
        }
        let batches = &self.batches;
        self.finished.retain(|f| {
            batches
                .iter()
                .any(|r| r.id < f.id || (anytime && r.started < f.ended))
        });
        regressed
    }

    /// Splits `batch` into what may start now beside the runs in flight and what must wait
    /// for one of them to end (see the module documentation). A full sync overlaps every
    /// run, so it starts only when none is in flight, and none starts while it runs.
    pub fn split(&self, batch: Batch) -> Split {
        if self.batches.is_empty() {
            return Split {
                ready: batch,
                held: Batch::default(),
            };
        }
        if batch.is_full() || self.batches.iter().any(|r| r.full) {
            return Split {
                ready: Batch::default(),
                held: batch,
            };
        }
        let (hold_renames, hold_entries) = self.to_hold(&batch);
        let (renames, entries, deletes) = (batch.renames, batch.entries, batch.deletes);
        let (held_renames, ready_renames) = partition(renames, &hold_renames);
        let (held_entries, ready_entries) = partition(entries, &hold_entries);
        let part = |renames: Vec<Rename>, entries: Vec<Entry>| Batch {
            renames,
            entries,
            deletes,
        };
        Split {
            ready: part(ready_renames, ready_entries),
            held: part(held_renames, held_entries),
        }
    }

    /// Which of `batch`'s renames and entries must wait: renames in order (one overlapping
    /// a held one waits too), then entries.
    fn to_hold(&self, batch: &Batch) -> (Vec<bool>, Vec<bool>) {
        let mut busy = Region::default();
        for r in &self.batches {
            r.claims.trees.iter().for_each(|p| busy.add(p));
            r.claims.nodes.iter().for_each(|p| busy.add_node(p));
        }
        let mut held = Region::default();
        let renames = batch
            .renames
            .iter()
            .map(|r| {
                let sides = [r.from.as_path(), r.to.as_path()];
                let hold = sides
                    .iter()
                    .any(|p| busy.overlaps(p, false) || held.overlaps(p, false));
                if hold {
                    sides.into_iter().for_each(|p| held.add(p));
                }
                hold
            })
            .collect();
        let entries = batch
            .entries
            .iter()
            .map(|e| busy.overlaps(&e.rel, node_only(e)) || held.overlaps(&e.rel, false))
            .collect();
        (renames, entries)
    }
}

/// `items` as (those whose flag is set, the others), each in its order.
fn partition<T>(items: Vec<T>, flags: &[bool]) -> (Vec<T>, Vec<T>) {
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (item, &flag) in items.into_iter().zip(flags) {
        if flag { yes.push(item) } else { no.push(item) }
    }
    (yes, no)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str) -> Entry {
        Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        }
    }

    fn batch(paths: &[&str]) -> Batch {
        Batch {
            entries: paths.iter().map(|p| entry(p)).collect(),
            ..Batch::default()
        }
    }

    fn rename(from: &str, to: &str) -> Rename {
        Rename {
            from: PathBuf::from(from),
            to: PathBuf::from(to),
        }
    }

    /// (ready, held) paths of `batch` beside `f`'s runs.
    fn split(f: &InFlight, b: &Batch) -> (Vec<String>, Vec<String>) {
        let s = f.split(b.clone());
        let names = |b: &Batch| {
            b.entries
                .iter()
                .map(|e| e.rel.display().to_string())
                .collect()
        };
        (names(&s.ready), names(&s.held))
    }

    #[test]
    fn only_the_paths_overlapping_a_run_in_flight_wait() {
        let mut f = InFlight::default();
        assert_eq!(split(&f, &batch(&["a"])), (vec!["a".into()], vec![]));
        f.add(1, &batch(&["a/b", "big.img"]));
        // (batch, what starts now, what waits)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["a/b"], &[], &["a/b"]),
            (&["a"], &[], &["a"]),         // a directory above a busy path
            (&["a/b/c"], &[], &["a/b/c"]), // a path below a busy path
            (&[""], &[], &[""]),           // the root is above every path
            (&["a/c", "x"], &["a/c", "x"], &[]),
            (
                &["a", "a/c", "big.img", "x"],
                &["a/c", "x"],
                &["a", "big.img"],
            ),
            (&["a/bb", "a/b-", "b"], &["a/b-", "a/bb", "b"], &[]), // prefixes are not ancestors
        ];
        for &(b, ready, held) in cases {
            let want = (
                ready.iter().map(|s| s.to_string()).collect(),
                held.iter().map(|s| s.to_string()).collect(),
            );
            let mut b = batch(b);
            b.entries.sort();
            assert_eq!(split(&f, &b), want, "{b:?}");
        }
    }

    fn attrs(p: &str) -> Entry {
        Entry {
            attrs_only: true,
            ..entry(p)
        }
    }

    #[test]
    fn an_attribute_change_claims_its_path_not_its_subtree() {
        let mut f = InFlight::default();
        f.add(
            1,
            &Batch {
                entries: vec![attrs("a"), attrs("f")],
                ..Batch::default()
            },
        );
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["a/b", "a/c/d"], &["a/b", "a/c/d"], &[]), // below a node: beside it
            (&["a"], &[], &["a"]),                       // the path itself
            (&[""], &[], &[""]),                         // a subtree around it
            (&["f", "g"], &["g"], &["f"]),
        ];
        for &(b, ready, held) in cases {
            let want = (
                ready.iter().map(|s| s.to_string()).collect(),
                held.iter().map(|s| s.to_string()).collect(),
            );
            assert_eq!(split(&f, &batch(b)), want, "{b:?}");
        }
        // A node entry does not wait for runs below it, only for its path or a subtree
        // holding it; the root's attributes are a subtree (its pass lists the entries).
        let mut f = InFlight::default();
        f.add(2, &batch(&["d/x", "t"]));
        let b = Batch {
            entries: vec![attrs(""), attrs("d"), attrs("t"), attrs("t/u")],
            ..Batch::default()
        };
        assert_eq!(
            split(&f, &b),
            (vec!["d".into()], vec!["".into(), "t".into(), "t/u".into()])
        );
    }

    #[test]
    fn a_run_ending_after_a_newer_one_names_the_directories_both_set() {
        let mut f = InFlight::default();
        let (old, new, newest) = (
            batch(&["a/b/f", "c/g", "x/y"]),
            batch(&["a/b/h", "c/i"]),
            batch(&["x/z"]),
        );
        f.add(1, &old);
        f.add(2, &new);
        f.add(3, &newest);
        assert_eq!(
            f.finish(2, &new, true, DirTimes::AtEnd),
            Vec::<PathBuf>::new(),
            "in order"
        );
        assert_eq!(
            f.finish(3, &newest, false, DirTimes::AtEnd),
            Vec::<PathBuf>::new(),
            "failed"
        );
        let want: Vec<PathBuf> = ["", "a", "a/b", "c"].map(PathBuf::from).to_vec();
        assert_eq!(
            f.finish(1, &old, true, DirTimes::AtEnd),
            want,
            "x was set by a failed run only"
        );
        assert!(f.finished.is_empty(), "nothing older in flight: forgotten");
        // A node is set by its run like a directory above a path.
        let node = Batch {
            entries: vec![attrs("a")],
            ..Batch::default()
        };
        f.add(4, &batch(&["a/f"]));
        f.add(5, &node);
        f.finish(5, &node, true, DirTimes::AtEnd);
        let want: Vec<PathBuf> = ["", "a"].map(PathBuf::from).to_vec();
        assert_eq!(f.finish(4, &batch(&["a/f"]), true, DirTimes::AtEnd), want);
    }

    #[test]
    fn with_a_handler_setting_directories_anytime_a_node_set_beside_an_older_run_is_named() {
        let (old, node) = (
            batch(&["d/big"]),
            Batch {
                entries: vec![attrs("d"), entry("slow")],
                ..Batch::default()
            },
        );
        // The older run ends first, in order; it may have set `d` after the node's run.
        let mut f = InFlight::default();
        f.add(1, &old);
        f.add(2, &node);
        assert_eq!(
            f.finish(1, &old, true, DirTimes::Anytime),
            Vec::<PathBuf>::new()
        );
        let want: Vec<PathBuf> = ["d"].map(PathBuf::from).to_vec();
        assert_eq!(f.finish(2, &node, true, DirTimes::Anytime), want);
        assert!(f.finished.is_empty(), "nothing in flight: forgotten");
        // Runs that set directories when they end: the order they end in is the order
        // they set them.
        f.add(3, &old);
        f.add(4, &node);
        f.finish(3, &old, true, DirTimes::AtEnd);
        assert_eq!(
            f.finish(4, &node, true, DirTimes::AtEnd),
            Vec::<PathBuf>::new()
        );
        // An older run that ended before the node's started was not beside it.
        f.add(5, &old);
        f.finish(5, &old, true, DirTimes::Anytime);
        f.add(6, &batch(&["x"]));
        f.add(7, &node);
        f.finish(6, &batch(&["x"]), true, DirTimes::Anytime);
        assert_eq!(
            f.finish(7, &node, true, DirTimes::Anytime),
            Vec::<PathBuf>::new()
        );
        // Only nodes: the directories above paths are taken in the order runs end.
        f.add(8, &old);
        f.add(9, &batch(&["d/small"]));
        f.finish(8, &old, true, DirTimes::Anytime);
        assert_eq!(
            f.finish(9, &batch(&["d/small"]), true, DirTimes::Anytime),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn a_full_sync_runs_alone() {
        let mut f = InFlight::default();
        f.add(1, &batch(&["a"]));
        let s = f.split(Batch::full());
        assert!(s.ready.is_empty() && s.held.is_full(), "waits for the run");
        f.finish(1, &batch(&["a"]), true, DirTimes::AtEnd);
        assert!(f.split(Batch::full()).ready.is_full(), "nothing in flight");
        f.add(2, &Batch::full());
        let s = f.split(batch(&["zzz"]));
        assert!(s.ready.is_empty(), "nothing starts beside it");
        assert_eq!(s.held, batch(&["zzz"]));
    }

    #[test]
    fn a_held_rename_holds_what_overlaps_it_and_keeps_its_order() {
        let mut f = InFlight::default();
        f.add(1, &batch(&["busy"]));
        let b = Batch {
            renames: vec![
                rename("busy", "b"), // overlaps the run: waits
                rename("b", "c"),    // follows a held rename: waits
                rename("x", "y"),    // independent: starts
                rename("c/d", "e"),  // below a held rename's side: waits
            ],
            entries: ["b", "busy", "c", "e", "x", "y", "z"].map(entry).to_vec(),
            deletes: false,
        };
        let s = f.split(b);
        let want_held = Batch {
            renames: vec![rename("busy", "b"), rename("b", "c"), rename("c/d", "e")],
            entries: ["b", "busy", "c", "e"].map(entry).to_vec(),
            deletes: false,
        };
        let want_ready = Batch {
            renames: vec![rename("x", "y")],
            entries: ["x", "y", "z"].map(entry).to_vec(),
            deletes: false,
        };
        assert_eq!(
            s,
            Split {
                ready: want_ready,
                held: want_held
            }
        );
    }
}
