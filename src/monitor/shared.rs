//! One inotify instance for the whole daemon, shared by every job's monitor.
//!
//! The kernel limits inotify *instances* per user (`fs.inotify.max_user_instances`, 128 on
//! stock kernels), not what one instance may watch; one instance per job would stop a
//! hosting server at 128 jobs. So the daemon opens one, lazily, and one thread reads it
//! (blocking, no timer) and routes each event by watch descriptor to the monitors that
//! hold that watch. Inside one instance the kernel gives the same descriptor for the same
//! directory, so jobs with overlapping trees share their watches: a descriptor is removed
//! from the kernel only when its last holder lets go.
//!
//! Ordering: a watch is added and its holder recorded under one lock, and the reader routes
//! under the same lock, so no event of a new watch can reach the router before its holder is
//! known. A queue overflow goes to every monitor (each rescans). A monitor that does not
//! read its events for long gets one overflow instead of an unbounded backlog.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use inotify::{EventMask, Inotify, WatchMask, Watches};
use tracing::error;

/// Events a monitor may have waiting before they are replaced by one overflow.
const BACKLOG_MAX: usize = 1 << 16;

/// One inotify event, as routed to a monitor.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub wd: i32,
    pub mask: EventMask,
    pub cookie: u32,
    pub name: Option<Vec<u8>>,
}

impl RawEvent {
    fn overflow() -> RawEvent {
        RawEvent {
            wd: -1,
            mask: EventMask::Q_OVERFLOW,
            cookie: 0,
            name: None,
        }
    }
}

/// What a monitor receives: its events, and a way to wake its thread.
struct Holder {
    events: Arc<Mutex<Vec<RawEvent>>>,
    wake: Arc<dyn Fn() + Send + Sync>,
    /// The watches it holds (what it lets go of when it leaves, without a look at every
    /// monitor's).
    wds: HashSet<i32>,
}

#[derive(Default)]
struct Registry {
    holders: HashMap<u32, Holder>,
    /// Watch descriptor -> the monitors holding it.
    by_wd: HashMap<i32, Holders>,
    lists: Lists,
    next: u32,
}

/// The monitors holding one watch, in 4 bytes (a daemon watching 100,000 directories keeps
/// one per directory, 8 bytes to a hash-map slot with its key): almost always one
/// monitor's id; with [`MANY`] set, the index of their list in [`Lists`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Holders(u32);

/// The bit that makes [`Holders`] an index of [`Lists`]: monitor ids stay below it.
const MANY: u32 = 1 << 31;

/// The lists of monitors that share a watch; a freed index is given out again.
#[derive(Debug, Default)]
struct Lists {
    lists: Vec<Vec<u32>>,
    free: Vec<u32>,
}

impl Lists {
    fn put(&mut self, ids: Vec<u32>) -> Holders {
        let i = match self.free.pop() {
            Some(i) => {
                self.lists[i as usize] = ids;
                i
            }
            None => {
                self.lists.push(ids);
                (self.lists.len() - 1) as u32
            }
        };
        Holders(i | MANY)
    }

    fn get_mut(&mut self, h: Holders) -> &mut Vec<u32> {
        &mut self.lists[(h.0 & !MANY) as usize]
    }

    /// Lets go of `h`'s list; once none is in use, of the slots too (two jobs that shared a
    /// large tree leave nothing behind when one of them goes).
    fn free(&mut self, h: Holders) {
        if h.0 & MANY != 0 {
            *self.get_mut(h) = Vec::new();
            self.free.push(h.0 & !MANY);
            if self.free.len() == self.lists.len() {
                *self = Lists::default();
            }
        }
    }
}

impl Holders {
    fn ids<'a>(&'a self, lists: &'a Lists) -> &'a [u32] {
        if self.0 & MANY == 0 {
            std::slice::from_ref(&self.0)
        } else {
            &lists.lists[(self.0 & !MANY) as usize]
        }
    }

