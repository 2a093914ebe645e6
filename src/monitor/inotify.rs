//! The Linux monitor: raw inotify with our own watch tree.
//!
//! It reads the events the daemon's inotify thread routed to this job ([`super::shared`]),
//! has [`translate`] say what each one means, and carries out the steps: reports changes,
//! lets go of watches, watches new directories ([`Watcher`]). Anything uncertain (a queue
//! overflow) becomes a re-walk of the whole source and a [`Change::Rescan`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, trace, warn};

use super::catch_up::{CatchUp, Since, can_catch_up};
use super::shared::shared;
use super::translate::{Step, View, expire, translate};
use super::tree::Tree;
use super::watcher::Watcher;
use crate::model::Change;
use crate::relpath;
use crate::rules::Filter;

/// A recursive inotify watcher for one job's source tree.
pub struct InotifyMonitor {
    watcher: Watcher,
    view: View,
    /// The steps of the event at hand (kept to reuse its memory).
    steps: Vec<Step>,
    /// Events were lost: see [`rescan_pending`](Self::rescan_pending).
    rescan_pending: bool,
}

impl InotifyMonitor {
    /// Watches `root` (only: [`walk`](Self::walk) watches every directory below it that
    /// the filter lets through); `wake` is called whenever events arrive (from the daemon's
    /// inotify thread), and [`read`](Self::read) then handles them.
    pub fn start(
        root: &Path,
        filter: Arc<Filter>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> io::Result<InotifyMonitor> {
        let mut watcher = Watcher::new(shared()?.subscribe(wake), root, filter);
        let mut view = View::new(Tree::new(-1));
        watcher.watch_root(&mut view)?;
        Ok(InotifyMonitor {
            watcher,
            view,
            steps: Vec::new(),
            rescan_pending: false,
        })
    }

    /// Walks (the first, a re-walk after lost events, a new directory's) end early once
    /// `flag` is set: the owner is stopping and drops the monitor next.
    pub fn stop_when(&mut self, flag: Arc<std::sync::atomic::AtomicBool>) {
        self.watcher.stop_when(flag);
    }

    /// Now, if [`walk`](Self::walk) can catch up with changes made since now (the source
    /// keeps change times from this kernel's clock): a full sync may then start before it.
    pub fn catch_up_from_now(&self) -> Option<Since> {
        can_catch_up(self.watcher.root()).then(Since::now)
    }

    /// Watches every directory below the root. With `since` (a full sync started then),
    /// also reports what changed since then in directories not yet watched (see
    /// `catch_up`).
    pub fn walk(&mut self, since: Option<Since>, out: &mut impl FnMut(Change)) {
        let started = Instant::now();
        let catch_up = since.map(|s| CatchUp::new(s, self.watcher.root()));
        for c in self
            .watcher
            .walk_all(&mut self.view, catch_up, &HashSet::new())
        {
            out(c);
        }
        debug!(
            "watched {} directories in {:?}",
            self.view.tree.len(),
            started.elapsed()
        );
    }

    /// Number of watched directories.
    pub fn watched(&self) -> usize {
        self.view.tree.len()
    }

    /// Number of directories (subtree roots) that could not be watched.
    pub fn unwatched(&self) -> usize {
        self.view.unwatched.len()
    }

    /// When [`expire`](Self::expire) must run next (an unpaired move is waiting), if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.view.next_deadline()
    }

    /// Handles every event routed to this monitor since the last call, reporting changes
    /// through `out`. After an overflow the rest is dropped: the full sync it asks for
    /// starts after those events, and the rescan walk ([`finish_rescan`](Self::finish_rescan))
    /// watches what they created.
    pub fn read(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        for ev in self.watcher.take() {
            if self.rescan_pending {
                break;
            }
            let name = ev.name.as_deref().map(OsStr::from_bytes);
            trace!(wd = ev.wd, mask = ?ev.mask, cookie = ev.cookie, ?name, "inotify");
            let filter = self.watcher.filter();
            translate(&mut self.view, filter, &ev, Instant::now(), &mut self.steps);
            self.carry_out(out)?;
        }
        Ok(())
    }

