//! A directory whose attributes changed is synced as a directory, not as its whole tree:
//! a `chmod` of the source root in the same batch as one file's new content rewrites that
//! file at the destination and no other.

use super::harness::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Inode of every regular file below `root`: a file rsync or the mirror rewrote gets a new
/// one (both write a temporary file and rename it over the old).
fn inodes(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                out.insert(e.path().strip_prefix(root).unwrap().to_path_buf(), m.ino());
            }
        }
    }
    out
}

fn root_chmod_with_a_file_change(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    for d in 0..20 {
        for f in 0..10 {
            write(&src.join(format!("d{d}/f{f}")), &format!("file {d}/{f}"));
        }
    }
    env.job("attrs", &src, &dst, mode, "");
    let mut d = env.start(&["attrs"]);
    d.assert_synced(&src, &dst, &[]);
    let before = inodes(&dst);
    // One batch: new content for one file (same size), the root's and a directory's mode.
    write(&src.join("d3/f4"), "FILE 3/4");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(src.join("d7"), fs::Permissions::from_mode(0o700)).unwrap();
    d.assert_synced(&src, &dst, &[]);
    let after = inodes(&dst);
    let rewritten: Vec<&PathBuf> = before
        .iter()
        .filter(|(p, ino)| after.get(*p) != Some(ino))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        rewritten,
        [Path::new("d3/f4")],
        "only the changed file may be rewritten\n{}",
        d.log_tail()
    );
    d.stop();
}

crate::both_modes! {
    root_chmod_rewrites_only_the_changed_file => root_chmod_with_a_file_change;
}
