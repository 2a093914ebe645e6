//! The hub with a real source: sharing by key, every target's items, leaving.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{Destination, HandlerOptions, Mode};

fn target(job: &str, src: &Path, dst: &str) -> Arc<JobConfig> {
    Arc::new(JobConfig {
        name: format!("{job}@{dst}"),
        file: PathBuf::from(format!("/etc/clsync/jobs.d/{job}.toml")),
        fan_out: vec![Destination::Local(PathBuf::from(dst))],
        target_of: Some(job.into()),
        enabled: true,
        source: src.to_path_buf(),
        destination: Destination::Local(PathBuf::from(dst)),
        mode: Mode::Rsync,
        delay: Duration::ZERO,
        filter: Default::default(),
        initial_sync: true,
        delete: Default::default(),
        big_file: None,
        workers: 1,
        verify_interval: None,
        loop_guard: false,
        retry: Default::default(),
        rsync: HandlerOptions::default(),
        sandbox: Default::default(),
    })
}

struct Target {
    sub: Subscription,
    bell: Arc<Bell>,
    seen: VecDeque<Item>,
}

impl Target {
    fn join(cfg: &Arc<JobConfig>) -> Target {
        let bell = Arc::new(Bell::new());
        let sub = join(cfg, bell.clone(), SharedStatus::new(None)).unwrap();
        Target {
            sub,
            bell,
            seen: VecDeque::new(),
        }
    }

    /// Waits (10 s at most) until an item that `pred` accepts has arrived.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Item) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.sub.take(&mut self.seen);
            if self.seen.iter().any(&pred) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} in {:?}", self.seen);
            self.bell.wait(Some(left));
        }
    }
}

impl Target {
    /// Waits (10 s at most) until the hub has walked the tree (`watched` directories):
    /// `Watched` comes before the walk when the targets' full syncs may run beside it, and
    /// a file made in a directory not yet watched is reported by the walk's catch-up as
    /// the directory, not as the file.
    fn wait_walked(&mut self, watched: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sub.dirs().0 < watched {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "watching {:?}", self.sub.dirs());
            self.bell.wait(Some(left));
            self.sub.take(&mut self.seen);
        }
    }
}

fn created(rel: &'static str) -> impl Fn(&Item) -> bool {
    move |i| matches!(i, Item::Change(Change::Content(p)) if p == Path::new(rel))
}

#[test]
fn targets_of_one_file_share_a_hub_and_each_gets_every_change() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut a = Target::join(&target("hub-share", &src, "/a"));
    let mut b = Target::join(&target("hub-share", &src, "/b"));
    assert!(Arc::ptr_eq(&a.sub.hub, &b.sub.hub), "one hub for the file");
    for x in [&mut a, &mut b] {
        x.wait_for("Watched", |i| *i == Item::Watched);
    }
    a.wait_walked(2);
    std::fs::write(src.join("sub/f"), "x").unwrap();
    for x in [&mut a, &mut b] {
        x.wait_for("sub/f", created("sub/f"));
    }
    assert_eq!(a.sub.dirs(), (2, 0));
    // Another job file, or other rules for the monitor (here `delete`), is another hub.
    let other = Target::join(&target("hub-share-2", &src, "/a"));
    assert!(!Arc::ptr_eq(&other.sub.hub, &a.sub.hub));
    let running = Arc::new(JobConfig {
        delete: Delete::Running,
        ..(*target("hub-share", &src, "/c")).clone()
    });
    let c = Target::join(&running);
    assert!(!Arc::ptr_eq(&c.sub.hub, &a.sub.hub));
}

#[test]
fn a_target_joining_a_running_hub_is_told_to_sync_whole_then_gets_changes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut a = Target::join(&target("hub-join", &src, "/a"));
    a.wait_for("Watched", |i| *i == Item::Watched);
    let mut b = Target::join(&target("hub-join", &src, "/b"));
    b.wait_for("Watched", |i| *i == Item::Watched);
    std::fs::write(src.join("after-b"), "x").unwrap();
    for x in [&mut a, &mut b] {
        x.wait_for("after-b", created("after-b"));
    }
    // The first target leaves: the hub keeps serving the second.
    drop(a);
    std::fs::write(src.join("after-a-left"), "x").unwrap();
    b.wait_for("after-a-left", created("after-a-left"));
}

