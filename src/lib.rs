//! clsync: a live file-sync daemon.
//!
//! The library holds everything the `clsync` binary runs, so that the pieces can be tested
//! on their own. The modules, in the order a change travels through them:
//!
//! - [`model`]: the shared vocabulary (`Change`, `Entry`, `Batch`, `Rename`, `Kind`); every
//!   layer imports it, it imports no layer.
//! - [`fs`]: the file-system layer: handles on a job's roots, resolution beneath them with no
//!   symlink followed, typed listings.
//! - [`config`]: loading and validating the configuration directory into typed jobs.
//! - [`rules`]: which paths a job syncs, watches and walks (globs, rules, the filter).
//! - [`monitor`]: kernel notifications turned into source-relative [`model::Change`]s.
//! - [`queue`]: changes coalesced per path until the next batch.
//! - [`handler`]: a batch turned into a destination equal to the source (rsync, mirror,
//!   command modes).
//! - [`job`]: one job's lifecycle: watch, batch, run the handler, retry.
//! - [`supervisor`]: the daemon that owns the jobs, reloads them and reports their status.
//! - [`control`]: the control socket the command line talks to.
//! - [`metrics`] and [`logging`]: what the daemon tells the outside world.
//! - [`sandbox`]: Landlock confinement of each handler run.
//! - [`import`]: another daemon's configuration (lsyncd, the C clsync) turned into ours.
//! - [`progress`]: a source measured for `clsync sync`'s progress display.
//!
//! Small helpers beside them: [`program`] (which file a configured program is),
//! [`relpath`] (source-relative paths as bytes), [`waker`] (a pipe that wakes a polling
//! thread), [`longpath`] (paths longer than `PATH_MAX` for plain `std::fs` calls, used by
//! tests).

mod atomic_file;
pub mod config;
pub mod control;
pub mod fs;
pub mod handler;
pub mod import;
pub mod job;
pub mod logging;
pub mod longpath;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod program;
pub mod progress;
pub mod queue;
pub mod relpath;
pub mod rules;
pub mod sandbox;
pub mod supervisor;
pub mod waker;
