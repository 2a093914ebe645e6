//! Reloading a running daemon (SIGHUP and `clsync reload`): the diff by job name, invalid
//! configurations, `[defaults]`, `enabled = false`, and many reloads under load.

use super::ctl::*;
use super::harness::*;
use serde_json::{Value, json};
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Sends SIGHUP (callers that make a reload start jobs hold `INOTIFY_START` meanwhile: a
/// started job creates an inotify instance).
fn sighup(d: &mut Daemon) {
    d.signal(libc::SIGHUP);
}

fn last_reload(v: &Value) -> &Value {
    &v["last_reload"]
}

/// Add a job, change one, delete another's file; one SIGHUP applies all three.
#[test]
fn sighup_adds_changes_and_removes_jobs() {
    let env = sup_env("");
    let (sa, da) = (env.dir("src-alpha"), env.p("dst-alpha"));
    let (sb, db) = (env.dir("src-bravo"), env.p("dst-bravo"));
    let (sc, dc) = (env.dir("src-charlie"), env.p("dst-charlie"));
    populate(&sa, "alpha");
    populate(&sb, "bravo");
    populate(&sc, "charlie");
    let fa = env.job("alpha", &sa, &da, Mode::Rsync, "");
    env.job("bravo", &sb, &db, Mode::Rsync, "");
    let mut d = start_sup(&env, &["alpha", "bravo"]);
    d.assert_synced(&sa, &da, &[]);
    d.assert_synced(&sb, &db, &[]);
    write(&sa.join("before-reload"), "a");
    d.assert_synced(&sa, &da, &[]);

    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    env.job("charlie", &sc, &dc, Mode::Rsync, "");
    env.job("bravo", &sb, &db, Mode::Rsync, "exclude = [\"*.skip\"]");
    fs::remove_file(&fa).unwrap();
    sighup(&mut d);
    let v = wait_status(
        &mut d,
        &env,
        "alpha gone, bravo restarted, charlie watching",
        |v| {
            job(v, "alpha").is_none()
                && is_watching(v, "bravo")
                && is_watching(v, "charlie")
                && last_reload(v)["ok"] == true
        },
    );
    drop(_g);
    let r = last_reload(&v);
    assert_eq!(r["added"], json!(["charlie"]), "{v:#}");
    assert_eq!(r["changed"], json!(["bravo"]), "{v:#}");
    assert_eq!(r["removed"], json!(["alpha"]), "{v:#}");
    assert_eq!(r["errors"], json!([]), "{v:#}");
    let names: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bravo", "charlie"], "jobs sorted by name: {v:#}");
    // Bravo ran a new full sync as a new instance (its counter restarted at 1).
    wait_log_count(&mut d, "name=bravo}: initial sync done", 2);
    let v = status(&sock(&env)).unwrap();
    assert_eq!(u64_of(&v, "bravo", "initial_syncs"), 1, "{v:#}");
    assert_eq!(job_log_count(&d, "charlie", INITIAL_DONE), 1);
    assert_eq!(job_log_count(&d, "alpha", INITIAL_DONE), 1);
    assert!(
        d.log()
            .contains(r#"reload: starting ["charlie"], restarting ["bravo"], stopping ["alpha"]"#),
        "no reload summary line\n{}",
        d.log_tail()
    );

    // Charlie syncs live.
    d.assert_synced(&sc, &dc, &[]);
    write(&sc.join("b/new-in-charlie"), "c");
    d.assert_synced(&sc, &dc, &[]);
    // Bravo runs with its new configuration.
    write(&sb.join("b/x.skip"), "excluded now");
    write(&sb.join("b/kept"), "kept");
    d.barrier(&sb, &db, &["*.skip"]);
    assert!(
        !db.join("b/x.skip").exists(),
        "bravo still runs with its old configuration (no exclude)\n{}",
        d.log_tail()
    );
    // Alpha stopped.
    write(&sa.join("after-reload"), "a");
    assert_never_appears(&mut d, &da.join("after-reload"), (&sc, &dc));
    assert!(da.join("before-reload").exists());
    d.assert_running();
}

/// A job whose configuration did not change keeps its instance: counters keep growing,
/// no second initial sync.
#[test]
fn unchanged_job_keeps_running() {
    let env = sup_env("");
    let (su, du) = (env.dir("src-uniform"), env.p("dst-uniform"));
    let (sv, dv) = (env.dir("src-victor"), env.p("dst-victor"));
    populate(&su, "u");
    populate(&sv, "v");
    env.job("uniform", &su, &du, Mode::Rsync, "");
    env.job("victor", &sv, &dv, Mode::Rsync, "");
    let mut d = start_sup(&env, &["uniform", "victor"]);
    // Several separate syncs, so that a restarted job's counter could not catch up.
    for i in 0..4 {
        write(&su.join(format!("round-{i}")), "r");
        d.assert_synced(&su, &du, &[]);
    }
    let before = wait_status(&mut d, &env, "uniform watching after 5 syncs", |v| {
        is_watching(v, "uniform") && u64_of(v, "uniform", "syncs") >= 5
    });
    let syncs0 = u64_of(&before, "uniform", "syncs");
    let dirs0 = u64_of(&before, "uniform", "watched_dirs");
    assert_eq!(u64_of(&before, "uniform", "initial_syncs"), 1);

    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    env.job("victor", &sv, &dv, Mode::Rsync, "exclude = [\"*.tmp\"]");
    sighup(&mut d);
    wait_log_count(&mut d, "name=victor}: initial sync done", 2);
    let after = wait_jobs_watching(&mut d, &env, &["uniform", "victor"]);
    drop(_g);
    assert_eq!(
        last_reload(&after)["changed"],
        json!(["victor"]),
        "{after:#}"
    );
    assert_eq!(last_reload(&after)["added"], json!([]), "{after:#}");
    assert_eq!(last_reload(&after)["removed"], json!([]), "{after:#}");
    assert_eq!(u64_of(&after, "uniform", "initial_syncs"), 1, "{after:#}");
    assert!(
        u64_of(&after, "uniform", "syncs") >= syncs0,
        "uniform's sync counter went back from {syncs0}: it was restarted\n{after:#}"
    );
    assert_eq!(
        u64_of(&after, "uniform", "watched_dirs"),
        dirs0,
        "{after:#}"
    );

    write(&su.join("b/after-1"), "x");
    d.assert_synced(&su, &du, &[]);
    write(&su.join("b/c/after-2"), "y");
    d.assert_synced(&su, &du, &[]);
    let end = wait_status(&mut d, &env, "uniform's syncs beyond its old value", |v| {
        u64_of(v, "uniform", "syncs") > syncs0
    });
    assert_eq!(u64_of(&end, "uniform", "initial_syncs"), 1, "{end:#}");
    assert_eq!(
        job_log_count(&d, "uniform", INITIAL_DONE),
        1,
        "uniform ran a second initial sync\n{}",
        d.log_tail()
    );
    assert_eq!(job_log_count(&d, "victor", INITIAL_DONE), 2);
}

/// A broken job file: `clsync reload` refuses with `file:line:col:` errors, status says so,
/// the job keeps its old configuration; fixed, the reload applies.
#[test]
fn invalid_reload_keeps_old_config() {
    let env = sup_env("");
    let (sx, dx) = (env.dir("src-xray"), env.p("dst-xray"));
    populate(&sx, "x");
    env.job("xray", &sx, &dx, Mode::Rsync, "exclude = [\"*.tmp\"]");
    let mut d = start_sup(&env, &["xray"]);

    // The new version would exclude *.log instead of *.tmp, and has an unknown key (line 6).
    env.job(
        "xray",
        &sx,
        &dx,
        Mode::Rsync,
        "exclude = [\"*.log\"]\nbogus_key = 1",
    );
    let out = cli_conf(&env, "reload", &[]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    let errs = out.errors_in("jobs.d/xray.toml");
    assert!(
        errs.iter()
            .any(|e| e.line == 6 && e.column == 1 && e.message.contains("bogus_key")),
        "no xray.toml:6:1: error about bogus_key on stderr:\n{}",
        out.describe()
    );
    let v = status(&sock(&env)).unwrap();
    let r = last_reload(&v);
    assert_eq!(r["ok"], false, "{v:#}");
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("jobs.d/xray.toml:6:1:") && e.contains("bogus_key")),
        "last_reload.errors lacks the error: {v:#}"
    );
    assert!(is_watching(&v, "xray"), "{v:#}");
    let human = cli_conf(&env, "status", &[]);
    assert_eq!(human.code, Some(0), "{}", human.describe());
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("last reload:") && l.contains("FAILED")),
        "{}",
        human.describe()
    );
    assert!(
        human.stdout.contains("xray.toml:6:1:"),
        "{}",
        human.describe()
    );
    assert!(d.log().contains("reload refused"), "{}", d.log_tail());
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("xray.toml:6:1:") && l.contains("bogus_key")),
        "the error is not logged as file:line:col\n{}",
        d.log_tail()
    );

    // Still the old configuration: *.tmp excluded, *.log synced.
    write(&sx.join("b/old.tmp"), "t");
    write(&sx.join("b/old.log"), "l");
    d.barrier(&sx, &dx, &["*.tmp"]);
    assert!(!dx.join("b/old.tmp").exists(), "{}", d.log_tail());
    assert_eq!(job_log_count(&d, "xray", INITIAL_DONE), 1);

    // Fixed: the reload applies.
    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    env.job("xray", &sx, &dx, Mode::Rsync, "exclude = [\"*.log\"]");
    let out = cli_conf(&env, "reload", &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout.trim(),
        r#"reloaded: added [], changed ["xray"], removed []"#,
        "{}",
        out.describe()
    );
    wait_log_count(&mut d, "name=xray}: initial sync done", 2);
    let v = wait_jobs_watching(&mut d, &env, &["xray"]);
    drop(_g);
    assert_eq!(last_reload(&v)["ok"], true, "{v:#}");
    assert_eq!(last_reload(&v)["errors"], json!([]), "{v:#}");
    write(&sx.join("b/new.tmp"), "t");
    write(&sx.join("b/new.log"), "l");
    d.barrier(&sx, &dx, &["*.log"]);
    assert!(dx.join("b/new.tmp").exists(), "{}", d.log_tail());
    assert!(!dx.join("b/new.log").exists(), "{}", d.log_tail());
}

