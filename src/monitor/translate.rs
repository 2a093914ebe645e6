//! Event translation: what one inotify event means, as a pure function.
//!
//! [`translate`] takes an event and the monitor's [`View`] of the source (the watch tree,
//! the moves waiting for their partner, the directories left unwatched) and says what to do
//! as [`Step`]s, in order: changes to report, watches to let go of, directories to watch. It
//! updates the view where no system call is needed (a directory renamed inside the tree is
//! re-parented, a removed one dropped, a `MOVED_FROM` parked until its `MOVED_TO`) and makes
//! none itself, so every case is a row of the table test below; the monitor
//! (`inotify.rs`) reads the events and carries out the steps.
//!
//! The rules that keep changes from being lost:
//! - moves are paired by cookie: a rename inside the tree re-parents one node (no watch is
//!   touched); a `MOVED_FROM` whose partner does not come within [`MOVE_GRACE`] is a move
//!   out ([`expire`]), which drops the subtree's watches; a `MOVED_TO` without one is a move
//!   in, which watches the new subtree;
//! - a new directory is watched and its whole subtree reported as one [`Change::Tree`];
//! - anything uncertain (a queue overflow) is a rescan of the whole tree.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotify::EventMask;

use super::shared::RawEvent;
use super::tree::{NodeId, ROOT, Tree};
use crate::model::{Change, Kind};
use crate::relpath;
use crate::rules::Filter;

/// How long a `MOVED_FROM` waits for its `MOVED_TO` before it counts as a move out. The
/// kernel queues both in one rename, so this only covers a read that split the pair.
pub const MOVE_GRACE: Duration = Duration::from_millis(20);

/// What the monitor knows of the source: what translation reads and updates.
#[derive(Debug)]
pub struct View {
    /// The watched directories.
    pub tree: Tree,
    /// `MOVED_FROM` halves waiting for their `MOVED_TO`, by cookie.
    pub moves: HashMap<u32, PendingMove>,
    /// Directories that could not be watched (watch limit, permissions), their subtrees
    /// unwatched too: synced by periodic rescans until watches can be added.
    pub unwatched: BTreeSet<PathBuf>,
}

/// The first half of a move.
#[derive(Debug)]
pub struct PendingMove {
    at: Instant,
    parent: NodeId,
    name: Vec<u8>,
    rel: PathBuf,
    is_dir: bool,
}

/// One thing the monitor does for an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Report this change to the job.
    Report(Change),
    /// Let go of these watches: their directories already left the tree.
    Release(Vec<i32>),
    /// Watch the directory `rel` that appeared under node `parent` (created or moved in)
    /// and walk its subtree into the tree.
    Watch { parent: NodeId, rel: PathBuf },
    /// Try again to watch `rel`, a directory under node `parent` left unwatched: report
    /// `Tree(rel)` if it now is watched, else `otherwise`.
    Rewatch {
        parent: NodeId,
        rel: PathBuf,
        otherwise: Change,
    },
    /// Re-walk the whole source and report [`Change::Rescan`].
    Rescan,
}

impl View {
    /// A view of a tree just walked, with nothing pending.
    pub fn new(tree: Tree) -> View {
        View {
            tree,
            moves: HashMap::new(),
            unwatched: BTreeSet::new(),
        }
    }

    /// When [`expire`] must run next (an unpaired move is waiting), if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.moves.values().map(|m| m.at + MOVE_GRACE).min()
    }
}

/// Appends to `steps` what the event `ev`, read at `now`, means for a job that syncs what
/// `filter` allows; updates `view` as far as no system call is needed.
pub fn translate(
    view: &mut View,
    filter: &Filter,
    ev: &RawEvent,
    now: Instant,
    steps: &mut Vec<Step>,
) {
    if ev.mask.contains(EventMask::Q_OVERFLOW) {
        steps.push(Step::Rescan);
        return;
    }
    let Some(node) = view.tree.by_wd(ev.wd) else {
        return; // a watch we already dropped
    };
    if ev.mask.intersects(EventMask::IGNORED | EventMask::UNMOUNT) {
        if node == ROOT {
            steps.push(Step::Report(Change::RootGone));
        } else {
            release(steps, view.tree.remove(node));
        }
        return;
    }
    match &ev.name {
        Some(name) => named(view, filter, ev, node, name, now, steps),
        None => about_itself(node, ev.mask, steps),
    }
}

/// An event about a watched directory itself; its parent reports it with a name, except
/// for the root.
fn about_itself(node: NodeId, mask: EventMask, steps: &mut Vec<Step>) {
    if node != ROOT {
        return;
    }
    if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
        steps.push(Step::Report(Change::RootGone));
    } else if mask.contains(EventMask::ATTRIB) {
        steps.push(Step::Report(Change::Attrib(PathBuf::new())));
    }
}

