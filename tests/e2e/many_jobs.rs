//! Many jobs in one daemon: one inotify instance for all of them (a stock
//! `fs.inotify.max_user_instances` of 128 no longer caps the job count), watches shared by
//! jobs whose trees overlap, and the shared event queue's overflow.

use std::path::{Path, PathBuf};

use super::ctl::*;
use super::harness::*;

/// `n` mirror jobs `j000`… each syncing a small tree `src-i` to `dst-i`.
fn many(env: &Env, n: usize) -> Vec<(String, PathBuf, PathBuf)> {
    (0..n)
        .map(|i| {
            let name = format!("j{i:03}");
            let (src, dst) = (env.dir(&format!("src-{i}")), env.p(&format!("dst-{i}")));
            std::fs::create_dir_all(src.join("a/b")).unwrap();
            write(&src.join("a/b/f"), &name);
            env.job(&name, &src, &dst, Mode::Mirror, "");
            (name, src, dst)
        })
        .collect()
}

/// Inotify instances open now in this user's processes.
fn inotify_instances() -> usize {
    use std::os::unix::fs::MetadataExt;
    let uid = unsafe { libc::getuid() };
    let mut n = 0;
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !p.metadata().is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        n += fds
            .flatten()
            .filter(|f| {
                std::fs::read_link(f.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify")
            })
            .count();
    }
    n
}

/// 300 jobs while the kernel allows this user only 4 inotify instances more than it uses
/// already: all watch and all sync, and the daemon holds few descriptors.
#[test]
fn three_hundred_jobs_with_four_inotify_instances() {
    let env = Env::new();
    let jobs = many(&env, 300);
    let names: Vec<&str> = jobs.iter().map(|(n, _, _)| n.as_str()).collect();
    let Some(mut d) = env.start_with_sysctl(
        "/proc/sys/fs/inotify/max_user_instances",
        || (inotify_instances() + 4).to_string(),
        &names,
    ) else {
        eprintln!("skipped: cannot lower fs.inotify.max_user_instances (needs root)");
        return;
    };
    for i in [0, 149, 299] {
        let (_, src, dst) = &jobs[i];
        write(&src.join("a/b/later"), "x");
        d.assert_synced(src, dst, &[]);
    }
    let fds = proc_count(d.pid(), "fd");
    assert!(fds <= 64, "{fds} descriptors open for 300 jobs");
}

/// Jobs watching the same tree, and one inside another, share the kernel's watches; each
/// syncs, and removing one leaves the others watching.
#[test]
fn overlapping_trees_share_watches() {
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "o");
    let inner = src.join("b");
    let (da, db, dc) = (env.p("dst-a"), env.p("dst-b"), env.p("dst-c"));
    let add = |name: &str, s: &Path, dst: &Path| {
        env.job(name, s, dst, Mode::Mirror, "");
    };
    add("outer", &src, &da);
    add("inner", &inner, &db);
    add("same", &src, &dc);
    let mut d = start_sup(&env, &["outer", "inner", "same"]);
    write(&inner.join("c/new-1"), "1");
    d.assert_synced(&src, &da, &[]);
    d.assert_synced(&inner, &db, &[]);
    d.assert_synced(&src, &dc, &[]);

    std::fs::remove_file(env.conf.join("jobs.d/outer.toml")).unwrap();
    d.signal(libc::SIGHUP);
    wait_status(&mut d, &env, "outer removed", |v| job(v, "outer").is_none());
    write(&inner.join("c/new-2"), "2");
    d.assert_synced(&inner, &db, &[]);
    d.assert_synced(&src, &dc, &[]);

    std::fs::remove_file(env.conf.join("jobs.d/same.toml")).unwrap();
    d.signal(libc::SIGHUP);
    wait_status(&mut d, &env, "same removed", |v| job(v, "same").is_none());
    write(&inner.join("c/new-3"), "3");
    d.assert_synced(&inner, &db, &[]);
}

/// The shared queue overflows (a tiny `max_queued_events`, the daemon stopped meanwhile)
/// under a burst in two of three jobs: every job rescans and all three converge.
#[test]
fn shared_queue_overflow_converges_for_every_job() {
    let env = Env::new();
    let jobs = many(&env, 3);
    let names: Vec<&str> = jobs.iter().map(|(n, _, _)| n.as_str()).collect();
    let Some(mut d) = env.start_with_sysctl(
        "/proc/sys/fs/inotify/max_queued_events",
        || "16".to_string(),
        &names,
    ) else {
        eprintln!("skipped: cannot lower fs.inotify.max_queued_events (needs root)");
        return;
    };
    // Stopped, the daemon cannot read: the kernel's queue of 16 events overflows for sure.
    d.signal(libc::SIGSTOP);
    for (_, src, _) in &jobs[..2] {
        for i in 0..200 {
            write(&src.join(format!("a/burst-{i}")), "b");
        }
    }
    write(&jobs[2].1.join("a/quiet"), "q");
    d.signal(libc::SIGCONT);
    for (_, src, dst) in &jobs {
        d.assert_synced(src, dst, &[]);
    }
    assert!(
        d.log().contains("inotify queue overflowed"),
        "the queue did not overflow\n{}",
        d.log_tail()
    );
}