    fn add(&mut self, id: u32, lists: &mut Lists) {
        if self.0 & MANY == 0 {
            if self.0 != id {
                *self = lists.put(vec![self.0, id]);
            }
            return;
        }
        let ids = lists.get_mut(*self);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    /// Removes `id`; false when nobody holds the watch any more (its list is freed then).
    fn remove(&mut self, id: u32, lists: &mut Lists) -> bool {
        if self.0 & MANY == 0 {
            return self.0 != id;
        }
        let ids = lists.get_mut(*self);
        ids.retain(|x| *x != id);
        match ids[..] {
            // (A list holds two monitors or more: this is only for safety.)
            [] => {
                lists.free(*self);
                false
            }
            [only] => {
                lists.free(*self);
                *self = Holders(only);
                true
            }
            _ => true,
        }
    }
}

/// The daemon's inotify instance.
pub struct Shared {
    watches: Mutex<Watches>,
    fd: i32,
    registry: Mutex<Registry>,
}

/// A monitor's membership: its id and its event inbox. Dropping it releases every watch
/// only it held.
pub struct Subscription {
    shared: &'static Shared,
    id: u32,
    events: Arc<Mutex<Vec<RawEvent>>>,
}

static SHARED: Mutex<Option<&'static Shared>> = Mutex::new(None);

/// The daemon's instance, opened (and its reader started) on first use; a failure (the
/// user's instance limit reached) is tried again on the next call.
pub fn shared() -> io::Result<&'static Shared> {
    let mut s = lock(&SHARED);
    if let Some(shared) = *s {
        return Ok(shared);
    }
    let shared = Shared::start()?;
    *s = Some(shared);
    Ok(shared)
}

impl Shared {
    fn start() -> io::Result<&'static Shared> {
        let ino = Inotify::init()?;
        let fd = ino.as_raw_fd();
        // The reader blocks in read(2): no poll, no timer.
        // SAFETY: fcntl on our own open descriptor.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl == -1 || libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            watches: Mutex::new(ino.watches()),
            fd,
            registry: Mutex::new(Registry::default()),
        }));
        std::thread::Builder::new()
            .name("clsync-inotify".into())
            .spawn(move || shared.read_forever(ino))?;
        Ok(shared)
    }

    /// Joins as a monitor; `wake` is called whenever events arrive for it.
    pub fn subscribe(&'static self, wake: Arc<dyn Fn() + Send + Sync>) -> Subscription {
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut reg = lock(&self.registry);
        // Ids stay below MANY; one still in use (after 2^31 joins) is skipped.
        let mut id = reg.next;
        while reg.holders.contains_key(&id) {
            id = (id + 1) % MANY;
        }
        reg.next = (id + 1) % MANY;
        let holder = Holder {
            events: events.clone(),
            wake,
            wds: HashSet::new(),
        };
        reg.holders.insert(id, holder);
        Subscription {
            shared: self,
            id,
            events,
        }
    }

    fn read_forever(&self, mut ino: Inotify) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let batch: Vec<RawEvent> = match ino.read_events(&mut buf) {
                Ok(events) => events
                    .map(|e| RawEvent {
                        wd: e.wd.get_watch_descriptor_id(),
                        mask: e.mask,
                        cookie: e.cookie,
                        name: e
                            .name
                            .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec()),
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // Nothing sensible is left to watch with: every monitor rescans, which
                    // reports the failure through its job.
                    error!("reading inotify events failed: {e}");
                    vec![RawEvent::overflow()]
                }
            };
            self.route(batch);
        }
    }

    /// Hands each event to the monitors holding its watch, then wakes them once.
    fn route(&self, batch: Vec<RawEvent>) {
        let mut guard = lock(&self.registry);
        let reg = &mut *guard;
        let mut woken = HashSet::new();
        for ev in batch {
            let targets: Vec<u32> = if ev.mask.contains(EventMask::Q_OVERFLOW) {
                reg.holders.keys().copied().collect()
            } else {
                reg.by_wd
                    .get(&ev.wd)
                    .map(|h| h.ids(&reg.lists).to_vec())
                    .unwrap_or_default()
            };
            if ev.mask.contains(EventMask::IGNORED) {
                // The kernel dropped the watch (directory gone, unmounted).
                if let Some(h) = reg.by_wd.remove(&ev.wd) {
                    reg.lists.free(h);
                }
            }
            for id in targets {
                if let Some(h) = reg.holders.get(&id) {
                    let mut q = lock(&h.events);
                    if q.len() >= BACKLOG_MAX {
                        q.clear();
                        q.push(RawEvent::overflow());
                    } else if q
                        .last()
                        .is_none_or(|l| !l.mask.contains(EventMask::Q_OVERFLOW))
                    {
                        q.push(ev.clone());
                    }
                    woken.insert(id);
                }
            }
        }
        for id in woken {
            if let Some(h) = reg.holders.get(&id) {
                (h.wake)();
            }
        }
    }
}

impl Subscription {
    /// Watches `path` for this monitor (the same descriptor as any other holder's for the
    /// same directory).
    pub fn add_watch(&self, path: &Path, mask: WatchMask) -> io::Result<i32> {
        let mut guard = lock(&self.shared.registry);
        let reg = &mut *guard;
        let wd = lock(&self.shared.watches)
            .add(path, mask)?
            .get_watch_descriptor_id();
        reg.by_wd
            .entry(wd)
            .and_modify(|h| h.add(self.id, &mut reg.lists))
            .or_insert(Holders(self.id));
        if let Some(h) = reg.holders.get_mut(&self.id) {
            h.wds.insert(wd);
        }
        Ok(wd)
    }

