//! Programs named in the configuration (rsync, ssh, a command handler): a name with a `/`
//! is a path, a bare name is looked up in `PATH` when it runs, as `execvp` does.
//!
//! One rule for everyone who needs to know which file a program is: the configuration
//! (which resolves only paths, against its directory), the probes of a program's version, the
//! sandbox (which must let the handler read the very file that will run) and the start of a
//! handler (`handler::launch`).
//!
//! Relative `PATH` entries (and empty ones, which mean the current directory) are skipped: a
//! handler may start in the source directory, which others write, and a program planted
//! there must never be what runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// True when `program` has no `/`: it is looked up in `PATH` when it runs.
pub fn is_bare_name(program: &Path) -> bool {
    !program.as_os_str().as_encoded_bytes().contains(&b'/')
}

/// The file `program` runs: itself when it has a `/`, else as [`find`] finds it in the
/// daemon's `PATH` (`None`: not found, or found only where it may not be executed).
pub fn locate(program: &Path) -> Option<PathBuf> {
    find(program, std::env::var_os("PATH").as_deref()).ok()
}

/// The file `program` runs with `path` as its `PATH` (unset: `/bin:/usr/bin`): itself when
/// it has a `/`, else the first regular file of that name in an absolute `PATH` directory
/// that the daemon may execute (as the daemon: a job's `user` may be refused later). The
/// error is `execvp`'s: permission denied when only files that may not be executed were
/// found, else not found.
pub fn find(program: &Path, path: Option<&OsStr>) -> std::io::Result<PathBuf> {
    if !is_bare_name(program) {
        return Ok(program.to_path_buf());
    }
    let mut denied = false;
    let dirs = std::env::split_paths(path.unwrap_or(OsStr::new("/bin:/usr/bin")));
    for candidate in dirs.filter(|d| d.is_absolute()).map(|d| d.join(program)) {
        if !candidate.is_file() {
            continue;
        }
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        denied = true;
    }
    let errno = if denied { libc::EACCES } else { libc::ENOENT };
    Err(std::io::Error::from_raw_os_error(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kept_and_bare_names_looked_up() {
        assert!(is_bare_name(Path::new("rsync")));
        assert!(!is_bare_name(Path::new("bin/rsync")));
        assert_eq!(locate(Path::new("./x")).as_deref(), Some(Path::new("./x")));
        assert_eq!(locate(Path::new("sh")).map(|p| p.is_absolute()), Some(true));
        assert_eq!(locate(Path::new("no-such-program-clsync")), None);
    }

    /// `execvp`'s answers: its default PATH when none is set, permission denied when only a
    /// file that may not be executed was found, and relative entries not searched.
    #[test]
    fn found_as_execvp_finds_but_never_through_a_relative_entry() {
        use std::os::unix::fs::PermissionsExt;
        let sh = find(Path::new("sh"), None).unwrap();
        assert!(
            sh == Path::new("/bin/sh") || sh == Path::new("/usr/bin/sh"),
            "{sh:?}"
        );
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("clsync-x"), "").unwrap();
        let mode = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(t.path().join("clsync-x"), mode).unwrap();
        let e = find(Path::new("clsync-x"), Some(t.path().as_os_str())).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        let e = find(Path::new("Cargo.toml"), Some(OsStr::new(".:"))).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