/// Changing `[defaults] delay` restarts the job that inherits it, not the one that sets its own.
#[test]
fn defaults_change_restarts_only_affected_jobs() {
    let env = sup_env("[defaults]\ndelay = \"100ms\"\n");
    let (so, dso) = (env.dir("src-own"), env.p("dst-own"));
    let (si, dsi) = (env.dir("src-inherit"), env.p("dst-inherit"));
    populate(&so, "o");
    populate(&si, "i");
    env.write_job("own", &job_toml_no_delay(&so, &dso, "delay = \"150ms\""));
    env.write_job("inherit", &job_toml_no_delay(&si, &dsi, ""));
    let mut d = start_sup(&env, &["own", "inherit"]);

    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    env.write_main_config(&format!("{DAEMON_TOML}\n[defaults]\ndelay = \"200ms\"\n"));
    let out = cli_conf(&env, "reload", &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout.trim(),
        r#"reloaded: added [], changed ["inherit"], removed []"#,
        "{}",
        out.describe()
    );
    wait_log_count(&mut d, "name=inherit}: initial sync done", 2);
    let v = wait_jobs_watching(&mut d, &env, &["own", "inherit"]);
    drop(_g);
    assert_eq!(last_reload(&v)["changed"], json!(["inherit"]), "{v:#}");
    assert_eq!(
        job_log_count(&d, "own", INITIAL_DONE),
        1,
        "{}",
        d.log_tail()
    );
    // An unchanged reload changes nothing.
    let out = cli_conf(&env, "reload", &[]);
    assert_eq!(
        out.stdout.trim(),
        "reloaded: added [], changed [], removed []",
        "{}",
        out.describe()
    );
    write(&si.join("later"), "l");
    write(&so.join("later"), "l");
    d.assert_synced(&si, &dsi, &[]);
    d.assert_synced(&so, &dso, &[]);
    assert_eq!(job_log_count(&d, "inherit", INITIAL_DONE), 2);
}

