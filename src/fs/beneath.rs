//! [`Root`]: a handle on a job's source or destination, and resolution beneath it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// Longest piece of a relative path resolved in one system call (the kernel's `PATH_MAX`
/// is 4,096 bytes with the NUL).
const PIECE_MAX: usize = 4000;

/// Flags of a directory handle that is only a place to resolve from.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_HANDLE: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_HANDLE: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// A handle on the root of a job's source or destination. The root's own path comes from
/// the configuration (trusted, may be a symlink); everything below it is resolved beneath
/// the handle.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// The components of a source-relative path (no `.`, `..` or empty components: a path
/// from the monitor never has them, and one that does is refused).
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let bytes = rel.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    bytes
        .split(|&b| b == b'/')
        .map(|c| match c {
            b"" | b"." | b".." => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            c => Ok(OsStr::from_bytes(c)),
        })
        .collect()
}

/// Refuses what [`components`] refuses, without collecting the components.
fn check(rel: &Path) -> io::Result<()> {
    let ok = rel
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .all(|c| !matches!(c, b"" | b"." | b".."));
    if ok {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// `comps` joined with `/`.
fn join(comps: &[&OsStr]) -> PathBuf {
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

impl Root {
    /// Opens the root directory `path`.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, DIR_HANDLE, Mode::empty())?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the same root directory (for another thread of the same run: the
    /// root is not opened again by its path, which may have been changed to lead elsewhere).
    pub fn try_clone(&self) -> io::Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Opens `rel` beneath the root with `flags` (`O_NOFOLLOW` and close-on-exec are
    /// always added); `rel` empty is the root itself. No component may be a symlink; the
    /// last one may be one only with `O_PATH` (the handle is then the link itself).
    pub fn open_at(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        if !rel.as_os_str().is_empty() && rel.as_os_str().len() <= PIECE_MAX {
            // One system call: the kernel resolves every component beneath the root.
            check(rel)?;
            return Ok(open_one(&self.fd, rel, flags, mode)?);
        }
        let comps = components(rel)?;
        let Some((leaf, dirs)) = comps.split_last() else {
            return Ok(rustix::fs::openat(
                &self.fd,
                ".",
                flags | OFlags::CLOEXEC,
                mode,
            )?);
        };
        let parent = self.dir_of(dirs)?;
        Ok(open_one(
            parent.as_ref().map_or(self.fd.as_fd(), |p| p.as_fd()),
            Path::new(leaf),
            flags,
            mode,
        )?)
    }

    /// A handle on the directory `rel` (the root when empty).
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let comps = components(rel)?;
        match self.dir_of(&comps)? {
            Some(fd) => Ok(fd),
            None => Ok(rustix::fs::openat(
                &self.fd,
                ".",
                DIR_HANDLE,
                Mode::empty(),
            )?),
        }
    }

    /// A handle on the parent directory of `rel`, and `rel`'s last component.
    pub fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let comps = components(rel)?;
        let Some((leaf, dirs)) = comps.split_last() else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let parent = match self.dir_of(dirs)? {
            Some(fd) => fd,
            None => rustix::fs::openat(&self.fd, ".", DIR_HANDLE, Mode::empty())?,
        };
        Ok((parent, leaf))
    }

    /// `lstat` of `rel` beneath the root (a symlink leaf is described, not followed).
    pub fn lstat(&self, rel: &Path) -> io::Result<rustix::fs::Stat> {
        let (parent, leaf) = self.parent(rel)?;
        Ok(rustix::fs::statat(
            &parent,
            leaf,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// `lstat` of `rel` beneath the root, as `std` metadata (through an `O_PATH` handle:
    /// no component followed, the leaf described as it is).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn metadata(&self, rel: &Path) -> io::Result<std::fs::Metadata> {
        let fd = self.open_at(rel, OFlags::PATH, Mode::empty())?;
        std::fs::File::from(fd).metadata()
    }

    /// `lstat` of `rel` below the root (by path: no `O_PATH` here).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn metadata(&self, rel: &Path) -> io::Result<std::fs::Metadata> {
        std::fs::symlink_metadata(crate::relpath::join(&self.path, rel))
    }

    /// The target of the symlink `rel` beneath the root.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let fd = self.open_at(rel, OFlags::PATH, Mode::empty())?;
        let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
        let bytes = target.into_bytes();
        Ok(PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
        ))
    }

    /// The target of the symlink `rel` below the root (by path: no `O_PATH` here).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(crate::relpath::join(&self.path, rel))
    }

    /// Creates the directories of `rel` that are missing (mode `mode`, as umask allows)
    /// and returns a handle on the last. An existing component that is not a directory
    /// (a symlink included) fails with `ENOTDIR` or `ELOOP`: it is never followed.
    pub fn mkdir_all(&self, rel: &Path, mode: Mode) -> io::Result<OwnedFd> {
        let mut cur = rustix::fs::openat(&self.fd, ".", DIR_HANDLE, Mode::empty())?;
        for c in components(rel)? {
            cur = match open_one(&cur, Path::new(c), DIR_HANDLE, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, c, mode) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_one(&cur, Path::new(c), DIR_HANDLE, Mode::empty())?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(cur)
    }

    /// Renames `from` to `to`, both beneath the root, through handles on their parents.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fp, fl) = self.parent(from)?;
        let (tp, tl) = self.parent(to)?;
        Ok(rustix::fs::renameat(&fp, fl, &tp, tl)?)
    }

    /// The directory `dirs` (joined) as a handle; `None` for the root itself.
    fn dir_of(&self, dirs: &[&OsStr]) -> io::Result<Option<OwnedFd>> {
        if dirs.is_empty() {
            return Ok(None);
        }
        // Pieces short enough for one system call each, cut between components.
        let mut cur: Option<OwnedFd> = None;
        let mut start = 0;
        while start < dirs.len() {
            let mut end = start;
            let mut len = 0;
            while end < dirs.len() && (end == start || len + 1 + dirs[end].len() <= PIECE_MAX) {
                len += dirs[end].len() + 1;
                end += 1;
            }
            let piece = join(&dirs[start..end]);
            let at = cur.as_ref().map_or(self.fd.as_fd(), |c| c.as_fd());
            cur = Some(open_one(at, &piece, DIR_HANDLE, Mode::empty())?);
            start = end;
        }
        Ok(cur)
    }
}

