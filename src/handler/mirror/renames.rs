//! Replaying a rename inside the destination as one `rename(2)`, when both sides are safe
//! and allowed; otherwise the caller syncs both sides from the source.

use std::path::Path;

use super::Run;
use super::fail::Fail;
use super::paths::{check_rel, parent_of};
use crate::handler::HandlerError;
use crate::model::Rename;
use crate::relpath;

impl Run<'_> {
    /// Replays one rename inside the destination. False when it could not be (the caller
    /// then syncs both sides from the source).
    pub(super) fn rename(&mut self, r: &Rename) -> bool {
        let (from, to) = (r.from.as_path(), r.to.as_path());
        if check_rel(from).is_err()
            || check_rel(to).is_err()
            || from.as_os_str().is_empty()
            || to.as_os_str().is_empty()
            || relpath::is_self_or_ancestor(from, to)
            || relpath::is_self_or_ancestor(to, from)
        {
            return false;
        }
        match self.try_rename(from, to) {
            Ok(done) => done,
            Err(f) => {
                let e = HandlerError::from(f);
                tracing::debug!("mirror: rename {from:?} -> {to:?} not replayed: {e}");
                false
            }
        }
    }

    pub(super) fn try_rename(&mut self, from: &Path, to: &Path) -> Result<bool, Fail> {
        let Some(fdir) = self.dst_dir(parent_of(from), false)? else {
            return Ok(false);
        };
        let Some(fm) = self.dst_meta(&fdir, from)? else {
            return Ok(false);
        };
        let kind = fm.kind();
        if !self.h.allowed_path(from, kind) || !self.h.allowed_path(to, kind) {
            return Ok(false);
        }
        let tdir = self.need_dst_dir(parent_of(to))?;
        if let Err(e) = rustix::fs::renameat(&*fdir, relpath::name(from), &*tdir, relpath::name(to))
        {
            tracing::debug!("mirror: rename {from:?} -> {to:?}: {e}");
            return Ok(false);
        }
        self.progressed = true;
        self.forget(from);
        self.forget(to);
        self.touch_parent(from);
        self.touch_parent(to);
        Ok(true)
    }
}
