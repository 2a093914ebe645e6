//! Deleting destination objects: trees are emptied with an explicit stack (they may be
//! nested thousands of levels deep) through directory handles, and what the filter excludes
//! is kept, with the directories that hold it.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::AtFlags;

use super::fail::{Fail, io_err};
use super::paths::join_rel;
use super::{Handle, Mirror, Run};
use crate::fs::{Dirs, Meta, list, open_dir};
use crate::relpath;

impl Run<'_> {
    /// Removes the destination object `rel` (whose lstat is `meta`; `parent` is its
    /// directory's handle) without following symlinks. Directories are removed recursively
    /// (with an explicit stack: trees may be nested thousands of levels deep), except for
    /// entries the filter excludes; returns false when something had to be left (the
    /// directories holding it stay then).
    pub(super) fn remove_tree(
        &mut self,
        parent: &Handle,
        rel: &Path,
        meta: &Meta,
    ) -> Result<bool, Fail> {
        if !meta.is_dir() {
            self.unlink(parent, rel)?;
            self.touch_parent(rel);
            return Ok(true);
        }
        self.forget(rel);
        let mut stack = vec![self.open_for_removal(parent, rel)?];
        loop {
            // Stopping halfway leaves a partly emptied directory, which the retry removes.
            self.check_deadline()?;
            let top = stack.last_mut().expect("non-empty removal stack");
            if let Some(name) = top.names.pop() {
                self.remove_next(&mut stack, &name)?;
                continue;
            }
            let done = stack.pop().expect("non-empty removal stack");
            let removed = self.remove_emptied(&mut stack, parent, done)?;
            match stack.last_mut() {
                Some(up) => up.complete &= removed,
                None => return Ok(removed),
            }
        }
    }

    /// Removes the entry `name` of the directory on top of `stack`, or pushes it when it is
    /// a directory to empty first.
    fn remove_next(&mut self, stack: &mut Vec<RemovalFrame>, name: &OsStr) -> Result<(), Fail> {
        let top = stack.last_mut().expect("non-empty removal stack");
        let dir = top.handle(&self.dst, self.h)?;
        let child = join_rel(&top.rel, name);
        match self.remove_entry(&dir, &child) {
            Ok(Removal::Done) => {}
            Ok(Removal::Kept) => top.complete = false,
            Ok(Removal::Descend(frame)) => {
                stack.push(frame);
                let n = stack.len();
                if n > FRAME_HANDLES {
                    // Deep trees: only the nearest directories keep their handles.
                    stack[n - 1 - FRAME_HANDLES].fd = None;
                }
            }
            Err(f) => {
                top.complete = false;
                self.note(f);
            }
        }
        Ok(())
    }

    /// Removes the directory of `done`, popped from `stack` once everything in it was looked
    /// at, if it could be emptied (`parent`: the directory of the removal's top). A failure
    /// there fails the removal; one deeper is noted and keeps the directory.
    fn remove_emptied(
        &mut self,
        stack: &mut [RemovalFrame],
        parent: &Handle,
        done: RemovalFrame,
    ) -> Result<bool, Fail> {
        let dir = match stack.last_mut() {
            Some(up) => up.handle(&self.dst, self.h)?,
            None => parent.clone(),
        };
        let mut removed = done.complete;
        if removed {
            match rustix::fs::unlinkat(&*dir, relpath::name(&done.rel), AtFlags::REMOVEDIR) {
                Ok(()) => self.progressed = true,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) if stack.is_empty() => {
                    return Err(Fail::Io(self.h.dst(&done.rel), e.into()));
                }
                Err(e) => {
                    removed = false;
                    self.note(Fail::Io(self.h.dst(&done.rel), e.into()));
                }
            }
        }
        if removed {
            self.touch_parent(&done.rel);
        } else {
            // Kept (holds excluded entries): its mode and times are restored at the end.
            self.touched.insert(done.rel);
        }
        Ok(removed)
    }

    /// Unlinks the non-directory `rel` in its directory's handle `dir` (already gone: done).
    fn unlink(&mut self, dir: &Handle, rel: &Path) -> Result<(), Fail> {
        match rustix::fs::unlinkat(&**dir, relpath::name(rel), AtFlags::empty()) {
            Ok(()) => self.progressed = true,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(Fail::Io(self.h.dst(rel), e.into())),
        }
        Ok(())
    }

    /// One entry of a directory being removed: unlinked, kept (excluded), or a directory to
    /// empty first.
    pub(super) fn remove_entry(&mut self, dir: &Handle, child: &Path) -> Result<Removal, Fail> {
        let Some(m) = self.dst_meta(dir, child)? else {
            return Ok(Removal::Done);
        };
        if !self.h.deletable(child, m.kind()) {
            return Ok(Removal::Kept);
        }
        if m.is_dir() {
            return Ok(Removal::Descend(self.open_for_removal(dir, child)?));
        }
        self.unlink(dir, child)?;
        Ok(Removal::Done)
    }

    pub(super) fn open_for_removal(
        &mut self,
        parent: &OwnedFd,
        rel: &Path,
    ) -> Result<RemovalFrame, Fail> {
        let fd = open_dir(parent, relpath::name(rel)).map_err(io_err(self.h.dst(rel)))?;
        self.make_writable(rel, &fd)?;
        let names = list(&fd).map_err(io_err(self.h.dst(rel)))?;
        Ok(RemovalFrame {
            rel: rel.to_path_buf(),
            fd: Some(Rc::new(fd)),
            names: names.into_iter().map(|(n, _)| n).collect(),
            complete: true,
        })
    }

    /// Removes a destination directory that is in the way of a non-directory.
    pub(super) fn clear_dir(
        &mut self,
        parent: &Handle,
        rel: &Path,
        meta: &Meta,
    ) -> Result<(), Fail> {
        if self.remove_tree(parent, rel, meta)? {
            Ok(())
        } else {
            Err(Fail::Io(
                self.h.dst(rel),
                io::Error::new(
                    io::ErrorKind::DirectoryNotEmpty,
                    "directory in the way holds excluded or undeletable entries",
                ),
            ))
        }
    }
}

/// Directories of a removal that keep their handles (the deepest ones); those above are
/// resolved again when the removal climbs back to them.
pub(super) const FRAME_HANDLES: usize = 64;

/// A destination directory being emptied by [`Run::remove_tree`].
pub(super) struct RemovalFrame {
    rel: PathBuf,
    /// Its handle (`None`: dropped, see [`FRAME_HANDLES`]).
    fd: Option<Handle>,
    /// Entries not looked at yet.
    names: Vec<OsString>,
    /// Everything looked at so far could be removed.
    complete: bool,
}

impl RemovalFrame {
    /// The directory's handle, resolved again beneath the root if it was dropped.
    pub(super) fn handle(&mut self, dst: &Dirs, h: &Mirror) -> Result<Handle, Fail> {
        if let Some(fd) = &self.fd {
            return Ok(fd.clone());
        }
        let fd = Rc::new(
            dst.root()
                .dir(&self.rel)
                .map_err(io_err(h.dst(&self.rel)))?,
        );
        self.fd = Some(fd.clone());
        Ok(fd)
    }
}

/// What [`Run::remove_entry`] did.
pub(super) enum Removal {
    Done,
    /// Excluded: left in place (so is its directory).
    Kept,
    /// A directory: empty it first.
    Descend(RemovalFrame),
}
