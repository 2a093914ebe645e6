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

/// An rsync that logs each call's arguments (one line per call) to `log`, then runs rsync.
fn logging_rsync(dir: &Path, log: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("rsync-logging");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec rsync \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Writes `text` at `root/rel` (directories made), with an old mtime that only a sync sets.
fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    let when = filetime::FileTime::from_unix_time(1_500_000_000 + text.len() as i64, 0);
    filetime::set_file_mtime(&p, when).unwrap();
}

/// A full sync run as a first run and parts at once leaves what one `rsync -a --delete` with
/// the same excludes leaves, into a destination that holds extraneous entries at the top
/// and inside, an excluded directory, and entries whose type changed; with everything at
/// the top (`base` empty), or inside one directory, which the plan opens up.
fn parts_leave_what_one_rsync_leaves(base: &str) {
    let t = tempfile::tempdir().unwrap();
    let (src, dst, reference) = (
        t.path().join("src"),
        t.path().join("dst"),
        t.path().join("ref"),
    );
    let put = |root: &Path, rel: &str, text: &str| put(root, &format!("{base}{rel}"), text);
    for d in ["a", "b", "c", "d", "e", "-dash", "sp ace"] {
        put(&src, &format!("{d}/x/f"), &format!("{d} deep"));
        put(&src, &format!("{d}/g"), d);
    }
    put(&src, "top", "top file");
    put(&src, "dir-here", "a file at the source");
    put(&src, "file-here/in", "a directory at the source");
    put(&src, "skip/s", "excluded");
    std::os::unix::fs::symlink("a", src.join(format!("{base}link"))).unwrap();
    fs::set_permissions(
        src.join(format!("{base}c")),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    for root in [&dst, &reference] {
        put(root, "a/old/deep/o", "stale, inside a part");
        put(root, "b/x/f", "other content");
        put(root, "zz/q/z", "extraneous directory");
        put(root, "ztop", "extraneous file");
        put(root, "skip/keep", "excluded: kept");
        put(
            root,
            "dir-here/x",
            "a directory where the source has a file",
        );
        put(root, "file-here", "a file where the source has a directory");
        self::put(root, "zz-top/z", "extraneous at the top");
    }
    let log = t.path().join("calls");
    let options = HandlerOptions {
        path: logging_rsync(t.path(), &log),
        ..HandlerOptions::default()
    };
    let h = RsyncHandler::new(
        src.clone(),
        Destination::Local(dst.clone()),
        options,
        Arc::new(Filter::new(&["skip".to_string()], vec![]).unwrap()),
    );
    let h = RsyncHandler { lanes: 2, ..h };
    h.run(&Batch::full()).unwrap();
    let status = std::process::Command::new("rsync")
        .args(["-a", "--delete", "--exclude=skip"])
        .arg(args::dir_arg(&src))
        .arg(args::dir_arg(&reference))
        .status()
        .unwrap();
    assert!(status.success());
    let calls = fs::read_to_string(&log).unwrap();
    let runs = calls.lines().count();
    assert!(
        if base.is_empty() {
            runs >= 3
        } else {
            runs == 1
        },
        "a first run and at least two parts at the top, else one run:\n{calls}"
    );
    let diff = std::process::Command::new("rsync")
        .args(["-anci", "--delete"])
        .arg(args::dir_arg(&reference))
        .arg(args::dir_arg(&dst))
        .output()
        .unwrap();
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.is_empty(), "differs from one rsync's result:\n{diff}");
    let kept = dst.join(format!("{base}skip/keep"));
    assert_eq!(fs::read(kept).unwrap(), b"excluded: kept");
}

#[test]
fn a_full_sync_in_parts_leaves_what_one_rsync_leaves() {
    parts_leave_what_one_rsync_leaves("");
}

/// A source holding one directory runs as one rsync: no part below the top (see
/// `parallel`), and the result is still one rsync's.
#[test]
fn a_full_sync_of_one_directory_leaves_what_one_rsync_leaves() {
    parts_leave_what_one_rsync_leaves("html/");
}

/// A writer of the source who swaps a top-level directory for a symlink (to a directory
/// outside the source) after the plan of a full sync in parts gets the symlink synced, not
/// what it points to: a part is a one-component entry, in which rsync follows no link.
#[test]
fn a_part_swapped_for_a_symlink_is_sent_as_the_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for d in ["a", "b", "c", "d"] {
        put(&src, &format!("{d}/f"), d);
    }
    put(t.path(), "secret/s", "not the source's");
    // The swap happens when the first run starts: after the plan, before any part.
    let swap = t.path().join("rsync-swapping");
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *--no-r*) [ -e '{m}' ] || {{ touch '{m}'; rm -r '{b}'; ln -s ../secret '{b}'; }};; esac\nexec rsync \"$@\"\n",
        m = t.path().join("swapped").display(),
        b = src.join("b").display(),
    );
    fs::write(&swap, script).unwrap();
    fs::set_permissions(&swap, fs::Permissions::from_mode(0o755)).unwrap();
    let options = HandlerOptions {
        path: swap,
        ..HandlerOptions::default()
    };
    let h = RsyncHandler::new(
        src.clone(),
        Destination::Local(dst.clone()),
        options,
        Arc::new(Filter::new(&[], vec![]).unwrap()),
    );
    let h = RsyncHandler { lanes: 2, ..h };
    h.run(&Batch::full()).unwrap();
    assert!(t.path().join("swapped").exists(), "the swap was made");
    let b = fs::symlink_metadata(dst.join("b")).unwrap();
    assert!(b.file_type().is_symlink(), "b is synced as the symlink");
    assert!(!dst.join("s").exists());
    assert_eq!(fs::read(dst.join("c/f")).unwrap(), b"c");
}
