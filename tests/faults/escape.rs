//! Crafted names and symlinks cannot make the daemon write outside the destination.
//!
//! Layout: the source is `a/src`, the destination `b/dst`. `src/link-dir` starts as a real
//! directory and is replaced (once synced) by the relative symlink `../victim`: in the source that is
//! `a/victim` (the test writes there through the link), at the destination it would be
//! `b/victim`, a sibling of the destination that must never change. `src/abs-link` points
//! straight at `b/victim`, `src/etc-link` at `/etc`. Names like `..\n..`, `...`, `..foo`
//! and option-like names are synced as plain names. Everything outside `b/dst` (and the
//! source side) is snapshotted before and compared after; the links arrive as links.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;
use crate::util::*;
use crate::{MODES, report, serial};

const NAMES: [&[u8]; 9] = [
    b"..\n..",
    b"..foo",
    b"....",
    b". .",
    b"..\\..",
    b"-e sh -c touch",
    b"--files-from=x",
    b"*",
    b"\n",
];

/// Directories under `root`, itself included, symlinks not followed.
fn real_dirs(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        n += 1;
        for e in fs::read_dir(&p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    n
}

fn etc_names() -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = fs::read_dir("/etc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    v.sort();
    v
}

fn assert_link(p: &Path, target: &Path) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        m.file_type().is_symlink(),
        "{} is not a symlink: {:?}",
        p.display(),
        m.file_type()
    );
    assert_eq!(fs::read_link(p).unwrap(), target, "{}", p.display());
}

fn run(mode: Mode) {
    let env = Env::new();
    let src = env.dir("a/src");
    let src_victim = env.dir("a/victim");
    let victim = env.dir("b/victim");
    let dst = env.p("b/dst");
    populate(&src, "esc");
    populate(&victim, "victim: must never change");
    write(&env.p("b/beside.txt"), "beside the destination");
    write(&src_victim.join("f.txt"), "the source side's victim");
    for (i, name) in NAMES.iter().enumerate() {
        fs::write(src.join(OsStr::from_bytes(name)), format!("crafted {i}")).unwrap();
    }
    // A directory named `...` with a `..\n..` inside.
    write(
        &src.join("...").join(OsStr::from_bytes(b"..\n..")),
        "inside ...",
    );
    symlink("/etc", src.join("etc-link")).unwrap();
    symlink(&victim, src.join("abs-link")).unwrap();
    write(&src.join("link-dir/f.txt"), "a real directory first");
    env.job("j", &src, &dst, mode, "");

    let skip: [PathBuf; 4] = [
        env.p("a"),
        dst.clone(),
        env.conf.clone(),
        env.p("daemon.log"),
    ];
    let skip_refs: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
    // Created now, so that the directories holding them keep their mtimes.
    fs::create_dir_all(&dst).unwrap();
    fs::write(env.p("daemon.log"), "").unwrap();
    let before = snapshot(&env.root, &skip_refs);
    let etc_before = etc_names();
    let dirs = real_dirs(&src);

    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    // The watcher did not follow the symlinks (into /etc or the victim).
    let watching = format!("watching {dirs} directories");
    assert_eq!(
        count_in(&d.log(), &["initial sync done", &watching]),
        1,
        "expected `{watching}`\n{}",
        d.log_tail()
    );

    // link-dir becomes a symlink (once the directory's contents are synced), and files are
    // written through it: the source side's victim changes, the destination's must not.
    fs::rename(src.join("link-dir"), env.p("a/old-link-dir")).unwrap();
    symlink("../victim", src.join("link-dir")).unwrap();
    write(&src.join("link-dir/f.txt"), "written through the link");
    write(&src.join("link-dir/new.txt"), "created through the link");
    d.barrier(&src, &dst, &[]);
    // And later, once the link is synced: another file through it.
    write(&src.join("link-dir/late.txt"), "through the synced link");
    write(&src.join("etc-link-note"), "beside the /etc link");
    let cleared = Instant::now();
    d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    let took = cleared.elapsed();
    // Let anything still queued run before looking for damage.
    d.barrier(&src, &dst, &[]);

    assert_link(&dst.join("etc-link"), Path::new("/etc"));
    assert_link(&dst.join("abs-link"), &victim);
    assert_link(&dst.join("link-dir"), Path::new("../victim"));
    assert!(dst.join("...").join(OsStr::from_bytes(b"..\n..")).is_file());
    for name in NAMES {
        let p = dst.join(OsStr::from_bytes(name));
        assert!(
            fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()),
            "{p:?} missing"
        );
    }
    let after = snapshot(&env.root, &skip_refs);
    let damage = snapshot_diff(&before, &after);
    assert!(
        damage.is_empty(),
        "written outside the destination:\n{}\n{}",
        damage.join("\n"),
        d.log_tail()
    );
    assert_eq!(etc_names(), etc_before, "/etc changed");
    report("crafted-names-and-symlinks", Some(mode), took);
    assert!(d.stop().success());
}

