//! Unit tests of the mirror engine on real temporary trees: copies, deletions, renames,
//! attributes, timeouts and what `rsync -a --delete` would leave.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::copy::COPY_CHUNK;
use super::fail::Fail;
use super::{MirrorHandler, Run};
use crate::fs::Meta;
use crate::handler::{Handler, HandlerError, Outcome};
use crate::model::{Batch, Entry, Rename};
use crate::rules::Filter;
use filetime::FileTime;
use nix::sys::stat::{Mode, SFlag};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::process::Command;
use tempfile::TempDir;

fn p(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

fn with_slash(path: &Path) -> OsString {
    let mut s = path.as_os_str().to_owned();
    s.push("/");
    s
}

/// What `rsync -anci --delete` would still change: empty when the trees are equal
/// (content, type, perms, owner/group as root, times including directories').
fn rsync_diff(src: &Path, dst: &Path) -> String {
    let out = Command::new("rsync")
        .arg("-anci")
        .arg("--delete")
        .arg(with_slash(src))
        .arg(with_slash(dst))
        .output()
        .expect("run rsync");
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_same(src: &Path, dst: &Path) {
    let d = rsync_diff(src, dst);
    assert!(d.is_empty(), "trees differ:\n{d}");
}

struct Fixture {
    src: TempDir,
    dst: TempDir,
    h: MirrorHandler,
}

impl Fixture {
    fn new() -> Fixture {
        let src = TempDir::new().unwrap();
        let dst = TempDir::new().unwrap();
        let h = MirrorHandler::new(
            src.path().to_path_buf(),
            dst.path().to_path_buf(),
            Arc::new(Filter::allow_all()),
        );
        Fixture { src, dst, h }
    }
    fn s(&self, rel: &str) -> PathBuf {
        self.src.path().join(rel)
    }
    fn d(&self, rel: &str) -> PathBuf {
        self.dst.path().join(rel)
    }
    #[track_caller]
    fn run(&self, batch: Batch) -> Outcome {
        self.h.run(&batch).expect("mirror run")
    }
    #[track_caller]
    fn full(&self) {
        self.run(Batch::full());
        self.check();
    }
    #[track_caller]
    fn check(&self) {
        assert_same(self.src.path(), self.dst.path());
    }
}

fn entries(list: &[(&str, bool)]) -> Batch {
    let mut entries: Vec<Entry> = list
        .iter()
        .map(|&(rel, recursive)| Entry {
            rel: PathBuf::from(rel),
            recursive,
            attrs_only: false,
        })
        .collect();
    entries.sort();
    entries.dedup();
    Batch {
        renames: Vec::new(),
        entries,
        deletes: true,
    }
}

fn renames(list: &[(&str, &str)], ents: &[(&str, bool)]) -> Batch {
    let mut b = entries(ents);
    b.renames = list
        .iter()
        .map(|&(from, to)| Rename {
            from: PathBuf::from(from),
            to: PathBuf::from(to),
        })
        .collect();
    b
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(secs, 0),
        FileTime::from_unix_time(secs, 123_456_789),
    )
    .unwrap();
}

fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tree with everything `rsync -a` cares about.
fn build_mixed_tree(root: &Path) {
    let w = |rel: &Path, data: &[u8]| fs::write(root.join(rel), data).unwrap();
    fs::create_dir_all(root.join("sub/deeper/deepest")).unwrap();
    w(Path::new("file.txt"), b"hello world\n");
    w(Path::new("empty"), b"");
    w(Path::new("sub/a"), b"aaa");
    w(Path::new("sub/deeper/deepest/leaf"), &vec![7u8; 100_000]);
    w(Path::new("private"), b"secret");
    set_mode(&root.join("private"), 0o600);
    w(Path::new("script"), b"#!/bin/sh\n");
    set_mode(&root.join("script"), 0o755);
    w(Path::new("readonly"), b"ro");
    set_mode(&root.join("readonly"), 0o444);
    // Odd names.
    for name in [
        &b"new\nline"[..],
        b"caf\xe9",
        b"-rf",
        b"$(touch x)",
        b" spaced name ",
        b"star*and?glob[",
        &[b'x'; 255][..],
    ] {
        w(&p(name), name);
    }
    fs::create_dir(root.join(p(b"dir\nwith\xffbyte"))).unwrap();
    w(&p(b"dir\nwith\xffbyte/inner"), b"inner");
    // Symlinks: absolute, relative, dangling, to a directory.
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../file.txt", root.join("sub/rel-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("dir-link")).unwrap();
    set_mtime(&root.join("abs-link"), 1_100_000_000);
    // Specials.
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    drop(UnixListener::bind(root.join("sock")).unwrap());
    if is_root() {
        nix::sys::stat::mknod(
            &root.join("null-dev"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            libc::makedev(1, 3),
        )
        .unwrap();
        w(Path::new("owned"), b"owned by someone else");
        std::os::unix::fs::lchown(root.join("owned"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("abs-link"), Some(4321), Some(8765)).unwrap();
        w(Path::new("setuid"), b"suid");
        std::os::unix::fs::chown(root.join("setuid"), Some(1000), Some(1000)).unwrap();
        set_mode(&root.join("setuid"), 0o4755);
    }
    // A read-only directory with content.
    fs::create_dir(root.join("ro-dir")).unwrap();
    w(Path::new("ro-dir/f"), b"in ro dir");
    set_mode(&root.join("ro-dir"), 0o500);
    set_mtime(&root.join("file.txt"), 1_000_000_000);
    set_mtime(&root.join("sub"), 1_200_000_000);
    set_mtime(&root.join("ro-dir"), 1_300_000_000);
}

#[test]
fn full_sync_of_mixed_tree() {
    let f = Fixture::new();
    build_mixed_tree(f.src.path());
    let out = f.run(Batch::full());
    assert!(out.warnings.is_empty() || !is_root(), "{:?}", out.warnings);
    f.check();
    assert!(fs::symlink_metadata(f.d("dir-link")).unwrap().is_symlink());
    assert!(
        fs::symlink_metadata(f.d("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // Idempotent: a second run changes nothing and is still equal.
    let before = ino(&f.d("sub/a"));
    f.full();
    assert_eq!(before, ino(&f.d("sub/a")), "quick check must not re-copy");
    // No temporary files are left behind.
    let leftovers = Command::new("find")
        .arg(f.dst.path())
        .args(["-name", ".clsync.*"])
        .output()
        .unwrap();
    assert!(leftovers.stdout.is_empty());
}

#[test]
fn full_sync_deletes_extraneous_and_fixes_attributes() {
    let f = Fixture::new();
    build_mixed_tree(f.src.path());
    // Pre-existing junk and wrong attributes at the destination.
    fs::create_dir_all(f.d("junk/dir/deep")).unwrap();
    fs::write(f.d("junk/dir/deep/x"), b"x").unwrap();
    fs::write(f.d("file.txt"), b"HELLO WORLD\n").unwrap(); // same size, other mtime
    fs::create_dir(f.d("empty")).unwrap(); // dir where source has a file
    fs::write(f.d("sub"), b"file where source has a dir").unwrap();
    std::os::unix::fs::symlink("/", f.d("fifo")).unwrap();
    f.full();
}

#[test]
fn incremental_entries() {
    let f = Fixture::new();
    fs::create_dir_all(f.s("a/b")).unwrap();
    fs::write(f.s("a/b/f"), b"hello").unwrap();
    fs::create_dir_all(f.s("tree/x/y")).unwrap();
    fs::write(f.s("tree/x/y/z"), b"z").unwrap();
    fs::write(f.s("tree/t"), b"t").unwrap();
    f.full();

    // Create.
    fs::write(f.s("a/new"), b"new file").unwrap();
    f.run(entries(&[("a/new", false)]));
    f.check();

    // Modify: same size, different mtime.
    let old = ino(&f.d("a/b/f"));
    fs::write(f.s("a/b/f"), b"world").unwrap();
    set_mtime(&f.s("a/b/f"), 1_500_000_000);
    f.run(entries(&[("a/b/f", false)]));
    f.check();
    assert_eq!(fs::read(f.d("a/b/f")).unwrap(), b"world");
    assert_ne!(
        old,
        ino(&f.d("a/b/f")),
        "replaced atomically via a temp file"
    );

    // Append.
    let mut file = OpenOptions::new().append(true).open(f.s("a/b/f")).unwrap();
    io::Write::write_all(&mut file, b" and more").unwrap();
    drop(file);
    f.run(entries(&[("a/b/f", false)]));
    f.check();

    // Chmod only (an attributes-only entry): no copy.
    let old = ino(&f.d("a/b/f"));
    set_mode(&f.s("a/b/f"), 0o640);
    let mut b = entries(&[("a/b/f", false)]);
    b.entries[0].attrs_only = true;
    f.run(b);
    f.check();
    assert_eq!(old, ino(&f.d("a/b/f")));

    // Rewritten with the same size and the old mtime put back: still copied, because
    // the entry says the content changed.
    let m = fs::metadata(f.s("a/b/f")).unwrap();
    let before = filetime::FileTime::from_last_modification_time(&m);
    let len = m.len() as usize;
    fs::write(f.s("a/b/f"), vec![b'Z'; len]).unwrap();
    filetime::set_file_mtime(f.s("a/b/f"), before).unwrap();
    f.run(entries(&[("a/b/f", false)]));
    f.check();
    assert_eq!(fs::read(f.d("a/b/f")).unwrap(), vec![b'Z'; len]);

    // Delete a file.
    fs::remove_file(f.s("a/new")).unwrap();
    f.run(entries(&[("a/new", false)]));
    f.check();

    // Delete a directory tree (non-recursive entry still removes the whole dst tree).
    fs::remove_dir_all(f.s("tree")).unwrap();
    f.run(entries(&[("tree", false)]));
    f.check();
    assert!(!f.d("tree").exists());

    // File -> directory.
    fs::remove_file(f.s("a/b/f")).unwrap();
    fs::create_dir(f.s("a/b/f")).unwrap();
    fs::write(f.s("a/b/f/inside"), b"inside").unwrap();
    f.run(entries(&[("a/b/f", true)]));
    f.check();

    // And back: directory -> file.
    fs::remove_dir_all(f.s("a/b/f")).unwrap();
    fs::write(f.s("a/b/f"), b"file again").unwrap();
    f.run(entries(&[("a/b/f", false)]));
    f.check();

    // Symlink -> file -> symlink.
    std::os::unix::fs::symlink("b/f", f.s("a/l")).unwrap();
    f.run(entries(&[("a/l", false)]));
    f.check();
    fs::remove_file(f.s("a/l")).unwrap();
    fs::write(f.s("a/l"), b"now a file").unwrap();
    f.run(entries(&[("a/l", false)]));
    f.check();

    // Deleting something that is already gone everywhere is fine.
    f.run(entries(&[("never/existed", false), ("nope", true)]));
    f.check();

    // New nested path whose destination parents are missing.
    fs::create_dir_all(f.s("n1/n2/n3")).unwrap();
    set_mode(&f.s("n1/n2"), 0o750);
    fs::write(f.s("n1/n2/n3/leaf"), b"leaf").unwrap();
    f.run(entries(&[("n1/n2/n3/leaf", false)]));
    f.check();
}

/// Read-only directories at the destination must still be updatable (as non-root this
/// needs a temporary u+w that the final fixup takes back) and deletable.
#[test]
fn read_only_directories() {
    let f = Fixture::new();
    fs::create_dir_all(f.s("ro/inner")).unwrap();
    fs::write(f.s("ro/inner/f"), b"f").unwrap();
    fs::write(f.s("ro/g"), b"g").unwrap();
    set_mode(&f.s("ro/inner"), 0o500);
    set_mode(&f.s("ro"), 0o555);
    f.full();

    // Add, modify and delete inside the read-only directories.
    set_mode(&f.s("ro"), 0o755);
    set_mode(&f.s("ro/inner"), 0o700);
    fs::write(f.s("ro/inner/new"), b"new").unwrap();
    fs::write(f.s("ro/inner/f"), b"changed").unwrap();
    fs::remove_file(f.s("ro/g")).unwrap();
    set_mode(&f.s("ro/inner"), 0o500);
    set_mode(&f.s("ro"), 0o555);
    f.run(entries(&[
        ("ro/inner/new", false),
        ("ro/inner/f", false),
        ("ro/g", false),
    ]));
    f.check();

    // Delete the whole read-only tree.
    set_mode(&f.s("ro"), 0o755);
    set_mode(&f.s("ro/inner"), 0o755);
    fs::remove_dir_all(f.s("ro")).unwrap();
    f.run(entries(&[("ro", false)]));
    f.check();
    assert!(!f.d("ro").exists());
}

/// Deep directory nesting (1200 levels, 512 KiB stack) must not overflow a worker thread's stack, neither
/// when copying nor when deleting. (Too deep for rsync to compare.)
#[test]
fn deep_tree() {
    let f = Fixture::new();
    let longest = f
        .src
        .path()
        .as_os_str()
        .len()
        .max(f.dst.path().as_os_str().len());
    let rel = vec!["a"; ((4000 - longest) / 2).min(1200)].join("/");
    fs::create_dir_all(f.s(&rel)).unwrap();
    fs::write(f.s(&format!("{rel}/leaf")), b"deep").unwrap();
    let run_small_stack = |batch: Batch| {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn_scoped(s, || f.h.run(&batch).unwrap())
                .unwrap()
                .join()
                .unwrap()
        })
    };
    run_small_stack(Batch::full());
    assert_eq!(fs::read(f.d(&format!("{rel}/leaf"))).unwrap(), b"deep");
    fs::rename(f.s("a"), f.s("b")).unwrap();
    run_small_stack(entries(&[("a", false)]));
    assert!(!f.d("a").exists());
}

#[test]
fn file_rename_is_replayed() {
    let f = Fixture::new();
    fs::create_dir(f.s("d")).unwrap();
    fs::write(f.s("d/a"), b"content").unwrap();
    f.full();
    let before = ino(&f.d("d/a"));
    fs::create_dir(f.s("e")).unwrap();
    fs::rename(f.s("d/a"), f.s("e/b")).unwrap();
    f.run(renames(
        &[("d/a", "e/b")],
        &[("d/a", false), ("e/b", false)],
    ));
    f.check();
    assert_eq!(before, ino(&f.d("e/b")));
}

#[test]
fn big_directory_rename_is_one_rename() {
    let f = Fixture::new();
    for d in 0..10 {
        let dir = f.s(&format!("big/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            fs::write(dir.join(format!("f{i}")), format!("file {d}/{i}")).unwrap();
        }
    }
    f.full();
    let before = ino(&f.d("big/d5/f500"));
    fs::rename(f.s("big"), f.s("moved")).unwrap();
    let batch = renames(&[("big", "moved")], &[("big", false), ("moved", true)]);
    let t = Instant::now();
    f.run(batch);
    let took = t.elapsed();
    eprintln!("mirror: rename batch of a 10,000-file directory took {took:?}");
    assert_eq!(before, ino(&f.d("moved/d5/f500")), "renamed, not re-copied");
    assert!(!f.d("big").exists());
    f.check();
}

#[test]
fn rename_chain() {
    let f = Fixture::new();
    fs::write(f.s("a"), b"file a").unwrap();
    fs::create_dir(f.s("da")).unwrap();
    fs::write(f.s("da/x"), b"x").unwrap();
    f.full();
    let (fa, fx) = (ino(&f.d("a")), ino(&f.d("da/x")));
    fs::rename(f.s("a"), f.s("b")).unwrap();
    fs::rename(f.s("b"), f.s("c")).unwrap();
    fs::rename(f.s("da"), f.s("db")).unwrap();
    fs::rename(f.s("db"), f.s("dc")).unwrap();
    f.run(renames(
        &[("a", "b"), ("b", "c"), ("da", "db"), ("db", "dc")],
        &[
            ("a", false),
            ("b", false),
            ("c", false),
            ("da", false),
            ("db", true),
            ("dc", true),
        ],
    ));
    f.check();
    assert_eq!(fa, ino(&f.d("c")));
    assert_eq!(fx, ino(&f.d("dc/x")));
}

#[test]
fn rename_falls_back_when_it_cannot_be_replayed() {
    let f = Fixture::new();
    fs::create_dir(f.s("keep")).unwrap();
    f.full();
    // `x` never reached the destination before it was renamed.
    fs::create_dir(f.s("x")).unwrap();
    fs::write(f.s("x/f"), b"f").unwrap();
    fs::rename(f.s("x"), f.s("y")).unwrap();
    f.run(renames(&[("x", "y")], &[("x", false), ("y", true)]));
    f.check();

    // Target is a non-empty directory at the destination (ENOTEMPTY).
    fs::create_dir(f.s("full")).unwrap();
    fs::write(f.s("full/old"), b"old").unwrap();
    f.full();
    fs::remove_dir_all(f.s("full")).unwrap();
    fs::rename(f.s("y"), f.s("full")).unwrap();
    f.run(renames(&[("y", "full")], &[("y", false), ("full", true)]));
    f.check();

    // Stale rename whose source path is gone from the source too.
    f.run(renames(
        &[("ghost", "ghost2")],
        &[("ghost", false), ("ghost2", true)],
    ));
    f.check();
}

#[test]
fn destination_symlinks_are_never_followed() {
    let f = Fixture::new();
    let outside = TempDir::new().unwrap();
    let outside2 = TempDir::new().unwrap();
    fs::write(outside2.path().join("victim"), b"must survive").unwrap();
    fs::create_dir(f.s("a")).unwrap();
    fs::write(f.s("a/f"), b"data").unwrap();
    fs::create_dir(f.s("b")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.d("a")).unwrap();
    std::os::unix::fs::symlink(outside2.path(), f.d("b")).unwrap();

    // A single nested entry: the symlinked parent is replaced by a real directory.
    f.run(entries(&[("a/f", false)]));
    assert!(fs::symlink_metadata(f.d("a")).unwrap().is_dir());
    assert_eq!(fs::read(f.d("a/f")).unwrap(), b"data");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

    // Deleting below a symlinked destination directory must not delete outside.
    f.run(entries(&[("b/victim", false)]));
    assert!(outside2.path().join("victim").exists());

    f.full();
    assert!(outside2.path().join("victim").exists());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(fs::symlink_metadata(f.d("b")).unwrap().is_dir());
}

#[test]
fn bad_paths_are_rejected() {
    let f = Fixture::new();
    fs::write(f.s("ok"), b"ok").unwrap();
    let err =
        f.h.run(&entries(&[("../escape", false), ("ok", false)]))
            .unwrap_err();
    assert!(matches!(err, HandlerError::Io { .. }), "{err}");
    // The good entry was still synced.
    assert_eq!(fs::read(f.d("ok")).unwrap(), b"ok");
    // A rename with a bad path is not replayed and does not escape.
    let b = renames(&[("ok", "../../x")], &[]);
    f.h.run(&b).unwrap_err();
    assert!(f.d("ok").exists());
}

#[test]
fn vanished_source_root_is_an_error_and_keeps_destination() {
    let src = TempDir::new().unwrap();
    let dst = TempDir::new().unwrap();
    fs::write(dst.path().join("precious"), b"x").unwrap();
    let h = MirrorHandler::new(
        src.path().join("gone"),
        dst.path().to_path_buf(),
        Arc::new(Filter::allow_all()),
    );
    assert!(h.run(&Batch::full()).is_err());
    assert!(dst.path().join("precious").exists());
}

#[test]
fn destination_root_is_created() {
    let f = Fixture::new();
    fs::write(f.s("x"), b"x").unwrap();
    let dst = f.dst.path().join("new/root");
    let h = MirrorHandler::new(
        f.src.path().to_path_buf(),
        dst.clone(),
        Arc::new(Filter::allow_all()),
    );
    h.run(&Batch::full()).unwrap();
    assert_same(f.src.path(), &dst);
}

#[test]
fn concurrent_disjoint_batches() {
    let f = Fixture::new();
    for d in ["left", "right"] {
        for i in 0..200 {
            let dir = f.s(&format!("{d}/{}", i % 10));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("f{i}")), format!("{d}{i}")).unwrap();
        }
    }
    let h = &f.h;
    std::thread::scope(|s| {
        for d in ["left", "right"] {
            s.spawn(move || h.run(&entries(&[(d, true)])).unwrap());
        }
    });
    f.check();
}

/// Every object below `root` (relative path -> inode), temporary names included.
fn dst_objects(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let child = rel.join(e.file_name());
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(child.clone());
            }
            out.insert(child, m.ino());
        }
    }
    out
}

