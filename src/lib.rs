//! clsync: a live file-sync daemon.
//!
//! The library holds everything the `clsync` binary runs, so that the pieces can be tested
//! on their own: configuration loading ([`config`]), path filtering ([`rules`]), the
//! filesystem monitor ([`monitor`]), change coalescing ([`queue`]), the sync handlers
//! ([`handler`]), a job's lifecycle ([`job`]) and the daemon that owns the jobs
//! ([`supervisor`]); [`progress`] measures a source for `clsync sync`'s progress display.

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
