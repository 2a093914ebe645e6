//! The control side of the daemon: `clsync status`, the control socket, pid and status
//! files, a second daemon, `clsync explain`, `clsync sync --once`.

use super::ctl::*;
use super::harness::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Polls `clsync status` (human) until its exit code is `code`; returns that output.
fn wait_cli_status(d: &mut Daemon, env: &Env, code: i32) -> CheckOutput {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let out = cli_conf(env, "status", &[]);
        if out.code == Some(code) {
            return out;
        }
        d.assert_running();
        if Instant::now() > deadline {
            panic!(
                "`clsync status` never exited {code}; last:\n{}\n{}",
                out.describe(),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The row of `job` in the human status table, split on whitespace.
fn row<'a>(out: &'a CheckOutput, job: &str) -> Vec<&'a str> {
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&job))
        .unwrap_or_else(|| panic!("no row for {job}:\n{}", out.describe()))
}

/// A failing job (missing source: failed; rsync always exits 1: retrying), an invalid job
/// file and a healthy job: status shows each, exits 4.
#[test]
fn status_with_failing_jobs_exits_4() {
    let env = sup_env("");
    let (sh, dh) = (env.dir("src-healthy"), env.p("dst-healthy"));
    let (sr, dr) = (env.dir("src-badrsync"), env.p("dst-badrsync"));
    populate(&sh, "h");
    populate(&sr, "r");
    let failing = env.script("rsync-fails.sh", "echo 'always failing' >&2\nexit 1");
    env.job("healthy", &sh, &dh, Mode::Rsync, "");
    env.job(
        "badrsync",
        &sr,
        &dr,
        Mode::Rsync,
        &format!("[rsync]\npath = {}", toml_path(&failing)),
    );
    env.job(
        "nosrc",
        &env.p("missing-src"),
        &env.p("dst-nosrc"),
        Mode::Rsync,
        "",
    );
    env.write_job("invalid", "source = \"/x\"\nnot_a_key = 1\n");
    let mut d = start_sup(&env, &["healthy"]);

    let v = wait_status(&mut d, &env, "badrsync retrying, nosrc failed", |v| {
        job(v, "badrsync").is_some_and(|j| j["state"] == "retrying")
            && job(v, "nosrc").is_some_and(|j| j["state"] == "failed")
    });
    let names: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["badrsync", "healthy", "invalid", "nosrc"], "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["pid"], d.pid());
    assert_eq!(v["config_dir"], env.conf.to_str().unwrap());
    assert!(
        v["version"].is_string() && v["started"].is_string(),
        "{v:#}"
    );
    assert_eq!(v["last_reload"], Value::Null);

    let h = job(&v, "healthy").unwrap();
    assert_eq!(h["enabled"], true);
    assert_eq!(h["mode"], "rsync");
    assert_eq!(h["source"], sh.to_str().unwrap());
    assert_eq!(h["destination"], dh.to_str().unwrap());
    assert!(h["last_success"].is_string(), "{v:#}");
    assert_eq!(h["last_error"], Value::Null, "{v:#}");
    assert_eq!(h["failures"], 0);
    assert!(h["watched_dirs"].as_u64() >= Some(6), "{v:#}");

    let r = job(&v, "badrsync").unwrap();
    assert!(r["failures"].as_u64() >= Some(1), "{v:#}");
    assert!(r["consecutive_failures"].as_u64() >= Some(1), "{v:#}");
    assert_eq!(r["last_success"], Value::Null, "{v:#}");
    assert!(r["last_error"]["message"].is_string(), "{v:#}");
    assert!(r["last_error"]["time"].is_string(), "{v:#}");

    let n = job(&v, "nosrc").unwrap();
    let msg = n["last_error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("missing-src"), "{v:#}");

    let i = job(&v, "invalid").unwrap();
    assert_eq!(i["state"], "failed", "{v:#}");
    let msg = i["last_error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("invalid configuration") && msg.contains("not_a_key"),
        "{v:#}"
    );

    let json_out = cli_conf(&env, "status", &["--json"]);
    assert_eq!(json_out.code, Some(4), "{}", json_out.describe());
    let parsed: Value = serde_json::from_str(&json_out.stdout).expect("status --json is JSON");
    assert_eq!(parsed["jobs"].as_array().unwrap().len(), 4);

    // `badrsync` is "syncing" for the moment a retry runs: poll for the exit code.
    let out = wait_cli_status(&mut d, &env, 4);
    let head: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        head,
        [
            "JOB", "STATE", "SANDBOX", "DELETE", "DIRS", "QUEUED", "SYNCS", "FAILURES", "LAST",
            "SUCCESS", "LAST", "ERROR"
        ],
        "{}",
        out.describe()
    );
    assert_eq!(row(&out, "healthy")[1], "watching", "{}", out.describe());
    assert_eq!(row(&out, "nosrc")[1], "failed", "{}", out.describe());
    assert_eq!(row(&out, "invalid")[1], "failed", "{}", out.describe());
    assert!(
        ["retrying", "syncing"].contains(&row(&out, "badrsync")[1]),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.lines().any(|l| l == "last reload: none"),
        "{}",
        out.describe()
    );
    d.assert_running();
}

/// Only healthy jobs: exit 0; no daemon: exit 3.
#[test]
fn status_exit_codes_healthy_and_unreachable() {
    let env = sup_env("");
    let (s, dst) = (env.dir("src-fine"), env.p("dst-fine"));
    populate(&s, "f");
    env.job("fine", &s, &dst, Mode::Rsync, "");
    // No daemon yet.
    let out = cli_conf(&env, "status", &[]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    let sock_s = sock(&env).to_str().unwrap().to_string();
    let out = cli(&env, &["status", "--json", "--socket", &sock_s]);
    assert_eq!(out.code, Some(3), "{}", out.describe());

    let mut d = start_sup(&env, &["fine"]);
    let out = cli_conf(&env, "status", &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(row(&out, "fine")[1], "watching", "{}", out.describe());
    let out = cli(&env, &["status", "--json", "--socket", &sock_s]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ready"], true, "{v:#}");
    assert!(is_watching(&v, "fine"), "{v:#}");

    assert!(d.stop().success(), "{}", d.log_tail());
    let out = cli_conf(&env, "status", &[]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(!sock(&env).exists(), "socket left behind after exit");
}

/// `sandbox` per job in `status --json` and the human table: on by default in modes rsync
/// and mirror (`active` where the kernel has Landlock), off with `sandbox = false` and by
/// default in the command modes, on there with `sandbox = true`.
#[test]
fn status_shows_each_jobs_sandbox() {
    let env = sup_env("");
    let jobs = [
        ("rs", Mode::Rsync, ""),
        ("mi", Mode::Mirror, "sandbox = false\n"),
        (
            "cmd",
            Mode::Rsync,
            "mode = \"direct\"\n[command]\npath = \"true\"\n",
        ),
        (
            "cmdbox",
            Mode::Rsync,
            "mode = \"direct\"\nsandbox = true\n[command]\npath = \"true\"\n",
        ),
    ];
    for (name, mode, extra) in jobs {
        let s = env.dir(&format!("src-{name}"));
        populate(&s, name);
        let mut text = job_toml(&s, &env.p(&format!("dst-{name}")), mode, extra);
        if extra.contains("mode = ") {
            text = text.replacen("mode = \"rsync\"\n", "", 1);
        }
        env.write_job(name, &text);
    }
    let mut d = start_sup(&env, &["rs", "mi", "cmd", "cmdbox"]);
    let v = status(&sock(&env)).unwrap();
    let on = job(&v, "rs").unwrap()["sandbox"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ["active", "partial", "unsupported"].contains(&on.as_str()),
        "{v:#}"
    );
    assert_eq!(job(&v, "mi").unwrap()["sandbox"], "off", "{v:#}");
    assert_eq!(job(&v, "cmd").unwrap()["sandbox"], "off", "{v:#}");
    assert_eq!(job(&v, "cmdbox").unwrap()["sandbox"], on.as_str(), "{v:#}");
    let out = cli_conf(&env, "status", &[]);
    assert_eq!(row(&out, "rs")[2], on, "{}", out.describe());
    assert_eq!(row(&out, "mi")[2], "off", "{}", out.describe());
    assert!(d.stop().success(), "{}", d.log_tail());
}

/// Mode 0600; junk, unknown commands and oversized requests get an error; an idle client does
/// not block others; 20 concurrent clients are all answered.
#[test]
fn control_socket_hardening() {
    let env = sup_env("");
    let (s, dst) = (env.dir("src-sock"), env.p("dst-sock"));
    populate(&s, "s");
    env.job("sock", &s, &dst, Mode::Rsync, "");
    let mut d = start_sup(&env, &["sock"]);
    let sk = sock(&env);
    let mode = fs::metadata(&sk).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");

    let bad = |req: &[u8], what: &str| -> String {
        let v = raw_request(&sk, req).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(v["ok"], false, "{what}: {v}");
        v["error"].as_str().unwrap_or_default().to_string()
    };
    for (req, what) in [
        (&b"not json\n"[..], "junk"),
        (b"{\"cmd\":\"rm -rf\"}\n", "unknown cmd"),
        (b"{\"cmd\":\"explain\"}\n", "explain without job"),
        (b"[1,2,3]\n", "not an object"),
        (b"{\"cmd\":\"sta", "truncated, no newline"),
    ] {
        let e = bad(req, what);
        assert!(e.starts_with("bad request: "), "{what}: {e}");
    }
    let mut big = b"{\"cmd\":\"status\",\"pad\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    big.extend(b"\"}\n");
    let e = bad(&big, "oversized");
    assert!(e.contains("longer than"), "{e}");
    let e = bad(&vec![b'y'; 200 * 1024], "oversized, no newline");
    assert!(e.contains("longer than"), "{e}");
    d.assert_running();

    // An idle client, then others: they are answered at once (not after the idle one's
    // read timeout).
    let idle = UnixStream::connect(&sk).unwrap();
    let t = Instant::now();
    let v = status(&sk).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a status request took {:?} while an idle client was connected",
        t.elapsed()
    );
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let sk = sk.clone();
            std::thread::spawn(move || status(&sk))
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let v = c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(v["ok"], true, "client {i}: {v}");
        assert!(is_watching(&v, "sock"), "client {i}: {v}");
    }
    // The idle client is not answered while it sends nothing; once it does, it is.
    idle.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    assert!(
        std::io::Read::read(&mut &idle, &mut buf)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the daemon answered a client that sent nothing"
    );
    idle.set_nonblocking(false).unwrap();
    drop(idle);

    d.assert_running();
    write(&s.join("still-syncing"), "x");
    d.assert_synced(&s, &dst, &[]);
    let v = status(&sk).unwrap();
    assert_eq!(v["pid"], d.pid());
    assert!(d.stop().success(), "{}", d.log_tail());
}

/// The pid file holds the PID while the daemon runs and is removed at exit; the status file
/// is JSON and follows the job's state.
#[test]
fn pid_file_and_status_file() {
    let env = sup_env("");
    let (s, dst) = (env.dir("src-files"), env.p("dst-files"));
    populate(&s, "p");
    env.job("files", &s, &dst, Mode::Rsync, "");
    let mut d = start_sup(&env, &["files"]);
    assert_eq!(
        fs::read_to_string(pid_file(&env)).unwrap(),
        format!("{}\n", d.pid())
    );

    let read_status_file = || -> Option<Value> {
        let text = fs::read_to_string(status_file(&env)).ok()?;
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("status file is not JSON ({e}):\n{text}")),
        )
    };
    let wait_file = |d: &mut Daemon, what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let v = read_status_file();
            if let Some(v) = v.as_ref().filter(|v| pred(v)) {
                return v.clone();
            }
            d.assert_running();
            assert!(
                Instant::now() < deadline,
                "status file never showed {what}; last: {v:#?}\n{}",
                d.log_tail()
            );
            std::thread::sleep(POLL);
        }
    };
    let v = wait_file(&mut d, "files watching after 1 sync", &|v| {
        is_watching(v, "files") && v["jobs"][0]["syncs"].as_u64() >= Some(1)
    });
    assert_eq!(v["pid"], d.pid());
    assert_eq!(v["ready"], true);
    let syncs = v["jobs"][0]["syncs"].as_u64().unwrap();
    write(&s.join("more"), "m");
    d.assert_synced(&s, &dst, &[]);
    wait_file(&mut d, "a further sync", &|v| {
        v["jobs"][0]["syncs"].as_u64() > Some(syncs)
    });

    assert!(d.stop().success(), "{}", d.log_tail());
    assert!(
        !pid_file(&env).exists(),
        "pid file left behind after SIGTERM"
    );
    assert!(!sock(&env).exists(), "socket left behind after SIGTERM");
}