/// A handle on the directory `name` (one component) in the directory `dir`; a symlink
/// there fails (`ELOOP` or `ENOTDIR`), it is never followed.
pub fn open_dir(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        DIR_HANDLE | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Creates the fifo, socket or device `name` (one component, never an existing name) in
/// the directory `dir`: `format` is the `S_IF*` type, `perm` the permission bits.
pub fn mknod_at(dir: impl AsFd, name: &OsStr, format: u32, perm: u32, rdev: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the types of `mode_t`
    // and `dev_t` differ between platforms, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    let r = unsafe {
        libc::mknodat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            (format | perm) as libc::mode_t,
            rdev as libc::dev_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens `rel` (short, relative) beneath `at` without following any symlink.
fn open_one<Fd: AsFd>(
    at: Fd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, rustix::io::Errno> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::ResolveFlags;
        use std::sync::atomic::{AtomicBool, Ordering};
        /// Cleared when the kernel (or a seccomp filter) refuses `openat2`.
        static OPENAT2: AtomicBool = AtomicBool::new(true);
        if OPENAT2.load(Ordering::Relaxed) {
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            for _ in 0..4 {
                match rustix::fs::openat2(at.as_fd(), rel, flags, mode, how) {
                    Err(rustix::io::Errno::AGAIN) => continue,
                    Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                        OPENAT2.store(false, Ordering::Relaxed);
                        break;
                    }
                    r => return r,
                }
            }
        }
    }
    walk(at, rel, flags, mode)
}

