//! `destinations = [...]`: one job file, several targets, each with its own retry state.

use std::fs;

use super::harness::*;

#[test]
fn one_target_down_does_not_hold_back_the_other() {
    let env = Env::new();
    let src = env.dir("src");
    let (da, db) = (env.p("dst-a"), env.p("dst-b"));
    populate(&src, "f");
    // Target b is "down" while the flag file exists.
    let flag = env.p("b-is-down");
    write(&flag, "");
    let rsync = env.script(
        "rsync-b-down.sh",
        &format!(
            "case \"$*\" in *dst-b/*) [ -e '{}' ] && {{ echo 'b is down' >&2; exit 12; }};; esac\nexec rsync \"$@\"",
            flag.display()
        ),
    );
    env.write_job(
        "web",
        &format!(
            "source = {}\ndestinations = [{}, {}]\ndelay = \"100ms\"\n[rsync]\npath = {}\n",
            toml_path(&src),
            toml_path(&da),
            toml_path(&db),
            toml_path(&rsync)
        ),
    );
    let a_name = target_name("web", &da.to_string_lossy());
    let mut d = env.start(&[a_name.as_str()]);
    d.assert_synced(&src, &da, &[]);
    for i in 0..5 {
        write(&src.join(format!("while-b-down-{i}")), "x");
        d.assert_synced(&src, &da, &[]);
    }
    assert!(!db.join("while-b-down-0").exists());
    assert!(d.log().contains("b is down"), "{}", d.log_tail());
    // b comes back: it catches up with everything, the changes made while it was down too.
    fs::remove_file(&flag).unwrap();
    let took = d.assert_synced_within(&src, &db, &[], std::time::Duration::from_secs(90));
    eprintln!(
        "target b caught up {:.2}s after it came back",
        took.as_secs_f64()
    );
    d.assert_synced(&src, &da, &[]);
    assert!(d.stop().success());
}

/// A target's identity is its destination: editing one target's destination restarts that
/// target only, and removing the first target leaves the others running under their names.
#[test]
fn reload_touches_only_the_edited_target() {
    use super::ctl::*;
    use serde_json::json;
    use std::path::Path;
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "f");
    let (da, db, dc, dc2) = (
        env.p("dst-a"),
        env.p("dst-b"),
        env.p("dst-c"),
        env.p("dst-c2"),
    );
    let job = |targets: &[&Path]| {
        let list: Vec<String> = targets.iter().map(|t| toml_path(t)).collect();
        env.write_job(
            "web",
            &format!(
                "source = {}\ndestinations = [{}]\ndelay = \"100ms\"\n",
                toml_path(&src),
                list.join(", ")
            ),
        );
    };
    let name = |d: &Path| target_name("web", &d.to_string_lossy());
    let (na, nb, nc, nc2) = (name(&da), name(&db), name(&dc), name(&dc2));
    job(&[&da, &db, &dc]);
    let mut d = start_sup(&env, &[&na, &nb, &nc]);
    for t in [&da, &db, &dc] {
        d.assert_synced(&src, t, &[]);
    }

    job(&[&da, &db, &dc2]);
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "the edited target watching", |v| {
        is_watching(v, &nc2) && v["last_reload"]["added"] == json!([nc2])
    });
    assert_eq!(v["last_reload"]["removed"], json!([nc]), "{v:#}");
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");
    for n in [&na, &nb] {
        assert_eq!(u64_of(&v, n, "initial_syncs"), 1, "{n} restarted\n{v:#}");
    }

    job(&[&db, &dc2]);
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "the first target removed", |v| {
        v["last_reload"]["removed"] == json!([na])
    });
    assert_eq!(v["last_reload"]["added"], json!([]), "{v:#}");
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");
    assert!(is_watching(&v, &nb), "{v:#}");
    assert_eq!(u64_of(&v, &nb, "initial_syncs"), 1, "{nb} restarted\n{v:#}");
    write(&src.join("after-reloads"), "x");
    for t in [&db, &dc2] {
        d.assert_synced(&src, t, &[]);
    }
}

/// Writes the job file `web` with `src` fanned out to `dsts`.
fn fan_out_job(env: &Env, src: &std::path::Path, dsts: &[std::path::PathBuf]) {
    let list: Vec<String> = dsts.iter().map(|t| toml_path(t)).collect();
    env.write_job(
        "web",
        &format!(
            "source = {}\ndestinations = [{}]\ndelay = \"100ms\"\n",
            toml_path(src),
            list.join(", ")
        ),
    );
}

fn names(dsts: &[std::path::PathBuf]) -> Vec<String> {
    dsts.iter()
        .map(|d| target_name("web", &d.to_string_lossy()))
        .collect()
}