#[test]
fn the_last_target_to_leave_stops_the_hub_and_the_next_starts_a_new_one() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let cfg = target("hub-last", &src, "/a");
    let a = Target::join(&cfg);
    let b = Target::join(&target("hub-last", &src, "/b"));
    let hub = a.sub.hub.clone();
    drop(a);
    assert!(
        lock(&hub.thread).is_some(),
        "one target left: still running"
    );
    drop(b);
    assert!(lock(&hub.thread).is_none(), "the thread was joined");
    assert!(hub.shared.stopping());
    let again = Target::join(&cfg);
    assert!(!Arc::ptr_eq(&again.sub.hub, &hub));
}

#[test]
fn a_missing_source_is_reported_to_every_target_until_it_appears() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("later");
    let mut a = Target::join(&target("hub-missing", &src, "/a"));
    a.wait_for("Unwatchable", |i| matches!(i, Item::Unwatchable(_)));
    // A target joining meanwhile is told at once.
    let mut b = Target::join(&target("hub-missing", &src, "/b"));
    b.wait_for("Unwatchable", |i| matches!(i, Item::Unwatchable(_)));
    std::fs::create_dir(&src).unwrap();
    // Checked again after the first wait (1 s).
    for x in [&mut a, &mut b] {
        x.wait_for("Watched", |i| *i == Item::Watched);
    }
}

fn change(p: &str) -> Item {
    Item::Change(Change::Content(p.into()))
}

#[test]
fn a_backlog_collapses_into_rescans_keeping_the_state_changes() {
    let rescan = [Item::Overflow, Item::Change(Change::Rescan)];
    let mut items = vec![
        change("a"),
        Item::Overflow,
        change("b"),
        Item::Change(Change::RootGone),
        change("c"),
        Item::Unwatchable("gone".into()),
        Item::Watched,
        change("d"),
    ];
    collapse(&mut items);
    let mut want = rescan.to_vec();
    want.push(Item::Change(Change::RootGone));
    want.extend(rescan.clone());
    want.extend([Item::Unwatchable("gone".into()), Item::Watched]);
    want.extend(rescan);
    assert_eq!(items, want);
}

#[test]
fn with_delete_running_the_tree_is_watched_before_the_targets_sync() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for d in ["x/y", "z"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let cfg = Arc::new(JobConfig {
        delete: Delete::Running,
        ..(*target("hub-running", &src, "/a")).clone()
    });
    let mut a = Target::join(&cfg);
    a.wait_for("Watched", |i| *i == Item::Watched);
    // The counts are set before `Watched` is sent: the walk was done by then.
    assert_eq!(a.sub.dirs(), (4, 0));
}

