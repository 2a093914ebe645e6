//! Races against the mirror by the owner of a source directory (`nobody` owns `SRC/u`,
//! hence `DST/u`): objects swapped for symlinks between the mirror's look and its use.
//!
//! - chmod: `DST/u/f` is exchanged (`renameat2(RENAME_EXCHANGE)`) with a symlink to a root
//!   file, over and over, while `SRC/u/f`'s mode keeps changing; the mirror's mode fix-up
//!   must never reach the root file.
//! - read: `SRC/u/a` is swapped for a symlink to a root-only directory while the mirror
//!   copies the files it listed there; the names still to copy must not be read through
//!   the symlink.
//!
//! Each case bounded in time; afterwards the attacker undoes its swap and the job converges.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{report, serial};

/// A world where nobody owns `src/u`; `None` unless root.
fn world() -> Option<(Env, std::path::PathBuf, std::path::PathBuf)> {
    if !is_root() {
        eprintln!("skipped: needs root (the attacker is nobody)");
        return None;
    }
    let env = Env::new();
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).unwrap();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let u = env.dir("src/u");
    chown_r(&u, NOBODY);
    Some((env, src, dst))
}

/// Every file below `root` with its size (symlinks not followed).
fn files(root: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if m.is_file() {
            out.push((p, m.len()));
        }
    }
    out.sort();
    out
}

const EXCHANGE: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, victim = sys.argv[1], sys.argv[2], sys.argv[3]
end = time.time() + float(sys.argv[4])
while time.time() < end:
    for _ in range(1000):
        libc.renameat2(-100, a.encode(), -100, b.encode(), 2)
    # The mirror replaced the link with a file: plant it again.
    if not os.path.islink(a) and not os.path.islink(b):
        try:
            os.unlink(b)
            os.symlink(victim, b)
        except OSError:
            pass
"#;

const CHMOD: &str = r#"
import os, sys, time
f, end, i = sys.argv[1], time.time() + float(sys.argv[2]), 0
while time.time() < end:
    i += 1
    os.chmod(f, 0o4755 if i % 2 else 0o644)
    time.sleep(0.002)
"#;

#[test]
fn exchange_with_symlink_during_mode_fixup() {
    let _s = serial();
    let Some((env, src, dst)) = world() else {
        return;
    };
    let victim = env.p("victim");
    fs::write(&victim, "root only").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    // No delay: as many mode fix-ups as the attacker's chmods.
    let job = job_toml(&src, &dst, Mode::Mirror, "").replace("delay = \"100ms\"", "delay = \"0s\"");
    env.write_job("j", &job);
    let mut d = env.start(&["j"]);
    as_nobody(&src.join("u"), "echo data > f");
    d.assert_synced(&src, &dst, &[]);
    // The attacker owns DST/u: it plants the link there and exchanges it with f.
    let link = dst.join("u/L");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let secs = 4.0;
    let mut swapper = nobody_python(EXCHANGE, &[&dst.join("u/f"), &link, &victim], secs);
    let mut chmodder = nobody_python(CHMOD, &[&src.join("u/f")], secs);
    let end = Instant::now() + Duration::from_secs_f64(secs + 10.0);
    for c in [&mut swapper, &mut chmodder] {
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "the attacker failed: {st}");
                break;
            }
            assert!(Instant::now() < end, "the attacker did not stop");
            std::thread::sleep(POLL);
        }
    }
    let m = fs::metadata(&victim).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid()),
        (0o600, 0),
        "the mode fix-up reached the root file through the symlink"
    );
    // The attacker stops: the link goes, f is a file again; the job converges.
    if fs::symlink_metadata(dst.join("u/f"))
        .unwrap()
        .file_type()
        .is_symlink()
    {
        fs::rename(dst.join("u/f"), dst.join("u/tmp")).unwrap();
        fs::rename(&link, dst.join("u/f")).unwrap();
        fs::rename(dst.join("u/tmp"), &link).unwrap();
    }
    fs::remove_file(&link).unwrap();
    as_nobody(&src.join("u"), "chmod 0640 f");
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    report(
        "exchange-with-symlink-during-mode-fixup",
        Some(Mode::Mirror),
        took,
    );
    assert!(d.stop().success());
}

/// Swaps the source directory as soon as the mirror writes a temporary file in its copy,
/// then keeps reading `secret` at the destination for a while: exit 42 if the home's file
/// ever shows up there.
const SWAP_WHEN_COPYING: &str = r#"
import os, sys, time
watch, a, target, dst = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
end = time.time() + float(sys.argv[5])
def copying():
    try:
        return any(n.startswith(".clsync") for n in os.listdir(watch))
    except OSError:
        return False
while not copying():
    if time.time() > end:
        sys.exit(3)
