//! The parallel walk: how one run walks a tree, or syncs a large batch, with the job's
//! `workers` threads.
//!
//! Contract: a run walked by several threads leaves the destination exactly as the walk by
//! one thread does (what `rsync -a --delete` would leave), with the same timeout, error and
//! counting behaviour (see the module above); only the order of the steps differs.
//!
//! What is split: once a batch entry's walk has two directories or more waiting, the
//! directories still to walk go into a [`Queue`]. A thread takes one, walks it (lists both
//! sides, deletes extraneous entries, copies files, creates subdirectories: one step of
//! [`Run::walk`]) and queues the subdirectories it found. Every directory is walked by one
//! thread only, and is queued only once its parent's walk has finished with it, so the
//! threads work on disjoint sets of names: nobody looks at or changes an entry that another
//! thread is working on, and nobody holds a handle on a directory that another thread
//! removes (only the walker of a directory removes or replaces its entries, and it does so
//! before queueing any of them).
//!
//! A large batch (at least [`SPLIT_ENTRIES`] entries) is split likewise before any walk:
//! its entries, sorted by components, are cut into groups that share no path (an entry
//! stays in the group of an earlier entry that is its ancestor, so a directory replaced by
//! a file and the paths below it, or a recursive entry and what it covers, are synced in
//! order by one thread), and each thread takes the next group. Two groups may still need
//! the same ancestor directory: creating it is idempotent (`mkdir` finding a directory is
//! fine), and replacing a non-directory in its way never removes a directory (`unlink`
//! fails on one), so the worst two threads can do there is fail the batch, which is retried.
//!
//! What is shared, and what is not: each thread has a [`Run`] of its own, with its own
//! handle caches (never shared between threads: a handle is resolved beneath the roots by
//! whichever thread uses it) and its own record of the directories it changed or synced.
//! When the walk is over, the calling thread takes those records; the run's directory
//! attributes are set by it at the end of the run ([`Run::fixup_dirs`], deepest first),
//! after every thread has finished: a directory's mode and times are always set after all
//! of its children are done. A directory the run created, known to be empty
//! ([`Run::walk`]), carries that knowledge with it in the queue. The engine's
//! [`Tally`](crate::handler::tally::Tally) counts with atomic adds, so the counts of all
//! threads add up.
//!
//! Timeout: the threads share whether one of them has made progress and whether one of
//! them has stopped ([`super::Shared`]). The first thread to see the deadline pass (after
//! the run made progress) stops; the others stop at their next deadline check, dropping
//! what they were writing under its temporary name, as a single thread does, and nothing is
//! taken from the queue any more.
//!
//! Threads and the sandbox: the helpers are scoped threads started by the thread that runs
//! the batch, for one walk, and ended with it (an idle job keeps no threads). In a
//! sandboxed job that thread is the job's Landlock-confined companion (`job::confined`): a
//! new thread gets a copy of its creator's credentials, and the Landlock domain is part of
//! them, so every helper is confined exactly like the thread that started it (tested in
//! `sandbox::linux`). No thread made before the sandbox was entered ever runs a step.
//!
//! How many: a run uses its calling thread and up to `workers - 1` helpers; the engine's
//! runs in flight at once share those helpers ([`Mirror`]'s `spare_helpers`), so concurrent
//! batches do not multiply the threads. Waiting is on a condition variable: a thread waits
//! only while another is walking (which may queue more), and the last one to find the queue
//! empty with nobody walking ends the walk for all.

use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use super::{Mirror, Run, Shared};
use crate::fs::Root;
use crate::handler::HandlerError;
use crate::model::Entry;
use crate::relpath;

/// Batches with at least this many entries are split among threads; below, a thread's
/// start costs more than it can save.
pub(super) const SPLIT_ENTRIES: usize = 64;

impl Mirror {
    /// Takes up to `workers - 1` helper threads from those no run uses now.
    fn take_helpers(&self) -> usize {
        let want = self.workers - 1;
        self.spare_helpers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n - n.min(want))
            })
            .map_or(0, |before| before.min(want))
    }

    /// Gives back `n` helper threads taken by [`Self::take_helpers`].
    fn return_helpers(&self, n: usize) {
        self.spare_helpers.fetch_add(n, Ordering::AcqRel);
    }
}

