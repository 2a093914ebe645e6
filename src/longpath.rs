//! Paths longer than the kernel's `PATH_MAX` (4,096 bytes).
//!
//! A tree may hold files whose full path is longer than any path-taking system call accepts
//! (`mkdir -p` builds them one level at a time). Such a path is still reachable through a
//! descriptor: [`LongPath::new`] opens the leading directories one by one with `openat` and
//! names the rest relative to the last one as `/proc/self/fd/N/REST`, a short path every
//! system call and `std::fs` function accepts (in this process: the descriptor is
//! close-on-exec). Short paths are left as they are, so the common case costs nothing.
//!
//! The directories opened on the way are opened with `O_NOFOLLOW`: a symlink in the middle
//! of a long path is not followed (it stops the path, like a missing directory).
//!
//! The daemon itself reaches such paths through handles ([`crate::fs`]); this is for code
//! that wants plain `std::fs` calls on a deep tree: the tests that build and compare them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Paths up to this length are used as they are. `PATH_MAX` is 4,096 bytes including the
/// NUL; the margin lets a caller append one more component (255 bytes) to the result.
const DIRECT_MAX: usize = 3800;

/// Longest remainder named relative to an opened directory.
#[cfg(target_os = "linux")]
const TAIL_MAX: usize = 3000;

/// A path usable in system calls, whatever its length. Keeps the descriptor that its
/// short form refers to open for as long as it lives.
#[derive(Debug)]
pub struct LongPath {
    path: PathBuf,
    /// The directory `path` is named relative to (`/proc/self/fd/N/...`): held, never read.
    #[cfg(target_os = "linux")]
    #[allow(dead_code)]
    anchor: Option<std::os::fd::OwnedFd>,
}

impl LongPath {
    /// `base/rel` (`base` itself when `rel` is empty). `base` is short and may be a symlink
    /// (a job's root); `rel` is a normalized relative path.
    ///
    /// Never fails: when a leading directory of a long path cannot be opened, the result is
    /// a path on which every system call fails the same way (`ENOENT` for a missing
    /// directory, `ENOTDIR` for a file or a symlink, `ENAMETOOLONG` otherwise), so callers
    /// keep handling errors where they did.
    pub fn new(base: &Path, rel: &Path) -> LongPath {
        let rel_b = rel.as_os_str().as_bytes();
        let direct = || {
            if rel_b.is_empty() {
                base.to_path_buf()
            } else {
                base.join(rel)
            }
        };
        if base.as_os_str().len() + 1 + rel_b.len() <= DIRECT_MAX {
            return LongPath::plain(direct());
        }
        #[cfg(target_os = "linux")]
        {
            linux::resolve(base, rel_b).unwrap_or_else(|| LongPath::plain(direct()))
        }
        #[cfg(not(target_os = "linux"))]
        {
            LongPath::plain(direct())
        }
    }

    fn plain(path: PathBuf) -> LongPath {
        LongPath {
            path,
            #[cfg(target_os = "linux")]
            anchor: None,
        }
    }
}