/// Waits (10 s at most) until `job`'s status satisfies `pred`.
fn wait_status(job: &crate::job::Job, what: &str, pred: impl Fn(&crate::job::Status) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = job.status();
        if pred(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {:?} {:?}",
            s.state,
            s.last_error
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_hub_whose_thread_dies_fails_its_running_targets_and_the_next_join_starts_anew() {
    use crate::job::{Job, JobOptions, State};
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let cfg = JobConfig {
        mode: Mode::Mirror,
        destination: Destination::Local(dst.clone()),
        fan_out: vec![Destination::Local(dst.clone())],
        ..(*target("hub-dies", &src, "/unused")).clone()
    };
    let job = Job::start(cfg.clone(), JobOptions::default()).unwrap();
    wait_status(&job, "initial sync", |s| s.state == State::Watching);
    // A second target of the file: the handle on the hub the job follows.
    let mut other = Target::join(&target("hub-dies", &src, "/b"));
    other.wait_for("Watched", |i| *i == Item::Watched);
    let hub = other.sub.hub.clone();
    hub.shared.fail.store(true, Ordering::SeqCst);
    hub.shared.bell.ring();
    // The running target shows the hub's death, as a lost source.
    wait_status(&job, "the hub's death", |s| {
        s.state == State::Failed
            && s.last_error
                .as_ref()
                .is_some_and(|(_, e)| e.contains("source monitor failed"))
    });
    // A target started now (a restarted job) gets a new hub, which watches the source.
    let mut fresh = Target::join(&target("hub-dies", &src, "/c"));
    assert!(
        !Arc::ptr_eq(&fresh.sub.hub, &hub),
        "the dead hub was handed out"
    );
    fresh.wait_for("Watched", |i| *i == Item::Watched);
    job.stop();
    job.join();
    let job = Job::start(cfg, JobOptions::default()).unwrap();
    wait_status(&job, "initial sync after the restart", |s| {
        s.state == State::Watching
    });
    std::fs::write(src.join("after"), "x").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(dst.join("after")).ok().as_deref() != Some(b"x") {
        assert!(Instant::now() < deadline, "the restarted job syncs nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(other);
}

#[test]
fn one_large_hand_over_reaches_a_target_whole_and_a_target_that_takes_nothing_is_collapsed() {
    let inbox = Inbox {
        backlog: Default::default(),
        bell: Arc::new(Bell::new()),
        status: SharedStatus::new(None),
    };
    let big: Vec<Item> = (0..BACKLOG_MAX + 10)
        .map(|i| change(&format!("d{i}")))
        .collect();
    let collapsed = |got: &VecDeque<Item>| got.contains(&Item::Change(Change::Rescan));
    // An untar's catch-up, say, then the next event before the target took it.
    inbox.put(&big);
    inbox.put(&[change("next")]);
    let mut got = VecDeque::new();
    inbox.take(&mut got);
    assert_eq!(got.len(), big.len() + 1, "every change, as handed over");
    assert!(!collapsed(&got) && !got.contains(&Item::Overflow));
    assert_eq!(got.back(), Some(&change("next")));
    // A target that takes nothing while changes keep coming falls behind.
    got.clear();
    for i in 0..=BACKLOG_MAX + 1 {
        inbox.put(&[change(&format!("f{i}"))]);
    }
    inbox.take(&mut got);
    assert!(collapsed(&got) && got.len() < 10, "{} items", got.len());
    // So does one that has not taken a large hand-over when the next comes.
    got.clear();
    inbox.put(&big);
    inbox.put(&big);
    inbox.take(&mut got);
    assert!(collapsed(&got) && got.len() < 10, "{} items", got.len());
}

/// A source of `n` × `n` directories below the root's `n`.
fn wide_tree(src: &Path, n: usize) -> usize {
    for i in 0..n {
        for j in 0..n {
            std::fs::create_dir_all(src.join(format!("d{i}/e{j}"))).unwrap();
        }
    }
    1 + n + n * n
}

/// The last target leaving stops the hub and waits for its thread: a walk in progress ends
/// early (the monitor reads the hub's stop), not after the whole tree.
#[test]
fn the_last_target_leaving_during_a_walk_ends_the_walk_early() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dirs = wide_tree(&src, 141);
    // How long a whole walk of the tree takes here.
    let started = Instant::now();
    let mut a = Target::join(&target("hub-walk-whole", &src, "/a"));
    a.wait_walked(dirs);
    let walk = started.elapsed();
    drop(a);
    // `Watched` comes as the walk starts (the targets' syncs run beside it).
    let mut b = Target::join(&target("hub-walk-stop", &src, "/a"));
    b.wait_for("Watched", |i| *i == Item::Watched);
    let hub = b.sub.hub.clone();
    assert!(
        b.sub.dirs().0 < dirs,
        "walked already: the test proves nothing"
    );
    let stopping = Instant::now();
    drop(b);
    let stop = stopping.elapsed();
    assert!(hub.shared.stopping());
    assert!(
        stop * 4 < walk,
        "the stop took {stop:?}, a whole walk {walk:?}"
    );
}