/// A second daemon on the same socket exits non-zero; the first keeps running.
#[test]
fn second_daemon_on_same_socket_refused() {
    let env = sup_env("");
    let (s, dst) = (env.dir("src-first"), env.p("dst-first"));
    populate(&s, "1");
    env.job("first", &s, &dst, Mode::Rsync, "");
    let mut d = start_sup(&env, &["first"]);

    let _g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    let mut second = Daemon::spawn(
        &env.root,
        &[
            OsStr::new("run"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
        ],
        &[],
        &env.p("daemon2.log"),
    );
    let st = second
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("second daemon still running\n{}", second.log_tail()));
    drop(_g);
    assert!(
        !st.success(),
        "second daemon exited with {st}\n{}",
        second.log_tail()
    );
    assert!(
        second.log().contains("another clsync daemon is listening"),
        "{}",
        second.log_tail()
    );
    // It refused before starting any job: no second sync into the same destinations.
    assert!(
        !second.log().contains("initial sync") && !second.log().contains("started "),
        "the second daemon synced before refusing\n{}",
        second.log_tail()
    );

    d.assert_running();
    assert!(
        sock(&env).exists(),
        "the second daemon removed the first's socket"
    );
    assert_eq!(
        fs::read_to_string(pid_file(&env)).unwrap(),
        format!("{}\n", d.pid()),
        "pid file no longer names the first daemon"
    );
    let v = status(&sock(&env)).unwrap();
    assert_eq!(v["pid"], d.pid(), "{v}");
    write(&s.join("after-second"), "x");
    d.assert_synced(&s, &dst, &[]);
}

