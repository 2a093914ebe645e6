//! Programs named in the configuration (rsync, ssh, a command handler): a name with a `/`
//! is a path, a bare name is looked up in `PATH` when it runs, as `execvp` does.
//!
//! One rule for everyone who needs to know which file a program is: the configuration
//! (which resolves only paths, against its directory), the probes of a program's version and
//! the sandbox (which must let the handler read the very file that will run).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// True when `program` has no `/`: it is looked up in `PATH` when it runs.
pub fn is_bare_name(program: &Path) -> bool {
    !program.as_os_str().as_encoded_bytes().contains(&b'/')
}

/// The file `program` runs: itself when it has a `/`, else as `execvp` finds it in the
/// daemon's `PATH` ([`find`]; `None`: not found).
pub fn locate(program: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH");
    find(program, path.as_deref(), None).ok()
}

/// The file `program` runs with `path` as its `PATH` (unset: `/bin:/usr/bin`) in directory
/// `dir`: itself when it has a `/`, else the first executable regular file of that name in a
/// `PATH` directory (a relative entry is relative to `dir`, and so is the result). The error
/// is `execvp`'s: `EACCES` when only files that may not be executed were found, else
/// `ENOENT`.
pub fn find(program: &Path, path: Option<&OsStr>, dir: Option<&Path>) -> Result<PathBuf, i32> {
    if !is_bare_name(program) {
        return Ok(program.to_path_buf());
    }
    let mut denied = false;
    for d in std::env::split_paths(path.unwrap_or(OsStr::new("/bin:/usr/bin"))) {
        let candidate = d.join(program);
        let seen = match dir {
            Some(dir) if candidate.is_relative() => dir.join(&candidate),
            _ => candidate.clone(),
        };
        if !seen.is_file() {
            continue;
        }
        if nix::unistd::access(&seen, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        denied = true;
    }
    Err(if denied { libc::EACCES } else { libc::ENOENT })
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
}
