//! Programs named in the configuration (rsync, ssh, a command handler): a name with a `/`
//! is a path, a bare name is looked up in `PATH` when it runs, as `execvp` does.
//!
//! One rule for everyone who needs to know which file a program is: the configuration
//! (which resolves only paths, against its directory), the probes of a program's version and
//! the sandbox (which must let the handler read the very file that will run).

use std::path::{Path, PathBuf};

/// True when `program` has no `/`: it is looked up in `PATH` when it runs.
pub fn is_bare_name(program: &Path) -> bool {
    !program.as_os_str().as_encoded_bytes().contains(&b'/')
}

/// The file `program` runs: itself when it has a `/`, else the first regular file of that name
/// in a `PATH` directory (`None`: not found, or no `PATH`).
pub fn locate(program: &Path) -> Option<PathBuf> {
    if !is_bare_name(program) {
        return Some(program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
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