/// An event about the entry `name` of the watched directory `node`.
fn named(
    view: &mut View,
    filter: &Filter,
    ev: &RawEvent,
    node: NodeId,
    name: &[u8],
    now: Instant,
    steps: &mut Vec<Step>,
) {
    let rel = view.tree.child_path(node, name);
    let is_dir = ev.mask.contains(EventMask::ISDIR);
    if !filter.allows_child(&rel, if is_dir { Kind::Dir } else { Kind::File }) {
        return;
    }
    if ev.mask.contains(EventMask::MOVED_FROM) {
        let pending = PendingMove {
            at: now,
            parent: node,
            name: name.to_vec(),
            rel,
            is_dir,
        };
        view.moves.insert(ev.cookie, pending);
    } else if ev.mask.contains(EventMask::MOVED_TO) {
        match view.moves.remove(&ev.cookie) {
            Some(from) => renamed(view, from, node, rel, steps),
            None => appeared(node, rel, is_dir, steps),
        }
    } else if is_dir && ev.mask.contains(EventMask::CREATE) {
        appeared(node, rel, true, steps);
    } else {
        changed(view, ev.mask, node, rel, is_dir, steps);
    }
}

/// `from` was renamed to `rel` in the directory `node`, both inside the tree.
fn renamed(view: &mut View, from: PendingMove, node: NodeId, rel: PathBuf, steps: &mut Vec<Step>) {
    let name = relpath::name(&rel).as_bytes();
    if from.is_dir {
        match view.tree.child(from.parent, &from.name) {
            Some(id) => release(steps, view.tree.rename(id, node, name)),
            None => steps.push(Step::Watch {
                parent: node,
                rel: rel.clone(),
            }),
        }
    } else if let Some(id) = view.tree.child(node, name) {
        // A file renamed over a directory we watched (only possible for an empty one, via
        // another tool's replace): drop the stale watch.
        release(steps, view.tree.remove(id));
    }
    steps.push(Step::Report(Change::Rename {
        from: from.rel,
        to: rel,
    }));
}

/// `rel` appeared in the directory `node` (created, or moved in from outside the tree).
fn appeared(node: NodeId, rel: PathBuf, is_dir: bool, steps: &mut Vec<Step>) {
    if is_dir {
        steps.push(Step::Watch {
            parent: node,
            rel: rel.clone(),
        });
        steps.push(Step::Report(Change::Tree(rel)));
    } else {
        steps.push(Step::Report(Change::Content(rel)));
    }
}

/// `rel` in the directory `node` was written, removed, or had its attributes changed.
fn changed(
    view: &mut View,
    mask: EventMask,
    node: NodeId,
    rel: PathBuf,
    is_dir: bool,
    steps: &mut Vec<Step>,
) {
    let name = relpath::name(&rel).as_bytes();
    if is_dir
        && mask.contains(EventMask::DELETE)
        && let Some(id) = view.tree.child(node, name)
    {
        release(steps, view.tree.remove(id));
    }
    let change = if mask.contains(EventMask::ATTRIB)
        && !mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE | EventMask::CREATE)
    {
        Change::Attrib
    } else {
        Change::Content
    };
    if is_dir
        && mask.contains(EventMask::ATTRIB)
        && view.unwatched.contains(&rel)
        && view.tree.child(node, name).is_none()
    {
        // A directory we could not watch changed its permissions: maybe now we can.
        steps.push(Step::Rewatch {
            parent: node,
            rel: rel.clone(),
            otherwise: change(rel),
        });
        return;
    }
    steps.push(Step::Report(change(rel)));
}

/// Appends to `steps` what the moves whose partner did not come by `now` mean: each is a
/// move out of the tree.
pub fn expire(view: &mut View, now: Instant, steps: &mut Vec<Step>) {
    let due: Vec<u32> = view
        .moves
        .iter()
        .filter(|(_, m)| now >= m.at + MOVE_GRACE)
        .map(|(c, _)| *c)
        .collect();
    for cookie in due {
        let Some(m) = view.moves.remove(&cookie) else {
            continue;
        };
        if m.is_dir
            && let Some(id) = view.tree.child(m.parent, &m.name)
        {
            release(steps, view.tree.remove(id));
        }
        steps.push(Step::Report(Change::Content(m.rel)));
    }
}

