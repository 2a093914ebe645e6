//! Paths relative to a job's source root, kept as bytes.
//!
//! Every path that travels between the monitor, the queue and the handlers is relative to
//! the source root, has no leading `/`, and the root itself is the empty path. Names are
//! never assumed to be UTF-8.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Joins `rel` (possibly empty, meaning the root) onto `base`.
pub fn join(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// The parent of a relative path: `a/b` -> `a`, `a` -> `` (root), `` -> None.
pub fn parent(rel: &Path) -> Option<&Path> {
    let bytes = rel.as_os_str().as_bytes();
    if bytes.is_empty() {
        return None;
    }
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => Some(Path::new(OsStr::from_bytes(&bytes[..i]))),
        None => Some(Path::new("")),
    }
}

/// The last component of `rel`, its name in its parent directory; `.` for the root (whose
/// parent, for handle-based lookups, is the root itself).
pub fn name(rel: &Path) -> &OsStr {
    let bytes = rel.as_os_str().as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => OsStr::from_bytes(&bytes[i + 1..]),
        None if bytes.is_empty() => OsStr::new("."),
        None => rel.as_os_str(),
    }
}

/// All proper ancestors of `rel`, nearest first, ending with the root (``).
pub fn ancestors(rel: &Path) -> impl Iterator<Item = &Path> {
    let mut cur = parent(rel);
    std::iter::from_fn(move || {
        let out = cur?;
        cur = parent(out);
        Some(out)
    })
}

/// True when `anc` is `rel` itself or one of its ancestors (the root is an ancestor of all).
pub fn is_self_or_ancestor(anc: &Path, rel: &Path) -> bool {
    let a = anc.as_os_str().as_bytes();
    let r = rel.as_os_str().as_bytes();
    a.is_empty() || r == a || (r.len() > a.len() && r.starts_with(a) && r[a.len()] == b'/')
}

/// Rewrites `rel` that lies under `from` so that it lies under `to` instead.
pub fn rebase(rel: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    if rel == from {
        return Some(to.to_path_buf());
    }
    let r = rel.as_os_str().as_bytes();
    let f = from.as_os_str().as_bytes();
    if f.is_empty() || !is_self_or_ancestor(from, rel) {
        return None;
    }
    let rest = &r[f.len() + 1..];
    let mut out = to.as_os_str().as_bytes().to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(rest);
    Some(PathBuf::from(OsStr::from_bytes(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_ancestors() {
        assert_eq!(parent(Path::new("a/b")), Some(Path::new("a")));
        assert_eq!(parent(Path::new("a")), Some(Path::new("")));
        assert_eq!(parent(Path::new("")), None);
        let v: Vec<_> = ancestors(Path::new("a/b/c")).collect();
        assert_eq!(v, [Path::new("a/b"), Path::new("a"), Path::new("")]);
    }

    #[test]
    fn ancestry_is_by_component() {
        assert!(is_self_or_ancestor(Path::new(""), Path::new("x")));
        assert!(is_self_or_ancestor(Path::new("a"), Path::new("a/b")));
        assert!(is_self_or_ancestor(Path::new("a"), Path::new("a")));
        assert!(!is_self_or_ancestor(Path::new("a"), Path::new("ab")));
        assert!(!is_self_or_ancestor(Path::new("a/b"), Path::new("a")));
    }

    #[test]
    fn rebase_moves_subtrees() {
        let r = |p: &str| rebase(Path::new(p), Path::new("a/b"), Path::new("c"));
        assert_eq!(r("a/b"), Some(PathBuf::from("c")));
        assert_eq!(r("a/b/x/y"), Some(PathBuf::from("c/x/y")));
        assert_eq!(r("a/bc"), None);
        assert_eq!(
            rebase(Path::new("a/x"), Path::new("a"), Path::new("")),
            Some(PathBuf::from("x"))
        );
    }
}