/// `enabled = false` stops a job (status: disabled, stopped); re-enabled, its initial sync
/// catches up with what changed meanwhile.
#[test]
fn disable_and_reenable_job() {
    let env = sup_env("");
    let (se, de) = (env.dir("src-echo"), env.p("dst-echo"));
    let (sf, df) = (env.dir("src-foxtrot"), env.p("dst-foxtrot"));
    populate(&se, "e");
    populate(&sf, "f");
    env.job("echo", &se, &de, Mode::Rsync, "");
    env.job("foxtrot", &sf, &df, Mode::Rsync, "");
    let mut d = start_sup(&env, &["echo", "foxtrot"]);
    d.assert_synced(&se, &de, &[]);

    env.job("echo", &se, &de, Mode::Rsync, "enabled = false");
    sighup(&mut d);
    let v = wait_status(&mut d, &env, "echo disabled", |v| {
        job(v, "echo").is_some_and(|j| j["enabled"] == false)
    });
    let e = job(&v, "echo").unwrap();
    assert_eq!(e["state"], "stopped", "{v:#}");
    assert_eq!(last_reload(&v)["removed"], json!(["echo"]), "{v:#}");
    assert!(is_watching(&v, "foxtrot"), "{v:#}");
    let human = cli_conf(&env, "status", &[]);
    assert_eq!(
        human.code,
        Some(0),
        "a disabled job is not unhealthy\n{}",
        human.describe()
    );
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["echo", "disabled"])),
        "{}",
        human.describe()
    );

    // Changes while disabled are not synced...
    write(&se.join("while-disabled"), "w");
    write(&se.join("b/c/deep.txt"), "changed while disabled");
    fs::remove_file(se.join("a.txt")).unwrap();
    assert_never_appears(&mut d, &de.join("while-disabled"), (&sf, &df));
    assert!(de.join("a.txt").exists());

    // ...until it is enabled again.
    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    env.job("echo", &se, &de, Mode::Rsync, "");
    sighup(&mut d);
    let v = wait_status(&mut d, &env, "echo enabled and watching", |v| {
        is_watching(v, "echo") && last_reload(v)["added"] == json!(["echo"])
    });
    drop(_g);
    assert_eq!(u64_of(&v, "echo", "initial_syncs"), 1, "{v:#}");
    d.assert_synced(&se, &de, &[]);
    write(&se.join("after-enable"), "x");
    d.assert_synced(&se, &de, &[]);
}

