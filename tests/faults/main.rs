//! Fault injection: each case breaks something around the real daemon (its destination, its
//! source, the kernel's inotify limits, the daemon itself) and checks that once the fault
//! clears, the destination equals the source. Each case prints one line:
//! `FAULT <case> [<mode>]: ok, consistent <time> after the fault cleared`.
//!
//! The cases run one at a time (some change global sysctls, one kills the daemon), in their
//! own test binary, so they never overlap the e2e suite.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "../e2e/sshd.rs"]
mod sshd;

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::*;

mod config_fuzz;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn report(case: &str, mode: Option<Mode>, took: Duration) {
    let m = mode
        .map(|m| format!(" [{}]", m.as_str()))
        .unwrap_or_default();
    eprintln!(
        "FAULT {case}{m}: ok, consistent {:.2}s after the fault cleared",
        took.as_secs_f64()
    );
}

const MODES: [Mode; 2] = [Mode::Rsync, Mode::Mirror];

#[test]
fn destination_directory_removed() {
    let _s = serial();
    for mode in MODES {
        let env = Env::new();
        let (src, dst) = (env.dir("src"), env.p("dst"));
        populate(&src, "d");
        env.job("j", &src, &dst, mode, "");
        let mut d = env.start(&["j"]);
        d.assert_synced(&src, &dst, &[]);
        fs::remove_dir_all(&dst).unwrap();
        // A later change must bring back the whole tree, not just itself.
        write(&src.join("after.txt"), "x");
        let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
        report("destination-removed", Some(mode), took);
        assert!(d.stop().success());
    }
}

#[test]
fn source_is_a_symlink() {
    let _s = serial();
    for mode in MODES {
        let env = Env::new();
        let real = env.dir("real-src");
        populate(&real, "s");
        let src = env.p("src-link");
        symlink(&real, &src).unwrap();
        let dst = env.p("dst");
        env.job("j", &src, &dst, mode, "");
        let mut d = env.start(&["j"]);
        d.assert_synced(&real, &dst, &[]);
        write(&real.join("b/live.txt"), "through the link");
        let took = d.assert_synced_within(&real, &dst, &[], SYNC_DEADLINE);
        report("source-is-symlink", Some(mode), took);
        assert!(d.stop().success());
    }
}

#[test]
fn source_removed_and_recreated() {
    let _s = serial();
    for mode in MODES {
        let env = Env::new();
        let (src, dst) = (env.dir("src"), env.p("dst"));
        populate(&src, "r");
        env.job("j", &src, &dst, mode, "");
        let mut d = env.start(&["j"]);
        d.assert_synced(&src, &dst, &[]);
        fs::remove_dir_all(&src).unwrap();
        // The replica is not wiped while the source is missing.
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            assert!(dst.join("a.txt").exists(), "the replica was wiped");
            std::thread::sleep(POLL);
        }
        fs::create_dir(&src).unwrap();
        write(&src.join("new.txt"), "the new source");
        let took = d.assert_synced_within(&src, &dst, &[], Duration::from_secs(60));
        report("source-removed-and-recreated", Some(mode), took);
        d.assert_running();
        assert!(d.stop().success());
    }
}

#[test]
fn type_changes_and_symlink_loops() {
    let _s = serial();
    for mode in MODES {
        let env = Env::new();
        let (src, dst) = (env.dir("src"), env.p("dst"));
        populate(&src, "t");
        env.job("j", &src, &dst, mode, "");
        let mut d = env.start(&["j"]);
        // A file becomes a directory of the same name, and back.
        fs::remove_file(src.join("a.txt")).unwrap();
        fs::create_dir(src.join("a.txt")).unwrap();
        write(&src.join("a.txt/inside"), "x");
        d.assert_synced(&src, &dst, &[]);
        fs::remove_dir_all(src.join("a.txt")).unwrap();
        write(&src.join("a.txt"), "a file again");
        // Symlink loops are data, not something to follow.
        symlink(".", src.join("self-loop")).unwrap();
        symlink("loop-b", src.join("loop-a")).unwrap();
        symlink("loop-a", src.join("loop-b")).unwrap();
        let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
        report("type-change-and-symlink-loop", Some(mode), took);
        assert!(d.stop().success());
    }
}

