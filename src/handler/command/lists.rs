//! List files: where they are written (`[command] lists_dir`, checked on every run, or a
//! private `0700` directory) and how (`0600`, a unique name, created and removed relative
//! to the directory's open descriptor, owned by the job's `user` when it has one).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::CommandHandler;
use crate::config::RunAs;
use crate::handler::HandlerError;

impl CommandHandler {
    /// The lists directory, open: `[command] lists_dir` (checked on every call, see
    /// [`open_lists_dir`]) or the job's private directory (created on first use, owned by
    /// the job's `user` when it has one).
    pub(super) fn lists_dir(&self) -> Result<Arc<ListsDir>, HandlerError> {
        let who = self.rsync.options.run_as.as_ref();
        if let Some(dir) = &self.options.lists_dir {
            return open_lists_dir(dir, who).map(Arc::new);
        }
        let mut guard = self.private_dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, dir)) = guard.as_ref() {
            return Ok(dir.clone());
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("clsync-{}.", self.job))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| HandlerError::Io {
                path: std::env::temp_dir(),
                source: e,
            })?;
        let path = tmp.path().to_path_buf();
        let io = |e| HandlerError::Io {
            path: path.clone(),
            source: e,
        };
        // Created 0700 by us in $TMPDIR (sticky): nobody else can have replaced it yet.
        let fd = open_dir_nofollow(&path).map_err(io)?;
        if let Some(w) = who {
            std::os::unix::fs::fchown(&fd, Some(w.uid), Some(w.gid)).map_err(io)?;
        }
        let dir = Arc::new(ListsDir {
            path,
            fd: fd.into(),
        });
        *guard = Some((tmp, dir.clone()));
        Ok(dir)
    }

    /// Writes a list file (0600, unique name, owned by the job's `user` when it has one)
    /// into the lists directory, opening it on the run's first list.
    pub(super) fn write_list(
        &self,
        dir: &mut Option<Arc<ListsDir>>,
        prefix: &str,
        data: &[u8],
    ) -> Result<ListFile, HandlerError> {
        let dir = match dir {
            Some(d) => d.clone(),
            None => dir.insert(self.lists_dir()?).clone(),
        };
        ListFile::create(&dir, prefix, data, self.rsync.options.run_as.as_ref())
    }
}

/// A lists directory, held open: list files are created in it with `openat` (`O_EXCL`,
/// `O_NOFOLLOW`) and removed with `unlinkat`, so a path swapped after the check cannot
/// send them anywhere else.
pub(crate) struct ListsDir {
    pub(super) path: PathBuf,
    fd: OwnedFd,
}

/// Opens `path` as a directory without following a symlink in its last component.
fn open_dir_nofollow(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `name (uid N)`, or `uid N` for a uid without a name.
fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// Why `[command] lists_dir` (its `fstat`) is not safe for list files: it must belong to
/// the daemon's user (`euid`) or the job's `user`, must not be writable by group or others
/// (anyone who can write there could replace a list between its writing and the program's
/// reading, or plant names in it), and the job's `user` must be able to reach files in it.
pub(crate) fn lists_dir_problem(
    uid: u32,
    gid: u32,
    mode: u32,
    euid: u32,
    who: Option<&RunAs>,
) -> Option<String> {
    let mode = mode & 0o7777;
    if uid != euid && who.is_none_or(|w| w.uid != uid) {
        let owners = match who {
            Some(w) if w.uid != euid => format!(
                "{} (the daemon) or {} (the job's user)",
                describe_uid(euid),
                describe_uid(w.uid)
            ),
            _ => format!("{} (the daemon)", describe_uid(euid)),
        };
        return Some(format!(
            "is owned by {}, not by {owners}",
            describe_uid(uid)
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "has mode {mode:04o}: it must not be writable by group or others"
        ));
    }
    if let Some(w) = who {
        let search = if uid == w.uid {
            0o100
        } else if gid == w.gid {
            0o010
        } else {
            0o001
        };
        if mode & search == 0 {
            return Some(format!(
                "has mode {mode:04o} and owner {}: the job's user {} cannot reach the list files in it",
                describe_uid(uid),
                describe_uid(w.uid)
            ));
        }
    }
    None
}

/// Opens `[command] lists_dir` for this run's list files. A missing directory is created
/// `0700` (its missing parents too, `0755` when handlers run as the job's `user`, who must
/// reach it) and given to the job's `user`. An existing one is refused when it is a
/// symlink, not a directory, or fails [`lists_dir_problem`]; the checks are made on the
/// opened descriptor, which the list files are then created in.
pub(crate) fn open_lists_dir(path: &Path, who: Option<&RunAs>) -> Result<ListsDir, HandlerError> {
    let refuse = |why: &str| {
        HandlerError::Other(format!(
            "[command] lists_dir {}: {why}; refusing to write list files there",
            path.display()
        ))
    };
    let io = |e| HandlerError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut created = false;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("is a symlink")),
        Ok(m) if !m.is_dir() => return Err(refuse("is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(if who.is_some() { 0o755 } else { 0o700 })
                    .create(parent)
                    .map_err(|e| HandlerError::Io {
                        path: parent.to_path_buf(),
                        source: e,
                    })?;
            }
            match fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => created = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        Err(e) => return Err(io(e)),
    }
    let fd = open_dir_nofollow(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => refuse("is a symlink"),
        Some(libc::ENOTDIR) => refuse("is not a directory"),
        _ => io(e),
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    let st = fd.metadata().map_err(io)?;
    let ours = created && st.uid() == euid;
    if ours && let Some(w) = who {
        std::os::unix::fs::fchown(&fd, Some(w.uid), Some(w.gid)).map_err(io)?;
    } else if let Some(why) = lists_dir_problem(st.uid(), st.gid(), st.mode(), euid, who) {
        return Err(refuse(&why));
    }
    Ok(ListsDir {
        path: path.to_path_buf(),
        fd: fd.into(),
    })
}

/// A list file of one run, in its (open) lists directory; removed when dropped, unless
/// kept.
pub(crate) struct ListFile {
    dir: Arc<ListsDir>,
    name: OsString,
    path: PathBuf,
    kept: bool,
}

impl ListFile {
    /// Creates a new file `PREFIX<random>` in `dir`, `0600` (owned by `who` when set), with
    /// `data`.
    fn create(
        dir: &Arc<ListsDir>,
        prefix: &str,
        data: &[u8],
        who: Option<&RunAs>,
    ) -> Result<ListFile, HandlerError> {
        use nix::fcntl::OFlag;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| HandlerError::Io { path, source: e }
        };
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        let mut tries = 0;
        let (fd, name) = loop {
            let name = format!("{prefix}{}", random_suffix());
            match nix::fcntl::openat(&dir.fd, name.as_str(), flags, mode) {
                Ok(fd) => break (fd, OsString::from(name)),
                Err(nix::errno::Errno::EEXIST) if tries < 100 => tries += 1,
                Err(e) => return Err(io(&dir.path)(e.into())),
            }
        };
        let file = ListFile {
            dir: dir.clone(),
            path: dir.path.join(&name),
            name,
            kept: false,
        };
        let mut f = fs::File::from(fd);
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io(&file.path))?;
        if let Some(w) = who {
            std::os::unix::fs::fchown(&f, Some(w.uid), Some(w.gid)).map_err(io(&file.path))?;
        }
        f.write_all(data).map_err(io(&file.path))?;
        Ok(file)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place (`keep_lists`); returns its path.
    pub(super) fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for ListFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = nix::unistd::unlinkat(
                &self.dir.fd,
                self.name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

/// 16 hex digits that differ from call to call (std's per-instance random hash keys).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
