//! Paths longer than 4,096 bytes (Linux `PATH_MAX`): a chain of 30 directories with
//! 200-byte names (about 6,000 bytes) holding odd names at the bottom. No path-taking
//! system call accepts such paths, nor `rsync -a` relative to the job's root. The initial
//! sync must bring the tree over, then a file created, one modified, one deleted and a
//! directory renamed down there must arrive. The trees are compared by walking them
//! through `clsync::longpath::LongPath` (`rsync -anci` cannot read them either).

#[path = "../e2e/long_paths/deep.rs"]
mod deep;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::{MODES, report, serial};

const DEADLINE: Duration = Duration::from_secs(15);

fn build(src: &Path) -> PathBuf {
    let mut rel = PathBuf::new();
    for i in 0..deep::DEPTH {
        rel.push(deep::component("a", i));
        deep::mkdir(src, &rel);
        deep::write(src, &rel.join("level"), format!("level {i}\n").as_bytes());
    }
    for name in [
        "new\nline",
        "-leading-dash",
        "$(touch pwned)",
        &"n".repeat(255),
    ] {
        deep::write(src, &rel.join(name), name.as_bytes());
    }
    deep::mkdir(src, &rel.join("dir"));
    deep::write(src, &rel.join("dir/inner"), b"inner");
    deep::symlink(Path::new("-leading-dash"), src, &rel.join("link"));
    assert!(deep::longest(src) > deep::PATH_MAX + 1500);
    rel
}

/// Polls until the deep trees are equal; panics with the differences and the log.
fn wait_deep(d: &mut Daemon, src: &Path, dst: &Path, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let diff = deep::diff(src, dst);
        if diff.is_empty() {
            return start.elapsed();
        }
        if let Some(st) = d.try_status() {
            panic!("clsync exited ({st}) during {what}\n{}", d.log_tail());
        }
        if start.elapsed() > DEADLINE {
            let n = diff.len();
            panic!(
                "{what}: destination differs after {DEADLINE:?} ({n} differences):\n{}\n{}",
                diff.into_iter().take(10).collect::<Vec<_>>().join("\n"),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn run(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    env.job("j", &src, &dst, mode, "");
    let mut d = env.spawn();
    d.release_start_guard();
    wait_deep(&mut d, &src, &dst, "the initial sync");
    let changed = Instant::now();
    deep::write(&src, &bottom.join("created live"), b"new");
    deep::append(&src, &bottom.join("-leading-dash"), b" and more");
    deep::remove_file(&src, &bottom.join("new\nline"));
    deep::rename(&src, &bottom.join("dir"), &bottom.join("renamed dir"));
    wait_deep(&mut d, &src, &dst, "the live changes");
    let took = changed.elapsed();
    assert!(deep::find_named(&env.root, "pwned".as_ref()).is_empty());
    d.assert_running();
    report("paths-over-4096-bytes", Some(mode), took);
    assert!(d.stop().success());
}

#[test]
fn paths_over_4096_bytes() {
    let _s = serial();
    let mut failed = Vec::new();
    // Each mode is tried even when the other fails, and says how it went.
    for mode in MODES {
        if std::panic::catch_unwind(|| run(mode)).is_err() {
            eprintln!(
                "FAULT paths-over-4096-bytes [{}]: FAILED (see the panic above)",
                mode.as_str()
            );
            failed.push(mode.as_str());
        }
    }
    assert!(failed.is_empty(), "failed in mode(s) {failed:?}");
}