/// `open_one` without `openat2`: one component at a time, each `O_NOFOLLOW`.
fn walk<Fd: AsFd>(
    at: Fd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, rustix::io::Errno> {
    let comps = components(rel).map_err(|_| rustix::io::Errno::INVAL)?;
    let Some((leaf, dirs)) = comps.split_last() else {
        return rustix::fs::openat(at, ".", flags, mode);
    };
    let mut cur: Option<OwnedFd> = None;
    for d in dirs {
        let from = cur.as_ref().map_or(at.as_fd(), |c| c.as_fd());
        cur = Some(rustix::fs::openat(
            from,
            *d,
            DIR_HANDLE | OFlags::NOFOLLOW,
            Mode::empty(),
        )?);
    }
    let from = cur.as_ref().map_or(at.as_fd(), |c| c.as_fd());
    rustix::fs::openat(from, *leaf, flags, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/f"), "x").unwrap();
        fs::create_dir(t.path().join("outside")).unwrap();
        fs::write(t.path().join("outside/secret"), "s").unwrap();
        symlink(t.path().join("outside"), r.join("abs")).unwrap();
        symlink("../outside", r.join("rel")).unwrap();
        symlink("b", r.join("a/inner")).unwrap();
        let root = Root::open(&r).unwrap();
        (t, root)
    }

    fn errno(e: io::Error) -> i32 {
        e.raw_os_error().unwrap_or(0)
    }

    #[test]
    fn no_symlink_is_followed_in_any_component() {
        let (_t, root) = tree();
        assert!(root.lstat(Path::new("a/b/f")).is_ok());
        for p in ["abs/secret", "rel/secret", "a/inner/f"] {
            let e = root.lstat(Path::new(p)).unwrap_err();
            assert!(
                [libc::ELOOP, libc::ENOTDIR, libc::EXDEV].contains(&errno(e)),
                "{p}"
            );
            let e = root
                .open_at(Path::new(p), OFlags::RDONLY, Mode::empty())
                .unwrap_err();
            assert!([libc::ELOOP, libc::ENOTDIR].contains(&errno(e)), "{p}");
        }
        // A symlink leaf is described by lstat, and not opened for reading.
        assert!(root.lstat(Path::new("abs")).unwrap().st_mode & libc::S_IFMT == libc::S_IFLNK);
        assert!(
            root.open_at(Path::new("abs"), OFlags::RDONLY, Mode::empty())
                .is_err()
        );
        for bad in ["../outside/secret", "a/../../outside", "a//b", "./a"] {
            assert!(root.lstat(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn mkdir_all_and_rename_stay_beneath() {
        let (t, root) = tree();
        root.mkdir_all(Path::new("x/y/z"), Mode::from_raw_mode(0o755))
            .unwrap();
        assert!(t.path().join("root/x/y/z").is_dir());
        let e = root
            .mkdir_all(Path::new("abs/new"), Mode::from_raw_mode(0o755))
            .unwrap_err();
        assert!([libc::ELOOP, libc::ENOTDIR].contains(&errno(e)));
        assert!(!t.path().join("outside/new").exists());
        root.rename(Path::new("a/b/f"), Path::new("x/y/z/f"))
            .unwrap();
        assert!(t.path().join("root/x/y/z/f").is_file());
        assert!(
            root.rename(Path::new("x/y/z/f"), Path::new("abs/f"))
                .is_err()
        );
        assert!(
            root.rename(Path::new("rel/secret"), Path::new("stolen"))
                .is_err()
        );
        assert!(t.path().join("outside/secret").exists());
    }

    #[test]
    fn paths_longer_than_path_max_resolve_in_pieces() {
        let (t, root) = tree();
        let mut rel = PathBuf::from("long");
        for i in 0..25 {
            rel.push(format!("{i:03}{}", "d".repeat(197)));
        }
        assert!(rel.as_os_str().len() > 4096);
        root.mkdir_all(&rel, Mode::from_raw_mode(0o755)).unwrap();
        let f = rel.join("f");
        let (parent, leaf) = root.parent(&f).unwrap();
        rustix::fs::openat(
            &parent,
            leaf,
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        assert!(root.lstat(&f).is_ok());
        drop(t);
    }

    #[test]
    fn the_walk_alone_refuses_symlinks_too() {
        let (_t, root) = tree();
        for p in ["abs/secret", "rel/secret", "a/inner/f"] {
            assert!(
                walk(&root.fd, Path::new(p), OFlags::RDONLY, Mode::empty()).is_err(),
                "{p}"
            );
        }
        assert!(walk(&root.fd, Path::new("a/b/f"), OFlags::RDONLY, Mode::empty()).is_ok());
    }
}
