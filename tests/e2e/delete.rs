//! `delete = true | false | "startup" | "running"`: what a job removes at its destination,
//! with real rsync and the mirror. Each case starts with a destination holding a file the
//! source never had, then deletes a file, renames a file and a directory, adds and changes
//! files at the source; a verification (`verify_interval`) runs meanwhile.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::ctl::*;
use super::harness::*;

fn wait_until(d: &mut Daemon, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + SYNC_DEADLINE;
    while !ok() {
        d.assert_running();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// `delete` as written in the job file, and what it must do: remove extraneous files in
/// the initial sync, apply live deletions (and renames as renames).
fn check(mode: Mode, delete: &str, at_start: bool, live: bool) {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "d");
    write(&dst.join("extraneous-at-start"), "the destination's own");
    write(&dst.join("b/extraneous-below"), "the destination's own too");
    // One worker: batches run in order, so a marker synced means everything before it is.
    env.job(
        "j",
        &src,
        &dst,
        mode,
        &format!("delete = {delete}\nworkers = 1\nverify_interval = \"1s\"\n"),
    );
    let mut d = start_sup(&env, &["j"]);
    let v = status(&sock(&env)).unwrap();
    assert_eq!(
        job(&v, "j").unwrap()["delete"],
        delete.trim_matches('"'),
        "{v:#}"
    );
    assert!(dst.join("a.txt").exists());
    assert_eq!(
        dst.join("extraneous-at-start").exists(),
        !at_start,
        "initial sync with delete = {delete}\n{}",
        d.log_tail()
    );
    assert_eq!(dst.join("b/extraneous-below").exists(), !at_start);

    fs::remove_file(src.join("a.txt")).unwrap();
    fs::rename(src.join("b/b1.txt"), src.join("b/b1-renamed.txt")).unwrap();
    fs::rename(src.join("b/c"), src.join("b/c-renamed")).unwrap();
    write(&src.join("new.txt"), "new");
    write(&src.join("b/b2.txt"), "changed");
    write(&src.join("marker"), "m");
    wait_until(&mut d, "the live changes at the destination", || {
        read(&dst.join("marker")) == "m"
            && read(&dst.join("new.txt")) == "new"
            && read(&dst.join("b/b2.txt")) == "changed"
            && read(&dst.join("b/b1-renamed.txt")) == "beta one d"
            && read(&dst.join("b/c-renamed/d/e/deeper.bin")) == "\0\x01\x02binary d"
    });
    if live {
        wait_until(&mut d, "the live deletions", || {
            !dst.join("a.txt").exists()
                && !dst.join("b/b1.txt").exists()
                && !dst.join("b/c").exists()
        });
    }
    // Two verifications later (full syncs that are not the initial one) nothing changed.
    let seen = u64_of(&status(&sock(&env)).unwrap(), "j", "syncs");
    wait_status(&mut d, &env, "two more full syncs", |v| {
        u64_of(v, "j", "syncs") >= seen + 2 && job(v, "j").unwrap()["last_verify"].is_object()
    });
    let kept = |rel: &str| dst.join(rel).exists();
    assert_eq!(
        kept("a.txt"),
        !live,
        "deleted at the source\n{}",
        d.log_tail()
    );
    assert_eq!(kept("b/b1.txt"), !live, "a renamed file's old name");
    assert_eq!(
        kept("b/c/d/e/deeper.bin"),
        !live,
        "a renamed dir's old name"
    );
    assert_eq!(kept("extraneous-at-start"), !at_start, "{}", d.log_tail());
    if at_start && live {
        d.assert_synced(&src, &dst, &[]);
    }
    assert!(d.stop().success());
}

fn delete_true(mode: Mode) {
    check(mode, "true", true, true);
}

fn delete_false(mode: Mode) {
    check(mode, "false", false, false);
}

fn delete_startup(mode: Mode) {
    check(mode, "\"startup\"", true, false);
}

fn delete_running(mode: Mode) {
    check(mode, "\"running\"", false, true);
}

crate::both_modes! {
    always => delete_true;
    never => delete_false;
    startup => delete_startup;
    running => delete_running;
}

/// `[defaults] delete` is inherited, `clsync explain` names the setting, and wrong values
/// are errors at their file:line:column.
#[test]
fn defaults_explain_and_bad_values() {
    let env = sup_env("[defaults]\ndelete = false\n");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "x");
    env.job("inherits", &src, &dst, Mode::Rsync, "");
    let mut d = start_sup(&env, &["inherits"]);
    let out = cli_conf(&env, "explain", &["inherits", "a.txt"]);
    assert!(
        out.stdout
            .contains("delete = false: nothing is ever removed"),
        "{}",
        out.describe()
    );
    let out = cli_conf(&env, "explain", &["--json", "inherits", "a.txt"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["delete"], "false", "{v:#}");
    let v = status(&sock(&env)).unwrap();
    assert_eq!(job(&v, "inherits").unwrap()["delete"], "false", "{v:#}");
    let out = cli_conf(&env, "status", &[]);
    assert!(
        out.stdout.lines().nth(1).unwrap_or("").contains("DELETE"),
        "{}",
        out.describe()
    );
    assert!(d.stop().success());

    let bad = Env::new();
    bad.write_main_config("[defaults]\ndelete = \"sometimes\"\n");
    let j = bad.job("j", &src, &dst, Mode::Mirror, "delete = 1");
    let out = run_check(
        &bad.root,
        &[std::ffi::OsStr::new("--config-dir"), bad.conf.as_os_str()],
    );
    assert_ne!(out.code, Some(0), "{}", out.describe());
    let main = out.errors_in("clsync.toml");
    assert_eq!(main.len(), 1, "{}", out.describe());
    assert_eq!(
        (main[0].line, main[0].column),
        (2, 10),
        "{}",
        out.describe()
    );
    assert!(
        main[0]
            .message
            .contains("delete must be true, false, \"startup\" or \"running\", not \"sometimes\""),
        "{}",
        out.describe()
    );
    let in_job = out.errors_in(j.file_name().unwrap().to_str().unwrap());
    assert_eq!(in_job.len(), 1, "{}", out.describe());
    assert_eq!(
        (in_job[0].line, in_job[0].column),
        (5, 10),
        "{}",
        out.describe()
    );
}

/// The rescan after lost events is a full sync, not the initial one: with `"startup"` and
/// `"running"` it removes nothing (a file put at the destination after the start stays;
/// with `"startup"`, so does one deleted at the source), and the burst that overflowed
/// the queue still arrives.
fn rescan_after_overflow_removes_nothing(mode: Mode, delete: &str) {
    if !is_root() {
        eprintln!("NOTE: skipped: lowering max_queued_events needs root");
        return;
    }
    let _serial = SYSCTL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "o");
    env.job(
        "overflow",
        &src,
        &dst,
        mode,
        &format!("delete = {delete}\n"),
    );
    let Some(mut d) = env.start_with_sysctl(
        "/proc/sys/fs/inotify/max_queued_events",
        || "64".into(),
        &["overflow"],
    ) else {
        eprintln!("NOTE: skipped: cannot write max_queued_events");
        return;
    };
    write(&dst.join("put-at-destination"), "the destination's own");
    // Stopped, the daemon reads no event: the kernel's queue of 64 overflows for sure.
    d.signal(libc::SIGSTOP);
    fs::remove_file(src.join("a.txt")).unwrap();
    for n in 0..500 {
        fs::write(src.join(format!("burst-{n:04}")), "b").unwrap();
    }
    d.signal(libc::SIGCONT);
    wait_until(&mut d, "the burst at the destination", || {
        (0..500).all(|n| dst.join(format!("burst-{n:04}")).exists())
    });
    assert!(
        d.log().contains("inotify queue overflowed"),
        "no overflow: the test proves nothing\n{}",
        d.log_tail()
    );
    write(&src.join("marker"), "m");
    wait_until(&mut d, "the marker", || dst.join("marker").exists());
    assert!(
        dst.join("put-at-destination").exists(),
        "the rescan removed a file of the destination's own with delete = {delete}\n{}",
        d.log_tail()
    );
    // Under "running" the deletion may have been seen as an event before the queue
    // overflowed, and then applied; under "startup" nothing while running removes it.
    if delete.contains("startup") {
        assert!(dst.join("a.txt").exists(), "{}", d.log_tail());
    }
    assert!(d.stop().success());
}