/// 100 SIGHUPs while a writer keeps creating files: every file is synced, and the daemon
/// holds as many descriptors and threads at the end as after its start.
#[test]
fn hundred_reloads_under_writes_no_leak() {
    let env = sup_env("");
    let (sl, dl) = (env.dir("src-load"), env.p("dst-load"));
    let (st, dt) = (env.dir("src-toggle"), env.p("dst-toggle"));
    for i in 0..4 {
        fs::create_dir_all(sl.join(format!("d{i}"))).unwrap();
    }
    populate(&st, "t");
    env.job("load", &sl, &dl, Mode::Rsync, "");
    let toggle_a = job_toml(&st, &dt, Mode::Rsync, "");
    let toggle_b = job_toml(&st, &dt, Mode::Rsync, "exclude = [\"*.nope\"]");
    env.write_job("toggle", &toggle_a);
    let mut d = start_sup(&env, &["load", "toggle"]);
    let pid = d.pid();

    // Baseline: idle, no client connected. Take it once it is stable.
    let stable = |pid: i32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = (proc_count(pid, "fd"), proc_count(pid, "task"));
        let mut same = 0;
        loop {
            std::thread::sleep(POLL);
            let now = (proc_count(pid, "fd"), proc_count(pid, "task"));
            if now == last {
                same += 1;
                if same >= 4 {
                    return now;
                }
            } else {
                same = 0;
                last = now;
            }
            assert!(Instant::now() < deadline, "fd/thread counts never settle");
        }
    };
    let (fds0, threads0) = stable(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written, sl) = (stop.clone(), written.clone(), sl.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let p = sl.join(format!("d{}/f{}", n % 4, n % 300));
                fs::write(&p, format!("{n}\n")).unwrap();
                n += 1;
                written.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    let mut flips = 0;
    let started = Instant::now();
    for i in 0..100 {
        let flip = i % 10 == 5;
        if flip {
            flips += 1;
            let text = if flips % 2 == 1 { &toggle_b } else { &toggle_a };
            env.write_job("toggle", text);
        }
        let done_before = log_count(&d, " reload: ");
        let toggle_inits = job_log_count(&d, "toggle", INITIAL_DONE);
        sighup(&mut d);
        // Each reload is processed before the next signal (signals do not queue).
        wait_log_count(&mut d, " reload: ", done_before + 1);
        if flip {
            wait_log_count(&mut d, "name=toggle}: initial sync done", toggle_inits + 1);
        }
    }
    let reload_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    drop(_g);
    assert_eq!(flips, 10);
    assert_eq!(log_count(&d, "SIGHUP: reloading"), 100, "{}", d.log_tail());
    assert_eq!(log_count(&d, "reload: starting"), 10, "{}", d.log_tail());
    assert_eq!(job_log_count(&d, "toggle", INITIAL_DONE), 11);
    assert_eq!(
        job_log_count(&d, "load", INITIAL_DONE),
        1,
        "{}",
        d.log_tail()
    );
    d.assert_synced(&sl, &dl, &[]);
    d.assert_synced(&st, &dt, &[]);
    let v = wait_status(&mut d, &env, "both jobs watching, nothing queued", |v| {
        ["load", "toggle"]
            .iter()
            .all(|j| is_watching(v, j) && u64_of(v, j, "queued") == 0)
    });
    assert_eq!(u64_of(&v, "load", "initial_syncs"), 1, "{v:#}");
    assert_eq!(u64_of(&v, "load", "failures"), 0, "{v:#}");

    // Client threads and rsync pipes are gone shortly after the last request/sync.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut fds1, mut threads1);
    loop {
        (fds1, threads1) = stable(pid);
        if (fds1, threads1) == (fds0, threads0) || Instant::now() > deadline {
            break;
        }
    }
    println!(
        "100 reloads ({flips} restarts of `toggle`) in {reload_time:?} while writing {} files; \
         load syncs {}; fds {fds0} -> {fds1}, threads {threads0} -> {threads1}",
        written.load(Ordering::SeqCst),
        u64_of(&v, "load", "syncs"),
    );
    assert_eq!(
        (fds1, threads1),
        (fds0, threads0),
        "descriptor or thread count changed after 100 reloads (fds, threads)\n{}",
        d.log_tail()
    );
    d.assert_running();
}
