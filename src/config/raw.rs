//! The configuration files as written, before defaults are applied and values are checked.
//!
//! Every field is optional here so that `[defaults]` and job files share one shape, and values
//! that are checked after parsing keep their span for `file:line:column` diagnostics.

use serde::Deserialize;
use toml::Spanned;

/// A job file (`jobs.d/NAME.toml`), and the `[defaults]` table of `clsync.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub source: Option<Spanned<String>>,
    pub destination: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
    pub delay: Option<Spanned<toml::Value>>,
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub rules: Option<Spanned<Vec<Spanned<String>>>>,
    pub rules_file: Option<Spanned<String>>,
    pub initial_sync: Option<Spanned<bool>>,
    pub workers: Option<Spanned<i64>>,
    pub big_file: Option<RawBigFile>,
    pub rsync: Option<RawRsync>,
}

/// `[big_file]`: files at or above `threshold` wait `delay` instead of the job's delay.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBigFile {
    pub threshold: Option<Spanned<toml::Value>>,
    pub delay: Option<Spanned<toml::Value>>,
}

/// `[rsync]`: which rsync to run and extra arguments for it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRsync {
    pub path: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `clsync.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMain {
    pub daemon: Option<RawDaemon>,
    pub defaults: Option<RawJob>,
}

/// `[daemon]` in `clsync.toml`: settings of the daemon itself, not of any job.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub log_level: Option<Spanned<String>>,
}
