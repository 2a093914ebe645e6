//! The source hub of a fan-out: one monitor for every target of a job file.
//!
//! A job file with `destinations = [a, b, c]` runs one job per target, each with its own
//! queue, retry state and workers, so that one target down holds back no other. What they
//! watch is the same, so they share one hub: a thread that owns the source's
//! [`PlatformMonitor`](crate::monitor::PlatformMonitor) (one watch tree, one event stream)
//! and hands every [`Item`] it produces to each target's inbox, ringing the target's bell.
//! Jobs with one destination keep their own monitor in their own thread: a hub would cost
//! them a thread.
//!
//! What a target can rely on:
//! - It is subscribed before [`join`] returns, and every change the monitor reports after
//!   that reaches it. [`Item::Watched`] (the hub watches the source: at its start, when the
//!   source came back, or at once to a target joining a running hub) asks for a full sync,
//!   which starts after the subscription and so covers everything before it. That
//!   ordering is why a target added by a reload to a running hub loses nothing. With `delete = "running"`, `Watched`
//!   comes after the walk that watches the tree (as a job's own monitor does it);
//!   otherwise before it, the walk's catch-up changes following.
//! - The items come in the monitor's order: changes, [`Change::Rescan`] after lost events
//!   (preceded by [`Item::Overflow`] when the kernel's queue overflowed), and
//!   [`Change::RootGone`], after which the next item that counts is the next `Watched`.
//! - A target that falls [`BACKLOG_MAX`] items behind (its thread stuck) gets, in place
//!   of its backlog, an overflow and a [`Change::Rescan`]: memory stays bounded, as the
//!   daemon's inotify reader bounds a monitor's (`monitor::shared`), and nothing is lost.
//!   What counts is the backlog beside the largest single hand-over since the target last
//!   took: one large one (an untar's catch-up, a rescan of many unwatched directories) is
//!   not a target falling behind, and a full sync in its place would cost far more.
//! - [`Item::Unwatchable`] after `Watched` says the hub's thread died: the target treats
//!   it as the source's loss, and the hub is out of the registry, so the target that
//!   replaces it (a restarted job) starts a new one.
//! - The hub keeps the target's `watched_dirs` and `unwatched_dirs` up to date in its
//!   status (a target busy with a run still shows the tree as the hub sees it), and
//!   [`Subscription::dirs`] reads them.
//!
//! Which targets share a hub is decided by what the monitor's output depends on: the job
//! file, its source, its filter, and its `delete` (which orders the walk). Targets join on
//! start and leave on stop; the last to leave stops the hub and waits for its thread (a walk
//! in progress ends at the next directory). So a
//! reload that edits one destination restarts that target only, and it joins the running
//! hub; one that changes the source or the rules restarts every target, and a new hub.

mod registry;
mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::Context;
use tracing::{info_span, warn};

use super::bell::Bell;
use super::status::SharedStatus;
use crate::config::{Delete, JobConfig, JobFilter};
use crate::model::Change;
use registry::Registry;

/// What a hub tells its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The source is watched: sync it whole.
    Watched,
    /// The source cannot be watched (why): the target reports it and waits for `Watched`.
    Unwatchable(String),
    /// The kernel's event queue overflowed (a [`Change::Rescan`] comes with it).
    Overflow,
    Change(Change),
}

/// What the monitor's output depends on: targets whose keys are equal share a hub.
#[derive(PartialEq)]
struct Key {
    job: String,
    source: PathBuf,
    filter: JobFilter,
    delete: Delete,
}

static HUBS: Registry<Key, Hub> = Registry::new();

/// Items a target may have waiting before its changes are replaced by one rescan.
const BACKLOG_MAX: usize = 1 << 16;

