//! Source-relative paths as the run handles them: joined, split, and checked (nothing may
//! escape the destination).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::fail::Fail;
use crate::relpath;

pub(super) fn join_rel(rel: &Path, name: &OsStr) -> PathBuf {
    if rel.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        rel.join(name)
    }
}

pub(super) fn parent_of(rel: &Path) -> &Path {
    relpath::parent(rel).unwrap_or(Path::new(""))
}

/// Batch paths must be normalized and relative: no leading `/`, no empty, `.` or `..`
/// components (nothing may escape the destination).
pub(super) fn check_rel(rel: &Path) -> Result<(), Fail> {
    let b = rel.as_os_str().as_bytes();
    if b.is_empty() {
        return Ok(());
    }
    if b.split(|&c| c == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(Fail::Io(
            rel.to_path_buf(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a normalized source-relative path",
            ),
        ));
    }
    Ok(())
}
