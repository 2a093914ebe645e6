//! `clsync sync --once`'s progress: plain lines and a summary when stderr is not a
//! terminal (no escape codes), a bar under a pseudo-terminal (`script` from util-linux).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::harness::*;

/// The log line of the initial sync's end.
const INITIAL: &str = "initial sync done";

/// A tree of known size: (files that are not directories, bytes of the regular files).
fn known_tree(src: &Path) -> (u64, u64) {
    let mut bytes = 0;
    for i in 0..40u64 {
        let len = (i * 37) as usize;
        write(&src.join(format!("d{}/f{i}", i % 4)), &"x".repeat(len));
        bytes += len as u64;
    }
    std::os::unix::fs::symlink("d0/f1", src.join("link")).unwrap();
    write(&src.join("skip.tmp"), "not counted, not copied");
    (41, bytes)
}

/// `clsync sync --once` with stdout and stderr piped: (exit code, stderr as it came).
fn sync_piped(env: &Env, job: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clsync"))
        .args(["sync", "--once", "--config-dir"])
        .arg(&env.conf)
        .args(extra)
        .arg(job)
        .current_dir(&env.root)
        .env_remove("CLSYNC_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run clsync sync");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The numbers in `line` after `prefix`, in order.
fn numbers_after(line: &str, prefix: &str) -> Vec<u64> {
    line[line.find(prefix).unwrap() + prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

/// Not a terminal: the source's count, progress lines whose counts only grow, and a summary
/// whose files and bytes are the tree's; no escape codes.
#[test]
fn sync_once_plain_progress_and_summary() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let (files, bytes) = known_tree(&src);
    env.job("p", &src, &dst, Mode::Mirror, "exclude = [\"*.tmp\"]");
    let (code, err) = sync_piped(&env, "p", &["--progress-interval", "20ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(tree_diff(&src, &dst, &["skip.tmp"]).is_empty(), "{err}");
    assert!(!err.contains('\x1b'), "escape codes on a pipe:\n{err}");
    let count = format!("clsync: p: the source holds {files} files, {bytes} bytes (");
    assert!(err.contains(&count), "no {count:?} in:\n{err}");
    let ticks: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("clsync: p: ") && l.contains(" files, ") && l.contains("ETA"))
        .collect();
    assert!(!ticks.is_empty(), "no progress line in:\n{err}");
    let mut last = (0, 0);
    for t in &ticks {
        // "N/T files, B/TB bytes (P%), R/s, ETA ..."
        let n = numbers_after(t, "clsync: p: ");
        assert_eq!((n[1], n[3]), (files, bytes), "{t}");
        assert!(
            n[0] <= files && n[2] <= bytes && (n[0], n[2]) >= last,
            "{t}\n{err}"
        );
        last = (n[0], n[2]);
    }
    let summary = format!("clsync: p: synced {files} files, {bytes} bytes copied (");
    let last_line = err.lines().last().unwrap_or_default();
    assert!(
        last_line.starts_with(&summary) && last_line.ends_with("/s"),
        "the last line is not the summary {summary:?}...:\n{err}"
    );

    // Nothing to copy the second time; --no-progress: no progress at all.
    let (code, err) = sync_piped(&env, "p", &[]);
    assert_eq!(code, Some(0), "{err}");
    let summary = format!("clsync: p: synced {files} files, 0 bytes copied (");
    assert!(err.contains(&summary), "no {summary:?} in:\n{err}");
    let (code, err) = sync_piped(&env, "p", &["--no-progress"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("clsync: p:"), "{err}");
}

/// rsync mode: progress lines from rsync's own (`--info=progress2`), then the summary with
/// the bytes rsync transferred: the tree's, symlinks and excluded files aside.
#[test]
fn sync_once_rsync_progress_and_summary() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let (files, bytes) = known_tree(&src);
    env.job("r", &src, &dst, Mode::Rsync, "exclude = [\"*.tmp\"]");
    let (code, err) = sync_piped(&env, "r", &["--progress-interval", "20ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(tree_diff(&src, &dst, &["skip.tmp"]).is_empty(), "{err}");
    let count = format!("clsync: r: the source holds {files} files, {bytes} bytes (");
    assert!(err.contains(&count), "no {count:?} in:\n{err}");
    // rsync counts the files whose data it sent: the symlink is not one.
    let summary = format!(
        "clsync: r: synced {} files, {bytes} bytes copied (",
        files - 1
    );
    let last_line = err.lines().last().unwrap_or_default();
    assert!(
        last_line.starts_with(&summary) && last_line.ends_with("/s"),
        "the last line is not the summary {summary:?}...:\n{err}"
    );
}

/// On a terminal (`script` gives the command one): a progress bar, cleared, then the
/// summary. Skipped where util-linux's `script` is missing, unless `CI` is set.
#[test]
fn sync_once_bar_on_a_terminal() {
    let has_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        assert!(std::env::var_os("CI").is_none(), "script(1) is missing");
        eprintln!("skipped: no script(1)");
        return;
    }
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let (files, bytes) = known_tree(&src);
    env.job("t", &src, &dst, Mode::Mirror, "exclude = [\"*.tmp\"]");
    // `script -c` takes a shell command: the arguments are quoted for sh.
    let quote = |s: &OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', "'\\''"));
    let cmd = format!(
        "{} sync --once --config-dir {} t",
        quote(OsStr::new(env!("CARGO_BIN_EXE_clsync"))),
        quote(env.conf.as_os_str())
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&env.root)
        .env_remove("CLSYNC_LOG")
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{raw}");
    assert!(tree_diff(&src, &dst, &["skip.tmp"]).is_empty(), "{raw}");
    let shown = strip_ansi(&raw).replace('\r', "\n");
    assert!(raw.contains("\x1b[2K"), "no line redrawn:\n{raw:?}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("t [") && l.contains(&format!("/{files} files"))),
        "no progress bar in:\n{shown}"
    );
    // Log lines are written on lines of their own, not after the bar.
    let logged: Vec<&str> = shown.lines().filter(|l| l.contains(INITIAL)).collect();
    assert!(
        !logged.is_empty()
            && logged
                .iter()
                .all(|l| l.starts_with(|c: char| c.is_ascii_digit())),
        "a log line shares a line with the bar:\n{shown}"
    );
    let summary = format!("clsync: t: synced {files} files, {bytes} bytes copied (");
    let last = shown
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.starts_with(&summary),
        "the last line is not {summary:?}...:\n{shown}"
    );
}
