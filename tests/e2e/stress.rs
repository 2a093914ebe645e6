//! Bursts: 10,000 files at once, and a burst past the inotify queue limit.

use super::harness::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn burst(root: &Path, dirs: usize, per_dir: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("burst-{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..per_dir {
            fs::write(dir.join(format!("f{f:05}")), format!("{d}/{f}\n")).unwrap();
        }
    }
}

fn ten_thousand(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "before burst");
    let (counter_script, counter) = env.rsync_counter();
    env.job(
        "burst",
        &src,
        &dst,
        mode,
        &format!(
            "{}[rsync]\npath = {}",
            sandbox_write(&[&counter]),
            toml_path(&counter_script)
        ),
    );
    let mut d = env.start(&["burst"]);
    d.assert_synced(&src, &dst, &[]);
    let calls_before = count_lines(&counter);
    let t0 = Instant::now();
    burst(&src, 20, 500);
    let created = t0.elapsed();
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(90));
    let total = t0.elapsed();
    let calls = count_lines(&counter) - calls_before;
    match mode {
        Mode::Rsync => eprintln!(
            "10k burst [{}]: files created in {created:?}, consistent after {total:?}, {calls} rsync calls",
            mode.as_str()
        ),
        Mode::Mirror => eprintln!(
            "10k burst [{}]: files created in {created:?}, consistent after {total:?}",
            mode.as_str()
        ),
    }
    if mode == Mode::Rsync {
        assert!(
            calls >= 1,
            "rsync mode synced 10,000 files without calling rsync?"
        );
    }
    // Still live after the burst.
    write(&src.join("burst-007/after"), "after");
    fs::remove_file(src.join("burst-003/f00042")).unwrap();
    d.assert_synced(&src, &dst, &[]);
}

/// `fs.inotify.max_queued_events` lowered to 64 while the daemon creates its inotify
/// instance; 5,000 files then overflow the queue (IN_Q_OVERFLOW) and the daemon must rescan.
fn queue_overflow(mode: Mode) {
    if !is_root() {
        eprintln!("NOTE: queue_overflow skipped: not root");
        return;
    }
    let _serial = SYSCTL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "before overflow");
    env.job("overflow", &src, &dst, mode, "");
    let Some(mut d) = env.start_with_sysctl(
        "/proc/sys/fs/inotify/max_queued_events",
        || "64".into(),
        &["overflow"],
    ) else {
        eprintln!("NOTE: queue_overflow skipped: cannot write max_queued_events");
        return;
    };
    d.assert_synced(&src, &dst, &[]);
    let t0 = Instant::now();
    burst(&src, 10, 500);
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(90));
    // Informational only (the log format is not part of the spec).
    let overflow_logged = d.log().to_lowercase().contains("overflow");
    eprintln!(
        "queue overflow [{}]: 5,000 files consistent after {:?} (daemon log mentions overflow: {overflow_logged})",
        mode.as_str(),
        t0.elapsed()
    );
    // Watches survive the rescan.
    write(&src.join("burst-004/after-overflow"), "x");
    write(&src.join("b/c/d/e/after-overflow"), "y");
    d.assert_synced(&src, &dst, &[]);
}

crate::both_modes! {
    burst_10k_files => ten_thousand;
    burst_past_inotify_queue_limit => queue_overflow;
}
