//! Path filtering: rsync-style exclude globs and clsync-style regex rule lines.
//!
//! STUB: the API below is fixed; the implementation is being written.

use std::path::Path;

/// What kind of filesystem object a path is (from `lstat`, or guessed from an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, fifos, sockets, devices.
    Other,
}

/// The compiled filter of one job.
#[derive(Debug, Default)]
pub struct Filter {}

impl Filter {
    /// A filter that lets everything through.
    pub fn allow_all() -> Filter {
        Filter {}
    }

    /// True when `rel` itself (not looking at its ancestors) is to be synced.
    pub fn allows(&self, _rel: &Path, _kind: Kind) -> bool {
        true
    }

    /// True when the directory `rel` is to be descended into and watched.
    pub fn allows_dir_walk(&self, _rel: &Path) -> bool {
        true
    }
}
