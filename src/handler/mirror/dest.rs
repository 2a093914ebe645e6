//! Destination directories, reached safely: each is resolved once beneath a handle on the
//! destination root with no symlink followed, cached for the run, and made writable for us
//! when we are not root; something other than a directory where one is needed is replaced,
//! never followed. Entries are looked at with `lstat` in their directory's handle.

use std::io;
use std::ops::Bound;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::AtFlags;

use super::fail::{Fail, errno, io_err};
use super::paths::parent_of;
use super::{Handle, Run};
use crate::fs::{Attrs, Meta, open_dir, set_attrs_fd};
use crate::relpath;

impl Run<'_> {
    /// Forgets what we knew about the destination `rel` and everything below it (it was
    /// removed or moved).
    pub(super) fn forget(&mut self, rel: &Path) {
        self.dst.forget(rel);
        let doomed: Vec<PathBuf> = self
            .fresh
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .take_while(|p| relpath::is_self_or_ancestor(rel, p))
            .cloned()
            .collect();
        for p in doomed {
            self.fresh.remove(&p);
        }
    }

    /// When not root, a destination directory must be writable and searchable by us to
    /// change its entries; its real mode is restored by the final fixup.
    pub(super) fn make_writable(&mut self, rel: &Path, dir: &OwnedFd) -> Result<(), Fail> {
        if self.h.is_root {
            return Ok(());
        }
        let m = Meta::of(dir).map_err(io_err(self.h.dst(rel)))?;
        if m.mode() & 0o300 == 0o300 {
            return Ok(());
        }
        let attrs = Attrs {
            mode: Some((m.mode() | 0o700) & 0o7777),
            ..Attrs::default()
        };
        set_attrs_fd(dir.as_fd(), attrs).map_err(io_err(self.h.dst(rel)))?;
        self.touched.insert(rel.to_path_buf());
        Ok(())
    }

    /// The handle on the destination directory `dir`, a real directory all the way up.
    /// With `create`, missing directories are created and anything else in the way (a
    /// symlink included) is replaced, never followed; without it, `None` when that would be
    /// needed.
    pub(super) fn dst_dir(&mut self, dir: &Path, create: bool) -> Result<Option<Handle>, Fail> {
        if let Some(fd) = self.dst.cached(dir) {
            return Ok(Some(fd));
        }
        // The common case: all there, one resolution beneath the root.
        match self.dst.root().dir(dir) {
            Ok(fd) => {
                self.make_writable(dir, &fd)?;
                let fd = Rc::new(fd);
                self.dst.put(dir, fd.clone());
                return Ok(Some(fd));
            }
            Err(e)
                if matches!(
                    errno(&e),
                    libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EACCES
                ) => {}
            Err(e) => return Err(Fail::Io(self.h.dst(dir), e)),
        }
        let mut chain: Vec<&Path> = relpath::ancestors(dir).collect();
        chain.reverse();
        chain.push(dir);
        let mut cur = self
            .dst
            .get(Path::new(""))
            .map_err(io_err(self.h.destination.clone()))?;
        for p in chain.into_iter().skip(1) {
            if let Some(fd) = self.dst.cached(p) {
                cur = fd;
                continue;
            }
            let Some(fd) = self.dst_dir_in(&cur, p, create)? else {
                return Ok(None);
            };
            self.make_writable(p, &fd)?;
            let fd = Rc::new(fd);
            self.dst.put(p, fd.clone());
            cur = fd;
        }
        Ok(Some(cur))
    }

    /// [`Self::dst_dir`] with `create`.
    pub(super) fn need_dst_dir(&mut self, dir: &Path) -> Result<Handle, Fail> {
        match self.dst_dir(dir, true)? {
            Some(fd) => Ok(fd),
            None => Err(Fail::Io(
                self.h.dst(dir),
                io::Error::from_raw_os_error(libc::ENOTDIR),
            )),
        }
    }

    /// The directory `rel` in the directory handle `parent`: opened, or (with `create`)
    /// made, replacing whatever else is there.
    pub(super) fn dst_dir_in(
        &mut self,
        parent: &OwnedFd,
        rel: &Path,
        create: bool,
    ) -> Result<Option<OwnedFd>, Fail> {
        let name = relpath::name(rel);
        match open_dir(parent, name) {
            Ok(fd) => return Ok(Some(fd)),
            Err(_) if !create => return Ok(None),
            Err(e) if errno(&e) == libc::ENOENT => {}
            Err(e) if matches!(errno(&e), libc::ENOTDIR | libc::ELOOP) => {
                // Something else (maybe a symlink pointing anywhere) where we need a
                // directory: replace it, never follow it.
                rustix::fs::unlinkat(parent, name, AtFlags::empty())
                    .map_err(|e| Fail::Io(self.h.dst(rel), e.into()))?;
                self.touch_parent(rel);
            }
            Err(e) => return Err(Fail::Io(self.h.dst(rel), e)),
        }
        self.mkdir_in(parent, rel)?;
        open_dir(parent, name)
            .map(Some)
            .map_err(io_err(self.h.dst(rel)))
    }

    /// Creates the destination directory `rel`; mode, owner and times come from the source
    /// in the final fixup.
    pub(super) fn mkdir(&mut self, rel: &Path) -> Result<(), Fail> {
        let parent = self.need_dst_dir(parent_of(rel))?;
        self.mkdir_in(&parent, rel)
    }

    /// [`Self::mkdir`] in the directory handle `parent`.
    pub(super) fn mkdir_in(&mut self, parent: &OwnedFd, rel: &Path) -> Result<(), Fail> {
        let name = relpath::name(rel);
        match rustix::fs::mkdirat(parent, name, rustix::fs::Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                if self.track_fresh {
                    self.fresh.insert(rel.to_path_buf());
                }
            }
            Err(rustix::io::Errno::EXIST) => match Meta::at(parent, name) {
                Ok(m) if m.is_dir() => {}
                _ => {
                    return Err(Fail::Io(
                        self.h.dst(rel),
                        io::ErrorKind::AlreadyExists.into(),
                    ));
                }
            },
            Err(e) => return Err(Fail::Io(self.h.dst(rel), e.into())),
        }
        self.progressed = true;
        self.touch_parent(rel);
        self.touched.insert(rel.to_path_buf());
        Ok(())
    }

    /// `lstat` of the destination `rel` in its directory's handle `dir`; `None` if absent.
    pub(super) fn dst_meta(&self, dir: &OwnedFd, rel: &Path) -> Result<Option<Meta>, Fail> {
        match Meta::at(dir, relpath::name(rel)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Fail::Io(self.h.dst(rel), e)),
        }
    }
}
