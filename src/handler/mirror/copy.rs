//! Making one non-directory object equal: regular files (rsync's quick check, then a copy in
//! chunks that checks the deadline), symlinks, and fifos, sockets and devices. Each object
//! made equal, and each chunk copied, is counted in the engine's
//! [`Tally`](crate::handler::tally::Tally).

use std::ffi::OsStr;
use std::fs::{self, Permissions};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::OFlags;

use super::Run;
use super::fail::{Fail, io_err, vanished};
use super::paths::parent_of;
use super::source::read_link_at;
use crate::fs::{Meta, mknod_at};
use crate::relpath;

/// Bytes copied between two deadline checks: big enough that a copy costs no more system
/// calls than it has to (one `copy_file_range` per chunk), small enough that a timeout is
/// noticed within a fraction of a second on a local disk.
pub(super) const COPY_CHUNK: u64 = 32 << 20;

impl Run<'_> {
    /// `meta`: the source's lstat (`None`: not taken; only with `absent`, where there is no
    /// destination object to quick-check against).
    pub(super) fn sync_file(
        &mut self,
        rel: &Path,
        meta: Option<&Meta>,
        force: bool,
        absent: bool,
    ) -> Result<(), Fail> {
        let dir = self.need_dst_dir(parent_of(rel))?;
        let name = relpath::name(rel);
        let dmeta = if absent {
            None
        } else {
            self.dst_meta(&dir, rel)?
        };
        if !force
            && let Some(d) = &dmeta
            && let Some(meta) = meta
            && d.is_file()
            && d.nlink() == 1
            && d.len() == meta.len()
            && d.mtime() == meta.mtime()
        {
            // (A file with other names is copied anew: its other name may be anywhere.)
            self.h.tally.current(meta.len());
            return self.tallied(self.fix_attrs(rel, &dir, name, d, meta, false));
        }

        let (sfile, smeta) = self.open_source_file(rel)?;
        let create = |dir: BorrowedFd, name: &OsStr| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            let mode = rustix::fs::Mode::from_raw_mode(0o600);
            Ok(fs::File::from(rustix::fs::openat(
                dir,
                name,
                flags | OFlags::CLOEXEC,
                mode,
            )?))
        };
        let (tmp, mut tfile) = if absent {
            match self.create_final(&dir, rel, create)? {
                Some(made) => made,
                // Something is there after all: the normal path looks at it.
                None => return self.sync_file(rel, Some(&smeta), force, false),
            }
        } else {
            self.temp(&dir, rel, create)?
        };
        let shown = self.h.dst(rel);
        self.copy_content(&sfile, &mut tfile, smeta.len(), &shown)?;
        self.set_file_attrs(&tfile, &smeta, &shown)?;
        drop(tfile);
        let installed = self.install(tmp, rel, dmeta.as_ref());
        self.tallied(installed)
    }

    /// Counts an object made equal ([`Tally::file`](crate::handler::tally::Tally::file))
    /// when `res` says it is.
    fn tallied(&self, res: Result<(), Fail>) -> Result<(), Fail> {
        if res.is_ok() {
            self.h.tally.file();
        }
        res
    }

    /// Opens the source file `rel` to be copied, with the attributes that go with its
    /// content; anything but a regular file (it changed since its `lstat`) is `Changed`.
    fn open_source_file(&mut self, rel: &Path) -> Result<(fs::File, Meta), Fail> {
        let sfile = match self.open_source(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
        {
            Ok(f) => f,
            Err(e)
                if vanished(&e) || matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) =>
            {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        // The attributes that go with the content we copy. Taken before copying, so that a
        // file modified during the copy gets an older mtime and is copied again next time.
        let smeta = Meta::of(&sfile).map_err(io_err(self.h.src(rel)))?;
        if !smeta.is_file() {
            return Err(Fail::Changed);
        }
        Ok((sfile, smeta))
    }

    /// Gives the copy `tfile` the owner (root; else the group, if we may), mode and times of
    /// the source file (`smeta`); `shown` names it in messages.
    fn set_file_attrs(&self, tfile: &fs::File, smeta: &Meta, shown: &Path) -> Result<(), Fail> {
        if self.h.is_root {
            std::os::unix::fs::fchown(tfile, Some(smeta.uid()), Some(smeta.gid()))
                .map_err(|e| Fail::Io(shown.to_path_buf(), e))?;
        } else if nix::unistd::getegid().as_raw() != smeta.gid() {
            let _ = std::os::unix::fs::fchown(tfile, None, Some(smeta.gid()));
        }
        tfile
            .set_permissions(Permissions::from_mode(smeta.mode() & 0o7777))
            .map_err(|e| Fail::Io(shown.to_path_buf(), e))?;
        filetime::set_file_handle_times(tfile, Some(smeta.atime()), Some(smeta.mtime()))
            .map_err(|e| Fail::Io(shown.to_path_buf(), e))?;
        Ok(())
    }

    /// Copies the first `len` bytes of `from` (at its start; `len` is its size as `fstat`
    /// saw it before the copy, like rsync sends the size it stat'ed) to `to` in chunks of
    /// [`COPY_CHUNK`] bytes, checking the deadline between chunks. Each chunk is one
    /// `copy_file_range` call that the kernel may turn into a reflink or a server-side copy;
    /// knowing the length saves the extra calls of a generic copy (two `fstat`s and a final
    /// call that returns 0). A file that shrank stops the copy early; one that grew (or was
    /// rewritten) after its `fstat` has a newer size or mtime than the copy gets, so the
    /// quick check of the next run copies it again. Where `copy_file_range` is not usable
    /// (another filesystem type, an old kernel, ...) the rest goes through `io::copy`
    /// (which falls back to `sendfile` or read/write) until end of file.
    pub(super) fn copy_content(
        &mut self,
        from: &fs::File,
        to: &mut fs::File,
        len: u64,
        dp: &Path,
    ) -> Result<(), Fail> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            let mut left = len;
            while left > 0 {
                let want = left.min(COPY_CHUNK) as usize;
                // SAFETY: two open descriptors; NULL offsets use (and advance) the files'
                // own offsets, which the fallback below continues from.
                let n = unsafe {
                    libc::copy_file_range(
                        from.as_raw_fd(),
                        std::ptr::null_mut(),
                        to.as_raw_fd(),
                        std::ptr::null_mut(),
                        want,
                        0,
                    )
                };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // Unsupported here (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, ...) or a real
                    // error, which the generic copy meets again and reports.
                    break;
                }
                if n == 0 {
                    return Ok(());
                }
                left -= n as u64;
                self.h.tally.copied(n as u64);
                if left > 0 {
                    self.check_deadline()?;
                }
            }
            if left == 0 {
                return Ok(());
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = len;
        loop {
            let n = io::copy(&mut io::Read::take(from, COPY_CHUNK), to)
                .map_err(io_err(dp.to_path_buf()))?;
            self.h.tally.copied(n);
            if n < COPY_CHUNK {
                return Ok(());
            }
            self.check_deadline()?;
        }
    }

    pub(super) fn sync_symlink(&mut self, rel: &Path, meta: &Meta) -> Result<(), Fail> {
        let target = match self
            .src
            .get(parent_of(rel))
            .and_then(|d| read_link_at(&d, relpath::name(rel)))
        {
            Ok(t) => t,
            Err(e)
                if vanished(&e) || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ELOOP)) =>
            {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        let dir = self.need_dst_dir(parent_of(rel))?;
        let name = relpath::name(rel);
        let dmeta = self.dst_meta(&dir, rel)?;
        if let Some(d) = &dmeta
            && d.is_symlink()
            && read_link_at(&dir, name).map_err(io_err(self.h.dst(rel)))? == target
        {
            return self.tallied(self.fix_attrs(rel, &dir, name, d, meta, true));
        }
        let (tmp, ()) = self.temp(&dir, rel, |dir, name| {
            Ok(rustix::fs::symlinkat(target.as_os_str(), dir, name)?)
        })?;
        self.set_new_attrs(&tmp, rel, meta)?;
        let installed = self.install(tmp, rel, dmeta.as_ref());
        self.tallied(installed)
    }

    /// Fifos, sockets and (root only) devices.
    pub(super) fn sync_special(&mut self, rel: &Path, meta: &Meta) -> Result<(), Fail> {
        let is_dev = meta.is_device();
        if is_dev && !self.h.is_root {
            self.warnings.push(format!(
                "{}: not creating a device file (not running as root)",
                self.h.dst(rel).display()
            ));
            return Ok(());
        }
        let dir = self.need_dst_dir(parent_of(rel))?;
        let dmeta = self.dst_meta(&dir, rel)?;
        if let Some(d) = &dmeta
            && d.format() == meta.format()
            && (!is_dev || d.rdev() == meta.rdev())
        {
            let fixed = self.fix_attrs(rel, &dir, relpath::name(rel), d, meta, true);
            return self.tallied(fixed);
        }
        let (tmp, ()) = self.temp(&dir, rel, |dir, name| {
            mknod_at(dir, name, meta.format(), 0o600, meta.rdev())
        })?;
        self.set_new_attrs(&tmp, rel, meta)?;
        let installed = self.install(tmp, rel, dmeta.as_ref());
        self.tallied(installed)
    }
}