fn release(steps: &mut Vec<Step>, wds: Vec<i32>) {
    if !wds.is_empty() {
        steps.push(Step::Release(wds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ROOT_WD: i32 = 1;
    /// `a` (wd 2) with `a/b` (wd 3) below it, and `c` (wd 4): the tree every case starts
    /// from.
    fn view() -> View {
        let mut tree = Tree::new(ROOT_WD);
        let (a, _) = tree.insert(ROOT, b"a", 2);
        tree.insert(a, b"b", 3);
        tree.insert(ROOT, b"c", 4);
        let mut v = View::new(tree);
        v.unwatched.insert(PathBuf::from("a/locked"));
        v
    }

    /// Excludes `skip` and every `*.tmp`.
    fn filter() -> Filter {
        Filter::new(&["skip".into(), "*.tmp".into()], vec![]).unwrap()
    }

    fn ev(wd: i32, mask: EventMask, cookie: u32, name: Option<&str>) -> RawEvent {
        RawEvent {
            wd,
            mask,
            cookie,
            name: name.map(|n| n.as_bytes().to_vec()),
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    use EventMask as M;
    use Step::{Release, Rescan};

    fn content(rel: &str) -> Step {
        Step::Report(Change::Content(p(rel)))
    }
    fn attrib(rel: &str) -> Step {
        Step::Report(Change::Attrib(p(rel)))
    }
    fn subtree(rel: &str) -> Step {
        Step::Report(Change::Tree(p(rel)))
    }
    fn rename(from: &str, to: &str) -> Step {
        Step::Report(Change::Rename {
            from: p(from),
            to: p(to),
        })
    }
    fn watch(parent: NodeId, rel: &str) -> Step {
        Step::Watch {
            parent,
            rel: p(rel),
        }
    }
    const ROOT_GONE: Step = Step::Report(Change::RootGone);
    /// Node ids in the tree of [`view`].
    const A: NodeId = 1;

    /// A case: what it is, events in order on the tree of [`view`], the steps they take, and
    /// then where the nodes of some watch descriptors are (`None`: dropped).
    type Case = (
        &'static str,
        Vec<RawEvent>,
        Vec<Step>,
        Vec<(i32, Option<&'static str>)>,
    );

    #[rustfmt::skip]
    fn cases() -> Vec<Case> {
        let d = |m: EventMask| m | M::ISDIR;
        let e = |wd, m, name| ev(wd, m, 0, Some(name));
        let mv = |wd, m, name| ev(wd, m, 7, Some(name));
        let own = |wd, m| ev(wd, m, 0, None);
        vec![
            ("overflow", vec![own(-1, M::Q_OVERFLOW)], vec![Rescan], vec![]),
            ("unknown watch", vec![e(99, M::CREATE, "x")], vec![], vec![]),
            ("file written", vec![e(2, M::CLOSE_WRITE, "f")], vec![content("a/f")], vec![]),
            ("file modified", vec![e(ROOT_WD, M::MODIFY, "f")], vec![content("f")], vec![]),
            ("file created", vec![e(3, M::CREATE, "f")], vec![content("a/b/f")], vec![]),
            ("file deleted", vec![e(2, M::DELETE, "f")], vec![content("a/f")], vec![]),
            ("chmod", vec![e(2, M::ATTRIB, "f")], vec![attrib("a/f")], vec![]),
            ("chmod and write", vec![e(2, M::ATTRIB | M::MODIFY, "f")], vec![content("a/f")], vec![]),
            ("excluded file", vec![e(2, M::CLOSE_WRITE, "x.tmp")], vec![], vec![]),
            ("excluded directory", vec![e(ROOT_WD, d(M::CREATE), "skip")], vec![], vec![]),
            ("directory created", vec![e(2, d(M::CREATE), "n")], vec![watch(A, "a/n"), subtree("a/n")], vec![]),
            (
                "directory deleted",
                vec![e(ROOT_WD, d(M::DELETE), "a")],
                vec![Release(vec![2, 3]), content("a")],
                vec![(2, None), (3, None)],
            ),
            ("directory chmod", vec![e(ROOT_WD, d(M::ATTRIB), "c")], vec![attrib("c")], vec![]),
            (
                "unwatched directory chmod: watch it again",
                vec![e(2, d(M::ATTRIB), "locked")],
                vec![Step::Rewatch { parent: A, rel: p("a/locked"), otherwise: Change::Attrib(p("a/locked")) }],
                vec![],
            ),
            (
                "file renamed",
                vec![mv(2, M::MOVED_FROM, "f"), mv(3, M::MOVED_TO, "g")],
                vec![rename("a/f", "a/b/g")],
                vec![],
            ),
            (
                "directory renamed: re-parented, no watch touched",
                vec![mv(2, d(M::MOVED_FROM), "b"), mv(4, d(M::MOVED_TO), "b2")],
                vec![rename("a/b", "c/b2")],
                vec![(3, Some("c/b2"))],
            ),
            (
                "directory renamed over another",
                vec![mv(2, d(M::MOVED_FROM), "b"), mv(ROOT_WD, d(M::MOVED_TO), "c")],
                vec![Release(vec![4]), rename("a/b", "c")],
                vec![(3, Some("c")), (4, None)],
            ),
            (
                "file renamed over a watched directory",
                vec![mv(2, M::MOVED_FROM, "f"), mv(ROOT_WD, M::MOVED_TO, "c")],
                vec![Release(vec![4]), rename("a/f", "c")],
                vec![(4, None)],
            ),
            (
                "unwatched directory renamed: watched at its new name",
                vec![mv(2, d(M::MOVED_FROM), "locked"), mv(ROOT_WD, d(M::MOVED_TO), "l2")],
                vec![watch(ROOT, "l2"), rename("a/locked", "l2")],
                vec![],
            ),
            ("file moved in", vec![mv(2, M::MOVED_TO, "f")], vec![content("a/f")], vec![]),
            ("directory moved in", vec![mv(2, d(M::MOVED_TO), "n")], vec![watch(A, "a/n"), subtree("a/n")], vec![]),
            ("moved away: waits for its partner", vec![mv(2, d(M::MOVED_FROM), "b")], vec![], vec![(3, Some("a/b"))]),
            (
                "renamed to an excluded name: a move out, once expired",
                vec![mv(2, M::MOVED_FROM, "f"), mv(2, M::MOVED_TO, "f.tmp")],
                vec![],
                vec![],
            ),
            ("watched directory gone", vec![own(3, M::IGNORED)], vec![Release(vec![3])], vec![(3, None)]),
            ("root deleted", vec![own(ROOT_WD, M::DELETE_SELF)], vec![ROOT_GONE], vec![]),
            ("root moved", vec![own(ROOT_WD, M::MOVE_SELF)], vec![ROOT_GONE], vec![]),
            ("root unmounted", vec![own(ROOT_WD, M::UNMOUNT)], vec![ROOT_GONE], vec![]),
            ("root watch dropped", vec![own(ROOT_WD, M::IGNORED)], vec![ROOT_GONE], vec![]),
            ("root chmod", vec![own(ROOT_WD, M::ATTRIB)], vec![attrib("")], vec![]),
            ("a subdirectory's own event: its parent reports it", vec![own(2, M::DELETE_SELF)], vec![], vec![]),
            (
                "after a rename, events carry the new path",
                vec![
                    mv(ROOT_WD, d(M::MOVED_FROM), "a"),
                    mv(ROOT_WD, d(M::MOVED_TO), "z"),
                    e(3, M::CLOSE_WRITE, "f"),
                ],
                vec![rename("a", "z"), content("z/b/f")],
                vec![(2, Some("z")), (3, Some("z/b"))],
            ),
        ]
    }

    #[test]
    fn events_become_steps() {
        let filter = filter();
        let now = Instant::now();
        for (what, events, want, nodes) in cases() {
            let mut v = view();
            let mut steps = Vec::new();
            for e in &events {
                translate(&mut v, &filter, e, now, &mut steps);
            }
            assert_eq!(steps, want, "{what}");
            for (wd, path) in nodes {
                let got = v.tree.by_wd(wd).map(|id| v.tree.path(id));
                assert_eq!(
                    got.as_deref(),
                    path.map(Path::new),
                    "{what}: node of wd {wd}"
                );
            }
        }
    }

    #[test]
    fn an_unpaired_move_is_a_move_out_after_the_grace() {
        let filter = filter();
        let t0 = Instant::now();
        let mut v = view();
        let mut steps = Vec::new();
        let event = |v: &mut View, e: RawEvent, at, steps: &mut Vec<Step>| {
            translate(v, &filter, &e, at, steps)
        };
        event(
            &mut v,
            ev(ROOT_WD, M::MOVED_FROM | M::ISDIR, 7, Some("a")),
            t0,
            &mut steps,
        );
        event(
            &mut v,
            ev(ROOT_WD, M::MOVED_FROM, 8, Some("f")),
            t0,
            &mut steps,
        );
        assert_eq!(v.next_deadline(), Some(t0 + MOVE_GRACE));
        expire(&mut v, t0 + MOVE_GRACE / 2, &mut steps);
        assert!(steps.is_empty(), "not yet: {steps:?}");
        expire(&mut v, t0 + MOVE_GRACE, &mut steps);
        steps.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(steps, [Release(vec![2, 3]), content("a"), content("f")]);
        assert_eq!(v.tree.by_wd(2), None);
        assert_eq!(v.next_deadline(), None);
        // A partner that comes after the grace is a move in.
        let late = t0 + MOVE_GRACE;
        event(&mut v, ev(4, M::MOVED_TO, 8, Some("f")), late, &mut steps);
        assert_eq!(steps.last(), Some(&content("c/f")));
    }
}
