//! Two-way sync (A→B and B→A in one daemon) with `loop_guard`: a change crosses once and
//! does not bounce back and forth.

use std::time::{Duration, Instant};

use super::harness::*;

#[test]
fn two_way_sync_settles() {
    let env = Env::new();
    let (a, b) = (env.dir("a"), env.dir("b"));
    populate(&a, "two");
    let (rsync, calls) = env.rsync_counter();
    env.write_main_config("[daemon]\nlog_level = \"info,clsync::job=debug\"\n");
    // --inplace: rsync rewrites the files themselves (no temp file and rename), so every
    // write it makes is a content change at the other side: without the guard, a change
    // would bounce between a and b for ever.
    let extra = format!(
        "loop_guard = true\n{}[rsync]\npath = {}\nargs = [\"--inplace\"]\n",
        sandbox_write(&[&calls]),
        toml_path(&rsync)
    );
    env.job("ab", &a, &b, Mode::Rsync, &extra);
    env.job(
        "ba",
        &b,
        &a,
        Mode::Rsync,
        &format!("initial_sync = false\n{extra}"),
    );
    let mut d = env.start(&["ab", "ba"]);
    d.assert_synced(&a, &b, &[]);
    write(&a.join("from-a.txt"), "written in a");
    d.assert_synced(&a, &b, &[]);
    write(&b.join("b/from-b.txt"), "written in b");
    d.assert_synced(&b, &a, &[]);
    // Quiet now: the number of rsync runs must stop growing (no ping-pong).
    let mut last = count_lines(&calls);
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stable_since.elapsed() < Duration::from_millis(1500) {
        assert!(
            Instant::now() < deadline,
            "rsync keeps running ({} calls): the change bounces between a and b\n{}",
            count_lines(&calls),
            d.log_tail()
        );
        std::thread::sleep(POLL);
        let n = count_lines(&calls);
        if n != last {
            last = n;
            stable_since = Instant::now();
        }
    }
    eprintln!("two-way: settled after {last} rsync runs");
    assert!(
        d.log()
            .contains("loop guard: unchanged since this job sent it"),
        "the echo of a change was sent back\n{}",
        d.log_tail()
    );
    d.assert_synced(&a, &b, &[]);
    assert!(d.stop().success());
}
