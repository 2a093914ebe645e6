//! Source objects, read through handles beneath the source root: a directory swapped for a
//! symlink on the way fails (`ELOOP`, `ENOTDIR`) instead of leading out of the source.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use super::Run;
use super::paths::parent_of;
use crate::fs::Meta;
use crate::relpath;

impl Run<'_> {
    /// Opens the source object `rel` in its directory's handle, beneath the source root: a
    /// symlink anywhere on the way (a directory swapped for one) fails with `ELOOP` or
    /// `ENOTDIR` instead of leading out of the source.
    pub(super) fn open_source(&mut self, rel: &Path, flags: OFlags) -> io::Result<fs::File> {
        let dir = self.src.get(parent_of(rel))?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*dir, relpath::name(rel), flags, rustix::fs::Mode::empty())?;
        Ok(fs::File::from(fd))
    }

    /// `lstat` of the source object `rel`, in its directory's handle beneath the source root
    /// (a directory swapped for a symlink on the way fails instead of describing what lies
    /// outside).
    pub(super) fn src_meta(&mut self, rel: &Path) -> io::Result<Meta> {
        let dir = self.src.get(parent_of(rel))?;
        Meta::at(&*dir, relpath::name(rel))
    }
}

/// The target of the symlink `name` in `dir`.
pub(super) fn read_link_at(dir: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}