/// `clsync explain`: excluded, allowed, denied by a rule, unknown job; and it agrees with
/// what is actually synced.
#[test]
fn explain_paths() {
    let env = sup_env("");
    let (s, dst) = (env.dir("src-golf"), env.p("dst-golf"));
    write(&s.join("a/f"), "f");
    env.job(
        "golf",
        &s,
        &dst,
        Mode::Rsync,
        "exclude = [\"*.tmp\"]\nrules = [\"-d^skip$\"]",
    );
    let mut d = start_sup(&env, &["golf"]);

    let explain = |args: &[&str]| {
        let mut all = vec!["--config-dir", env.conf.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut full = vec!["explain"];
        full.extend(all);
        cli(&env, &full)
    };
    let out = explain(&["golf", "a/x.tmp"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout.lines().next().unwrap_or(""),
        r#"a/x.tmp (file, does not exist): denied: exclude pattern #0 "*.tmp" matches"#
    );
    // The job's `delete` is named on a line of its own.
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("delete = true: "),
        "{}",
        out.describe()
    );
    let out = explain(&["golf", "a/f"]);
    assert_eq!(
        out.stdout.lines().next().unwrap_or(""),
        "a/f (file): allowed: no exclude pattern or rule matches",
        "{}",
        out.describe()
    );
    // Absolute paths inside the source work too.
    let abs = s.join("a/f");
    let out = explain(&["golf", abs.to_str().unwrap()]);
    assert_eq!(
        out.stdout.lines().next().unwrap_or(""),
        "a/f (file): allowed: no exclude pattern or rule matches",
        "{}",
        out.describe()
    );
    let out = explain(&["--json", "golf", "skip/x"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["job"], "golf");
    assert_eq!(v["path"], "skip/x");
    assert_eq!(v["kind"], "file");
    assert_eq!(v["exists"], false);
    assert_eq!(v["allowed"], false, "{v:#}");
    let e = v["explanation"].as_str().unwrap();
    assert!(e.starts_with("denied") && e.contains("-d^skip$"), "{v:#}");
    let out = explain(&["--json", "golf", "a/f"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&v["allowed"], &v["exists"]),
        (&Value::Bool(true), &Value::Bool(true))
    );

    let out = explain(&["nosuchjob", "a/f"]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stderr.contains("nosuchjob"), "{}", out.describe());
    let out = explain(&["golf", "/definitely/outside"]);
    assert_eq!(out.code, Some(3), "{}", out.describe());

    // The daemon does what explain says.
    write(&s.join("a/x.tmp"), "t");
    write(&s.join("skip/x"), "s");
    write(&s.join("a/g"), "g");
    d.barrier(&s, &dst, &["*.tmp", "/skip/"]);
    assert!(dst.join("a/g").exists());
    assert!(!dst.join("a/x.tmp").exists(), "{}", d.log_tail());
    assert!(!dst.join("skip").exists(), "{}", d.log_tail());
}

/// `clsync sync --once` while a writer changes the source for ~1 s: it exits by itself after
/// the writer stops, and the destination equals the source.
#[test]
fn sync_once_copies_tree_being_written() {
    let env = Env::new();
    let (s, dst) = (env.dir("src-once"), env.p("dst-once"));
    populate(&s, "o");
    env.write_job(
        "once",
        &job_toml(&s, &dst, Mode::Rsync, "").replace("delay = \"100ms\"", "delay = \"300ms\""),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, s) = (stop.clone(), s.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < Duration::from_secs(1) && !stop.load(Ordering::SeqCst) {
                write(
                    &s.join(format!("w/{}/f{}", n % 7, n % 150)),
                    &format!("{n} {}", "z".repeat(n % 500)),
                );
                if n % 40 == 39 {
                    let _ =
                        fs::remove_file(s.join(format!("w/{}/f{}", (n + 3) % 7, (n * 7) % 150)));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
            (Instant::now(), n)
        })
    };
    let mut p = Daemon::spawn(
        &env.root,
        &[
            OsStr::new("sync"),
            OsStr::new("--once"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
            OsStr::new("once"),
        ],
        &[],
        &env.p("once.log"),
    );
    // Watch for the exit while the writer is still running.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (st, exited) = loop {
        if let Some(st) = p.try_status() {
            break (st, Instant::now());
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::SeqCst);
            panic!("sync --once still running after 20 s\n{}", p.log_tail());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (last_write, n) = writer.join().unwrap();
    assert!(
        exited > last_write,
        "sync --once exited while the source was still being written\n{}",
        p.log_tail()
    );
    assert!(
        st.success(),
        "sync --once exited with {st}\n{}",
        p.log_tail()
    );
    assert!(exited >= last_write);
    let diff = tree_diff(&s, &dst, &[]);
    assert!(
        diff.is_empty(),
        "after sync --once ({n} writes) the destination differs:\n{}\n{}",
        truncate(&diff, 3000),
        p.log_tail()
    );

    // No such job: exit 1.
    let out = cli(
        &env,
        &[
            "sync",
            "--once",
            "--config-dir",
            env.conf.to_str().unwrap(),
            "nosuch",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.describe());
}