/// `entries` (sorted by components) cut into runs that share no path: an entry stays with
/// the entry before it when that one's group root is its ancestor. Sorted so, an entry's
/// descendants follow it directly: checking the group's latest root is enough.
pub(super) fn independent_groups(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut groups = Vec::new();
    let (mut start, mut root) = (0, None::<&Path>);
    for (i, e) in entries.iter().enumerate() {
        if root.is_some_and(|r| relpath::is_self_or_ancestor(r, &e.rel)) {
            continue;
        }
        if i > start {
            groups.push(&entries[start..i]);
        }
        (start, root) = (i, Some(e.rel.as_path()));
    }
    if start < entries.len() {
        groups.push(&entries[start..]);
    }
    groups
}

/// A directory waiting to be walked.
struct Dir {
    rel: PathBuf,
    /// Created by this run and known to be empty (see [`Run::walk`]).
    fresh: bool,
}

/// The directories waiting to be walked, and how many threads are walking one.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    dirs: Vec<Dir>,
    walking: usize,
    /// The walk is over (all done, stopped, or a thread panicked).
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A thread that panicked holding the lock closes the queue first (`CloseOnPanic`);
        // its state is consistent either way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next directory to walk (the caller walks it, then calls [`Self::done`]); `None`
    /// once the walk is over.
    fn take(&self) -> Option<Dir> {
        let mut st = self.lock();
        loop {
            if st.closed {
                return None;
            }
            if let Some(d) = st.dirs.pop() {
                st.walking += 1;
                return Some(d);
            }
            if st.walking == 0 {
                st.closed = true;
                self.ready.notify_all();
                return None;
            }
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The walk of a directory taken is over; `found` are its subdirectories to walk.
    fn done(&self, found: Vec<Dir>) {
        let mut st = self.lock();
        st.walking -= 1;
        let added = found.len();
        st.dirs.extend(found);
        if added > 1 || (st.walking == 0 && st.dirs.is_empty()) {
            self.ready.notify_all();
        } else if added == 1 {
            self.ready.notify_one();
        }
    }

    /// Ends the walk for every thread: what is queued is left.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Closes the queue when its thread unwinds, so that the others do not wait for it.
struct CloseOnPanic<'q>(&'q Queue);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.close();
        }
    }
}

/// What a helper needs to make its own [`Run`] on its thread (a `Run` holds `Rc` handles
/// and stays on the thread that made it).
pub(super) struct Seed {
    src: Root,
    dst: Root,
    shared: Arc<Shared>,
    deadline: Option<Instant>,
    deletes: bool,
}

impl Seed {
    pub(super) fn run(self, h: &Mirror) -> Run<'_> {
        let mut run = Run::on_roots(h, self.src, self.dst, self.shared);
        run.deadline = self.deadline;
        run.deletes = self.deletes;
        run.track_fresh = true;
        run
    }
}

/// What a helper's run did, for the calling thread's run to take over.
struct Report {
    /// Directories walked or batch entries synced.
    done: usize,
    touched: Vec<PathBuf>,
    synced: Vec<PathBuf>,
    first_error: Option<HandlerError>,
    warnings: Vec<String>,
    progressed: bool,
    timed_out: bool,
}

impl<'a> Run<'a> {
    /// Walks the directories on `pending` (below the batch entry `top`) and everything
    /// below them with this thread and the helpers the engine has spare, until done or
    /// stopped. See the module documentation.
    pub(super) fn walk_parallel(&mut self, top: &Path) {
        let queue = Queue::default();
        let pending = mem::take(&mut self.pending);
        queue.lock().dirs = pending.into_iter().map(|p| self.queued(p)).collect();
        self.with_helpers(&|run: &mut Run| run.work(&queue));
        // Only walkers of a directory remove or replace its entries, and this thread's
        // cache holds no directory another thread walked; dropping the handles below `top`
        // is cheap insurance all the same.
        self.dst.forget(top);
    }

