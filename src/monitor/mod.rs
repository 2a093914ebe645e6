//! Filesystem monitors: turn kernel notifications into source-relative changes.
//!
//! A monitor never decides *when* to sync; it only reports what changed, as [`Change`]s, to
//! the job's queue. When it cannot be sure what changed (queue overflow, a watch that could not
//! be added) it reports [`Change::Rescan`], never nothing.

pub mod tree;

#[cfg(target_os = "linux")]
pub mod inotify;
#[cfg(target_os = "linux")]
pub mod shared;
#[cfg(target_os = "linux")]
pub use self::inotify::InotifyMonitor as PlatformMonitor;

#[cfg(not(target_os = "linux"))]
pub mod notify_backend;
#[cfg(not(target_os = "linux"))]
pub use self::notify_backend::NotifyMonitor as PlatformMonitor;

use std::time::Duration;

/// How often directories that the watch limit left unwatched are rescanned (and watches
/// for them tried again).
pub const UNWATCHED_RESCAN: Duration = Duration::from_secs(30);
