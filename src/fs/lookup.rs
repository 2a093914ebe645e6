//! [`Lookup`]: read-only questions about a job's tree (what is this path, what is in this
//! directory), answered beneath its root.
//!
//! The checks around a handler run (confinement, missing entries, big files, the loop
//! guard, rule excludes, `explain`) look at paths that anyone who writes the source may be
//! swapping for symlinks. Answered here, a symlink in a leading component is never
//! followed (it fails with `ELOOP`/`ENOTDIR`), and directory handles are shared by the
//! paths of one batch, so a lookup costs one `fstatat` once its directory is held. A root
//! that cannot be opened makes every lookup fail the way opening it did.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::{Dirs, Meta, Root, list};
use crate::model::Kind;
use crate::relpath;

/// Lookups beneath one root, for one batch (handles are held until it is dropped).
#[derive(Debug)]
pub struct Lookup {
    dirs: Result<Dirs, i32>,
}

impl Lookup {
    pub fn new(root: &Path) -> Lookup {
        let dirs = Root::open(root)
            .map(Dirs::new)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        Lookup { dirs }
    }

    fn dirs(&mut self) -> io::Result<&mut Dirs> {
        self.dirs
            .as_mut()
            .map_err(|&mut e| io::Error::from_raw_os_error(e))
    }

    /// `lstat` of `rel` (the root when empty), no symlink followed on the way.
    pub fn lstat(&mut self, rel: &Path) -> io::Result<Meta> {
        let dirs = self.dirs()?;
        let parent = relpath::parent(rel).unwrap_or(Path::new(""));
        let dir = dirs.get(parent)?;
        Meta::at(&*dir, relpath::name(rel))
    }

    /// The entries of the directory `rel` with their `d_type`s.
    pub fn list(&mut self, rel: &Path) -> io::Result<Vec<(OsString, u8)>> {
        let dir = self.dirs()?.get(rel)?;
        list(&*dir)
    }

    /// The entries of the directory `rel` as source-relative paths, each with the kind the
    /// filter sees (an `lstat` only where the filesystem gives no `d_type`).
    pub fn children(&mut self, rel: &Path) -> io::Result<Vec<(PathBuf, Kind)>> {
        let mut out = Vec::new();
        for (name, dtype) in self.list(rel)? {
            let child = relpath::join(rel, Path::new(&name));
            let kind = match dtype {
                libc::DT_DIR => Kind::Dir,
                libc::DT_REG => Kind::File,
                libc::DT_UNKNOWN => self.lstat(&child).map_or(Kind::Other, |m| m.kind()),
                _ => Kind::Other,
            };
            out.push((child, kind));
        }
        Ok(out)
    }
}

/// One `lstat` of `rel` beneath `root` (see [`Lookup`]).
pub fn lstat_beneath(root: &Path, rel: &Path) -> io::Result<Meta> {
    Lookup::new(root).lstat(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symlinked_directories_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "x").unwrap();
        fs::create_dir(t.path().join("out")).unwrap();
        fs::write(t.path().join("out/f"), "secret").unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), root.join("l")).unwrap();
        let mut l = Lookup::new(&root);
        assert!(l.lstat(Path::new("d/f")).unwrap().is_file());
        assert!(l.lstat(Path::new("l")).unwrap().is_symlink());
        assert!(l.lstat(Path::new("")).unwrap().is_dir());
        assert!(l.lstat(Path::new("l/f")).is_err());
        assert!(l.list(Path::new("l")).is_err());
        assert_eq!(l.list(Path::new("d")).unwrap().len(), 1);
        let e = lstat_beneath(&t.path().join("missing"), Path::new("f")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
