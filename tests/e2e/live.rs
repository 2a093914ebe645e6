//! Live changes on a running daemon: each scenario runs in both modes.

use super::harness::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A running single-job daemon on `root/src` -> `root/dst` (src pre-populated, initial sync
/// done, dst checked equal).
struct One {
    env: Env,
    src: PathBuf,
    dst: PathBuf,
    d: Daemon,
}

impl One {
    fn start(mode: Mode, extra: &str, setup: impl FnOnce(&Env, &PathBuf)) -> One {
        let env = Env::new();
        let src = env.dir("src");
        let dst = env.p("dst");
        populate(&src, "initial");
        setup(&env, &src);
        env.job("live", &src, &dst, mode, extra);
        let mut d = env.start(&["live"]);
        d.assert_synced(&src, &dst, &[]);
        One { env, src, dst, d }
    }

    fn plain(mode: Mode) -> One {
        One::start(mode, "", |_, _| {})
    }

    fn synced(&mut self) {
        self.d.assert_synced(&self.src, &self.dst, &[]);
    }
}

fn create(mode: Mode) {
    let mut t = One::plain(mode);
    write(&t.src.join("new.txt"), "new file");
    write(&t.src.join("b/c/new-deep.txt"), "new deep file");
    fs::create_dir(t.src.join("newdir")).unwrap();
    write(&t.src.join("newdir/inside.txt"), "inside new dir");
    fs::write(t.src.join("empty-new"), "").unwrap();
    t.synced();
}

fn modify(mode: Mode) {
    let mut t = One::plain(mode);
    write(
        &t.src.join("a.txt"),
        "alpha, rewritten with a different length",
    );
    write(&t.src.join("b/c/deep.txt"), "");
    t.synced();
    // Truncate and rewrite in place with the same length.
    write(&t.src.join("b/b1.txt"), "BETA ONE initial");
    t.synced();
}

/// Same size, and the mtime put back to the old value (what `cp -p`, `tar x` or an editor
/// preserving times produce): rsync's quick check alone cannot see it, but the daemon saw
/// the write.
fn modify_keep_mtime(mode: Mode) {
    let mut t = One::plain(mode);
    // Settled first: a directory the start-up catch-up syncs whole, still queued, would take
    // this file into its walk, which trusts size and time (as rsync's quick check does).
    t.d.barrier(&t.src, &t.dst, &[]);
    let p = t.src.join("b/b1.txt");
    let before = fs::metadata(&p).unwrap();
    let old = fs::read_to_string(&p).unwrap();
    let new: String = old.chars().rev().collect();
    assert_eq!(old.len(), new.len());
    assert_ne!(old, new);
    fs::write(&p, &new).unwrap();
    filetime::set_file_mtime(&p, filetime::FileTime::from_last_modification_time(&before)).unwrap();
    t.synced();
}

fn append_(mode: Mode) {
    let mut t = One::plain(mode);
    let p = t.src.join("log.txt");
    write(&p, "line 0\n");
    t.synced();
    for i in 1..=20 {
        append(&p, &format!("line {i}\n"));
    }
    t.synced();
    append(&p, "one more\n");
    append(&t.src.join("a.txt"), " appended");
    t.synced();
}

fn chmod(mode: Mode) {
    let mut t = One::plain(mode);
    fs::set_permissions(t.src.join("a.txt"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(t.src.join("b/c"), fs::Permissions::from_mode(0o700)).unwrap();
    t.synced();
    fs::set_permissions(t.src.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    t.synced();
}

/// The source root's own attributes (mode, mtime) are part of the tree: creating a file at
/// the root changes the root's mtime, and chmod on the root must reach the destination root.
/// The mtime is set an hour back so that rsync's 1-second resolution always sees it.
fn root_attrs(mode: Mode) {
    let mut t = One::plain(mode);
    write(&t.src.join("new-at-root.txt"), "x");
    let old =
        filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() - 3600, 0);
    filetime::set_file_mtime(&t.src, old).unwrap();
    t.synced();
    fs::set_permissions(&t.src, fs::Permissions::from_mode(0o750)).unwrap();
    t.synced();
}

fn delete(mode: Mode) {
    let mut t = One::plain(mode);
    fs::remove_file(t.src.join("a.txt")).unwrap();
    fs::remove_file(t.src.join("b/c/deep.txt")).unwrap();
    t.synced();
    fs::remove_dir_all(t.src.join("b")).unwrap();
    fs::remove_dir(t.src.join("empty-dir")).unwrap();
    t.synced();
    assert!(!t.dst.join("b").exists());
}

fn rename_file(mode: Mode) {
    let mut t = One::plain(mode);
    fs::rename(t.src.join("a.txt"), t.src.join("a-renamed.txt")).unwrap();
    fs::rename(t.src.join("b/b1.txt"), t.src.join("b/c/d/b1-moved.txt")).unwrap();
    // Rename over an existing file.
    fs::rename(t.src.join("b/b2.txt"), t.src.join("b/c/deep.txt")).unwrap();
    t.synced();
    // Atomic-save pattern: write temp, rename over.
    write(&t.src.join("b/.a-renamed.txt.swp"), "saved atomically");
    fs::rename(
        t.src.join("b/.a-renamed.txt.swp"),
        t.src.join("a-renamed.txt"),
    )
    .unwrap();
    t.synced();
}

fn rename_dir(mode: Mode) {
    let mut t = One::plain(mode);
    fs::rename(t.src.join("b"), t.src.join("b-renamed")).unwrap();
    t.synced();
    // The renamed directory and its subdirectories are still watched.
    write(&t.src.join("b-renamed/after.txt"), "written after rename");
    write(
        &t.src.join("b-renamed/c/d/e/after-deep.txt"),
        "deep after rename",
    );
    t.synced();
    // Rename twice in a row, then write at the final place.
    fs::rename(t.src.join("b-renamed"), t.src.join("b2")).unwrap();
    fs::rename(t.src.join("b2/c"), t.src.join("c-top")).unwrap();
    write(&t.src.join("c-top/d/x.txt"), "x");
    write(&t.src.join("b2/y.txt"), "y");
    t.synced();
    // The old names must not be resurrected by late events.
    write(&t.src.join("c-top/z.txt"), "z");
    t.synced();
}

fn move_in(mode: Mode) {
    let mut t = One::start(mode, "", |env, _| {
        let outside = env.dir("outside");
        populate(&outside, "outside");
    });
    fs::rename(t.env.p("outside"), t.src.join("moved-in")).unwrap();
    t.synced();
    // The moved-in tree is watched.
    write(
        &t.src.join("moved-in/b/c/d/e/new.txt"),
        "new in moved-in tree",
    );
    write(&t.src.join("moved-in/new-top.txt"), "new top");
    fs::remove_file(t.src.join("moved-in/b/b1.txt")).unwrap();
    t.synced();
}

fn move_out(mode: Mode) {
    let mut t = One::plain(mode);
    let out = t.env.p("moved-out");
    fs::rename(t.src.join("b"), &out).unwrap();
    t.synced();
    assert!(!t.dst.join("b").exists());
    // Writes in the moved-out tree must not reach dst.
    write(&out.join("after-move.txt"), "must not be synced");
    write(&out.join("c/d/after-move-deep.txt"), "must not be synced");
    fs::remove_file(out.join("b1.txt")).unwrap();
    t.d.barrier(&t.src, &t.dst, &[]);
    // A new directory with the old name is a new, watched directory.
    write(&t.src.join("b/fresh.txt"), "fresh");
    write(&out.join("c/late.txt"), "late, must not be synced");
    t.synced();
    write(&t.src.join("b/fresh2.txt"), "fresh 2");
    t.synced();
    for name in ["after-move.txt", "after-move-deep.txt", "late.txt"] {
        let found = find_named(&t.dst, std::ffi::OsStr::new(name));
        assert!(found.is_empty(), "moved-out write reached dst: {found:?}");
    }
}

fn mkdir_storm(mode: Mode) {
    let mut t = One::plain(mode);
    for i in 0..200 {
        let d = t.src.join(format!("t{i}/a/b/c"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), format!("tree {i}")).unwrap();
    }
    t.synced();
    // Every new directory is watched.
    for i in (0..200).step_by(7) {
        fs::write(t.src.join(format!("t{i}/a/b/g")), "later").unwrap();
        fs::write(
            t.src.join(format!("t{i}/a/b/c/f")),
            format!("tree {i} changed"),
        )
        .unwrap();
    }
    t.synced();
}

fn recreated_dir(mode: Mode) {
    let mut t = One::plain(mode);
    let d = t.src.join("b");
    fs::remove_dir_all(&d).unwrap();
    fs::create_dir(&d).unwrap();
    t.synced();
    write(&d.join("x"), "written later into the recreated dir");
    t.synced();
    // And again, with a subdirectory.
    fs::remove_dir_all(&d).unwrap();
    fs::create_dir_all(d.join("sub")).unwrap();
    t.synced();
    write(&d.join("sub/y"), "y");
    t.synced();
}

fn symlinks(mode: Mode) {
    let mut t = One::plain(mode);
    std::os::unix::fs::symlink("a.txt", t.src.join("link-to-a")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", t.src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("b/c", t.src.join("link-to-dir")).unwrap();
    t.synced();
    fs::remove_file(t.src.join("link-to-a")).unwrap();
    std::os::unix::fs::symlink("b/b1.txt", t.src.join("link-to-a")).unwrap();
    t.synced();
}

fn sigterm_exits_zero(mode: Mode) {
    let mut t = One::plain(mode);
    write(&t.src.join("x"), "x");
    t.synced();
    let st = t.d.stop();
    assert!(
        st.success(),
        "SIGTERM must give exit 0, got {st}\n{}",
        t.d.log_tail()
    );
}

fn sigint_exits_zero(mode: Mode) {
    let mut t = One::plain(mode);
    t.d.signal(libc::SIGINT);
    let st =
        t.d.wait_exit(std::time::Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no exit within 20 s of SIGINT\n{}", t.d.log_tail()));
    assert!(
        st.success(),
        "SIGINT must give exit 0, got {st}\n{}",
        t.d.log_tail()
    );
}

crate::both_modes! {
    create_files => create;
    modify_files => modify;
    modify_same_size_keep_mtime => modify_keep_mtime;
    append_to_file => append_;
    chmod_file_and_dir => chmod;
    root_dir_attributes => root_attrs;
    delete_file_and_tree => delete;
    rename_file_inside => rename_file;
    rename_dir_inside => rename_dir;
    move_dir_in_from_outside => move_in;
    move_dir_out_of_tree => move_out;
    mkdir_p_storm => mkdir_storm;
    deleted_and_recreated_dir_still_watched => recreated_dir;
    symlinks_synced_as_links => symlinks;
    sigterm_exits_0 => sigterm_exits_zero;
    sigint_exits_0 => sigint_exits_zero;
}
