//! How a step of a run fails ([`Fail`]): the source changed under us (look again), the
//! deadline passed (stop), or an I/O error (noted, the run goes on with the next path).

use std::io;
use std::path::PathBuf;

use crate::handler::HandlerError;

/// An internal failure.
pub(super) enum Fail {
    /// The source object vanished or changed type while we were looking at it: look again.
    Changed,
    /// The run's deadline passed: stop (the run reports [`HandlerError::Timeout`]).
    Timeout,
    Io(PathBuf, io::Error),
}

impl From<Fail> for HandlerError {
    fn from(f: Fail) -> HandlerError {
        match f {
            Fail::Io(path, source) => HandlerError::Io { path, source },
            Fail::Changed => HandlerError::Other("source changed during sync".into()),
            Fail::Timeout => HandlerError::Other("mirror: timeout".into()),
        }
    }
}

/// [`io_err`] for [`set_attrs_at`]: an object swapped since its `lstat` is `Changed` (looked
/// at again).
pub(super) fn attr_err(path: PathBuf) -> impl FnOnce(io::Error) -> Fail {
    move |e| {
        if e.raw_os_error() == Some(libc::ESTALE) {
            Fail::Changed
        } else {
            Fail::Io(path, e)
        }
    }
}

pub(super) fn io_err(path: PathBuf) -> impl FnOnce(io::Error) -> Fail {
    move |e| Fail::Io(path, e)
}

pub(super) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// "The source is not there (anymore)".
pub(super) fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}
