//! Watching a directory by its handle.
//!
//! `inotify_add_watch` takes a path, not a descriptor. Naming a handle by its
//! `/proc/self/fd/N` link costs a lookup through procfs for every directory, most of a
//! large walk's time. So a thread that walks gives itself its own working directory
//! (`unshare(CLONE_FS)`: other threads and the processes they start keep theirs), makes
//! the handle its working directory and watches `"."`: no name is looked up, and the watch
//! is on the very directory that was opened (no symlink followed) and is then listed.
//! Where `unshare` is refused (a seccomp filter), the `/proc/self/fd` link is used.
//!
//! The working directory is reset to `/` when the walk ends ([`Cwd`]'s drop): a handle kept
//! as working directory would pin a deleted directory, holding back its `IN_DELETE_SELF`.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

thread_local! {
    /// Whether this thread has its own working directory: unknown, yes, no.
    static PRIVATE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// This thread's own working directory, while a walk uses it.
pub struct Cwd {
    private: bool,
    moved: bool,
}

impl Cwd {
    /// Gives the calling thread its own working directory (once per thread).
    pub fn new() -> Cwd {
        let private = PRIVATE.with(|p| {
            *p.get().get_or_insert_with(|| {
                // SAFETY: unshare(CLONE_FS) only detaches this thread's cwd/root/umask from
                // the other threads'; no memory is involved.
                unsafe { libc::unshare(libc::CLONE_FS) == 0 }
            })
        });
        Cwd {
            private,
            moved: false,
        }
    }

    /// The path that names the directory `dir` for `inotify_add_watch`, and whether that
    /// path must be followed (a `/proc` link) or is `"."` itself.
    pub fn name(&mut self, dir: &OwnedFd) -> io::Result<(PathBuf, bool)> {
        if self.private {
            // SAFETY: fchdir on a descriptor we hold; it changes only this thread's cwd.
            if unsafe { libc::fchdir(dir.as_raw_fd()) } == 0 {
                self.moved = true;
                return Ok((PathBuf::from("."), false));
            }
            return Err(io::Error::last_os_error());
        }
        Ok((
            Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).to_path_buf(),
            true,
        ))
    }
}

impl Drop for Cwd {
    fn drop(&mut self) {
        if self.moved {
            // SAFETY: chdir to a constant path, this thread's cwd only.
            unsafe { libc::chdir(c"/".as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walks_cwd_is_its_own_and_is_reset() {
        let t = tempfile::tempdir().unwrap();
        let before = std::env::current_dir().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let dir: OwnedFd = std::fs::File::open(t.path()).unwrap().into();
                let mut cwd = Cwd::new();
                let (name, _) = cwd.name(&dir).unwrap();
                assert_eq!(name, Path::new("."), "unshare(CLONE_FS) works here");
                assert_eq!(
                    std::fs::canonicalize(".").unwrap(),
                    std::fs::canonicalize(t.path()).unwrap()
                );
                drop(cwd);
                assert_eq!(std::env::current_dir().unwrap(), Path::new("/"));
            })
            .join()
            .unwrap();
        });
        assert_eq!(
            std::env::current_dir().unwrap(),
            before,
            "other threads keep theirs"
        );
    }
}
