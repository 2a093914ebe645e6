//! The monitor for platforms without inotify (FreeBSD, macOS): `notify`'s kqueue/FSEvents
//! backend behind the same interface as the Linux monitor.
//!
//! `notify` reports events from its own thread; they are parked in a list and a byte is
//! written to a pipe so that the job loop can poll this monitor like an inotify descriptor.
//! Anything `notify` flags as needing a rescan, or any error, becomes [`Change::Rescan`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use notify::{RecursiveMode, Watcher};

use crate::model::{Change, Kind};
use crate::rules::Filter;

/// A recursive watcher for one job's source tree, built on `notify`.
pub struct NotifyMonitor {
    _watcher: notify::RecommendedWatcher,
    root: PathBuf,
    filter: Arc<Filter>,
    pending: Arc<Mutex<Vec<notify::Result<notify::Event>>>>,
}

impl NotifyMonitor {
    /// Watches the whole tree at once (`notify` walks it): [`walk`](Self::walk) has nothing
    /// left to do.
    pub fn start(
        root: &Path,
        filter: Arc<Filter>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> io::Result<NotifyMonitor> {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let sink = pending.clone();
        let mut watcher = notify::recommended_watcher(move |ev| {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
            wake();
        })
        .map_err(io::Error::other)?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(io::Error::other)?;
        Ok(NotifyMonitor {
            _watcher: watcher,
            root: root.to_path_buf(),
            filter,
            pending,
        })
    }

    /// The watches exist before any full sync starts: nothing to catch up with.
    pub fn catch_up_from_now(&self) -> Option<super::Since> {
        None
    }

    pub fn walk(&mut self, _since: Option<super::Since>, _out: &mut impl FnMut(Change)) {}

    /// `notify` walks as it starts watching: there is no walk here to end early.
    pub fn stop_when(&mut self, _flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {}

    /// `notify` rescans by itself: a lost event is reported as a rescan at once.
    pub fn rescan_pending(&self) -> bool {
        false
    }

    pub fn finish_rescan(
        &mut self,
        _since: Option<super::Since>,
        _out: &mut impl FnMut(Change),
    ) -> io::Result<()> {
        Ok(())
    }

    /// `notify` does not expose its watch count.
    pub fn watched(&self) -> usize {
        0
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }

    pub fn unwatched(&self) -> usize {
        0
    }

    pub fn rescan_unwatched(&mut self, _out: &mut impl FnMut(Change)) {}

    pub fn expire(&mut self, _now: Instant, _out: &mut impl FnMut(Change)) {}

    pub fn rescan(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        out(Change::Rescan);
        Ok(())
    }

    pub fn read(&mut self, out: &mut impl FnMut(Change)) -> io::Result<()> {
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for ev in events {
            let ev = match ev {
                Ok(ev) => ev,
                Err(_) => {
                    out(Change::Rescan);
                    continue;
                }
            };
            if ev.need_rescan() {
                out(Change::Rescan);
                continue;
            }
            for p in &ev.paths {
                if p == &self.root && !self.root.exists() {
                    out(Change::RootGone);
                    continue;
                }
                let Ok(rel) = p.strip_prefix(&self.root) else {
                    continue;
                };
                let is_dir = p.is_dir();
                let kind = if is_dir { Kind::Dir } else { Kind::File };
                if !self.filter.allows_path(rel, kind) {
                    continue;
                }
                // kqueue does not say which entry of a directory changed: sync the subtree.
                if is_dir {
                    out(Change::Tree(rel.to_path_buf()));
                } else {
                    out(Change::Content(rel.to_path_buf()));
                }
            }
        }
        Ok(())
    }
}
