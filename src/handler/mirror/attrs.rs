//! Owner, mode and times: set on an object through a handle on the object that was looked
//! at, and given to every directory the run touched at its end, deepest first, so that
//! directory mtimes match the source as with `rsync -a`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::Run;
use super::fail::{Fail, attr_err, vanished};
use super::paths::parent_of;
use crate::fs::{Attrs, Meta, set_attrs_at};
use crate::relpath;

impl Run<'_> {
    /// Brings owner, permission bits and (with `times`) atime/mtime of the existing
    /// destination object `name` in `dir` (lstat `d`, not a symlink unless it is one at the
    /// source too; `rel` names it in messages) to those of the source object `s`, through a
    /// handle on the object `d` describes ([`set_attrs_at`]): an object swapped since is
    /// `Changed`, one with other names is refused.
    pub(super) fn fix_attrs(
        &self,
        rel: &Path,
        dir: &OwnedFd,
        name: &OsStr,
        d: &Meta,
        s: &Meta,
        times: bool,
    ) -> Result<(), Fail> {
        let set = |attrs| set_attrs_at(dir.as_fd(), name, d, attrs);
        let mut owner = None;
        if self.h.is_root {
            if d.uid() != s.uid() || d.gid() != s.gid() {
                owner = Some((Some(s.uid()), Some(s.gid())));
            }
        } else if d.gid() != s.gid() {
            // Best effort: we may not be in that group.
            let group = Attrs {
                owner: Some((None, Some(s.gid()))),
                ..Attrs::default()
            };
            if set(group).is_ok() {
                owner = Some((None, None));
            }
        }
        // chown may clear set-id bits, so the mode goes after it.
        let chowned = owner.is_some();
        let mode = (!d.is_symlink() && (chowned || d.mode() & 0o7777 != s.mode() & 0o7777))
            .then_some(s.mode() & 0o7777);
        let times = (times && d.mtime() != s.mtime()).then(|| (s.atime(), s.mtime()));
        if !chowned && mode.is_none() && times.is_none() {
            return Ok(());
        }
        let attrs = Attrs {
            owner: owner.filter(|o| o.0.is_some() || o.1.is_some()),
            mode,
            times,
        };
        set(attrs).map_err(attr_err(self.h.dst(rel)))
    }

    /// Gives every touched destination directory the mode, owner and times of its source
    /// directory, deepest first (descendants sort after their ancestors).
    /// After a timeout only the directories the run changed are fixed (the work stays
    /// proportional to what the run did).
    pub(super) fn fixup_dirs(&mut self) {
        let mut dirs = std::mem::take(&mut self.touched);
        let synced = std::mem::take(&mut self.synced);
        if !self.timed_out {
            dirs.extend(synced);
        }
        for rel in dirs.iter().rev() {
            if let Err(f) = self.fixup_dir(rel) {
                self.note(f);
            }
        }
    }

    pub(super) fn fixup_dir(&mut self, rel: &Path) -> Result<(), Fail> {
        let smeta = match self.src_meta(rel) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Ok(()),
            Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        let Some(dir) = self.dst_dir(parent_of(rel), false)? else {
            return Ok(());
        };
        match self.dst_meta(&dir, rel)? {
            Some(d) if d.is_dir() => {
                self.fix_attrs(rel, &dir, relpath::name(rel), &d, &smeta, true)
            }
            _ => Ok(()),
        }
    }
}
