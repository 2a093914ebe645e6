//! The size of a job's source as a full sync sees it, for `clsync sync`'s progress: the
//! non-directory objects (files, symlinks, fifos, ...) and the bytes of the regular files
//! that the job's filter lets through, found by a walk beneath the source root (directory
//! handles, no symlink followed, like the mirror's walk). A count, not a plan: what
//! changes while the sync runs is not followed, and what cannot be read is skipped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::fs::{Dirs, Meta, Root, list};
use crate::model::Kind;
use crate::rules::Filter;

/// What [`count`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Non-directory objects.
    pub files: u64,
    /// Bytes of the regular files among them.
    pub bytes: u64,
}

/// Counts what the full sync of `source` under `filter` deals with (see the module
/// documentation). Ends early, with what it has, once `stop` is set; `None` when the
/// source root cannot be opened.
pub fn count(source: &Path, filter: &Filter, stop: &AtomicBool) -> Option<Size> {
    let mut dirs = Dirs::new(Root::open(source).ok()?);
    let mut size = Size::default();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(dir) = dirs.get(&rel) else { continue };
        let Ok(names) = list(&*dir) else { continue };
        for (name, _) in names {
            let child = if rel.as_os_str().is_empty() {
                PathBuf::from(&name)
            } else {
                rel.join(&name)
            };
            let Ok(meta) = Meta::at(&*dir, &name) else {
                continue;
            };
            let kind = meta.kind();
            if !filter.allows(&child, kind) {
                continue;
            }
            if kind == Kind::Dir {
                if filter.allows_dir_walk(&child) {
                    todo.push(child);
                }
            } else {
                size.files += 1;
                if meta.is_file() {
                    size.bytes += meta.len();
                }
            }
        }
    }
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_filter_lets_through() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        std::fs::create_dir_all(s.join("a/b")).unwrap();
        std::fs::create_dir_all(s.join("skip")).unwrap();
        std::fs::write(s.join("a/b/f"), "12345").unwrap();
        std::fs::write(s.join("a/g"), "123").unwrap();
        std::fs::write(s.join("x.tmp"), "123456789").unwrap();
        std::fs::write(s.join("skip/h"), "123456789").unwrap();
        std::os::unix::fs::symlink("/etc", s.join("link")).unwrap();
        let filter = Filter::new(&["*.tmp".to_string(), "/skip".to_string()], Vec::new()).unwrap();
        let got = count(s, &filter, &AtomicBool::new(false)).unwrap();
        assert_eq!(got, Size { files: 3, bytes: 8 });
    }
}