fn overflow_startup(mode: Mode) {
    rescan_after_overflow_removes_nothing(mode, "\"startup\"");
}

fn overflow_running(mode: Mode) {
    rescan_after_overflow_removes_nothing(mode, "\"running\"");
}

crate::both_modes! {
    rescan_startup => overflow_startup;
    rescan_running => overflow_running;
}

/// A reload that restarts a `"startup"` job starts it again: its initial sync removes what
/// was deleted at the source while it ran (kept until then).
#[test]
fn startup_restart_removes_what_running_kept() {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "r");
    env.job("j", &src, &dst, Mode::Rsync, "delete = \"startup\"\n");
    let mut d = start_sup(&env, &["j"]);
    fs::remove_file(src.join("a.txt")).unwrap();
    write(&src.join("marker"), "m");
    wait_until(&mut d, "the marker", || dst.join("marker").exists());
    assert!(dst.join("a.txt").exists(), "{}", d.log_tail());
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        "delete = \"startup\"\nworkers = 3\n",
    );
    // A restarted job makes an inotify instance (see INOTIFY_START).
    let g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    d.signal(libc::SIGHUP);
    wait_status(&mut d, &env, "j restarted", |v| {
        v["last_reload"]["changed"] == serde_json::json!(["j"]) && is_watching(v, "j")
    });
    drop(g);
    wait_until(&mut d, "a.txt removed by the new initial sync", || {
        !dst.join("a.txt").exists()
    });
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}

/// `delete = false` to a remote destination over ssh: rsync without `--delete`, and no
/// rename replayed as a remote `mv`: the old names stay there too.
#[test]
fn remote_destination_keeps_old_names() {
    let env = Env::new();
    let Some(sshd) = super::sshd::Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "r");
    write(&dst.join("extraneous-at-start"), "kept");
    env.write_job(
        "remote",
        &format!(
            "source = {}\ndestination = {}\ndelay = \"100ms\"\ndelete = false\nworkers = 1\n{}",
            toml_path(&src),
            toml_str(&format!("root@127.0.0.1:{}", dst.display())),
            sshd.job_extra()
        ),
    );
    let mut d = env.start(&["remote"]);
    assert!(dst.join("extraneous-at-start").exists() && dst.join("a.txt").exists());
    fs::remove_file(src.join("a.txt")).unwrap();
    fs::rename(src.join("b"), src.join("b-renamed")).unwrap();
    write(&src.join("marker"), "m");
    wait_until(&mut d, "the renamed tree and the marker", || {
        dst.join("marker").exists() && read(&dst.join("b-renamed/b1.txt")) == "beta one r"
    });
    for kept in ["a.txt", "b/b1.txt", "b/c/deep.txt", "extraneous-at-start"] {
        assert!(dst.join(kept).exists(), "{kept} removed\n{}", d.log_tail());
    }
    assert!(d.stop().success());
}