/// `kill -9` in the middle of a large initial sync; the next start repairs everything.
#[test]
fn killed_during_a_large_sync() {
    let _s = serial();
    for mode in MODES {
        let env = Env::new();
        let (src, dst) = (env.dir("src"), env.p("dst"));
        for i in 0..200 {
            let dir = src.join(format!("d{i:03}"));
            fs::create_dir(&dir).unwrap();
            for j in 0..100 {
                fs::write(dir.join(format!("f{j}")), vec![b'x'; 512]).unwrap();
            }
        }
        env.job("j", &src, &dst, mode, "");
        let mut d = env.spawn();
        // Kill it once part of the tree has arrived.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dst.join("d000").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let children = children_of(d.pid());
        d.signal(libc::SIGKILL);
        d.wait_exit(Duration::from_secs(10)).expect("killed");
        // Its handlers die with it: an orphaned rsync would keep writing into the
        // destination behind the restarted daemon's back.
        let deadline = Instant::now() + Duration::from_secs(1);
        while children.iter().any(|&p| alive(p)) {
            assert!(
                Instant::now() < deadline,
                "handlers {children:?} outlived the killed daemon"
            );
            std::thread::sleep(POLL);
        }
        write(&src.join("d001/changed-while-down"), "y");
        fs::remove_dir_all(src.join("d002")).unwrap();
        let start = Instant::now();
        let mut d = env.spawn();
        d.assert_synced_within(&src, &dst, &[], Duration::from_secs(60));
        report("kill-9-during-sync", Some(mode), start.elapsed());
        assert!(d.stop().success());
    }
}

/// True while `pid` runs (a zombie waiting to be reaped has finished).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        let after = st.rsplit_once(')').map(|x| x.1).unwrap_or("");
        !matches!(after.split_whitespace().next(), Some("Z" | "X"))
    })
}