os.rename(a, a + ".real")
os.symlink(target, a)
until = time.time() + 5
while time.time() < until:
    try:
        fd = os.open(os.path.join(watch, "secret"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        data = os.read(fd, 64)
        os.close(fd)
    except OSError:
        continue
    if data == b"private words":
        sys.exit(42)
"#;

#[test]
fn source_dir_swapped_for_symlink_during_copy() {
    let _s = serial();
    let Some((env, src, dst)) = world() else {
        return;
    };
    // Another user's private directory, with a file its owner may read.
    let home = env.dir("home");
    fs::write(home.join("secret"), "private words").unwrap();
    fs::set_permissions(home.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    // A delay longer than the writer takes: every name comes in one batch.
    let job = job_toml(&src, &dst, Mode::Mirror, "").replace("delay = \"100ms\"", "delay = \"4s\"");
    env.write_job("j", &job);
    let mut d = env.start(&["j"]);
    // 20,000 files, then `secret` (a name the home has too), synced once.
    as_nobody(
        &src.join("u"),
        "mkdir a && for i in $(seq 10000 29999); do echo $i > a/f$i; done && echo mine > a/secret",
    );
    d.assert_synced(&src, &dst, &[]);
    // The attacker swaps `u/a` for a symlink to the home as soon as the mirror copies the
    // files again (one batch of every name), and watches the destination.
    let a = src.join("u/a");
    let mut swapper = nobody_python(
        SWAP_WHEN_COPYING,
        &[&dst.join("u/a"), &a, &home, &dst],
        SYNC_DEADLINE.as_secs_f64(),
    );
    as_nobody(&src.join("u"), "for f in a/*; do echo more >> $f; done");
    let end = Instant::now() + SYNC_DEADLINE + Duration::from_secs(10);
    loop {
        if let Some(st) = swapper.try_wait().unwrap() {
            assert_ne!(
                st.code(),
                Some(42),
                "the attacker read the other user's file"
            );
            assert!(st.success(), "the attacker failed: {st}");
            break;
        }
        assert!(Instant::now() < end, "the attacker did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the run finish: the destination settles.
    let mut last = Vec::new();
    let settle = Instant::now() + SYNC_DEADLINE;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = files(&dst);
        if now == last {
            break;
        }
        last = now;
        assert!(Instant::now() < settle, "{}", d.log_tail());
    }
    for (p, len) in last {
        if len == "private words".len() as u64 {
            assert_ne!(
                fs::read(&p).unwrap(),
                b"private words",
                "{} holds the other user's file",
                p.display()
            );
        }
    }
    // The attacker stops: the directory is back.
    as_nobody(&src.join("u"), "rm a && mv a.real a");
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    report(
        "source-dir-swapped-for-symlink-during-copy",
        Some(Mode::Mirror),
        took,
    );
    assert!(d.stop().success());
}

/// On the first object the mirror creates in `DST/u/x`, swaps `SRC/u/x` for a symlink to
/// the victim's directory; then watches `DST/u/x/passwd` (the attacker's own file): exit 42
/// if it ever becomes root's and setuid.
const SWAP_ON_CREATE: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
watch, s, victim = sys.argv[1], sys.argv[2], sys.argv[3]
fd = libc.inotify_init()
libc.inotify_add_watch(fd, watch.encode(), 0x100 | 0x80)
os.read(fd, 4096)
os.rename(s, s + ".real")
os.symlink(victim, s)
end = time.time() + 10
while time.time() < end:
    try:
        # Only while DST/u/x is the real directory (once the mirror mirrors the symlink,
        # DST/u/x/passwd names the victim itself).
        d = os.open(watch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            st = os.stat("passwd", dir_fd=d, follow_symlinks=False)
        finally:
            os.close(d)
        if st.st_uid == 0 and st.st_mode & 0o4000:
            sys.exit(42)
    except OSError:
        pass
    time.sleep(0.001)
"#;

/// The source's metadata is taken beneath the source root: a directory swapped for a
/// symlink during the initial walk does not make the mirror give an attacker's file the
/// owner and set-uid mode of a root program it then describes.
#[test]
fn source_metadata_swap_does_not_grant_setuid() {
    let _s = serial();
    let Some((env, src, dst)) = world() else {
        return;
    };
    let bin = env.dir("bin");
    fs::copy("/usr/bin/true", bin.join("passwd")).unwrap();
    fs::set_permissions(bin.join("passwd"), fs::Permissions::from_mode(0o4755)).unwrap();
    let victim = fs::metadata(bin.join("passwd")).unwrap();
    let x = env.dir("src/u/x");
    chown_r(&x, NOBODY);
    as_nobody(
        &x,
        "for i in $(seq 10000 29999); do echo > a$i; done; echo x > passwd",
    );
    // The attacker's payload at the destination: the victim's size and mtime.
    let dx = env.dir("dst/u/x");
    chown_r(&env.p("dst/u"), NOBODY);
    as_nobody(
        &dx,
        &format!(
            "echo payload > passwd && truncate -s {} passwd && touch -r {} passwd",
            victim.len(),
            bin.join("passwd").display()
        ),
    );
    let mut swapper = nobody_python(SWAP_ON_CREATE, &[&dx, &x, &bin], 20.0);
    std::thread::sleep(Duration::from_millis(300));
    env.job("j", &src, &dst, Mode::Mirror, "");
    let mut d = env.spawn();
    let end = Instant::now() + SYNC_DEADLINE;
    loop {
        if let Some(st) = swapper.try_wait().unwrap() {
            assert_ne!(
                st.code(),
                Some(42),
                "the attacker's file became root's and setuid"
            );
            assert!(st.success(), "the attacker failed: {st}");
            break;
        }
        assert!(Instant::now() < end, "the attacker did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The attacker stops: the directory is back.
    as_nobody(&src.join("u"), "rm x && mv x.real x");
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    report(
        "source-metadata-swap-does-not-grant-setuid",
        Some(Mode::Mirror),
        took,
    );
    assert!(d.stop().success());
}
