//! The handler fails: exit codes 23 and 255, death by SIGKILL, and a handler that always
//! fails. The failing job retries with a growing backoff and recovers; a healthy job beside
//! it never waits for it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{report, serial};

/// An rsync wrapper logging each call to `calls`; calls `first`, `first+1` and `first+2`
/// exit 23, exit 255 and are killed by SIGKILL, the others run rsync.
fn flaky_wrapper(env: &Env, calls: &Path, first: usize) -> std::path::PathBuf {
    env.script(
        "rsync-flaky.sh",
        &format!(
            "{PROBES_PASS}echo call >> '{c}'\nn=$(wc -l < '{c}')\ncase $n in\n  {a}) echo 'injected: partial transfer' >&2; exit 23;;\n  {b}) echo 'injected: connection lost' >&2; exit 255;;\n  {k}) kill -9 $$;;\nesac\nexec rsync \"$@\"",
            c = calls.display(),
            a = first,
            b = first + 1,
            k = first + 2,
        ),
    )
}

/// `first` = 1: the initial sync meets the failures; 2: the first live batch does.
fn exit_codes(first: usize) {
    let env = Env::new();
    let (sf, df) = (env.dir("src-flaky"), env.p("dst-flaky"));
    let (sh, dh) = (env.dir("src-healthy"), env.p("dst-healthy"));
    populate(&sf, "f");
    populate(&sh, "h");
    let calls = env.p("calls");
    write(&calls, "");
    let rsync = flaky_wrapper(&env, &calls, first);
    env.job(
        "flaky",
        &sf,
        &df,
        Mode::Rsync,
        // One rsync run per sync (no full sync in parts), so that calls number the syncs.
        &format!(
            "workers = 1\n{}[rsync]\npath = {}",
            sandbox_write(&[&calls]),
            toml_path(&rsync)
        ),
    );
    env.job("healthy", &sh, &dh, Mode::Rsync, "");
    // A job says `watching` once its initial sync succeeded.
    let mut d = env.start(if first == 1 {
        &["healthy"][..]
    } else {
        &["flaky", "healthy"][..]
    });
    if first > 1 {
        d.assert_synced(&sf, &df, &[]);
        assert_eq!(count_lines(&calls), first - 1);
        write(&sf.join("trigger.txt"), "the first live change");
    }
    // While the flaky job goes through its three failures (about 1 + 2 + 4 s of backoff),
    // the healthy job syncs every change promptly.
    let mut cleared = None;
    let mut healthy_during = 0;
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while count_lines(&calls) < first + 3 {
        assert!(
            Instant::now() < deadline,
            "the flaky job was not retried three times\n{}",
            d.log_tail()
        );
        write(&sh.join(format!("during-{i}.txt")), &format!("change {i}"));
        write(&sf.join(format!("during-{i}.txt")), &format!("change {i}"));
        let t = d.assert_synced_within(&sh, &dh, &[], Duration::from_secs(10));
        slowest = slowest.max(t);
        if count_lines(&calls) < first + 3 {
            healthy_during += 1;
        }
        if cleared.is_none() && count_lines(&calls) >= first + 2 {
            // The SIGKILLed call has started: every later call works.
            cleared = Some(Instant::now());
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let cleared = cleared.unwrap_or_else(Instant::now);
    d.assert_synced_within(&sf, &df, &[], Duration::from_secs(30));
    let took = cleared.elapsed();
    d.assert_synced(&sh, &dh, &[]);

    let log = d.log();
    for (what, needle) in [
        ("exit 23", "exited with status 23"),
        ("exit 255", "exited with status 255"),
        ("SIGKILL", "killed by signal 9"),
        ("the recovery", "sync recovered after 3 failed attempts"),
    ] {
        assert_eq!(
            count_in(&log, &["job{name=flaky}", needle]),
            1,
            "{what} is reported once\n{}",
            d.log_tail()
        );
    }
    assert!(
        log.contains("injected: partial transfer") && log.contains("injected: connection lost"),
        "the handler's stderr is in the report\n{}",
        d.log_tail()
    );
    assert_eq!(
        count_in(&log, &["job{name=healthy}", "failed"]),
        0,
        "the healthy job failed\n{}",
        d.log_tail()
    );
    assert!(
        healthy_during >= 3,
        "only {healthy_during} healthy syncs while the other job was failing"
    );
    eprintln!(
        "  handler-exit-codes ({}): {healthy_during} healthy syncs during the failures, slowest {:.2}s; {} handler calls",
        if first == 1 {
            "initial sync"
        } else {
            "live batch"
        },
        slowest.as_secs_f64(),
        count_lines(&calls)
    );
    report(
        if first == 1 {
            "handler-exit-23-255-sigkill-initial"
        } else {
            "handler-exit-23-255-sigkill-live"
        },
        Some(Mode::Rsync),
        took,
    );
    assert!(d.stop().success());
}

#[test]
fn handler_exit_codes_and_sigkill() {
    let _s = serial();
    exit_codes(1);
    exit_codes(2);
}

/// Seconds since the epoch, one per line, as written by `date +%s.%N`.
fn stamps(p: &Path) -> Vec<f64> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A handler that always fails beside a healthy job: the attempts get further apart (1, 2,
/// 4, 8 s ...), `failures` in the status grows with them and no faster, and the healthy job
/// syncs every change meanwhile. Then the handler is fixed: the next retry converges.
#[test]
fn permanent_failure_backs_off() {
    let _s = serial();
    let env = Env::new();
    env.write_main_config(DAEMON_TOML);
    let sock = socket(&env);
    let (sb, db) = (env.dir("src-bad"), env.p("dst-bad"));
    let (sh, dh) = (env.dir("src-healthy"), env.p("dst-healthy"));
    populate(&sb, "b");
    populate(&sh, "h");
    let stamp_file = env.p("attempts");
    write(&stamp_file, "");
    let failing = format!(
        "{PROBES_PASS}date +%s.%N >> '{}'\necho 'injected: permanent failure' >&2\nexit 1",
        stamp_file.display()
    );
    let rsync = env.script("rsync-broken.sh", &failing);
    env.job(
        "bad",
        &sb,
        &db,
        Mode::Rsync,
        &format!(
            "{}[rsync]\npath = {}",
            sandbox_write(&[&stamp_file]),
            toml_path(&rsync)
        ),
    );
    env.job("healthy", &sh, &dh, Mode::Rsync, "");
    let mut d = env.start(&["healthy"]);

    // Five attempts: 0, 1, 3, 7, 15 s. Meanwhile a healthy change every ~300 ms.
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let (mut healthy_syncs, mut slowest) = (0, Duration::ZERO);
    let mut i = 0;
    while stamps(&stamp_file).len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "fewer than 5 attempts in 60 s: {:?}\n{}",
            stamps(&stamp_file),
            d.log_tail()
        );
        write(&sh.join(format!("h-{i}")), &format!("{i}"));
        write(&sb.join(format!("b-{i}")), &format!("{i}"));
        slowest = slowest.max(d.assert_synced_within(&sh, &dh, &[], Duration::from_secs(10)));
        healthy_syncs += 1;
        let v = status_json(&sock);
        let bad = job_status(&v, "bad");
        samples.push((
            start.elapsed().as_secs_f64(),
            bad["failures"].as_u64().unwrap_or(0),
        ));
        let h = job_status(&v, "healthy");
        assert_eq!(h["failures"], 0, "the healthy job failed: {v:#}");
        i += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let t = stamps(&stamp_file);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let shown: Vec<String> = gaps.iter().map(|g| format!("{g:.2}")).collect();
    eprintln!(
        "  permanent-failure: gaps between attempts {} s; {healthy_syncs} healthy syncs meanwhile, slowest {:.2}s; status failures: {}",
        shown.join(", "),
        slowest.as_secs_f64(),
        samples
            .iter()
            .enumerate()
            .filter(|(k, (_, n))| *k == 0 || samples[k - 1].1 != *n)
            .map(|(_, (t, n))| format!("{n} at {t:.1}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Each gap is the backoff (1 s, doubling) plus at most the job's delay and scheduling.
    for (k, g) in gaps.iter().enumerate() {
        let expect = (1u64 << k) as f64;
        assert!(
            *g >= expect * 0.9 && *g <= expect + 2.0,
            "gap {k} between attempts is {g:.2}s, expected about {expect}s: {shown:?}"
        );
    }
    for w in gaps.windows(2) {
        assert!(w[1] > w[0] * 1.5, "the backoff does not grow: {shown:?}");
    }
    // The failure count follows the attempts, never ahead of them and never decreasing.
    for w in samples.windows(2) {
        assert!(w[1].1 >= w[0].1, "failures went down: {samples:?}");
    }
    let v = status_json(&sock);
    let bad = job_status(&v, "bad");
    let (n, attempts) = (
        bad["failures"].as_u64().unwrap_or(0),
        stamps(&stamp_file).len() as u64,
    );
    assert!(
        n >= 4 && n <= attempts,
        "failures {n} after {attempts} attempts: {v:#}"
    );
    // rsync's exit 1 (usage) on every attempt: retrying cannot fix it, and status says so.
    assert_eq!(bad["state"], "failed", "{v:#}");
    assert_eq!(bad["last_error"]["permanent"], true, "{v:#}");
    assert!(
        bad["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("status 1")),
        "{v:#}"
    );

    // Fix the handler (atomically: a rename over the script) and wait for the next retry,
    // which is up to 16 s away.
    let fixed = env.script("rsync-fixed.sh", "exec rsync \"$@\"");
    fs::rename(&fixed, &rsync).unwrap();
    let cleared = Instant::now();
    d.assert_synced_within(&sb, &db, &[], Duration::from_secs(45));
    let took = cleared.elapsed();
    d.assert_synced(&sh, &dh, &[]);
    let v = status_json(&sock);
    assert_eq!(job_status(&v, "bad")["consecutive_failures"], 0, "{v:#}");
    assert_eq!(job_status(&v, "bad")["state"], "watching", "{v:#}");
    report("permanent-failure-then-fixed", Some(Mode::Rsync), took);
    assert!(d.stop().success());
}