/// A running hub, as the registry holds it.
struct Hub {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the hub's thread and its targets share.
struct Shared {
    targets: Mutex<Targets>,
    watched: AtomicUsize,
    unwatched: AtomicUsize,
    /// Set to stop the thread; the monitor's walks read it too (`stop_when`).
    stop: Arc<AtomicBool>,
    /// The hub thread's: rung by the monitor when events arrive, and to stop.
    bell: Arc<Bell>,
    /// Makes the thread panic when it next wakes: how tests kill a hub.
    #[cfg(test)]
    fail: AtomicBool,
}

struct Targets {
    inboxes: Vec<Arc<Inbox>>,
    /// The source is watched (a joining target starts with a full sync at once).
    watching: bool,
    /// Why the source cannot be watched, while it cannot.
    unwatchable: Option<String>,
}

/// One target's items not yet taken, its bell, and its status.
struct Inbox {
    backlog: Mutex<Backlog>,
    bell: Arc<Bell>,
    status: SharedStatus,
}

/// The items a target has not taken yet.
#[derive(Default)]
struct Backlog {
    items: Vec<Item>,
    /// The most items one put brought since the target last took.
    largest_put: usize,
}

impl Inbox {
    /// Adds `items` to the target's backlog. One put, however large (a rescan of many
    /// unwatched directories, the catch-up of a walk), is no sign of a target falling
    /// behind, and the hub held it whole anyway: the bound is on what waits beside the
    /// largest put since the target last took.
    fn put(&self, items: &[Item]) {
        {
            let mut mine = lock(&self.backlog);
            mine.items.extend_from_slice(items);
            mine.largest_put = mine.largest_put.max(items.len());
            if mine.items.len() - mine.largest_put > BACKLOG_MAX {
                warn!(
                    "a target fell {} changes behind the source: it compares the whole tree instead",
                    mine.items.len()
                );
                collapse(&mut mine.items);
                mine.largest_put = mine.items.len();
            }
        }
        self.bell.ring();
    }

    /// Moves the backlog to the end of `into`.
    fn take(&self, into: &mut std::collections::VecDeque<Item>) {
        let mut mine = lock(&self.backlog);
        into.extend(mine.items.drain(..));
        mine.largest_put = 0;
    }

    fn show_dirs(&self, (watched, unwatched): (usize, usize)) {
        let mut s = self.status.lock();
        s.watched_dirs = watched;
        s.unwatched_dirs = unwatched;
    }
}

/// A target's place at its job file's hub; dropping it leaves the hub (stopping it when
/// this was the last target).
pub struct Subscription {
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
}

/// Subscribes the target `cfg` to its job file's hub, starting the hub if none runs; `bell`
/// is rung whenever items arrive, and `status` shows the hub's directory counts.
pub fn join(
    cfg: &Arc<JobConfig>,
    bell: Arc<Bell>,
    status: SharedStatus,
) -> anyhow::Result<Subscription> {
    let job = cfg.target_of.clone().unwrap_or_else(|| cfg.name.clone());
    let key = Key {
        job: job.clone(),
        source: cfg.source.clone(),
        filter: cfg.filter.clone(),
        delete: cfg.delete,
    };
    let hub = HUBS
        .join(key, || Hub::start(&job, cfg.clone()))
        .with_context(|| format!("cannot start the source monitor of {job}"))?;
    let inbox = Arc::new(Inbox {
        backlog: Mutex::new(Backlog::default()),
        bell,
        status,
    });
    hub.shared.subscribe(inbox.clone());
    Ok(Subscription { hub, inbox })
}

impl Subscription {
    /// Moves the items that arrived since the last call to the end of `into`.
    pub fn take(&self, into: &mut std::collections::VecDeque<Item>) {
        self.inbox.take(into);
    }

