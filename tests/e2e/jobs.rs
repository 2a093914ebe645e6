//! Initial sync, several jobs in one daemon, failing jobs, config dir handling.

use super::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::time::Duration;

fn initial_sync(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    populate(&src, "pre-populated");
    for i in 0..50 {
        write(
            &src.join(format!("many/{}/f{i}", i % 7)),
            &"x".repeat(i * 100),
        );
    }
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    // The destination does not exist yet.
    let dst = env.p("dst");
    env.job("init", &src, &dst, mode, "");
    let mut d = env.start(&["init"]);
    // The initial sync is done when `watching` is logged: no waiting needed.
    let diff = tree_diff(&src, &dst, &[]);
    assert!(
        diff.is_empty(),
        "tree not equal when `watching` was logged (initial sync must be done by then):\n{}\n{}",
        truncate(&diff, 3000),
        d.log_tail()
    );
    write(&src.join("later.txt"), "later");
    d.assert_synced(&src, &dst, &[]);
}

/// "created if missing", parents included.
fn destination_with_missing_parents(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    populate(&src, "x");
    let dst = env.p("out/deep/dst");
    env.job("nested", &src, &dst, mode, "");
    let mut d = env.start(&["nested"]);
    d.assert_synced(&src, &dst, &[]);
}

fn initial_sync_replaces_stale_dst(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.dir("dst");
    populate(&src, "new");
    populate(&dst, "old and longer content");
    write(&dst.join("stale/file"), "stale");
    write(&dst.join("b/stale.txt"), "stale");
    fs::remove_dir_all(dst.join("empty-dir")).unwrap();
    env.job("init", &src, &dst, mode, "");
    let mut d = env.start(&["init"]);
    d.assert_synced(&src, &dst, &[]);
}

fn no_initial_sync(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "pre-existing");
    env.job("noinit", &src, &dst, mode, "initial_sync = false");
    let mut d = env.start(&["noinit"]);
    // A later change is synced...
    write(&src.join("new.txt"), "new");
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    while fs::read_to_string(dst.join("new.txt")).ok().as_deref() != Some("new") {
        d.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "a change made after `watching` was not synced with initial_sync = false\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    // ...and so is a later change to a pre-existing file, in a pre-existing (watched) dir.
    write(&src.join("b/c/deep.txt"), "changed later");
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    while fs::read_to_string(dst.join("b/c/deep.txt")).ok().as_deref() != Some("changed later") {
        d.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "a later change to a pre-existing file was not synced with initial_sync = false\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    // But the untouched pre-existing files were not copied.
    for rel in [
        "a.txt",
        "b/b1.txt",
        "b/b2.txt",
        "b/c/d/e/deeper.bin",
        "empty/.keep",
    ] {
        assert!(
            !dst.join(rel).exists(),
            "{rel} was copied although initial_sync = false"
        );
    }
}

/// Two jobs in one daemon, each with its own source and destination.
fn two_jobs(mode: Mode) {
    let env = Env::new();
    let (s1, d1) = (env.dir("src1"), env.p("dst1"));
    let (s2, d2) = (env.dir("src2"), env.p("dst2"));
    populate(&s1, "one");
    populate(&s2, "two");
    env.job("first", &s1, &d1, mode, "");
    let other = if mode == Mode::Rsync {
        Mode::Mirror
    } else {
        Mode::Rsync
    };
    env.job("second", &s2, &d2, other, "");
    let mut d = env.start(&["first", "second"]);
    d.assert_synced(&s1, &d1, &[]);
    d.assert_synced(&s2, &d2, &[]);
    write(&s1.join("only-in-1"), "1");
    write(&s2.join("only-in-2"), "2");
    fs::remove_dir_all(s1.join("b")).unwrap();
    d.assert_synced(&s1, &d1, &[]);
    d.assert_synced(&s2, &d2, &[]);
    assert!(!d2.join("only-in-1").exists() && !d1.join("only-in-2").exists());
}

/// Job A's source is missing at start: B syncs anyway; once A's source appears, A starts
/// syncing without a restart.
fn missing_source(mode: Mode) {
    let env = Env::new();
    let (sa, da) = (env.p("src-a"), env.p("dst-a"));
    let (sb, db) = (env.dir("src-b"), env.p("dst-b"));
    populate(&sb, "b");
    env.job("jobA", &sa, &da, mode, "");
    env.job("jobB", &sb, &db, mode, "");
    let mut d = env.start(&["jobB"]);
    d.assert_synced(&sb, &db, &[]);
    write(&sb.join("b/while-a-missing"), "x");
    d.assert_synced(&sb, &db, &[]);
    d.assert_running();

    fs::create_dir(&sa).unwrap();
    populate(&sa, "a appears");
    d.assert_synced_within(&sa, &da, &[], Duration::from_secs(60));
    // A is live now.
    d.wait_watching(&["jobA"]);
    write(&sa.join("b/live-a"), "live");
    d.assert_synced(&sa, &da, &[]);
    write(&sb.join("b/c/still-b"), "b");
    d.assert_synced(&sb, &db, &[]);
}

/// A job whose rsync always fails does not stop a healthy job, nor the daemon.
#[test]
fn failing_rsync_beside_healthy_job() {
    let env = Env::new();
    let fail = env.script(
        "rsync-fail.sh",
        "echo 'rsync-fail: simulated failure' >&2\nexit 1",
    );
    let (sa, da) = (env.dir("src-a"), env.p("dst-a"));
    let (sb, db) = (env.dir("src-b"), env.p("dst-b"));
    populate(&sa, "a");
    populate(&sb, "b");
    env.job(
        "broken",
        &sa,
        &da,
        Mode::Rsync,
        &format!("\n[rsync]\npath = {}", toml_path(&fail)),
    );
    env.job("healthy", &sb, &db, Mode::Rsync, "");
    let mut d = env.start(&["healthy"]);
    d.assert_synced(&sb, &db, &[]);
    for i in 0..5 {
        write(&sa.join(format!("b/a{i}")), "never synced");
        write(&sb.join(format!("b/c/b{i}")), "synced");
        d.assert_synced(&sb, &db, &[]);
    }
    d.assert_running();
    assert!(!da.join("b/a0").exists());
    let st = d.stop();
    assert!(
        st.success(),
        "SIGTERM with a failing job must still exit 0, got {st}\n{}",
        d.log_tail()
    );
}

/// Only `*.toml` files in jobs.d are jobs.
fn non_toml_ignored(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "x");
    env.job("web", &src, &dst, mode, "");
    let jobs_d = env.conf.join("jobs.d");
    let decoy = |name: &str, dest: &str| {
        fs::write(jobs_d.join(name), job_toml(&src, &env.p(dest), mode, "")).unwrap();
    };
    decoy("web.toml.dpkg-old", "dst-dpkg-old");
    decoy("web.toml~", "dst-backup");
    decoy("web.toml.bak", "dst-bak");
    decoy(".web.toml.swp", "dst-swp");
    decoy("web.TOML.orig", "dst-orig");
    fs::write(jobs_d.join("README"), "This is not TOML at all = [\n").unwrap();
    fs::create_dir(jobs_d.join("subdir")).unwrap();
    let mut d = env.start(&["web"]);
    d.assert_synced(&src, &dst, &[]);
    write(&src.join("new"), "n");
    d.barrier(&src, &dst, &[]);
    for dest in [
        "dst-dpkg-old",
        "dst-backup",
        "dst-bak",
        "dst-swp",
        "dst-orig",
    ] {
        assert!(
            !env.p(dest).exists(),
            "a non-.toml file in jobs.d was run as a job ({dest})"
        );
    }
    let out = run_check(
        &env.root,
        &[OsStr::new("--config-dir"), env.conf.as_os_str()],
    );
    assert_eq!(
        out.code,
        Some(0),
        "check must ignore non-.toml files\n{}",
        out.describe()
    );
}

