//! Helpers for the supervisor tests: a config dir with `[daemon]` files inside the temp dir,
//! the control socket, `clsync status/reload/explain` runs, polling the daemon's status.

#![allow(dead_code)]

use super::harness::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `[daemon]` settings every supervisor test uses: everything inside `conf/run/`.
pub const DAEMON_TOML: &str = "[daemon]\nsocket = \"run/ctl.sock\"\npid_file = \"run/clsync.pid\"\nstatus_file = \"run/status.json\"\n";

/// An `Env` whose clsync.toml is `DAEMON_TOML` followed by `extra` (e.g. a `[defaults]` table).
pub fn sup_env(extra: &str) -> Env {
    let env = Env::new();
    env.write_main_config(&format!("{DAEMON_TOML}\n{extra}"));
    env
}

pub fn sock(env: &Env) -> PathBuf {
    env.conf.join("run/ctl.sock")
}

pub fn pid_file(env: &Env) -> PathBuf {
    env.conf.join("run/clsync.pid")
}

pub fn status_file(env: &Env) -> PathBuf {
    env.conf.join("run/status.json")
}

/// Runs `clsync ARGS` (cwd = env root) and kills it after 30 s.
pub fn cli(env: &Env, args: &[&str]) -> CheckOutput {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_clsync(&env.root, &args)
}

/// Runs `clsync SUB --config-dir conf ARGS...`.
pub fn cli_conf(env: &Env, sub: &str, args: &[&str]) -> CheckOutput {
    let conf = env.conf.to_str().unwrap().to_string();
    let mut all = vec![sub, "--config-dir", conf.as_str()];
    all.extend_from_slice(args);
    cli(env, &all)
}

/// Sends raw bytes on a new connection to the control socket (then half-closes it) and reads
/// the one-line answer.
pub fn raw_request(sock: &Path, bytes: &[u8]) -> Result<Value, String> {
    let mut c =
        UnixStream::connect(sock).map_err(|e| format!("connect {}: {e}", sock.display()))?;
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The daemon may answer (and close) before reading everything of an oversized request.
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut line = String::new();
    BufReader::new(&c)
        .read_line(&mut line)
        .map_err(|e| format!("read answer: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("bad answer {line:?}: {e}"))
}

/// `{"cmd":"status"}` over the socket.
pub fn status(sock: &Path) -> Result<Value, String> {
    raw_request(sock, b"{\"cmd\":\"status\"}\n")
}

/// The entry of job `name` in a status.
pub fn job<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["jobs"].as_array()?.iter().find(|j| j["name"] == name)
}

/// True when job `name` is enabled, watching, and has finished an initial sync.
pub fn is_watching(v: &Value, name: &str) -> bool {
    job(v, name).is_some_and(|j| {
        j["enabled"] == true && j["state"] == "watching" && j["initial_syncs"].as_u64() >= Some(1)
    })
}

pub fn u64_of(v: &Value, name: &str, field: &str) -> u64 {
    job(v, name)
        .and_then(|j| j[field].as_u64())
        .unwrap_or_else(|| panic!("no numeric {field} for job {name} in {v:#}"))
}

/// Polls the daemon's status (over the socket) until `pred` holds; panics with the last
/// status and the log after `READY_DEADLINE`.
pub fn wait_status(d: &mut Daemon, env: &Env, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + READY_DEADLINE;
    let mut last;
    loop {
        match status(&sock(env)) {
            Ok(v) if pred(&v) => return v,
            Ok(v) => last = format!("{v:#}"),
            Err(e) => last = e,
        }
        d.assert_running();
        if Instant::now() > deadline {
            panic!(
                "timed out after {READY_DEADLINE:?} waiting for: {what}\nlast status: {}\n{}",
                truncate(&last, 6000),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until every job in `jobs` is watching (via the status socket).
pub fn wait_jobs_watching(d: &mut Daemon, env: &Env, jobs: &[&str]) -> Value {
    wait_status(d, env, &format!("jobs {jobs:?} watching"), |v| {
        jobs.iter().all(|j| is_watching(v, j))
    })
}

/// Spawns the daemon and waits until every job in `jobs` is watching.
pub fn start_sup(env: &Env, jobs: &[&str]) -> Daemon {
    let mut d = env.spawn();
    wait_jobs_watching(&mut d, env, jobs);
    d.release_start_guard();
    d
}

/// Log lines of job `name` (`job{name=NAME}`) containing `needle`.
pub fn job_log_count(d: &Daemon, name: &str, needle: &str) -> usize {
    let tag = format!("name={name}}}");
    d.log()
        .lines()
        .filter(|l| l.contains(&tag) && l.contains(needle))
        .count()
}

/// Log lines containing `needle`.
pub fn log_count(d: &Daemon, needle: &str) -> usize {
    d.log().lines().filter(|l| l.contains(needle)).count()
}

pub const INITIAL_DONE: &str = "initial sync done";

/// Polls the log until it has at least `n` lines containing `needle`.
pub fn wait_log_count(d: &mut Daemon, needle: &str, n: usize) {
    let deadline = Instant::now() + READY_DEADLINE;
    while log_count(d, needle) < n {
        d.assert_running();
        if Instant::now() > deadline {
            panic!(
                "the log has {} lines with {needle:?} after {READY_DEADLINE:?}, expected {n}\n{}",
                log_count(d, needle),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Asserts that `dst/rel` does not appear: first lets the daemon process everything up to a
/// barrier in another job (events are read in order per job, and jobs share the daemon), then
/// keeps checking for a few of the jobs' delays.
pub fn assert_never_appears(d: &mut Daemon, path: &Path, barrier: (&Path, &Path)) {
    d.barrier(barrier.0, barrier.1, &[]);
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        assert!(
            !path.exists(),
            "{} appeared although its job should not sync it\n{}",
            path.display(),
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

/// A job file text like `job_toml` but without `delay` (so `[defaults] delay` applies).
pub fn job_toml_no_delay(src: &Path, dst: &Path, extra: &str) -> String {
    format!(
        "source = {}\ndestination = {}\nmode = \"rsync\"\n{extra}\n",
        toml_path(src),
        toml_path(dst)
    )
}

/// Number of entries in `/proc/PID/DIR` (fd, task).
pub fn proc_count(pid: i32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .map(|r| r.count())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/{dir}: {e}"))
}

pub fn os_args(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| OsStr::new(a).to_owned()).collect()
}
