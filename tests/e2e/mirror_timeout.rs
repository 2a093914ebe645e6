//! `timeout` in mirror mode: the in-daemon copy stops itself past the deadline, the job
//! retries, and a big initial sync still converges because finished files are not copied
//! again.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ctl::*;
use super::harness::*;

/// Regular files below `root` (relative path -> inode), and apart the temporary names seen.
fn files(root: &Path) -> (BTreeMap<PathBuf, u64>, Vec<PathBuf>) {
    let (mut out, mut temps) = (BTreeMap::new(), Vec::new());
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let child = rel.join(e.file_name());
            if e.file_name().to_string_lossy().starts_with(".clsync.") {
                // (A snapshot taken while a run is in flight sees the copy in progress.)
                temps.push(child);
                continue;
            }
            match fs::symlink_metadata(e.path()) {
                Ok(m) if m.is_dir() => stack.push(child),
                Ok(m) if m.is_file() => {
                    out.insert(child, m.ino());
                }
                _ => {}
            }
        }
    }
    (out, temps)
}

/// A mirror job with a 10 ms timeout and an initial tree that takes several times longer to
/// copy (600 small files, four 64 MiB files copied in chunks): the first runs are
/// stopped and retried (status shows the failures and the timeout as the last error), files
/// installed by a stopped run keep their inode (not copied again), no temporary file is
/// left, and the job converges and keeps syncing live changes.
#[test]
fn short_timeout_initial_sync_converges() {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    for d in 0..20 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir(&dir).unwrap();
        for i in 0..30 {
            let line = format!("file {d}/{i}\n");
            fs::write(
                dir.join(format!("f{i:02}")),
                line.repeat(65536 / line.len()),
            )
            .unwrap();
        }
    }
    for b in 0..4u8 {
        let chunk: Vec<u8> = (0..=255u8).map(|x| x ^ b).collect();
        fs::write(src.join(format!("big{b}")), chunk.repeat((64 << 20) / 256)).unwrap();
    }
    env.job(
        "mt",
        &src,
        &dst,
        Mode::Mirror,
        "timeout = \"10ms\"\nretry_delay = \"20ms\"\nretry_max_delay = \"100ms\"",
    );
    let mut d = env.spawn();

    // The first timed-out run: what it installed must survive the retries untouched.
    let v = wait_status(&mut d, &env, "a failed (timed-out) run of mt", |v| {
        job(v, "mt").is_some_and(|j| j["failures"].as_u64() >= Some(1)) || is_watching(v, "mt")
    });
    let j = job(&v, "mt").unwrap();
    assert!(
        j["failures"].as_u64() >= Some(1),
        "the whole initial sync fit in the 10 ms timeout (a faster machine than this test \
         assumes?): {v:#}"
    );
    let msg = j["last_error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("longer than the timeout of 10ms and was stopped"),
        "{v:#}"
    );
    let (early, _) = files(&dst);

    // Converges: the initial sync succeeds after retries. (A generous deadline: every
    // retry makes progress, but a loaded machine makes each one slower.)
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = status(&sock(&env)).unwrap_or_default();
        if is_watching(&st, "mt") {
            break;
        }
        d.assert_running();
        assert!(
            Instant::now() < deadline,
            "mt never finished its initial sync: {st:#}\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    d.assert_synced(&src, &dst, &[]);

    let out = cli_conf(&env, "status", &["--json"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    let j = job(&v, "mt").unwrap();
    let failures = j["failures"].as_u64().unwrap_or(0);
    assert!(failures >= 1, "{v:#}");
    assert_eq!(j["consecutive_failures"], 0, "{v:#}");
    assert_eq!(j["initial_syncs"], 1, "{v:#}");
    let msg = j["last_error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("mirror ran longer than the timeout"), "{v:#}");
    assert!(j["last_success"].is_string(), "{v:#}");
    let log = d.log();
    assert!(
        log.contains("and was stopped; retrying in"),
        "{}",
        d.log_tail()
    );
    assert!(log.contains("sync recovered after"), "{}", d.log_tail());
    eprintln!("mirror timeout: initial sync converged after {failures} timed-out run(s)");

    let (last, temps) = files(&dst);
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(!early.is_empty(), "the first stopped run made progress");
    for (rel, ino) in &early {
        assert_eq!(last.get(rel), Some(ino), "{rel:?} was copied again");
    }

    // Live changes still go through (a small batch fits in the timeout).
    write(&src.join("d03/new.txt"), "after the initial sync");
    append(&src.join("d07/f01"), "more");
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success(), "{}", d.log_tail());
}

/// `clsync sync --once` of a mirror job whose timeout stops every run several times: the
/// stopped runs made progress, so they do not count towards giving up, and the copy ends
/// complete with exit 0.
#[test]
fn once_mode_is_not_given_up_by_progressing_timeouts() {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    for i in 0..400 {
        fs::write(src.join(format!("f{i:03}")), format!("{i}\n").repeat(4096)).unwrap();
    }
    env.job(
        "mt",
        &src,
        &dst,
        Mode::Mirror,
        "timeout = \"2ms\"\nretry_delay = \"10ms\"\nretry_max_delay = \"20ms\"",
    );
    let out = run_clsync(
        &env.root,
        &[
            std::ffi::OsStr::new("sync"),
            std::ffi::OsStr::new("--once"),
            std::ffi::OsStr::new("--config-dir"),
            env.conf.as_os_str(),
            std::ffi::OsStr::new("mt"),
        ],
    );
    let stopped = out.stderr.matches("and was stopped").count();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        stopped > 5,
        "only {stopped} stopped runs: the test needs more than the give-up limit\n{}",
        out.stderr
    );
    for i in 0..400 {
        let name = format!("f{i:03}");
        assert_eq!(
            fs::read(src.join(&name)).unwrap(),
            fs::read(dst.join(&name)).unwrap_or_default(),
            "{name}"
        );
    }
    assert!(files(&dst).1.is_empty(), "temporary files left");
    eprintln!("sync --once converged after {stopped} stopped runs");
}
