//! [`Dirs`]: the directory handles one handler run holds beneath a root.
//!
//! A run resolves a directory once and then works *in the handle*: every lookup, creation,
//! removal and rename of an entry is an `*at` call on it, so a directory swapped for a
//! symlink (or for another directory) after it was resolved is never followed; the run keeps
//! writing into the directory it checked, wherever its owner has moved it. It also spares
//! the kernel a path walk per operation. The cache is small and bounded (a run over a large
//! tree must not run out of descriptors); a handle dropped from it is resolved again,
//! beneath the root, on its next use. Whoever removes or renames a directory calls
//! [`Dirs::forget`] for it.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::Root;
use crate::relpath;

/// Handles kept at most; past it the cache starts over (a walk holds a handful at a time).
const CACHE_MAX: usize = 64;

/// A root and the directory handles resolved beneath it in this run.
#[derive(Debug)]
pub struct Dirs {
    root: Root,
    cache: HashMap<PathBuf, Rc<OwnedFd>>,
}

impl Dirs {
    pub fn new(root: Root) -> Dirs {
        Dirs {
            root,
            cache: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The handle on the directory `rel` (the root when empty): held already, or resolved
    /// beneath the root (`ELOOP`/`ENOTDIR` when a component is a symlink or not a
    /// directory, `ENOENT` when one is missing).
    pub fn get(&mut self, rel: &Path) -> io::Result<Rc<OwnedFd>> {
        if let Some(fd) = self.cache.get(rel) {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.root.dir(rel)?);
        self.put(rel, fd.clone());
        Ok(fd)
    }

    /// The handle on `rel` if one is held.
    pub fn cached(&self, rel: &Path) -> Option<Rc<OwnedFd>> {
        self.cache.get(rel).cloned()
    }

    /// Holds `fd` as the handle on the directory `rel`.
    pub fn put(&mut self, rel: &Path, fd: Rc<OwnedFd>) {
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(rel.to_path_buf(), fd);
    }

    /// Drops the handles on `rel` and everything below it (it was removed or moved).
    pub fn forget(&mut self, rel: &Path) {
        self.cache
            .retain(|held, _| !relpath::is_self_or_ancestor(rel, held));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_held_handle_outlives_a_swap_and_forget_drops_it() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::create_dir(t.path().join("elsewhere")).unwrap();
        let mut dirs = Dirs::new(Root::open(t.path()).unwrap());
        let b = dirs.get(Path::new("a/b")).unwrap();
        // a/b becomes a symlink: the held handle still names the real directory.
        fs::rename(t.path().join("a/b"), t.path().join("a/moved")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), t.path().join("a/b")).unwrap();
        let again = dirs.get(Path::new("a/b")).unwrap();
        assert!(Rc::ptr_eq(&b, &again));
        dirs.forget(Path::new("a"));
        let e = dirs.get(Path::new("a/b")).unwrap_err();
        assert!(matches!(
            e.raw_os_error(),
            Some(libc::ELOOP | libc::ENOTDIR)
        ));
        assert!(dirs.get(Path::new("a/moved")).is_ok());
    }
}
