//! Paths as the configuration writes them: relative ones are relative to the configuration
//! directory, `.` and `..` are cleaned lexically, and a destination with a host is remote.

use std::path::{Component, Path, PathBuf};

use crate::program;

/// Resolves a configured path against the config dir, and lexically cleans `.` and `..`.
pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let joined = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        let base = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(dir)
        };
        base.join(p)
    };
    clean(&joined)
}

/// `p` with `.` and `..` removed lexically (`..` drops the component before it), without
/// looking at the file system.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The real path of `p`, even when its last components do not exist yet.
pub(super) fn real_path(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// rsync's rule: a `:` before any `/` means a remote host (`host:path`, `user@host:path`).
pub fn is_remote(dest: &str) -> bool {
    if dest.starts_with("rsync://") {
        return true;
    }
    match (dest.find(':'), dest.find('/')) {
        (Some(c), Some(s)) => c < s && c > 0,
        (Some(c), None) => c > 0,
        _ => false,
    }
}

/// `host` and `path` of an rsync-over-ssh destination (`[user@]host:path`); `None` for
/// `rsync://` and `host::module` daemon destinations, which have no shell.
pub fn split_remote(dest: &str) -> Option<(&str, &str)> {
    if dest.starts_with("rsync://") {
        return None;
    }
    let (host, path) = dest.split_once(':')?;
    if path.starts_with(':') || host.is_empty() {
        return None;
    }
    Some((host, path))
}

/// A configured program: a path (with a `/`) against the configuration directory, a bare
/// name as is, for `PATH` to find when it runs ([`crate::program`]).
pub(super) fn program_path(dir: &Path, p: &str) -> PathBuf {
    if program::is_bare_name(Path::new(p)) {
        PathBuf::from(p)
    } else {
        resolve(dir, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_destinations() {
        assert_eq!(split_remote("u@h:/srv/x"), Some(("u@h", "/srv/x")));
        assert_eq!(split_remote("h:rel"), Some(("h", "rel")));
        assert_eq!(split_remote("rsync://h/m"), None);
        assert_eq!(split_remote("h::module"), None);
    }

    #[test]
    fn remote_destinations_are_recognised() {
        assert!(is_remote("host:/srv"));
        assert!(is_remote("user@host:backup"));
        assert!(is_remote("rsync://host/module"));
        assert!(!is_remote("/srv/a:b"));
        assert!(!is_remote("dst"));
        assert!(!is_remote(":x"));
    }
}