/// Spawns the daemon of a `sup_env` at log level debug (the monitor logs each walk of the
/// source) and waits until `jobs` are watching.
fn start_debug(env: &Env, jobs: &[String]) -> Daemon {
    use super::ctl::wait_jobs_watching;
    use std::ffi::OsStr;
    let mut d = env.spawn_with(
        &[
            OsStr::new("run"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
        ],
        &[("CLSYNC_LOG", OsStr::new("debug"))],
    );
    let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    wait_jobs_watching(&mut d, env, &jobs);
    d.release_start_guard();
    d
}

/// How many times a monitor walked a source to watch it: one line per walk ("watched N
/// directories in T", not the re-walk after lost events).
fn walks(d: &Daemon) -> usize {
    d.log()
        .lines()
        .filter(|l| l.contains(": watched ") && l.contains(" directories in "))
        .count()
}

/// The daemon's threads whose name starts with `prefix` (Linux keeps 15 bytes of a name).
fn threads_named(pid: i32, prefix: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

/// The targets of a job file follow one monitor: one thread watches the source and walks
/// it once, however many targets; each target still has its own thread (queue, retries).
#[test]
fn every_target_follows_one_monitor() {
    use super::ctl::*;
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "f");
    let dsts: Vec<_> = (0..4).map(|i| env.p(&format!("dst-{i}"))).collect();
    fan_out_job(&env, &src, &dsts);
    let names = names(&dsts);
    let mut d = start_debug(&env, &names);
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
    assert_eq!(
        threads_named(d.pid(), "clsync-hub-web"),
        1,
        "{}",
        d.log_tail()
    );
    assert_eq!(threads_named(d.pid(), "clsync-job-web@"), dsts.len());
    assert_eq!(walks(&d), 1, "one walk of the source\n{}", d.log_tail());
    let v = status(&sock(&env)).unwrap();
    let dirs = u64_of(&v, &names[0], "watched_dirs");
    assert!(dirs >= 3, "{v:#}");
    for n in &names {
        assert_eq!(u64_of(&v, n, "watched_dirs"), dirs, "{n}\n{v:#}");
    }
    fs::create_dir(src.join("b/new-dir")).unwrap();
    write(&src.join("b/new-dir/live"), "x");
    write(&src.join("a/live"), "y");
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
    assert!(d.stop().success());
}

/// A target added by a reload joins the running monitor: it syncs the whole tree, then
/// follows live changes; the others keep running, and the source is not walked again.
#[test]
fn a_target_added_by_reload_syncs_the_tree_then_live_changes() {
    use super::ctl::*;
    use serde_json::json;
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "f");
    let dsts: Vec<_> = ["dst-a", "dst-b", "dst-c"].map(|n| env.p(n)).into();
    fan_out_job(&env, &src, &dsts[..2]);
    let names = names(&dsts);
    let mut d = start_debug(&env, &names[..2]);
    for t in &dsts[..2] {
        d.assert_synced(&src, t, &[]);
    }
    write(&src.join("b/c/before-the-reload"), "x");
    fan_out_job(&env, &src, &dsts);
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "the added target watching", |v| {
        is_watching(v, &names[2]) && v["last_reload"]["added"] == json!([names[2]])
    });
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");
    assert_eq!(v["last_reload"]["removed"], json!([]), "{v:#}");
    for n in &names[..2] {
        assert_eq!(u64_of(&v, n, "initial_syncs"), 1, "{n} restarted\n{v:#}");
    }
    d.assert_synced(&src, &dsts[2], &[]);
    assert_eq!(
        walks(&d),
        1,
        "the new target joined the running monitor\n{}",
        d.log_tail()
    );
    fs::create_dir(src.join("after-reload")).unwrap();
    write(&src.join("after-reload/live"), "live");
    fs::remove_file(src.join("b/c/before-the-reload")).unwrap();
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
}

/// A fan-out job from `src` to `dsts`, started with the kernel's event queue at 16 (restored
/// once the daemon has its inotify instance), every target synced; `None` (skipped) when the
/// sysctl cannot be lowered (not root).
fn start_with_a_small_queue(
    env: &Env,
    src: &std::path::Path,
    dsts: &[std::path::PathBuf],
) -> Option<Daemon> {
    fan_out_job(env, src, dsts);
    let names = names(dsts);
    let jobs: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some(mut d) = env.start_with_sysctl(
        "/proc/sys/fs/inotify/max_queued_events",
        || "16".to_string(),
        &jobs,
    ) else {
        eprintln!("skipped: cannot lower fs.inotify.max_queued_events (needs root)");
        return None;
    };
    for t in dsts {
        d.assert_synced(src, t, &[]);
    }
    Some(d)
}