    /// Syncs a large batch's `entries` (sorted, one per path) with this thread and the
    /// helpers the engine has spare: split into groups that share no path (an entry and
    /// its descendants stay together, in order), each group synced in order by one thread.
    pub(super) fn entries_parallel(&mut self, entries: &[Entry]) {
        let groups = independent_groups(entries);
        if groups.len() < 2 {
            return self.entry_group(entries);
        }
        let next = AtomicUsize::new(0);
        self.with_helpers(&|run: &mut Run| {
            let mut synced = 0;
            while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                if run.expired() {
                    break;
                }
                run.entry_group(group);
                synced += group.len();
            }
            synced
        });
    }

    /// Runs `work` on this thread's run and, at once, on a run of its own on each helper
    /// thread the engine has spare (`work` returns how much it did, for the log); then
    /// takes over what the helpers' runs did. A helper that panicked passes the panic on,
    /// once every thread has finished.
    fn with_helpers(&mut self, work: &(dyn Fn(&mut Run) -> usize + Sync)) {
        let helpers = self.h.take_helpers();
        let seeds: Vec<Seed> = (0..helpers).map_while(|_| self.seed()).collect();
        let h = self.h;
        let reports = thread::scope(|s| {
            let started: Vec<_> = seeds
                .into_iter()
                .filter_map(|seed| {
                    thread::Builder::new()
                        .name("clsync-mirror".into())
                        .spawn_scoped(s, move || {
                            let mut run = seed.run(h);
                            let done = work(&mut run);
                            run.report(done)
                        })
                        .inspect_err(|e| tracing::debug!("mirror: no helper thread: {e}"))
                        .ok()
                })
                .collect();
            work(self);
            started.into_iter().map(|t| t.join()).collect::<Vec<_>>()
        });
        self.h.return_helpers(helpers);
        for report in reports {
            match report {
                Ok(r) => self.take_over(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    /// The pending directory `rel` as a queue item.
    fn queued(&mut self, rel: PathBuf) -> Dir {
        Dir {
            fresh: self.fresh.remove(&rel),
            rel,
        }
    }

    /// What a helper thread needs to start; `None` (no helper) when a root cannot be opened
    /// again (out of descriptors): the walk goes on with fewer threads.
    pub(super) fn seed(&self) -> Option<Seed> {
        let roots = self.src.root().try_clone().and_then(|src| {
            let dst = self.dst.root().try_clone()?;
            Ok((src, dst))
        });
        match roots {
            Ok((src, dst)) => Some(Seed {
                src,
                dst,
                shared: self.shared.clone(),
                deadline: self.deadline,
                deletes: self.deletes,
            }),
            Err(e) => {
                tracing::debug!("mirror: no helper thread: {e}");
                None
            }
        }
    }

    /// Walks directories taken from `queue` until the walk is over or the run stops;
    /// returns how many it walked.
    fn work(&mut self, queue: &Queue) -> usize {
        let _close = CloseOnPanic(queue);
        let mut walked = 0;
        while let Some(dir) = queue.take() {
            if self.expired() {
                queue.close();
                break;
            }
            walked += 1;
            if dir.fresh {
                self.fresh.insert(dir.rel.clone());
            }
            self.walk_step(&dir.rel);
            let found = mem::take(&mut self.pending);
            let found = found.into_iter().map(|p| self.queued(p)).collect();
            queue.done(found);
            if self.timed_out {
                queue.close();
            }
        }
        walked
    }

    /// What this (helper's) run did, for the run of the calling thread.
    fn report(self, done: usize) -> Report {
        Report {
            done,
            touched: self.touched.into_iter().collect(),
            synced: self.synced.into_iter().collect(),
            first_error: self.first_error,
            warnings: self.warnings,
            progressed: self.progressed,
            timed_out: self.timed_out,
        }
    }

    /// Takes over what a helper's run did: the directories to fix at the end, its first
    /// error (after this thread's own), its warnings, its progress and its stop.
    fn take_over(&mut self, r: Report) {
        tracing::trace!(done = r.done, "mirror: helper thread done");
        #[cfg(test)]
        self.h.helper_work.fetch_add(r.done, Ordering::Relaxed);
        self.touched.extend(r.touched);
        self.synced.extend(r.synced);
        if self.first_error.is_none() {
            self.first_error = r.first_error;
        }
        self.warnings.extend(r.warnings);
        self.progressed |= r.progressed;
        self.timed_out |= r.timed_out;
    }
}
