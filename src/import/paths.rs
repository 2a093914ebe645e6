//! Paths of an imported configuration as a job file writes them: absolute, lexically clean,
//! and UTF-8 text.
//!
//! Relative paths of the imported program are relative to the directory it ran in; the job
//! file holds absolute ones so that it does not depend on the daemon's working directory.

use std::path::{Path, PathBuf};

/// `p` made absolute against `cwd`, with `.` and `..` cleaned lexically (as
/// [`crate::config::clean_path`] cleans configured paths).
pub(super) fn absolute(cwd: &Path, p: &str) -> PathBuf {
    crate::config::clean_path(&cwd.join(p))
}

/// `p` as the text a job file holds; `None` when it is not UTF-8.
pub(super) fn text(p: &Path) -> Option<String> {
    p.to_str().map(str::to_string)
}
