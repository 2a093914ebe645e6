//! Filesystem monitors: turn kernel notifications into source-relative changes.
//!
//! A monitor never decides *when* to sync; it only reports what changed, as [`Change`]s, to
//! the job's queue, and never reports nothing when it cannot be sure. When the kernel's
//! queue overflows (or the `notify` backend reports an error) it reports
//! [`Change::Rescan`]. A directory it cannot watch (the watch limit, no permission) is
//! recorded as unwatched: the job calls `rescan_unwatched` every [`UNWATCHED_RESCAN`],
//! which tries the watch again and reports [`Change::Tree`] for the directory either way.
//!
//! On Linux: `shared` (the daemon's one inotify instance), `catch_up` (what changed
//! in a directory before its watch existed), `translate` (what an event means: a pure function), `watcher`
//! (adding watches, walking new directories), `tree` (the watched directories), `inotify`
//! (the monitor tying them together). Elsewhere: `notify_backend`.
//!
//! [`Change`]: crate::model::Change
//! [`Change::Rescan`]: crate::model::Change::Rescan
//! [`Change::Tree`]: crate::model::Change::Tree

#[cfg(target_os = "linux")]
mod catch_up;
#[cfg(target_os = "linux")]
mod inotify;
#[cfg(target_os = "linux")]
mod shared;
#[cfg(target_os = "linux")]
mod translate;
#[cfg(target_os = "linux")]
mod tree;
#[cfg(target_os = "linux")]
mod watcher;
#[cfg(target_os = "linux")]
pub use self::catch_up::Since;
#[cfg(target_os = "linux")]
pub use self::inotify::InotifyMonitor as PlatformMonitor;
/// Elsewhere the watches exist before any full sync starts: there is nothing to catch up
/// with, and no moment to carry.
#[cfg(not(target_os = "linux"))]
pub type Since = ();

#[cfg(not(target_os = "linux"))]
mod notify_backend;
#[cfg(not(target_os = "linux"))]
pub use self::notify_backend::NotifyMonitor as PlatformMonitor;

use std::time::Duration;

/// How often directories that the watch limit left unwatched are rescanned (and watches
/// for them tried again).
pub const UNWATCHED_RESCAN: Duration = Duration::from_secs(30);
