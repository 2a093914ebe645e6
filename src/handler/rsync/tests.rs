//! Unit tests of the rsync handler with the real rsync: renames handed over to the mirror,
//! and entries too long for rsync when no mirror may take them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::longpath::LongPath;
use crate::model::{Entry, Rename};
use std::fs;

fn handler(src: &Path, dst: &Path) -> RsyncHandler {
    RsyncHandler::new(
        src.to_path_buf(),
        Destination::Local(dst.to_path_buf()),
        HandlerOptions::default(),
        Arc::new(Filter::new(&[], vec![]).unwrap()),
    )
}

fn entry(rel: &str) -> Entry {
    Entry {
        rel: rel.into(),
        recursive: true,
        attrs_only: false,
    }
}

/// When rsync fails on a deep path, the batch goes to the mirror engine with its renames
/// already replayed: they are not replayed again. (A swap a -> t, b -> a, t -> b replayed
/// twice would be undone, and the quick check cannot see that files with equal sizes and
/// times hold each other's content.)
#[test]
fn renames_are_replayed_once_when_rsync_hands_over_to_the_mirror() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("a")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    // Same size, same mtime (as from a tar archive), different content.
    let when = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    for (d, data) in [("a", "AAAA"), ("b", "BBBB")] {
        fs::write(src.join(d).join("f"), data).unwrap();
        filetime::set_file_mtime(src.join(d).join("f"), when).unwrap();
    }
    // A chain past rsync's limit.
    let mut deep = PathBuf::from("deep");
    fs::create_dir(src.join(&deep)).unwrap();
    for i in 0..25 {
        deep.push(format!("{i:03}{}", "d".repeat(197)));
        fs::create_dir(LongPath::new(&src, &deep)).unwrap();
    }
    fs::write(LongPath::new(&src, &deep.join("f")), b"x").unwrap();
    let h = handler(&src, &dst);
    h.run(&Batch::full()).unwrap();
    assert_eq!(fs::read(dst.join("a/f")).unwrap(), b"AAAA");
    // Swap a and b in the source.
    fs::rename(src.join("a"), src.join("t")).unwrap();
    fs::rename(src.join("b"), src.join("a")).unwrap();
    fs::rename(src.join("t"), src.join("b")).unwrap();
    let r = |f: &str, t: &str| Rename {
        from: f.into(),
        to: t.into(),
    };
    let batch = Batch {
        renames: vec![r("a", "t"), r("b", "a"), r("t", "b")],
        entries: vec![entry("a"), entry("b"), entry("deep"), entry("t")],
        deletes: true,
    };
    h.run(&batch).unwrap();
    assert_eq!(fs::read(dst.join("a/f")).unwrap(), b"BBBB");
    assert_eq!(fs::read(dst.join("b/f")).unwrap(), b"AAAA");
}

/// With `user` (no mirror fallback), a batch entry longer than rsync's limit is not given
/// to rsync (which would truncate the `--files-from` line silently and exit 0): the run
/// fails, or the change really reached the destination.
#[test]
fn too_long_entries_without_the_mirror_are_not_reported_synced() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    let mut deep = PathBuf::new();
    for i in 0..22 {
        deep.push(format!("{i:03}{}", "d".repeat(197)));
        fs::create_dir(LongPath::new(&src, &deep)).unwrap();
    }
    let file = deep.join("f");
    fs::write(LongPath::new(&src, &file), b"x").unwrap();
    let mut h = handler(&src, &dst);
    h.target.options.run_as = Some(crate::config::RunAs {
        user: "me".into(),
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    });
    h.deep = None; // what `new` does with `user`
    let batch = Batch {
        renames: Vec::new(),
        entries: vec![Entry {
            rel: file.clone(),
            recursive: false,
            attrs_only: false,
        }],
        deletes: true,
    };
    let res = h.run(&batch);
    let synced = fs::read(LongPath::new(&dst, &file)).is_ok();
    assert!(
        res.is_err() || synced,
        "reported synced, not at the destination"
    );
}

/// A full sync into an empty (or missing) local destination runs without `--delete`
/// (nothing to delete there); into one that holds anything, extraneous entries still go.
#[test]
fn a_full_sync_deletes_only_where_the_destination_holds_something() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "x").unwrap();
    let h = handler(&src, &dst);
    assert!(h.target.destination_is_empty(), "missing");
    fs::create_dir(&dst).unwrap();
    assert!(h.target.destination_is_empty(), "empty");
    fs::create_dir(dst.join("old")).unwrap();
    fs::write(dst.join("old/g"), "y").unwrap();
    assert!(!h.target.destination_is_empty(), "holds old/");
    let full = Batch::full();
    assert!(full.is_full());
    h.run_rsync(&full).unwrap();
    assert!(!dst.join("old").exists(), "extraneous entries are deleted");
    assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"x");
    let remote = RsyncHandler::new(
        src.clone(),
        Destination::Remote("host:/srv".into()),
        HandlerOptions::default(),
        Arc::new(Filter::new(&[], vec![]).unwrap()),
    );
    assert!(!remote.target.destination_is_empty(), "remote: not known");
}