/// The kernel's queue overflows under a burst while the daemon is stopped: the one monitor
/// rescans, and every target converges.
#[test]
fn overflow_converges_on_every_target() {
    let env = Env::new();
    let src = env.dir("src");
    populate(&src, "f");
    let dsts: Vec<_> = (0..3).map(|i| env.p(&format!("dst-{i}"))).collect();
    let Some(mut d) = start_with_a_small_queue(&env, &src, &dsts) else {
        return;
    };
    // Stopped, the daemon cannot read: the kernel's queue of 16 events overflows for sure
    // (every thread stopped first: a signal is delivered when each is next scheduled).
    d.signal(libc::SIGSTOP);
    wait_stopped(d.pid());
    for i in 0..200 {
        write(&src.join(format!("b/burst-{i}")), "b");
    }
    fs::remove_dir_all(src.join("b/c")).unwrap();
    d.signal(libc::SIGCONT);
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
    // One monitor saw the overflow and rescanned once for every target.
    let overflows = d.log().matches("inotify queue overflowed").count();
    assert_eq!(overflows, 1, "{}", d.log_tail());
    write(&src.join("b/after-the-overflow"), "x");
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
}

/// The source is removed and made again: every target reports it gone, then converges on
/// the new tree and follows it live.
#[test]
fn a_source_removed_and_made_again_converges_on_every_target() {
    use super::ctl::*;
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "f");
    let dsts: Vec<_> = (0..3).map(|i| env.p(&format!("dst-{i}"))).collect();
    fan_out_job(&env, &src, &dsts);
    let names = names(&dsts);
    let jobs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut d = start_sup(&env, &jobs);
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
    fs::remove_dir_all(&src).unwrap();
    wait_status(&mut d, &env, "every target's source gone", |v| {
        names.iter().all(|n| {
            job(v, n).is_some_and(|j| {
                // "source … disappeared", then "cannot watch source …" while it is missing.
                j["state"] == "failed"
                    && j["last_error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("disappeared") || m.contains("cannot watch"))
            })
        })
    });
    fs::create_dir(&src).unwrap();
    populate(&src, "made again");
    write(&src.join("only-in-the-new-tree"), "n");
    for t in &dsts {
        d.assert_synced_within(&src, t, &[], std::time::Duration::from_secs(60));
    }
    wait_jobs_watching(&mut d, &env, &jobs);
    write(&src.join("b/live"), "live");
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
}

/// The source is moved away, and its kernel queue overflows in the same read as the move
/// (events in the moved tree, still watched), while a new source is already there: the
/// hub starts over on the new source, and every target converges on it.
#[test]
fn a_source_moved_away_in_the_read_of_an_overflow_converges_on_the_new_one() {
    let env = Env::new();
    let src = env.dir("src");
    populate(&src, "f");
    let dsts: Vec<_> = (0..2).map(|i| env.p(&format!("dst-{i}"))).collect();
    let Some(mut d) = start_with_a_small_queue(&env, &src, &dsts) else {
        return;
    };
    // Stopped, the daemon reads every event at once when it goes on: the root's move first,
    // then the kernel's overflow (its queue holds 16).
    d.signal(libc::SIGSTOP);
    wait_stopped(d.pid());
    let old = env.p("src-old");
    fs::rename(&src, &old).unwrap();
    for i in 0..200 {
        write(&old.join(format!("b/burst-{i}")), "b");
    }
    fs::create_dir(&src).unwrap();
    populate(&src, "made again");
    write(&src.join("only-in-the-new-tree"), "n");
    d.signal(libc::SIGCONT);
    for t in &dsts {
        d.assert_synced_within(&src, t, &[], std::time::Duration::from_secs(30));
    }
    // The case at hand: one overflow, read with the move.
    let overflows = d.log().matches("inotify queue overflowed").count();
    assert_eq!(overflows, 1, "{}", d.log_tail());
    write(&src.join("b/live"), "live");
    for t in &dsts {
        d.assert_synced(&src, t, &[]);
    }
}

/// Waits (10 s at most) until every thread of the process `pid` is stopped (a SIGSTOP is
/// delivered after `kill` returns): none reads an event meanwhile.
fn wait_stopped(pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The state follows the command's name in parentheses.
    let stopped = |stat: &str| {
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        matches!(state, Some('T' | 't'))
    };
    loop {
        let running = fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter(|stat| !stopped(stat))
            .count();
        if running == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{running} threads still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