    /// Lets go of `wd`; the kernel's watch goes when nobody else holds it.
    pub fn rm_watch(&self, wd: i32) {
        let mut reg = lock(&self.shared.registry);
        self.release(&mut reg, wd);
    }

    fn release(&self, reg: &mut Registry, wd: i32) {
        if let Some(h) = reg.holders.get_mut(&self.id) {
            h.wds.remove(&wd);
        }
        let Some(holders) = reg.by_wd.get_mut(&wd) else {
            return;
        };
        if !holders.remove(self.id, &mut reg.lists) {
            reg.by_wd.remove(&wd);
            // SAFETY: plain syscall on the daemon's inotify fd; a stale wd only yields EINVAL.
            unsafe {
                libc::inotify_rm_watch(self.shared.fd, wd);
            }
        }
    }

    /// The events routed to this monitor since the last call.
    pub fn take(&self) -> Vec<RawEvent> {
        std::mem::take(&mut *lock(&self.events))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut guard = lock(&self.shared.registry);
        let reg = &mut *guard;
        let held = reg
            .holders
            .remove(&self.id)
            .map(|h| h.wds)
            .unwrap_or_default();
        for wd in held {
            self.release(reg, wd);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{Holders, Lists};

    #[test]
    fn holders_take_four_bytes() {
        assert_eq!(std::mem::size_of::<Holders>(), 4);
    }

    #[test]
    fn holders_count_each_monitor_once_and_tell_when_the_last_goes() {
        let mut lists = Lists::default();
        let mut h = Holders(1);
        h.add(1, &mut lists);
        assert_eq!(h, Holders(1));
        h.add(2, &mut lists);
        h.add(3, &mut lists);
        h.add(2, &mut lists);
        assert_eq!(h.ids(&lists), &[1, 2, 3]);
        assert!(h.remove(2, &mut lists));
        assert!(h.remove(1, &mut lists));
        assert_eq!(h, Holders(3));
        assert!(
            h.remove(9, &mut lists),
            "a monitor that holds nothing changes nothing"
        );
        assert!(!h.remove(3, &mut lists));
    }

    /// The kernel's watch goes when its last holder leaves: one only a leaving monitor
    /// held at once, one it shared when the other holder leaves too.
    #[test]
    fn a_leaving_monitor_lets_go_of_what_only_it_held() {
        use inotify::WatchMask;
        let shared = super::shared().unwrap();
        let t = tempfile::tempdir().unwrap();
        let (own, both) = (t.path().join("own"), t.path().join("both"));
        std::fs::create_dir(&own).unwrap();
        std::fs::create_dir(&both).unwrap();
        let watched = |wd: i32| {
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", shared.fd));
            info.unwrap().contains(&format!("inotify wd:{wd:x} "))
        };
        let wake: std::sync::Arc<dyn Fn() + Send + Sync> = std::sync::Arc::new(|| ());
        let (a, b) = (shared.subscribe(wake.clone()), shared.subscribe(wake));
        let mask = WatchMask::CREATE;
        let wd_own = a.add_watch(&own, mask).unwrap();
        let wd_both = a.add_watch(&both, mask).unwrap();
        assert_eq!(b.add_watch(&both, mask).unwrap(), wd_both);
        assert!(watched(wd_own) && watched(wd_both));
        drop(a);
        assert!(!watched(wd_own), "the watch only the leaving monitor held");
        assert!(watched(wd_both), "a watch another monitor still holds");
        drop(b);
        assert!(!watched(wd_both));
    }

    /// A list let go of is given to the next watch that two monitors share, emptied; once
    /// no list is in use, nothing is kept.
    #[test]
    fn freed_lists_are_used_again() {
        let mut lists = Lists::default();
        let mut c = Holders(7);
        c.add(8, &mut lists);
        let (mut a, mut b) = (Holders(1), Holders(5));
        a.add(2, &mut lists);
        assert!(a.remove(1, &mut lists));
        assert_eq!(a, Holders(2));
        b.add(6, &mut lists);
        assert_eq!(lists.lists.len(), 2, "the freed list was used again");
        assert_eq!(b.ids(&lists), &[5, 6]);
        assert!(b.remove(5, &mut lists) && !b.remove(6, &mut lists));
        assert_eq!(lists.lists.len(), 2, "a list is still in use");
        assert!(c.remove(7, &mut lists));
        assert!(lists.lists.is_empty() && lists.free.is_empty(), "{lists:?}");
    }
}