impl std::ops::Deref for LongPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for LongPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for LongPath {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{LongPath, TAIL_MAX};
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    fn open_at(dir: Option<&OwnedFd>, name: &[u8], nofollow: bool) -> Result<OwnedFd, i32> {
        let c = CString::new(name).map_err(|_| libc::EINVAL)?;
        let flags = libc::O_PATH
            | libc::O_DIRECTORY
            | libc::O_CLOEXEC
            | if nofollow { libc::O_NOFOLLOW } else { 0 };
        let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
        // SAFETY: a NUL-terminated name and a directory descriptor we own (or AT_FDCWD).
        let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
        if fd < 0 {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            // SAFETY: a fresh descriptor that nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    }

    fn proc_path(fd: &OwnedFd, tail: &[u8]) -> PathBuf {
        let mut p = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
        if !tail.is_empty() {
            p.push(b'/');
            p.extend_from_slice(tail);
        }
        PathBuf::from(OsStr::from_bytes(&p))
    }

    /// `None` when the base itself cannot be opened (the direct path then fails as usual).
    pub(super) fn resolve(base: &Path, rel: &[u8]) -> Option<LongPath> {
        let comps: Vec<&[u8]> = rel
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        // Open components 0..k, so that comps[k..] joined is at most TAIL_MAX bytes.
        let mut tail_len = rel.len();
        let mut k = 0;
        while tail_len > TAIL_MAX && k + 1 < comps.len() {
            tail_len = tail_len.saturating_sub(comps[k].len() + 1);
            k += 1;
        }
        let mut fd = open_at(None, base.as_os_str().as_bytes(), false).ok()?;
        for c in &comps[..k] {
            match open_at(Some(&fd), c, true) {
                Ok(next) => fd = next,
                Err(errno) => {
                    let path = match errno {
                        // ENOENT for every call, including the ones that create (the
                        // parent does not exist), and for good: not "the missing directory
                        // and one more name", which names a real place (`DIR/x`) as soon as
                        // the directory is created, and whose `parent()` can be created.
                        libc::ENOENT => PathBuf::from("/proc/self/fd/-1/x"),
                        // A file or a symlink where a directory should be.
                        libc::ENOTDIR | libc::ELOOP => PathBuf::from("/dev/null/x"),
                        // EACCES and the like: the direct path fails the same way (or with
                        // ENAMETOOLONG, still an error that is reported).
                        _ => return None,
                    };
                    return Some(LongPath {
                        path,
                        anchor: Some(fd),
                    });
                }
            }
        }
        let tail = comps[k..].join(&b'/');
        Some(LongPath {
            path: proc_path(&fd, &tail),
            anchor: Some(fd),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs;

    /// Creates `depth` directories of 200-byte names below `root` (by descriptor, as no
    /// path to the deepest one fits in a system call) and returns the relative path.
    fn deep_dirs(root: &Path, depth: usize) -> PathBuf {
        let mut rel = PathBuf::new();
        for i in 0..depth {
            rel.push(format!("{i:03}{}", "d".repeat(197)));
            let p = LongPath::new(root, &rel);
            fs::create_dir(&p).unwrap();
        }
        rel
    }

    #[test]
    fn short_paths_are_untouched() {
        let p = LongPath::new(Path::new("/tmp"), Path::new("a/b"));
        assert_eq!(&*p, Path::new("/tmp/a/b"));
        assert!(p.anchor.is_none());
        let p = LongPath::new(Path::new("/tmp"), Path::new(""));
        assert_eq!(&*p, Path::new("/tmp"));
    }

    #[test]
    fn long_paths_work_in_every_call() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep_dirs(t.path(), 30); // ~6,000 bytes
        assert!(rel.as_os_str().len() > 4096);
        let file = rel.join("f\nname");
        let p = LongPath::new(t.path(), &file);
        assert!(p.anchor.is_some());
        assert!(p.as_os_str().len() < 4096);
        fs::write(&p, b"data").unwrap();
        assert_eq!(fs::read(LongPath::new(t.path(), &file)).unwrap(), b"data");
        assert_eq!(
            fs::read_dir(LongPath::new(t.path(), &rel)).unwrap().count(),
            1
        );
        // The plain path is refused by the kernel.
        assert_eq!(
            fs::metadata(t.path().join(&file))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
    }

    #[test]
    fn failures_keep_their_meaning() {
        let t = tempfile::tempdir().unwrap();
        let rel = deep_dirs(t.path(), 25);
        // A missing directory in the middle: ENOENT, even for mkdir.
        let mut missing = rel.clone();
        let first = rel.components().next().unwrap().as_os_str().to_owned();
        missing = PathBuf::from("nothere").join(missing.strip_prefix(&first).unwrap());
        let p = LongPath::new(t.path(), &missing.join("leaf"));
        assert_eq!(
            fs::create_dir(&p).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        // ... and stays so: it does not name a real place once the directory exists, nor
        // can its parent be created.
        assert!(fs::create_dir_all(p.parent().unwrap()).is_err());
        fs::create_dir(t.path().join("nothere")).unwrap();
        assert_eq!(
            fs::create_dir(&p).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        // A symlink in the middle is not followed.
        std::os::unix::fs::symlink(t.path().join(&first), t.path().join("link")).unwrap();
        let via_link = PathBuf::from("link").join(rel.strip_prefix(&first).unwrap());
        let p = LongPath::new(t.path(), &via_link.join("leaf"));
        assert_eq!(
            fs::create_dir(&p).unwrap_err().raw_os_error(),
            Some(libc::ENOTDIR)
        );
    }
}