/// Relative `source`/`destination` resolve against the config dir, not the cwd.
#[test]
fn relative_paths_resolve_against_config_dir() {
    let env = Env::new();
    let src = env.conf.join("src");
    fs::create_dir(&src).unwrap();
    populate(&src, "rel");
    let dst = env.conf.join("dst");
    env.write_job(
        "rel",
        "source = \"src\"\ndestination = \"dst\"\ndelay = \"100ms\"\n",
    );
    // A decoy source relative to the daemon's cwd (root) that must not be used.
    populate(&env.dir("src"), "wrong");
    let mut d = env.start(&["rel"]);
    d.assert_synced(&src, &dst, &[]);
    write(&src.join("live"), "live");
    d.assert_synced(&src, &dst, &[]);
    assert!(
        !env.p("dst").exists(),
        "destination resolved against the cwd"
    );
}

/// `CLSYNC_CONFIG_DIR` instead of `--config-dir`.
#[test]
fn config_dir_from_env() {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "env");
    env.job("envjob", &src, &dst, Mode::Rsync, "");
    let mut d = env.spawn_with(
        &[OsStr::new("run")],
        &[("CLSYNC_CONFIG_DIR", env.conf.as_os_str())],
    );
    d.wait_watching(&["envjob"]);
    d.assert_synced(&src, &dst, &[]);
    write(&src.join("x"), "x");
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}

/// `enabled = false` jobs do not run.
fn disabled(mode: Mode) {
    let env = Env::new();
    let (s1, d1) = (env.dir("src1"), env.p("dst1"));
    let (s2, d2) = (env.dir("src2"), env.p("dst2"));
    populate(&s1, "on");
    populate(&s2, "off");
    env.job("on", &s1, &d1, mode, "");
    env.job("off", &s2, &d2, mode, "enabled = false");
    let mut d = env.start(&["on"]);
    write(&s2.join("x"), "x");
    d.barrier(&s1, &d1, &[]);
    assert!(
        !d2.join("x").exists() && !d2.join("a.txt").exists(),
        "disabled job ran"
    );
}

crate::both_modes! {
    initial_sync_of_populated_tree => initial_sync;
    initial_sync_deletes_stale_destination_entries => initial_sync_replaces_stale_dst;
    destination_created_with_missing_parents => destination_with_missing_parents;
    initial_sync_false_copies_only_later_changes => no_initial_sync;
    two_jobs_in_one_daemon => two_jobs;
    missing_source_retried_while_other_job_syncs => missing_source;
    non_toml_files_in_jobs_d_ignored => non_toml_ignored;
    disabled_job_does_not_run => disabled;
}
