//! Which objects a batch syncs: each entry, then (for recursive ones) every directory below
//! it, walked with an explicit stack; the kind of the source object decides the step, and
//! what has vanished from the source is deleted at the destination.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::path::Path;

use super::Run;
use super::fail::{Fail, io_err, vanished};
use super::paths::{check_rel, join_rel, parent_of};
use crate::fs::list;
use crate::model::Kind;

/// How often one path is re-examined when the source keeps changing type under us.
pub(super) const MAX_ATTEMPTS: usize = 4;

impl Run<'_> {
    pub(super) fn entry(&mut self, rel: &Path, recursive: bool) {
        if let Err(e) = check_rel(rel) {
            self.note(e);
            return;
        }
        if let Err(f) = self.sync_path(rel, recursive, true, None) {
            self.note(f);
        }
        while let Some(dir) = self.pending.pop() {
            if self.expired() {
                self.pending.clear();
                return;
            }
            if !self.pending.is_empty() && self.h.workers > 1 {
                // Two directories or more to walk: their subtrees are disjoint.
                self.pending.push(dir);
                self.walk_parallel(rel);
                return;
            }
            self.walk_step(&dir);
        }
    }

    /// Walks the directory `dir` (one step: its subdirectories are pushed on `pending`),
    /// noting what fails.
    pub(super) fn walk_step(&mut self, dir: &Path) {
        match self.walk(dir) {
            Ok(()) => {}
            Err(Fail::Changed) => {
                // The source directory vanished or was replaced while we got to it: sync
                // whatever is there now; if it is a directory again, its content was not
                // walked, so fail the batch (it is retried).
                let res = self.sync_path(dir, false, false, None);
                if let Err(f) = res {
                    self.note(f);
                } else if self.src_meta(dir).is_ok_and(|m| m.is_dir()) {
                    self.note(Fail::Io(
                        self.h.src(dir),
                        io::Error::other("directory replaced while being synced"),
                    ));
                }
            }
            Err(f) => self.note(f),
        }
    }

    /// Makes destination `rel` equal to source `rel` (the subtree too with `recursive`).
    /// `top`: a batch entry (its ancestors are checked against the filter), not a walk child.
    /// `new`: the destination is known to hold nothing at `rel` (a child of a directory
    /// this run created, see [`Self::walk`]): no `lstat` there, and new objects are created
    /// directly under their final names. It holds the `d_type` the source listing gave.
    pub(super) fn sync_path(
        &mut self,
        rel: &Path,
        recursive: bool,
        top: bool,
        new: Option<u8>,
    ) -> Result<(), Fail> {
        let absent = new.is_some();
        for attempt in 0..MAX_ATTEMPTS {
            // A new regular file (as the listing says): no lstat of the source either. The
            // file is opened with O_NOFOLLOW | O_NONBLOCK and its fstat decides (anything
            // but a regular file is `Changed` and looked at again with lstat); the filter
            // sees the kind it would get from lstat.
            if attempt == 0 && !top && new == Some(libc::DT_REG) && self.h.allows(rel, Kind::File) {
                match self.sync_file(rel, None, false, true) {
                    Err(Fail::Changed) => continue,
                    other => return other,
                }
            }
            let meta = match self.src_meta(rel) {
                Ok(m) => m,
                // (A directory on the way that became a symlink: the path is gone as such.)
                Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => {
                    return self.delete(rel, top);
                }
                Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
            };
            let kind = meta.kind();
            let allowed = if top {
                self.h.allowed_path(rel, kind)
            } else {
                self.h.allows(rel, kind)
            };
            if !allowed {
                return Ok(());
            }
            let res = if meta.is_dir() {
                self.sync_dir(rel, recursive, absent)
            } else if meta.is_file() {
                // An event-driven entry says the content changed, even if a rewrite kept the
                // size and put the mtime back; only walks use the quick check.
                self.sync_file(rel, Some(&meta), top && self.force_copy, absent)
            } else if meta.is_symlink() {
                self.sync_symlink(rel, &meta)
            } else {
                self.sync_special(rel, &meta)
            };
            match res {
                Err(Fail::Changed) => continue,
                other => return other,
            }
        }
        Err(Fail::Io(
            self.h.src(rel),
            io::Error::other("source keeps changing while being synced"),
        ))
    }

    /// The source `rel` does not exist (anymore): delete it at the destination.
    pub(super) fn delete(&mut self, rel: &Path, top: bool) -> Result<(), Fail> {
        if !self.deletes && !rel.as_os_str().is_empty() {
            return Ok(());
        }
        if rel.as_os_str().is_empty() {
            return Err(Fail::Io(
                self.h.source.clone(),
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "source root vanished; not touching the destination",
                ),
            ));
        }
        // When a destination ancestor is not a real directory, there is nothing below it to
        // delete (and a symlink there must not be followed).
        let Some(dir) = self.dst_dir(parent_of(rel), false)? else {
            return Ok(());
        };
        let Some(m) = self.dst_meta(&dir, rel)? else {
            return Ok(());
        };
        let kind = m.kind();
        if self.h.deletable(rel, kind) && (!top || self.h.allowed_path(rel, kind)) {
            self.remove_tree(&dir, rel, &m)?;
        }
        Ok(())
    }

    pub(super) fn sync_dir(
        &mut self,
        rel: &Path,
        recursive: bool,
        absent: bool,
    ) -> Result<(), Fail> {
        // mkdir(2) never follows or replaces anything: when something unexpected is in the
        // way after all, the normal path below looks at it.
        let made = absent && self.mkdir(rel).is_ok();
        if !made {
            self.need_dst_dir(rel)?;
        }
        self.synced.insert(rel.to_path_buf());
        if recursive && (rel.as_os_str().is_empty() || self.h.filter.allows_dir_walk(rel)) {
            // Walked by `entry` with an explicit stack (trees may be very deep).
            self.pending.push(rel.to_path_buf());
        }
        Ok(())
    }

    /// Makes the destination directory `rel` hold what the source directory holds,
    /// recursively.
    pub(super) fn walk(&mut self, rel: &Path) -> Result<(), Fail> {
        let listed = self.src.get(rel).and_then(|d| list(&*d));
        let mut names = match listed {
            Ok(v) => v,
            Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Fail::Changed);
            }
            Err(e) => return Err(Fail::Io(self.h.src(rel), e)),
        };
        names.sort();
        // A directory this run created after the rename replays (`fresh`) is still empty
        // when it is walked: a directory is walked right after the recursive entry or walk
        // step that created it, with only its siblings (and their subtrees) synced in
        // between; batch entries below it sort after the recursive entry that walks it and
        // are covered by it; removals drop it from `fresh`. Nobody else writes there: it was
        // created moments ago with mode 0700 (until the final fixup), so only its owner
        // (us) and root can, and a destination written by others while we sync is outside
        // what any run can keep equal anyway. So its listing is skipped and its children
        // are known to be absent. Even if that assumption broke, nothing unsafe follows:
        // creations use O_EXCL / mkdir(2), which never replace or follow anything (an
        // object found in the way sends the child down the normal path), and the next run
        // removes what this one did not see.
        let absent = self.fresh.remove(rel);
        let dir = self.need_dst_dir(rel)?;
        let dnames = if absent {
            Vec::new()
        } else {
            list(&*dir).map_err(io_err(self.h.dst(rel)))?
        };

        let present: HashSet<&OsStr> = names.iter().map(|(n, _)| n.as_os_str()).collect();
        let deletes = self.deletes;
        for (name, _) in dnames
            .iter()
            .filter(|_| deletes)
            .filter(|(n, _)| !present.contains(n.as_os_str()))
        {
            self.check_deadline()?;
            let child = join_rel(rel, name);
            let res = match self.dst_meta(&dir, &child) {
                Ok(Some(m)) if self.h.deletable(&child, m.kind()) => {
                    self.remove_tree(&dir, &child, &m).map(|_| ())
                }
                Ok(_) => Ok(()),
                Err(f) => Err(f),
            };
            if let Err(f) = res {
                self.note(f);
            }
        }
        for (name, dtype) in &names {
            self.check_deadline()?;
            let child = join_rel(rel, name);
            let new = absent.then_some(*dtype);
            if let Err(f) = self.sync_path(&child, true, false, new) {
                self.note(f);
            }
        }
        Ok(())
    }
}
