//! The configuration: a directory read into typed job and daemon settings.
//!
//! `DIR/clsync.toml` (optional) holds `[daemon]` settings and `[defaults]` that every job
//! inherits key by key; `DIR/jobs.d/*.toml` holds one job per file, named after the file stem.
//! Loading never stops at the first problem: every error of every file is collected as a
//! [`Diagnostic`] at its `file:line:column`, so that `clsync check` and a reload can show
//! them all at once.
//!
//! The data path: `raw` (the files as written, every value with its span) → `resolve`
//! (defaults applied, each key checked, the filter compiled) → `model` ([`JobConfig`],
//! what the other layers read) → `fan_out` (one job per destination). `load` drives it for a
//! directory; `daemon`, `observability` and `socket` are the daemon's own settings. This
//! module imports no handler, job or supervisor: they import it.

mod command;
mod daemon;
mod delete;
pub mod diag;
mod fan_out;
mod identity;
mod job_filter;
mod load;
mod model;
pub mod observability;
mod paths;
mod placeholder;
mod raw;
mod resolve;
mod socket;
pub mod units;

use std::time::Duration;

pub use command::{CommandKind, CommandOptions};
pub use daemon::{DEFAULT_STATUS_FILE_MODE, DaemonConfig, check_log_level, parse_status_file_mode};
pub use delete::Delete;
pub use diag::{Diagnostic, Severity, SourceFile};
pub use job_filter::JobFilter;
pub use load::{Loaded, load_dir, load_single, load_single_as};
pub use model::{
    BigFile, Destination, HandlerOptions, JobConfig, Mode, RcloneOptions, RetryOptions, RunAs,
    SandboxOptions, SshOptions,
};
pub use paths::{clean as clean_path, is_remote, split_remote};
pub use placeholder::Placeholder;
pub use socket::default_socket;

/// Where the daemon looks for its configuration when neither `--config-dir` nor
/// `CLSYNC_CONFIG_DIR` says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/clsync";

/// The default collection delay: short enough to "keep up within seconds", long enough to
/// fold an editor's save or a `tar x` into one batch.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod test_support {
    //! What the loading tests of every part share.
    use std::fs;
    use std::path::Path;

    /// Writes `text` to `dir/rel`, creating the directories on the way.
    pub fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}