/// Daemon bug (both modes): a batch holding a path *inside* a directory (`link-dir/f.txt`,
/// just changed) and the directory itself, which meanwhile became a symlink to a directory
/// outside the source. The handler reads `link-dir/f.txt` through the source symlink (rsync
/// follows leading path components of `--files-from` names; the mirror opens only the last
/// component with O_NOFOLLOW) and, because the entry needs its parent, makes `link-dir` a real
/// directory again at the destination. So a file from outside the source (here `secret.txt`
/// ... `f.txt` of the symlink's target) is copied into the destination, and the destination
/// never gets the symlink: it stays different from the source until something else touches
/// `link-dir`. Nothing is written outside the destination.
fn race(mode: Mode) {
    let env = Env::new();
    let src = env.dir("a/src");
    let outside = env.dir("a/outside");
    let dst = env.p("b/dst");
    populate(&src, "race");
    write(&outside.join("f.txt"), "SECRET: outside the source");
    write(&src.join("link-dir/f.txt"), "a real directory first");
    env.job("j", &src, &dst, mode, "");
    let skip: [PathBuf; 4] = [
        env.p("a"),
        dst.clone(),
        env.conf.clone(),
        env.p("daemon.log"),
    ];
    let skip_refs: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
    // Created now, so that the directories holding them keep their mtimes.
    fs::create_dir_all(&dst).unwrap();
    fs::write(env.p("daemon.log"), "").unwrap();
    let before = snapshot(&env.root, &skip_refs);
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    // Within one batch delay: a change inside, then the directory is swapped for a symlink.
    write(&src.join("link-dir/f.txt"), "changed in the real directory");
    fs::rename(src.join("link-dir"), env.p("a/old-link-dir")).unwrap();
    symlink("../outside", src.join("link-dir")).unwrap();
    let cleared = Instant::now();
    // Wait for the batch (and one more) to be handled.
    write(&src.join("marker"), "after the swap");
    wait_for(&mut d, "the marker to arrive", SYNC_DEADLINE, || {
        dst.join("marker").exists()
    });
    let damage = snapshot_diff(&before, &snapshot(&env.root, &skip_refs));
    assert!(
        damage.is_empty(),
        "written outside the destination:\n{}",
        damage.join("\n")
    );
    let leaked = fs::read_to_string(dst.join("link-dir/f.txt")).unwrap_or_default();
    assert!(
        !leaked.contains("SECRET"),
        "[{}] a file from outside the source was copied into the destination through a source symlink: dst/link-dir/f.txt = {leaked:?}",
        mode.as_str()
    );
    d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    report(
        "dir-swapped-for-symlink-mid-batch",
        Some(mode),
        cleared.elapsed(),
    );
    assert!(d.stop().success());
}

#[test]
fn dir_swapped_for_symlink_mid_batch() {
    let _s = serial();
    // Both modes run, then the failures of either are reported together.
    let failed: Vec<String> = MODES
        .into_iter()
        .filter_map(|mode| {
            std::panic::catch_unwind(|| race(mode))
                .err()
                .map(|_| format!("[{}] failed", mode.as_str()))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("; "));
}

#[test]
fn crafted_names_cannot_escape() {
    let _s = serial();
    for mode in MODES {
        run(mode);
    }
}
