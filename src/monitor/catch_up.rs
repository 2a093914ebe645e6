//! Catching up with what changed while the watches were being added.
//!
//! To start a large tree at rsync's own speed, the job's first full sync begins before its
//! watches exist, and the walk that adds them runs beside it. A change in a directory after
//! the full sync has read that directory and before its watch exists would be seen by
//! neither. Such a change happened after the full sync began, and it left a change time
//! (`ctime`, which no writer can set back) at or after that moment: on the object created,
//! written, renamed or re-moded, or, for an entry removed or renamed away, on its directory.
//! So once a directory is watched (a later change is an event), the walk reads the change
//! times of the directory and its entries: a directory changed since the start is synced
//! whole ([`Change::Tree`]: what left it is unknown), an entry changed is synced
//! ([`Change::Content`]).
//!
//! The root needs none of this: its watch is added before the full sync starts.
//!
//! The start is read from the clock the kernel stamps change times with
//! (`CLOCK_REALTIME_COARSE`, which never runs ahead of the stamps made after it), once it
//! has passed the fine clock's now (see [`Since::now`]). Only a source whose timestamps
//! come from this kernel's clock, to the nanosecond, qualifies ([`can_catch_up`]: not a
//! network or FUSE filesystem, not one-second timestamps); a directory on another, non-local
//! filesystem mounted inside it is synced whole. If the wall clock is set during the walk
//! (a timer that the kernel cancels on every clock set tells; so does a drift from the
//! monotonic clock), change times no longer compare with the start, and the whole source is
//! compared again ([`Change::Rescan`]).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Stat};

use crate::model::{Change, Kind};
use crate::relpath;
use crate::rules::Filter;

/// How far the wall clock may drift from the monotonic one during a walk before it counts
/// as a step.
const STEP: Duration = Duration::from_secs(1);

/// Filesystems whose timestamps this kernel sets from its own clock, to the nanosecond.
const LOCAL: [i64; 7] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x2FC1_2FC1, // zfs
    0xF2F5_2010, // f2fs
    0x794C_7630, // overlayfs
];

/// The longest wait for the coarse clock to pass the start (it lags by at most one tick).
const TICK_WAIT_MAX: Duration = Duration::from_millis(50);

fn clock_now(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32)
}

/// Whether the source at `root` keeps change times from this kernel's clock, to the
/// nanosecond (a one-second filesystem stamps the root with no nanoseconds).
// The field types differ between architectures.
#[allow(clippy::unnecessary_cast)]
pub fn can_catch_up(root: &Path) -> bool {
    let fine = rustix::fs::stat(root).is_ok_and(|s| s.st_ctime_nsec != 0 || s.st_mtime_nsec != 0);
    fine && rustix::fs::statfs(root).is_ok_and(|s| is_local(s.f_type as i64))
}

fn is_local(f_type: i64) -> bool {
    LOCAL.contains(&f_type)
}

/// A timer that never fires, cancelled when the wall clock is set (stepped by NTP, by
/// hand, a leap second): read afterwards, it tells whether change times still compare
/// with a moment read before.
fn clock_watch() -> Option<OwnedFd> {
    // SAFETY: plain system calls on a descriptor we create and then own.
    unsafe {
        let fd = libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        let far = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: now.tv_sec + 100 * 365 * 86_400,
                tv_nsec: 0,
            },
        };
        let flags = libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET;
        if libc::timerfd_settime(fd.as_raw_fd(), flags, &far, std::ptr::null_mut()) != 0 {
            return None;
        }
        Some(fd)
    }
}

/// Whether the clock was set since `clock_watch` made `fd`.
fn clock_was_set(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into our buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECANCELED)
}

/// A moment, as change times and the monotonic clock tell it, and a watch on the clock
/// being set from then on.
#[derive(Debug)]
pub struct Since {
    stamp: (i64, i64),
    mono: Instant,
    clock: Option<OwnedFd>,
}

impl Since {
    /// Now. Change times are stamped from the coarse clock, or finer (multigrain
    /// timestamps), so a stamp made just before now may read later than the coarse clock
    /// does now: this waits (at most a tick) until the coarse clock has passed the fine one's
    /// now, and takes that. Nothing stamped before the call then counts as since, and
    /// everything stamped after does.
    pub fn now() -> Since {
        let clock = clock_watch();
        let fine = clock_now(libc::CLOCK_REALTIME);
        let waited = Instant::now();
        let mut at = clock_now(libc::CLOCK_REALTIME_COARSE);
        while at <= fine && waited.elapsed() < TICK_WAIT_MAX {
            std::thread::sleep((fine - at).max(Duration::from_micros(100)));
            at = clock_now(libc::CLOCK_REALTIME_COARSE);
        }
        Since {
            stamp: (at.as_secs() as i64, i64::from(at.subsec_nanos())),
            mono: Instant::now(),
            clock,
        }
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.stamp.0.max(0) as u64, self.stamp.1 as u32)
    }
}

/// A walk's catch-up: what it found changed since `since`.
pub struct CatchUp {
    since: Since,
    /// The source root's filesystem.
    dev: u64,
    found: Vec<Change>,
    /// The directories found to be synced whole.
    covered: HashSet<PathBuf>,
}

