//! A fan-out target's loop: the job loop, with the changes coming from its job file's hub
//! (`job::hub`) instead of a monitor of its own.
//!
//! Everything that is the target's own stays here and works as for any job: its queue,
//! schedule, retries, workers and status. The hub's `Watched` plays the part of the
//! monitor's start (a full sync, unless the job starts with `initial_sync = false`), and
//! its `RootGone` that of the source's loss: the target waits for the next `Watched`. An
//! `Unwatchable` while watching (the hub's thread died) is a loss of the source too.
//! Items that come while the source is not watched are covered by the full sync after it.

use std::collections::VecDeque;
use std::time::Instant;

use tracing::info;

use super::{Exit, Runner};
use crate::job::hub::{Item, Subscription};
use crate::job::status::State;
use crate::model::Change;

/// The hub's items not yet handled.
struct Feed {
    sub: Subscription,
    pending: VecDeque<Item>,
}

impl Feed {
    fn next(&mut self) -> Option<Item> {
        if self.pending.is_empty() {
            self.sub.take(&mut self.pending);
        }
        self.pending.pop_front()
    }
}

impl Runner {
    /// Follows the hub until stopped: a full sync each time it watches the source, then the
    /// changes it hands over.
    pub(super) fn follow(&mut self, sub: Subscription) {
        let mut feed = Feed {
            sub,
            pending: VecDeque::new(),
        };
        let mut first = true;
        while self.await_watched(&mut feed) {
            self.schedule.source_watched();
            self.start_following(&feed, first);
            first = false;
            match self.follow_changes(&mut feed) {
                Exit::Stop => break,
                Exit::RootGone => self.source_gone(),
            }
        }
    }

    /// Waits until the hub watches the source, showing why it cannot meanwhile; false:
    /// stopped.
    fn await_watched(&mut self, feed: &mut Feed) -> bool {
        while !self.stopping {
            while let Some(item) = feed.next() {
                match item {
                    Item::Watched => return true,
                    Item::Unwatchable(why) => {
                        // The hub logs it; every target shows it in its status.
                        let _ = self.schedule.source_unwatchable();
                        self.record_error(&why, State::Failed);
                    }
                    Item::Overflow | Item::Change(_) => {}
                }
            }
            self.wait(None);
        }
        false
    }

    fn start_following(&mut self, feed: &Feed, first: bool) {
        if self.syncs_whole(first) {
            self.begin_full_sync(first, Instant::now());
            return;
        }
        let (watched, unwatched) = feed.sub.dirs();
        info!("watching {watched} directories (initial sync skipped)");
        self.report_load((watched, unwatched));
        self.status.set_state(State::Watching);
    }

    fn follow_changes(&mut self, feed: &mut Feed) -> Exit {
        let mut changes = Vec::new();
        loop {
            let now = Instant::now();
            self.take_changes(feed, &mut changes, now);
            let next = match self.step(&mut changes, now, feed.sub.dirs()) {
                Ok(next) => next,
                Err(exit) => return exit,
            };
            self.wait(next.map(|t| t.saturating_duration_since(now)));
            if self.stopping {
                return Exit::Stop;
            }
        }
    }

    /// Moves the hub's changes into `changes`, up to the source's loss: what follows it
    /// belongs to the next time the source is watched.
    fn take_changes(&mut self, feed: &mut Feed, changes: &mut Vec<Change>, now: Instant) {
        while let Some(item) = feed.next() {
            match item {
                Item::Change(c) => {
                    let gone = c == Change::RootGone;
                    changes.push(c);
                    if gone {
                        return;
                    }
                }
                Item::Overflow => self.status.lock().counters.overflows += 1,
                // The hub sends none while it watches (`RootGone` comes first); were one
                // to come, a full sync is what it asks for.
                Item::Watched => self.begin_full_sync(false, now),
                // The hub's thread died: nothing more comes. As the source's loss, and
                // the item waits for `await_watched`, which shows why.
                Item::Unwatchable(why) => {
                    changes.push(Change::RootGone);
                    feed.pending.push_front(Item::Unwatchable(why));
                    return;
                }
            }
        }
    }
}