    /// The hub's watched and unwatched directories.
    pub fn dirs(&self) -> (usize, usize) {
        self.hub.shared.dirs()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.shared.unsubscribe(&self.inbox);
        if let Some(hub) = HUBS.leave(&self.hub) {
            hub.stop();
        }
    }
}

impl Hub {
    fn start(job: &str, cfg: Arc<JobConfig>) -> std::io::Result<Hub> {
        let shared = Arc::new(Shared {
            targets: Mutex::new(Targets {
                inboxes: Vec::new(),
                watching: false,
                unwatchable: None,
            }),
            watched: AtomicUsize::new(0),
            unwatched: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            bell: Arc::new(Bell::new()),
            #[cfg(test)]
            fail: AtomicBool::new(false),
        });
        let span = info_span!("job", name = %job);
        let ours = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("clsync-hub-{job}"))
            .spawn(move || {
                let _g = span.enter();
                let _report = PanicReport(&ours);
                watch::run(&ours, &cfg);
            })?;
        Ok(Hub {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread (the last target left) and waits for it: a walk in progress ends
    /// at its next directory, so that neither the daemon's SIGTERM nor a reload waits for a
    /// walk of a huge tree.
    fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.bell.ring();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn subscribe(&self, inbox: Arc<Inbox>) {
        let mut t = lock(&self.targets);
        inbox.show_dirs(self.dirs());
        if t.watching {
            inbox.put(&[Item::Watched]);
        } else if let Some(why) = &t.unwatchable {
            inbox.put(&[Item::Unwatchable(why.clone())]);
        }
        t.inboxes.push(inbox);
    }

    fn unsubscribe(&self, inbox: &Arc<Inbox>) {
        lock(&self.targets)
            .inboxes
            .retain(|i| !Arc::ptr_eq(i, inbox));
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits on the bell up to `timeout` (`None`: until rung); the caller checks
    /// [`stopping`](Self::stopping) next.
    fn rest(&self, timeout: Option<std::time::Duration>) {
        self.bell.wait(timeout);
    }

    /// The source is watched: every target syncs it whole.
    fn watched(&self, dirs: (usize, usize)) {
        let mut t = lock(&self.targets);
        t.watching = true;
        t.unwatchable = None;
        self.set_dirs(&t, dirs);
        t.inboxes.iter().for_each(|i| i.put(&[Item::Watched]));
    }

    fn unwatchable(&self, why: &str) {
        let mut t = lock(&self.targets);
        t.watching = false;
        t.unwatchable = Some(why.to_string());
        t.inboxes
            .iter()
            .for_each(|i| i.put(&[Item::Unwatchable(why.to_string())]));
    }

    /// Hands `items` (emptied) to every target; true when they say the source is gone.
    fn send(&self, items: &mut Vec<Item>, dirs: (usize, usize)) -> bool {
        let gone = items.contains(&Item::Change(Change::RootGone));
        let mut t = lock(&self.targets);
        if gone {
            t.watching = false;
        }
        let moved = self.set_dirs(&t, dirs);
        if !items.is_empty() || moved {
            t.inboxes.iter().for_each(|i| i.put(items));
        }
        items.clear();
        gone
    }

    fn dirs(&self) -> (usize, usize) {
        (
            self.watched.load(Ordering::Relaxed),
            self.unwatched.load(Ordering::Relaxed),
        )
    }

    /// Records the counts, and shows them in the targets' status; true when they changed.
    fn set_dirs(&self, t: &Targets, dirs: (usize, usize)) -> bool {
        let w = self.watched.swap(dirs.0, Ordering::Relaxed);
        let u = self.unwatched.swap(dirs.1, Ordering::Relaxed);
        let moved = (w, u) != dirs;
        if moved {
            t.inboxes.iter().for_each(|i| i.show_dirs(dirs));
        }
        moved
    }
}

/// Replaces every run of changes in `items` by an overflow and one [`Change::Rescan`],
/// keeping what changes a target's state (`Watched`, `Unwatchable`, `RootGone`) in order.
fn collapse(items: &mut Vec<Item>) {
    let mut out = Vec::new();
    let mut run = false;
    for item in items.drain(..) {
        let keep = matches!(
            item,
            Item::Watched | Item::Unwatchable(_) | Item::Change(Change::RootGone)
        );
        if keep {
            out.push(item);
            run = false;
        } else if !run {
            out.extend([Item::Overflow, Item::Change(Change::Rescan)]);
            run = true;
        }
    }
    *items = out;
}

/// Tells the targets when the hub's thread panics: they show it as failed instead of
/// waiting silently for changes that no longer come, and the hub leaves the registry so
/// that a target started later (a restarted job) gets a new one.
struct PanicReport<'a>(&'a Shared);

impl Drop for PanicReport<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Out of the registry first: a target that joins from now on starts a new hub,
            // and one that joined before is told below (or by `subscribe`, after this).
            HUBS.retire(|hub| std::ptr::eq(&*hub.shared, self.0));
            self.0.unwatchable(
                "the source monitor failed (see the log): nothing is synced until the job is \
                 restarted",
            );
        }
    }
}

/// Locks `m`, whatever panicked while it was locked: every change under these locks is a
/// single push, drain or flag.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
