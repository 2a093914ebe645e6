//! Handler runs that hang, fail transiently, or exit with codes the job ignores.

use std::fs;

use super::harness::*;

/// A handler that hangs is killed after `timeout` (its whole process group, so rsync's
/// children too) and the batch is retried: nothing is lost.
#[test]
fn hung_handler_is_killed_and_retried() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "t");
    // The first call hangs (a child `sleep` keeps the process group busy), the rest work.
    let (rsync, calls) =
        env.flaky_script("rsync-hang-once.sh", 1, "sleep 600", "exec rsync \"$@\"");
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        &format!(
            "timeout = \"1s\"\n{}[rsync]\npath = {}",
            sandbox_write(&[&calls]),
            toml_path(&rsync)
        ),
    );
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    write(&src.join("after.txt"), "after the hang");
    d.assert_synced(&src, &dst, &[]);
    assert!(count_lines(&calls) >= 2);
    assert!(
        d.log().contains("longer than the timeout"),
        "the kill is reported\n{}",
        d.log_tail()
    );
    // No `sleep 600` left behind: the process group was killed.
    let leftover = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .any(|c| c.starts_with(b"sleep\x00600"));
    assert!(!leftover, "the hung handler's child survived");
    assert!(d.stop().success());
}

/// An exit code listed in `ignore_exit_codes` counts as success; others are retried until
/// they succeed.
#[test]
fn ignored_exit_codes_and_transient_failures() {
    let env = Env::new();
    let (sa, da) = (env.dir("src-a"), env.p("dst-a"));
    let (sb, db) = (env.dir("src-b"), env.p("dst-b"));
    populate(&sa, "a");
    populate(&sb, "b");
    // Job a: rsync works but the wrapper always says 23 (partial transfer): ignored.
    let always23 = env.script("rsync-23.sh", "rsync \"$@\"\nexit 23");
    env.job(
        "a",
        &sa,
        &da,
        Mode::Rsync,
        &format!(
            "ignore_exit_codes = [23, 24]\n[rsync]\npath = {}",
            toml_path(&always23)
        ),
    );
    // Job b: the first two calls fail with 12 before doing anything, then it works.
    let (flaky, calls) = env.flaky_script("rsync-flaky.sh", 2, "exit 12", "exec rsync \"$@\"");
    env.job(
        "b",
        &sb,
        &db,
        Mode::Rsync,
        &format!(
            "{}[rsync]\npath = {}",
            sandbox_write(&[&calls]),
            toml_path(&flaky)
        ),
    );
    let mut d = env.start(&["a", "b"]);
    d.assert_synced(&sa, &da, &[]);
    d.assert_synced(&sb, &db, &[]);
    write(&sa.join("new-a"), "x");
    write(&sb.join("new-b"), "y");
    d.assert_synced(&sa, &da, &[]);
    d.assert_synced(&sb, &db, &[]);
    assert!(count_lines(&calls) >= 3, "b was retried");
    let log = d.log();
    assert!(
        log.contains("status 12"),
        "the failures are reported\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("job{name=a}") && l.contains("failed")),
        "a's exit 23 is ignored\n{log}"
    );
    assert!(d.stop().success());
}

/// `retries`, `retry_delay`, `retry_max_delay`: after `retries` failures the job is reported
/// failed, keeps retrying at the capped interval with its changes, and recovers.
#[test]
fn retries_mark_the_job_failed_and_it_still_recovers() {
    let env = Env::new();
    let sock = env.p("ctl.sock");
    env.write_main_config(&format!("[daemon]\nsocket = {}\n", toml_path(&sock)));
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "r");
    let down = env.p("target-down");
    write(&down, "");
    let calls = env.p("calls");
    write(&calls, "");
    let rsync = env.script(
        "rsync-down.sh",
        &format!(
            "{PROBES_PASS}date +%s.%N >> '{c}'\n[ -e '{d}' ] && exit 12\nexec rsync \"$@\"",
            c = calls.display(),
            d = down.display()
        ),
    );
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        &format!(
            "retries = 3\nretry_delay = \"100ms\"\nretry_max_delay = \"400ms\"\n{}[rsync]\npath = {}\n",
            sandbox_write(&[&calls]),
            toml_path(&rsync)
        ),
    );
    let mut d = env.spawn();
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    loop {
        let st = super::ctl::status(&sock).unwrap_or_default();
        if st["jobs"][0]["state"] == "failed" {
            assert!(
                st["jobs"][0]["consecutive_failures"].as_u64() >= Some(3),
                "{st}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never failed: {st}\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    write(&src.join("while-down.txt"), "kept");
    // The waits grow and stop at the cap: 0.1, 0.2, 0.4, 0.4, ...
    while count_lines(&calls) < 6 {
        assert!(
            std::time::Instant::now() < deadline + SYNC_DEADLINE,
            "{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    let times: Vec<f64> = std::fs::read_to_string(&calls)
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] < gaps[2], "backoff grows: {gaps:?}");
    assert!(gaps.iter().all(|&g| g < 2.0), "capped near 0.4 s: {gaps:?}");
    std::fs::remove_file(&down).unwrap();
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}