#[track_caller]
fn assert_no_temporaries(objects: &BTreeMap<PathBuf, u64>) {
    let temps: Vec<&PathBuf> = objects
        .keys()
        .filter(|p| p.file_name().unwrap().as_bytes().starts_with(b".clsync."))
        .collect();
    assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
}

fn with_timeout(f: &Fixture, timeout: Duration) -> MirrorHandler {
    MirrorHandler::new(
        f.src.path().to_path_buf(),
        f.dst.path().to_path_buf(),
        Arc::new(Filter::allow_all()),
    )
    .with_timeout(Some(timeout))
}

/// A tiny timeout stops a full sync of many files with `Timeout`; every stopped run has
/// made progress, what it installed is not copied again, and the retries converge.
#[test]
fn timeout_stops_the_run_and_retries_converge() {
    timeout_converges(1);
}

/// [`timeout_stops_the_run_and_retries_converge`] with runs walked by `workers` threads.
fn timeout_converges(workers: usize) {
    let f = Fixture::new();
    let (dirs, files) = (10, 30);
    for d in 0..dirs {
        fs::create_dir(f.s(&format!("d{d}"))).unwrap();
        for i in 0..files {
            fs::write(
                f.s(&format!("d{d}/f{i:02}")),
                format!("{d}/{i}\n").repeat(500),
            )
            .unwrap();
        }
    }
    let h = with_timeout(&f, Duration::from_millis(1)).with_workers(workers);
    let err = h.run(&Batch::full()).unwrap_err();
    assert!(
        matches!(err, HandlerError::Timeout { killed: false, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("stopped"), "{err}");
    let first = dst_objects(f.dst.path());
    assert_no_temporaries(&first);
    assert!(!first.is_empty(), "the stopped run made progress");
    assert!(
        first.len() < dirs * (files + 1),
        "the stopped run did everything: some thread did not stop"
    );

    let mut seen = first.len();
    let mut runs = 1;
    loop {
        runs += 1;
        assert!(runs <= 400, "no convergence after {runs} runs");
        match h.run(&Batch::full()) {
            Ok(_) => break,
            Err(HandlerError::Timeout { .. }) => {
                let now = dst_objects(f.dst.path());
                assert_no_temporaries(&now);
                assert!(now.len() > seen, "run {runs} made no progress");
                seen = now.len();
            }
            Err(e) => panic!("run {runs}: {e}"),
        }
    }
    eprintln!("mirror: full sync with a 1 ms timeout converged in {runs} runs");
    f.check();
    let last = dst_objects(f.dst.path());
    for (rel, ino) in &first {
        assert_eq!(last.get(rel), Some(ino), "{rel:?} was copied again");
    }
    // A run with nothing to change is never stopped, however short the timeout.
    h.run(&Batch::full()).unwrap();
    assert_eq!(last, dst_objects(f.dst.path()));
    if workers > 1 {
        assert!(h.0.helper_work.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
}

/// A copy checks the deadline between chunks; a timed-out copy leaves no temporary file
/// and nothing under the real name; a file bigger than one run can copy is still
/// synced (a run that has not changed anything yet is not stopped).
#[test]
fn timeout_between_copy_chunks() {
    let f = Fixture::new();
    let len = 2 * COPY_CHUNK as usize + 12_345;
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    fs::write(f.s("big"), &content).unwrap();
    let h = with_timeout(&f, Duration::from_nanos(1));

    // The chunk loop itself: one chunk once the deadline has passed and the run has
    // made progress; the whole file otherwise.
    let mut run = Run::new(&h.0).unwrap();
    run.deadline = Some(Instant::now());
    let out = f.dst.path().join("out");
    let copy = |run: &mut Run| {
        let mut to = fs::File::create(&out).unwrap();
        let from = fs::File::open(f.s("big")).unwrap();
        let res = run.copy_content(&from, &mut to, len as u64, &out);
        (res, fs::metadata(&out).unwrap().len())
    };
    let (res, copied) = copy(&mut run);
    assert!(res.is_ok());
    assert_eq!(copied, len as u64, "no progress yet: the whole file");
    run.progressed = true;
    let (res, copied) = copy(&mut run);
    assert!(matches!(res, Err(Fail::Timeout)));
    assert_eq!(copied, COPY_CHUNK, "stopped after the first chunk");
    fs::remove_file(&out).unwrap();

    // sync_file stopped mid-copy: the temporary file is gone, nothing is installed.
    let mut run = Run::new(&h.0).unwrap();
    run.deadline = Some(Instant::now());
    run.progressed = true;
    let meta = Meta::at(fs::File::open(f.src.path()).unwrap(), OsStr::new("big")).unwrap();
    assert!(matches!(
        run.sync_file(Path::new("big"), Some(&meta), false, false),
        Err(Fail::Timeout)
    ));
    drop(run);
    assert!(dst_objects(f.dst.path()).is_empty());

    // Whole runs: the big file takes longer than the timeout, but is the run's first
    // change, so it is copied.
    h.run(&Batch::full()).unwrap();
    f.check();
    // Now a small file comes first: installed, then the run stops before the changed
    // big file, whose old version stays in place; the next run copies it.
    fs::write(f.s("a"), b"small").unwrap();
    let changed: Vec<u8> = content.iter().map(|b| b.wrapping_add(1)).collect();
    fs::write(f.s("big"), &changed).unwrap();
    set_mtime(&f.s("big"), 1_600_000_000);
    let err = h.run(&Batch::full()).unwrap_err();
    assert!(matches!(err, HandlerError::Timeout { .. }), "{err}");
    assert_eq!(fs::read(f.d("a")).unwrap(), b"small");
    assert!(
        fs::read(f.d("big")).unwrap() == content,
        "old version intact"
    );
    assert_no_temporaries(&dst_objects(f.dst.path()));
    let a = ino(&f.d("a"));
    h.run(&Batch::full()).unwrap();
    f.check();
    assert_eq!(a, ino(&f.d("a")), "not copied again");
}

/// Timing comparison (run with `--ignored --nocapture`): full sync of 10,000 small files
/// in 100 directories into an empty destination, then a no-op rerun, alternating mirror
/// and `rsync -a` for a few rounds.
#[test]
#[ignore]
fn full_sync_speed_compared_with_rsync() {
    let src = TempDir::new().unwrap();
    for d in 0..100 {
        let dir = src.path().join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for i in 0..100 {
            fs::write(
                dir.join(format!("file{i:03}")),
                format!("small file {d} {i}\n"),
            )
            .unwrap();
        }
    }
    let rsync = |dst: &Path| {
        let st = Command::new("rsync")
            .arg("-a")
            .arg("--delete")
            .arg(with_slash(src.path()))
            .arg(with_slash(dst))
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Flush pending writes first: the destination creates would otherwise wait for the
    // journal commit of whatever was written just before (the source tree, the previous
    // destination), which favours whichever side runs second.
    let time = |f: &dyn Fn()| {
        nix::unistd::sync();
        let t = Instant::now();
        f();
        t.elapsed()
    };
    for round in 0..3 {
        let mdst = TempDir::new().unwrap();
        let h = MirrorHandler::new(
            src.path().to_path_buf(),
            mdst.path().to_path_buf(),
            Arc::new(Filter::allow_all()),
        );
        let full = || {
            h.run(&Batch::full()).unwrap();
        };
        let m = time(&full);
        let m_noop = time(&full);
        let rdst = TempDir::new().unwrap();
        let r = time(&|| rsync(rdst.path()));
        let r_noop = time(&|| rsync(rdst.path()));
        eprintln!(
            "round {round}: 10,000 small files: mirror {m:?} (no-op {m_noop:?}), \
             rsync -a {r:?} (no-op {r_noop:?})"
        );
        assert_same(src.path(), mdst.path());
    }
}

/// Files new in a directory the run created are made under their final names: a
/// timed-out copy leaves nothing there, and an object found in the way after all (a
/// file, a symlink pointing outside) sends the path through the normal replace logic,
/// never writing through the symlink.
#[test]
fn new_files_in_created_directories() {
    let f = Fixture::new();
    fs::create_dir_all(f.s("d/sub")).unwrap();
    fs::write(f.s("d/file"), b"new content").unwrap();
    fs::write(f.s("d/link"), b"not a link at the source").unwrap();
    fs::write(f.s("d/sub/inner"), b"inner").unwrap();
    let big = vec![1u8; 2 * COPY_CHUNK as usize + 1];
    fs::write(f.s("d/big"), &big).unwrap();
    let outside = TempDir::new().unwrap();
    fs::write(outside.path().join("victim"), b"keep").unwrap();

    // Timeout in the middle of a file created under its final name.
    let h = with_timeout(&f, Duration::from_nanos(1));
    let mut run = Run::new(&h.0).unwrap();
    run.track_fresh = true;
    assert!(run.mkdir(Path::new("d")).is_ok());
    assert!(run.fresh.contains(Path::new("d")));
    run.deadline = Some(Instant::now());
    run.progressed = true;
    assert!(matches!(
        run.sync_path(Path::new("d/big"), true, false, Some(libc::DT_REG)),
        Err(Fail::Timeout)
    ));
    drop(run);
    assert!(
        !f.d("d/big").exists(),
        "no half-written file under the real name"
    );

    // Objects in the way of a "fresh" directory's children (written by someone else).
    let mut run = Run::new(&f.h.0).unwrap();
    run.track_fresh = true;
    fs::remove_dir(f.d("d")).unwrap();
    assert!(run.mkdir(Path::new("d")).is_ok());
    fs::write(f.d("d/file"), b"old").unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), f.d("d/link")).unwrap();
    assert!(run.walk(Path::new("d")).is_ok());
    while let Some(dir) = run.pending.pop() {
        assert!(run.walk(&dir).is_ok());
    }
    run.fixup_dirs();
    assert!(run.first_error.is_none());
    assert_eq!(fs::read(outside.path().join("victim")).unwrap(), b"keep");
    assert!(!fs::symlink_metadata(f.d("d/link")).unwrap().is_symlink());
    f.check();
    assert_no_temporaries(&dst_objects(f.dst.path()));
}

mod parallel;
