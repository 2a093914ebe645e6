//! The hub's thread: watches the source and hands what the monitor reports to the targets.
//!
//! It does the monitor side of a job's loop (`runner`) once for all the targets: waits
//! (with backoff) while the source cannot be watched, walks it, reads events, resolves
//! unpaired moves, re-walks after lost events, and rescans the directories the watch limit
//! left unwatched. It sleeps on its bell until events arrive, the monitor's next deadline
//! or the next rescan of unwatched directories: an idle hub makes no wake-ups. The
//! monitor's walks end early when the hub stops (`stop_when`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error};

use super::{Item, Shared};
use crate::config::{Delete, JobConfig};
use crate::job::schedule::{SOURCE_WAIT_MAX, backoff};
use crate::model::Change;
use crate::monitor::{PlatformMonitor, Since, UNWATCHED_RESCAN};

/// The first wait for a source that cannot be watched (as a job's own, see `schedule`).
const SOURCE_WAIT_FIRST: Duration = Duration::from_secs(1);

/// Why watching the source ended.
enum End {
    Stop,
    RootGone,
}

pub(super) fn run(hub: &Shared, cfg: &JobConfig) {
    while let Some(mut mon) = watch_source(hub, cfg) {
        if let End::Stop = watch(hub, cfg, &mut mon) {
            break;
        }
    }
    debug!("source monitor stopped");
}

/// Starts watching the source, waiting (with backoff) while it cannot be watched; `None`:
/// stopped.
fn watch_source(hub: &Shared, cfg: &JobConfig) -> Option<PlatformMonitor> {
    let mut failures = 0;
    let mut last_error = String::new();
    while !hub.stopping() {
        let bell = hub.bell.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || bell.ring());
        let e = match PlatformMonitor::start(&cfg.source, cfg.filter(), wake) {
            Ok(mut m) => {
                m.stop_when(hub.stop.clone());
                return Some(m);
            }
            Err(e) => e,
        };
        failures += 1;
        let wait = backoff(failures, SOURCE_WAIT_FIRST, SOURCE_WAIT_MAX);
        let msg = format!("cannot watch source {}: {e}", cfg.source.display());
        if msg != last_error {
            error!("{msg}; retrying (every {SOURCE_WAIT_MAX:?} at most)");
        } else {
            debug!("{msg}; retrying in {wait:?}");
        }
        hub.unwatchable(&msg);
        last_error = msg;
        sleep(hub, wait);
    }
    None
}

/// Sleeps up to `d`, or until asked to stop.
fn sleep(hub: &Shared, d: Duration) {
    let until = Instant::now() + d;
    while !hub.stopping() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        hub.rest(Some(until - now));
    }
}

/// The source's root is watched: watch the rest, tell the targets, then follow the events
/// until the source is gone or the hub stops.
fn watch(hub: &Shared, cfg: &JobConfig, mon: &mut PlatformMonitor) -> End {
    let mut items = Vec::new();
    let since = catch_up_since(cfg, mon);
    let beside = since.is_some();
    if beside {
        // The targets' full syncs start beside the walk, which catches up with what
        // changes meanwhile in the directories it watches.
        hub.watched(dirs(mon));
    }
    mon.walk(since, &mut |c| items.push(Item::Change(c)));
    if !beside {
        hub.watched(dirs(mon));
    }
    let mut unwatched_due = None;
    loop {
        let now = Instant::now();
        mon.expire(now, &mut |c| items.push(Item::Change(c)));
        if rescan_unwatched(&mut unwatched_due, now, mon.unwatched()) {
            mon.rescan_unwatched(&mut |c| items.push(Item::Change(c)));
        }
        if hub.send(&mut items, dirs(mon)) {
            return End::RootGone;
        }
        let next = [mon.next_deadline(), unwatched_due]
            .into_iter()
            .flatten()
            .min();
        // Round up so that a deadline a fraction of a millisecond away does not spin.
        hub.rest(next.map(|t| t.saturating_duration_since(now) + Duration::from_micros(999)));
        if hub.stopping() {
            return End::Stop;
        }
        #[cfg(test)]
        if hub.fail.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("the hub's thread fails: a test asked");
        }
        if read(hub, cfg, mon, &mut items) {
            return End::RootGone;
        }
    }
}

/// Reads the monitor's events into `items`, and re-walks the source after lost events. A
/// rescan that fails reports the source gone. True when the items sent before a rescan
/// already told the targets that the source is gone (the monitor is then done with).
fn read(hub: &Shared, cfg: &JobConfig, mon: &mut PlatformMonitor, items: &mut Vec<Item>) -> bool {
    let from = items.len();
    if let Err(e) = mon.read(&mut |c| items.push(Item::Change(c))) {
        error!("reading events failed: {e}; rescanning");
        if let Err(e) = mon.rescan(&mut |c| items.push(Item::Change(c))) {
            error!("rescan failed: {e}");
            items.push(Item::Change(Change::RootGone));
        }
        return false;
    }
    if items[from..].contains(&Item::Change(Change::Rescan)) {
        items.push(Item::Overflow);
    }
    if !mon.rescan_pending() {
        return false;
    }
    // Events were lost: the targets' full comparisons start now, beside the walk that
    // re-adds the watches (with `delete = "running"`, after it).
    let since = catch_up_since(cfg, mon);
    if since.is_some() && hub.send(items, dirs(mon)) {
        return true;
    }
    if let Err(e) = mon.finish_rescan(since, &mut |c| items.push(Item::Change(c))) {
        error!("rescan failed: {e}");
        items.push(Item::Change(Change::RootGone));
    }
    false
}

/// Now, if the targets' full syncs may run beside the walk. Not with `delete = "running"`:
/// a directory synced whole to catch up would lose the extraneous files the targets keep
/// there.
fn catch_up_since(cfg: &JobConfig, mon: &PlatformMonitor) -> Option<Since> {
    match cfg.delete {
        Delete::Running => None,
        _ => mon.catch_up_from_now(),
    }
}

fn dirs(mon: &PlatformMonitor) -> (usize, usize) {
    (mon.watched(), mon.unwatched())
}

/// True when the directories the watch limit left unwatched (`unwatched` of them) are to
/// be rescanned now: every [`UNWATCHED_RESCAN`] while there are any (`due` is the next).
fn rescan_unwatched(due: &mut Option<Instant>, now: Instant, unwatched: usize) -> bool {
    if unwatched == 0 {
        *due = None;
        return false;
    }
    if due.is_some_and(|d| d > now) {
        return false;
    }
    let was_due = due.is_some();
    *due = Some(now + UNWATCHED_RESCAN);
    was_due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwatched_directories_are_rescanned_every_period_while_there_are_any() {
        let t0 = Instant::now();
        let mut due = None;
        assert!(!rescan_unwatched(&mut due, t0, 0));
        assert_eq!(due, None, "nothing unwatched: no deadline");
        assert!(!rescan_unwatched(&mut due, t0, 2), "not at once");
        assert_eq!(due, Some(t0 + UNWATCHED_RESCAN));
        assert!(!rescan_unwatched(&mut due, t0 + Duration::from_secs(1), 2));
        let t1 = t0 + UNWATCHED_RESCAN;
        assert!(rescan_unwatched(&mut due, t1, 2));
        assert_eq!(due, Some(t1 + UNWATCHED_RESCAN));
        assert!(!rescan_unwatched(&mut due, t1, 0));
        assert_eq!(due, None);
    }
}