    /// Resolves moves whose partner did not come in time: a move out of the tree.
    pub fn expire(&mut self, now: Instant, out: &mut impl FnMut(Change)) {
        expire(&mut self.view, now, &mut self.steps);
        // Only reports and releases: nothing that can fail.
        let _ = self.carry_out(out);
    }

    /// Re-walks the whole source: watches what is missing, drops what is gone, and asks for
    /// a full comparison. Used when reading events failed.
    pub fn rescan(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        self.finish_rescan(None, out)?;
        out(Change::Rescan);
        Ok(())
    }

    /// Whether events were lost (a queue overflow): a full comparison was asked for, and
    /// [`finish_rescan`](Self::finish_rescan) must re-walk the source.
    pub fn rescan_pending(&self) -> bool {
        self.rescan_pending
    }

    /// The re-walk after lost events: watches what is missing, drops what is gone. With
    /// `since` (the full sync started then, beside this walk), also reports what changed
    /// since then in directories it watches anew; those it watched all along had their
    /// events since.
    pub fn finish_rescan(
        &mut self,
        since: Option<Since>,
        out: &mut impl FnMut(Change),
    ) -> io::Result<()> {
        self.rescan_pending = false;
        let started = Instant::now();
        self.view.moves.clear();
        let old: HashSet<i32> = self.view.tree.wds().collect();
        self.watcher.watch_root(&mut self.view)?;
        let catch_up = since.map(|s| CatchUp::new(s, self.watcher.root()));
        for c in self.watcher.walk_all(&mut self.view, catch_up, &old) {
            out(c);
        }
        for wd in old {
            if self.view.tree.by_wd(wd).is_none() {
                self.watcher.release(wd);
            }
        }
        debug!(
            "rescan watched {} directories in {:?}",
            self.view.tree.len(),
            started.elapsed()
        );
        Ok(())
    }

    /// Tries again to watch the directories the watch limit left out, and asks for a sync of
    /// every one of them (watched now or not): the periodic rescan of the unwatched part.
    pub fn rescan_unwatched(&mut self, out: &mut impl FnMut(Change)) {
        let dirs = std::mem::take(&mut self.view.unwatched);
        self.watcher.mark_limit_reported();
        for rel in dirs {
            if rel.file_name().is_none() {
                continue;
            }
            let parent = relpath::parent(&rel).unwrap_or(Path::new(""));
            if let Some(p) = self.view.tree.node_at(parent) {
                self.watcher.watch_new(&mut self.view, p, &rel);
            }
            out(Change::Tree(rel));
        }
        if self.view.unwatched.is_empty() {
            tracing::info!("every directory is watched again");
        }
    }

    /// Carries out (and empties) `self.steps`, in order.
    fn carry_out(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        let mut steps = std::mem::take(&mut self.steps);
        for step in steps.drain(..) {
            match step {
                Step::Report(change) => out(change),
                Step::Release(wds) => wds.into_iter().for_each(|wd| self.watcher.release(wd)),
                Step::Watch { parent, rel } => self.watcher.watch_new(&mut self.view, parent, &rel),
                Step::Rewatch {
                    parent,
                    rel,
                    otherwise,
                } => {
                    self.watcher.watch_new(&mut self.view, parent, &rel);
                    let name = relpath::name(&rel).as_bytes();
                    if self.view.tree.child(parent, name).is_some() {
                        out(Change::Tree(rel));
                    } else {
                        out(otherwise);
                    }
                }
                Step::Rescan => {
                    warn!("inotify queue overflowed: rescanning the whole source");
                    self.rescan_pending = true;
                    out(Change::Rescan);
                }
            }
        }
        self.steps = steps;
        Ok(())
    }
}
