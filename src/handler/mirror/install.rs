//! New destination objects: made under a temporary name (or, in a directory this run created,
//! under the final one) and guarded by [`TempGuard`], so that a run that stops midway never
//! leaves a half-written object under a real name; then renamed into place.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::AtFlags;

use super::fail::{Fail, io_err};
use super::{Handle, Run};
use crate::fs::Meta;
use crate::relpath;

impl Run<'_> {
    /// Creates a fresh object under a temporary name in the destination directory `dir`
    /// (`rel`'s): `make` gets the directory and the name.
    pub(super) fn temp<T>(
        &self,
        dir: &Handle,
        rel: &Path,
        mut make: impl FnMut(BorrowedFd, &OsStr) -> io::Result<T>,
    ) -> Result<(TempGuard, T), Fail> {
        for _ in 0..64 {
            let name = OsString::from(self.h.tmp_name());
            match make(dir.as_fd(), &name) {
                Ok(t) => return Ok((TempGuard::new(dir, name, false), t)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Fail::Io(self.h.dst(rel), e)),
            }
        }
        Err(Fail::Io(
            self.h.dst(rel),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    /// Creates a fresh object directly under its final name `rel` in `dir`, which is known
    /// to hold nothing of that name (a directory this run created, see [`Self::walk`]);
    /// `None` when something is there after all (`make` must fail with `AlreadyExists`
    /// then: O_EXCL, mkdir, symlink, mknod never replace or follow an existing name).
    ///
    /// Why no temporary name is needed here: temp+rename exists so that a reader never
    /// sees a half-written object *replace a good one*. Here there is nothing to replace,
    /// and the directory is still mode 0700 (until the final fixup), so nobody but us and
    /// root can look into it while the object is being written. If the run stops midway
    /// (error, timeout) the guard removes the object; if the process dies, the leftover has
    /// the current time as its mtime (times are set last), so the next run's quick check
    /// copies it again, like any other differing file.
    ///
    /// The guard holds the final name; [`Self::install`] then only disarms it.
    pub(super) fn create_final<T>(
        &self,
        dir: &Handle,
        rel: &Path,
        make: impl FnOnce(BorrowedFd, &OsStr) -> io::Result<T>,
    ) -> Result<Option<(TempGuard, T)>, Fail> {
        let name = relpath::name(rel);
        match make(dir.as_fd(), name) {
            Ok(t) => Ok(Some((TempGuard::new(dir, name.to_os_string(), true), t))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Fail::Io(self.h.dst(rel), e)),
        }
    }

    /// Moves a finished temporary object over the destination `rel` (whose previous lstat is
    /// `old`) in the same directory: a directory in the way is removed first, anything else
    /// is replaced atomically.
    pub(super) fn install(
        &mut self,
        tmp: TempGuard,
        rel: &Path,
        old: Option<&Meta>,
    ) -> Result<(), Fail> {
        if !tmp.in_place {
            if let Some(d) = old.filter(|d| d.is_dir()) {
                self.clear_dir(&tmp.dir, rel, d)?;
            }
            rustix::fs::renameat(&*tmp.dir, &tmp.name, &*tmp.dir, relpath::name(rel))
                .map_err(|e| Fail::Io(self.h.dst(rel), e.into()))?;
        }
        tmp.disarm();
        self.progressed = true;
        self.touch_parent(rel);
        Ok(())
    }

    /// Owner, mode and times of a symlink or special file we just created under a
    /// temporary name: through a handle on that very object (someone who can write the
    /// directory could have put another in its place).
    pub(super) fn set_new_attrs(
        &self,
        tmp: &TempGuard,
        rel: &Path,
        src: &Meta,
    ) -> Result<(), Fail> {
        let made = Meta::at(&*tmp.dir, &tmp.name).map_err(io_err(self.h.dst(rel)))?;
        self.fix_attrs(rel, &tmp.dir, &tmp.name, &made, src, true)
    }
}

/// A new object under its name in a destination directory: removed when dropped, unless
/// disarmed. `in_place`: the name is the object's final name ([`Run::create_final`]), not
/// a temporary one.
pub(super) struct TempGuard {
    dir: Handle,
    name: OsString,
    armed: bool,
    in_place: bool,
}

impl TempGuard {
    pub(super) fn new(dir: &Handle, name: OsString, in_place: bool) -> TempGuard {
        TempGuard {
            dir: dir.clone(),
            name,
            armed: true,
            in_place,
        }
    }

    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(&*self.dir, &self.name, AtFlags::empty());
        }
    }
}
