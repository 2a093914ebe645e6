//! A subdirectory the daemon cannot read. Root reads everything, so the daemon runs as an
//! unprivileged user (`setpriv --reuid=65534 --regid=65534 --clear-groups`) over a source,
//! destination and configuration owned by that user. Two faults: a watched directory made
//! unreadable (`chmod 000`) and changed inside, and an unreadable directory moved in (the
//! daemon cannot even watch it). Once the permissions are back, the destination converges,
//! and later changes inside both directories still arrive.

use std::fs;
use std::os::unix::fs::chown;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{MODES, report, serial};

/// Writes `p` (as root) and gives it to the daemon's user, so that owners compare equal.
fn write_owned(p: &Path, content: &str) {
    write(p, content);
    chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// `moved_in_later`: also check that changes inside the directory that arrived unreadable
/// (and could not be watched then) arrive after the fix.
fn run(mode: Mode, moved_in_later: bool) -> bool {
    let env = Env::new();
    // The temp dir is 0700 root: let the daemon's user through.
    chmod(&env.root, 0o755);
    env.write_main_config(DAEMON_TOML);
    let src = env.dir("src");
    let out = env.dir("out");
    let dst = out.join("dst");
    populate(&src, "perm");
    write(&src.join("locked/inside.txt"), "before");
    write(&src.join("locked/sub/deeper.txt"), "before");
    env.job("j", &src, &dst, mode, "");
    for p in [&src, &out, &env.conf] {
        chown_r(p, NOBODY);
    }
    let Some(mut d) = UserDaemon::spawn(&env, NOBODY) else {
        eprintln!(
            "FAULT unreadable-subdirectory: skipped (setpriv cannot switch to uid {NOBODY} here)"
        );
        return false;
    };
    d.assert_synced_within(&src, &dst, SYNC_DEADLINE);
    let log_path = d.log_path.clone();
    let failed_attempts = move || {
        count_in(
            &strip_ansi(&String::from_utf8_lossy(
                &fs::read(&log_path).unwrap_or_default(),
            )),
            &["failed (attempt"],
        )
    };

    // Fault 1: a watched directory loses its permissions, then changes inside.
    let locked = src.join("locked");
    chmod(&locked, 0o000);
    write_owned(&locked.join("new.txt"), "written while unreadable");
    write_owned(&locked.join("inside.txt"), "changed while unreadable");
    // Fault 2: an unreadable directory arrives (moved in: one event, no watch possible).
    let stage = env.dir("stage/locked2");
    write(&stage.join("a.txt"), "in a directory nobody may read");
    write(&stage.join("sub/b.txt"), "deeper");
    chown_r(&stage, NOBODY);
    chmod(&stage, 0o000);
    fs::rename(&stage, src.join("locked2")).unwrap();
    // And a readable change beside them.
    write_owned(&src.join("free.txt"), "readable");

    d.wait_for("two failed attempts", Duration::from_secs(30), || {
        failed_attempts() >= 2
    });
    let free_arrived = fs::read_to_string(dst.join("free.txt")).is_ok_and(|s| s == "readable");
    let failures = failed_attempts();
    assert!(
        !tree_diff(&src, &dst, &[]).is_empty(),
        "the unreadable directories were synced anyway (is the daemon really uid {NOBODY}?)"
    );

    // Clear the faults.
    let cleared = Instant::now();
    chmod(&locked, 0o755);
    chmod(&src.join("locked2"), 0o755);
    d.assert_synced_within(&src, &dst, Duration::from_secs(60));
    let took = cleared.elapsed();

    // The directory that was watched before stays watched: changes inside it arrive.
    write_owned(&locked.join("later.txt"), "after the fix");
    write_owned(&locked.join("sub/later.txt"), "after the fix");
    if moved_in_later {
        // The one that could not be watched when it arrived must be watched now.
        write_owned(&src.join("locked2/later.txt"), "after the fix");
        write_owned(&src.join("locked2/sub/later.txt"), "after the fix");
    }
    let later = d.assert_synced_within(&src, &dst, SYNC_DEADLINE);
    eprintln!(
        "  unreadable-subdirectory [{}]: {failures} failed attempts during the fault; a readable sibling change {} during the fault; later changes inside arrived in {:.2}s",
        mode.as_str(),
        if free_arrived {
            "arrived"
        } else {
            "waited for the fix"
        },
        later.as_secs_f64()
    );
    report(
        if moved_in_later {
            "unreadable-subdirectory-watched-after-fix"
        } else {
            "unreadable-subdirectory-uid65534"
        },
        Some(mode),
        took,
    );
    assert!(d.stop().success(), "{}", d.log_tail());
    true
}

#[test]
fn unreadable_subdirectory() {
    let _s = serial();
    if !is_root() {
        eprintln!("FAULT unreadable-subdirectory: skipped (needs root to switch to uid 65534)");
        return;
    }
    for mode in MODES {
        if !run(mode, false) {
            return;
        }
    }
}

/// Daemon bug: a directory that cannot be watched when it appears (EACCES from
/// `inotify_add_watch`) is only warned about (`cannot watch ...: Permission denied`) and never
/// tried again: not when its permissions come back (the parent's IN_ATTRIB becomes an
/// attributes-only change), not by a rescan (only ENOSPC failures are rescanned). Changes
/// inside it are then never seen until the daemon restarts.
#[test]
fn unreadable_subdirectory_watched_after_fix() {
    let _s = serial();
    if !is_root() {
        eprintln!("FAULT unreadable-subdirectory: skipped (needs root to switch to uid 65534)");
        return;
    }
    for mode in MODES {
        if !run(mode, true) {
            return;
        }
    }
}
