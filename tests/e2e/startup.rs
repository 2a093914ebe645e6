//! Start-up: the first full sync runs beside the walk that adds the watches, so changes
//! made while the daemon starts must be caught whether they land before a directory's
//! watch exists (the walk's catch-up) or after (events).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::harness::*;

/// Directories in the source: enough that the walk takes a while after the full sync has
/// read the first ones.
const DIRS: usize = 20_000;

fn tree(src: &Path) {
    for i in 0..DIRS {
        let d = src.join(format!("d{:02}/e{i:05}", i % 50));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), format!("{i}\n")).unwrap();
    }
}

/// Writes, rewrites, renames and deletes in the first directories of rsync's order (the
/// walk reaches them last) until `stop`.
fn churn(src: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let d = src.join(format!("d00/e{:05}", (n % 40) * 50));
            let _ = fs::write(d.join("f"), format!("rewritten {n}\n"));
            let _ = fs::write(d.join(format!("new-{n}")), "x");
            if n >= 40 {
                let old = src.join(format!("d00/e{:05}/new-{}", ((n - 40) % 40) * 50, n - 40));
                if n % 2 == 0 {
                    let _ = fs::remove_file(&old);
                } else {
                    let _ = fs::rename(&old, d.join(format!("moved-{n}")));
                }
            }
            n += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
        n
    })
}

fn writes_during_start_up_arrive(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    tree(&src);
    env.job("start", &src, &dst, mode, "");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = churn(src.clone(), stop.clone());
    let mut d = env.spawn();
    // Write through the start-up: until the job is watching, and a little after.
    d.wait_watching(&["start"]);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(
        writes > 40,
        "the writer ran during the start ({writes} rounds)"
    );
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}

crate::both_modes! {
    writes_during_start_up => writes_during_start_up_arrive;
}

/// A tree made deep on purpose does not take the daemon's descriptors: under a soft limit
/// of 128 open files, every directory of a 300-level chain (each level with a sibling, so
/// that the walk keeps coming back) is watched, and no "Too many open files" is logged.
#[test]
fn a_deep_tree_is_walked_within_a_small_descriptor_limit() {
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    let mut dir = src.clone();
    for _ in 0..300 {
        fs::create_dir(dir.join("s")).unwrap();
        dir = dir.join("d");
        fs::create_dir(&dir).unwrap();
    }
    fs::write(dir.join("deepest"), "x").unwrap();
    env.job("deep", &src, &dst, Mode::Rsync, "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clsync"));
    cmd.args([
        "sync",
        "deep",
        "--no-progress",
        "--log-level",
        "debug",
        "--config-dir",
    ])
    .arg(&env.conf)
    .env("NO_COLOR", "1");
    // SAFETY: setrlimit only, in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("watched 601 directories"), "{log}");
    assert!(tree_diff(&src, &dst, &[]).is_empty());
}

/// The threads of a daemon, as (name, working directory).
fn thread_cwds(pid: i32) -> Vec<(String, PathBuf)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let comm = fs::read_to_string(t.path().join("comm")).ok()?;
            let cwd = fs::read_link(t.path().join("cwd")).ok()?;
            Some((comm.trim().to_string(), cwd))
        })
        .collect()
}

/// The walk watches each directory by its name from its parent as working directory, on a
/// thread of its own: no other thread of the daemon (and so no rsync it starts) ever works
/// in a source directory, whose writer could swap it or its files under the process.
#[test]
fn no_thread_but_the_walk_works_in_a_source_directory() {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    tree(&src);
    env.job("cwd", &src, &dst, Mode::Rsync, "");
    let mut d = env.spawn();
    let (mut samples, mut walk_seen) = (0, false);
    let mut check = |d: &Daemon, walking: bool| {
        for (name, cwd) in thread_cwds(d.pid()) {
            if cwd.starts_with(&src) {
                assert!(
                    walking && name == "clsync-walk",
                    "thread {name:?} works in the source: {}",
                    cwd.display()
                );
                walk_seen = true;
            }
        }
        samples += 1;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.log().contains("watching") && Instant::now() < deadline {
        check(&d, true);
    }
    d.wait_watching(&["cwd"]);
    write(&src.join("d01/new"), "after the start\n");
    d.assert_synced(&src, &dst, &[]);
    check(&d, false);
    eprintln!("{samples} samples; the walk's thread seen in the source: {walk_seen}");
    assert!(d.stop().success());
}