impl CatchUp {
    /// Catches up with changes since `since` in the source at `root`.
    // `st_dev`'s type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    pub fn new(since: Since, root: &Path) -> CatchUp {
        CatchUp {
            since,
            dev: rustix::fs::stat(root).map_or(u64::MAX, |s| s.st_dev as u64),
            found: Vec::new(),
            covered: HashSet::new(),
        }
    }

    // The field types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn changed(&self, st: &Stat) -> bool {
        (st.st_ctime as i64, st.st_ctime_nsec as i64) >= self.since.stamp
    }

    /// The watched directory `rel`, open as `dir`, listed as `entries`.
    pub fn directory(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        entries: &[(OsString, u8)],
        filter: &Filter,
    ) {
        if rel.as_os_str().is_empty() || self.is_covered(rel) {
            return;
        }
        // Another filesystem mounted inside the source may stamp with another clock (a
        // network one): synced whole. (A btrfs subvolume is another device of a local kind.)
        #[allow(clippy::unnecessary_cast)]
        let whole = rustix::fs::fstat(dir).map_or(true, |st| {
            (st.st_dev as u64 != self.dev
                && !rustix::fs::fstatfs(dir).is_ok_and(|s| is_local(s.f_type as i64)))
                || self.changed(&st)
        });
        if whole {
            return self.cover(rel.to_path_buf());
        }
        for (name, _) in entries {
            // Gone meanwhile: its directory's change time tells.
            let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let rel = relpath::join(rel, Path::new(name));
            let kind = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                Kind::Dir
            } else {
                Kind::File
            };
            if self.changed(&st) && filter.allows_child(&rel, kind) {
                if kind == Kind::Dir {
                    self.cover(rel);
                } else {
                    self.found.push(Change::Content(rel));
                }
            }
        }
    }

    /// Syncs `rel` whole: nothing below it needs looking at.
    fn cover(&mut self, rel: PathBuf) {
        self.covered.insert(rel.clone());
        self.found.push(Change::Tree(rel));
    }

    fn is_covered(&self, rel: &Path) -> bool {
        !self.covered.is_empty() && rel.ancestors().any(|a| self.covered.contains(a))
    }

    /// What was found; the whole source when the wall clock stepped meanwhile (change times
    /// no longer compare with the start).
    pub fn finish(mut self) -> Vec<Change> {
        let wall = SystemTime::now()
            .duration_since(self.since.wall())
            .unwrap_or(Duration::ZERO);
        let mono = self.since.mono.elapsed();
        let set = self.since.clock.as_ref().is_some_and(clock_was_set);
        if set || wall.abs_diff(mono) > STEP {
            tracing::warn!(
                "the clock stepped while the watches were added: comparing the whole source again"
            );
            self.found = vec![Change::Rescan];
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter::new(&[], vec![]).unwrap()
    }

    fn catch_up(root: &Path, rel: &str, c: &mut CatchUp) {
        let dir: OwnedFd = std::fs::File::open(root.join(rel)).unwrap().into();
        let entries = crate::fs::list(&dir).unwrap();
        c.directory(&dir, Path::new(rel), &entries, &filter());
    }

    /// A catch-up from now. The pause lets the kernel's coarse clock (which stamps change
    /// times) pass the tick in which the test made its tree.
    fn from_now() -> CatchUp {
        std::thread::sleep(Duration::from_millis(30));
        CatchUp::new(Since::now(), &std::env::temp_dir())
    }

    #[test]
    fn entries_changed_since_the_start_are_found_older_ones_are_not() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d/old")).unwrap();
        std::fs::write(t.path().join("d/kept"), "x").unwrap();
        std::fs::write(t.path().join("d/written"), "x").unwrap();
        let mut c = from_now();
        catch_up(t.path(), "d", &mut c);
        assert!(c.found.is_empty(), "{:?}", c.found);
        std::fs::write(t.path().join("d/written"), "y").unwrap();
        catch_up(t.path(), "d", &mut c);
        // Writing a file changes the file, not its directory.
        assert_eq!(c.finish(), vec![Change::Content("d/written".into())]);
    }

    #[test]
    fn a_directory_changed_since_the_start_is_synced_whole() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d")).unwrap();
        let mut c = from_now();
        std::fs::write(t.path().join("d/gone"), "x").unwrap();
        std::fs::remove_file(t.path().join("d/gone")).unwrap();
        catch_up(t.path(), "d", &mut c);
        // The root's watch is older than the start: its events tell.
        std::fs::write(t.path().join("top"), "x").unwrap();
        catch_up(t.path(), "", &mut c);
        assert_eq!(c.finish(), vec![Change::Tree("d".into())]);
    }

    #[test]
    fn a_clock_step_compares_everything_again() {
        let mut since = Since::now();
        since.stamp.0 -= 60;
        assert_eq!(
            CatchUp::new(since, Path::new("/")).finish(),
            vec![Change::Rescan]
        );
    }

    #[test]
    fn tmpfs_keeps_local_time_proc_does_not() {
        assert!(can_catch_up(Path::new("/dev/shm")));
        assert!(!can_catch_up(Path::new("/proc")));
    }
}

#[cfg(test)]
mod covered {
    use super::*;

    #[test]
    fn below_a_directory_synced_whole_nothing_is_looked_at() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d/e")).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let mut c = CatchUp::new(Since::now(), &std::env::temp_dir());
        std::fs::write(t.path().join("d/e/f"), "x").unwrap();
        let f = Filter::new(&[], vec![]).unwrap();
        for rel in ["", "d", "d/e"] {
            let dir: OwnedFd = std::fs::File::open(t.path().join(rel)).unwrap().into();
            let entries = crate::fs::list(&dir).unwrap();
            c.directory(&dir, Path::new(rel), &entries, &f);
        }
        // d/e changed (a file was made in it): found from d, not again from itself.
        assert_eq!(c.finish(), vec![Change::Tree("d/e".into())]);
    }
}