/// PIDs whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The ppid is the second field after the parenthesised command name.
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        if after.split_whitespace().nth(1).and_then(|x| x.parse().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Watches currently held by root, summed over every inotify instance on the machine.
fn root_watches_in_use() -> usize {
    let mut n = 0;
    for p in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(st) = fs::read_to_string(p.path().join("status")) else {
            continue;
        };
        if !st
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(info) = fs::read_to_string(fd.path()) {
                n += info
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    n
}

/// The inotify watch limit is reached: the job says so, and the unwatched part of the tree
/// is still synced by periodic rescans.
#[test]
fn watch_limit_reached() {
    let _s = serial();
    if !is_root() {
        eprintln!("FAULT watch-limit: skipped (needs root to lower fs.inotify.max_user_watches)");
        return;
    }
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    for i in 0..20 {
        write(&src.join(format!("dir{i:02}/file")), "x");
    }
    env.job("j", &src, &dst, Mode::Rsync, "");
    let mut d = env
        .start_with_sysctl(
            "/proc/sys/fs/inotify/max_user_watches",
            || (root_watches_in_use() + 4).to_string(),
            &["j"],
        )
        .expect("lower max_user_watches");
    d.assert_synced(&src, &dst, &[]);
    assert!(
        d.log().contains("watch limit reached"),
        "the job says so\n{}",
        d.log_tail()
    );
    // Changes in every directory arrive, watched or not (the unwatched ones by the rescan).
    let start = Instant::now();
    for i in 0..20 {
        write(&src.join(format!("dir{i:02}/later")), "y");
    }
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(75));
    report("watch-limit", None, start.elapsed());
    assert!(d.stop().success());
}

fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn thread_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn rss_kib(pid: i32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// 1,000 reloads (most unchanged, some restarting a job) and 100 add/remove cycles of a job,
/// all under continuous writes: nothing is lost, and fds, threads and RSS come back.
#[test]
fn reload_storm_under_writes() {
    let _s = serial();
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let (src2, dst2) = (env.dir("src2"), env.p("dst2"));
    populate(&src, "w");
    populate(&src2, "v");
    env.job("steady", &src, &dst, Mode::Rsync, "");
    let mut d = env.start(&["steady"]);
    d.assert_synced(&src, &dst, &[]);
    let pid = d.pid();
    let (fds0, threads0, rss0) = (fd_count(pid), thread_count(pid), rss_kib(pid));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (src, stop) = (src.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let dir = src.join(format!("w{}", i % 20));
                let _ = fs::create_dir_all(&dir);
                let _ = fs::write(dir.join(format!("f{i}")), i.to_string());
                if i.is_multiple_of(7) {
                    let _ = fs::remove_file(dir.join(format!("f{}", i.saturating_sub(5))));
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        })
    };
    let job2 = env.conf.join("jobs.d/cycling.toml");
    let text2 = job_toml(&src2, &dst2, Mode::Mirror, "");
    for i in 0..1000 {
        // Every 5th reload adds or removes the second job: 100 add/remove cycles, each
        // waited for (signals coalesce, and two toggles in one reload would cancel out).
        if i % 5 == 0 {
            let (wanted, n) = if job2.exists() {
                fs::remove_file(&job2).unwrap();
                ("stopping [\"cycling\"]", i / 10)
            } else {
                fs::write(&job2, &text2).unwrap();
                ("starting [\"cycling\"]", i / 10)
            };
            d.signal(libc::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(20);
            while d.log().matches(wanted).count() <= n {
                assert!(
                    Instant::now() < deadline,
                    "reload {i} not applied\n{}",
                    d.log_tail()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        } else {
            d.signal(libc::SIGHUP);
            // Pace them so that most of them really happen.
            std::thread::sleep(Duration::from_millis(3));
        }
        if i % 100 == 99 {
            d.assert_running();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    let took = d.assert_synced_within(&src, &dst, &[], Duration::from_secs(60));
    // The second job ended removed (200 toggles): let everything settle.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut fds1, mut threads1) = (fd_count(pid), thread_count(pid));
    while (fds1 != fds0 || threads1 != threads0) && Instant::now() < deadline {
        std::thread::sleep(POLL);
        fds1 = fd_count(pid);
        threads1 = thread_count(pid);
    }
    let rss1 = rss_kib(pid);
    let log = d.log();
    let reloads = log.matches("SIGHUP: reloading").count();
    let cycles = log.matches("reload: starting [\"cycling\"]").count();
    assert!(
        reloads >= 900,
        "only {reloads} of 1000 SIGHUPs led to a reload"
    );
    assert_eq!(cycles, 100, "the job was added {cycles} times");
    d.assert_synced(&src2, &dst2, &[]);
    eprintln!(
        "FAULT reload-storm: ok, {reloads} reloads, job added {cycles} times, {written} files written, consistent {:.2}s after the writes stopped; fds {fds0}->{fds1}, threads {threads0}->{threads1}, RSS {rss0}->{rss1} KiB",
        took.as_secs_f64()
    );
    assert_eq!(fds1, fds0, "file descriptors leaked\n{}", d.log_tail());
    assert_eq!(threads1, threads0, "threads leaked\n{}", d.log_tail());
    assert!(rss1 < rss0 + 8 * 1024, "RSS grew from {rss0} to {rss1} KiB");
    assert!(d.stop().success());
}

mod attack_command;
mod attack_daemon_files;
mod attack_dest;
mod attack_races;
mod attack_replay;
mod attack_sandbox;
mod changing_files;
mod dest_full;
mod escape;
mod handler_exits;
mod long_paths;
mod socket_perms;
mod sparse;
mod unreadable;
mod util;
