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
    /// The watches it holds (what it lets go of when it leaves).
    wds: HashSet<i32>,
}

#[derive(Default)]
struct Registry {
    holders: HashMap<u32, Holder>,
    /// Watch descriptor -> the monitors holding it.
    by_wd: HashMap<i32, Holders>,
    next: u32,
}

/// The monitors holding one watch. Almost always one, held without an allocation in 16
/// bytes: a daemon watching 100,000 directories keeps one of these per directory.
#[derive(Debug, Clone, PartialEq)]
enum Holders {
    One(u32),
    #[allow(clippy::box_collection)] // a thin pointer keeps `One` small
    Many(Box<Vec<u32>>),
}

impl Holders {
    fn ids(&self) -> &[u32] {
        match self {
            Holders::One(id) => std::slice::from_ref(id),
            Holders::Many(ids) => ids,
        }
    }

    fn add(&mut self, id: u32) {
        match self {
            Holders::One(x) if *x == id => {}
            Holders::One(x) => *self = Holders::Many(Box::new(vec![*x, id])),
            Holders::Many(ids) if !ids.contains(&id) => ids.push(id),
            Holders::Many(_) => {}
        }
    }

    /// Removes `id`; false when nobody holds the watch any more.
    fn remove(&mut self, id: u32) -> bool {
        match self {
            Holders::One(x) => *x != id,
            Holders::Many(ids) => {
                ids.retain(|x| *x != id);
                match ids[..] {
                    [] => false,
                    [only] => {
                        *self = Holders::One(only);
                        true
                    }
                    _ => true,
                }
            }
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
        let id = reg.next;
        reg.next = reg.next.wrapping_add(1);
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
        let mut reg = lock(&self.registry);
        let mut woken = HashSet::new();
        for ev in batch {
            let targets: Vec<u32> = if ev.mask.contains(EventMask::Q_OVERFLOW) {
                reg.holders.keys().copied().collect()
            } else {
                reg.by_wd
                    .get(&ev.wd)
                    .map(|h| h.ids().to_vec())
                    .unwrap_or_default()
            };
            if ev.mask.contains(EventMask::IGNORED) {
                // The kernel dropped the watch (directory gone, unmounted).
                reg.by_wd.remove(&ev.wd);
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
        let mut reg = lock(&self.shared.registry);
        let wd = lock(&self.shared.watches)
            .add(path, mask)?
            .get_watch_descriptor_id();
        reg.by_wd
            .entry(wd)
            .and_modify(|h| h.add(self.id))
            .or_insert(Holders::One(self.id));
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
        if !holders.remove(self.id) {
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
        let mut reg = lock(&self.shared.registry);
        let held = reg
            .holders
            .remove(&self.id)
            .map(|h| h.wds)
            .unwrap_or_default();
        for wd in held {
            self.release(&mut reg, wd);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Holders;

    #[test]
    fn holders_take_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Holders>(), 16);
    }

    #[test]
    fn holders_count_each_monitor_once_and_tell_when_the_last_goes() {
        let mut h = Holders::One(1);
        h.add(1);
        assert_eq!(h, Holders::One(1));
        h.add(2);
        h.add(3);
        h.add(2);
        assert_eq!(h.ids(), &[1, 2, 3]);
        assert!(h.remove(2));
        assert!(h.remove(1));
        assert_eq!(h, Holders::One(3));
        assert!(h.remove(9), "a monitor that holds nothing changes nothing");
        assert!(!h.remove(3));
    }
}
