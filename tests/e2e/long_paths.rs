//! Paths longer than 4,096 bytes (Linux `PATH_MAX`) are data like any other, in every mode.
//!
//! The source holds a chain of 30 directories with 200-byte names (about 6,000 bytes), a
//! file in each of them (so every length from 200 bytes to past `PATH_MAX` is present), and
//! at the bottom files named with a newline, a leading `-`, `$(touch pwned)` and 255 bytes,
//! plus symlinks. The daemon must bring it all to the destination, then follow live
//! changes down there: a new file, a modified one, a deleted one, a renamed directory, a
//! new chain of directories with a file at its end, and the rename of a directory in the
//! middle of the chain. (A remote destination over ssh holds what rsync can reach there:
//! see [`REMOTE_REACH`].)
//!
//! Neither `rsync -a` nor `diff -r` can read such trees, so [`deep::diff`] walks both itself
//! through `clsync::longpath::LongPath`. The command modes are checked on what their
//! handler receives: the exact bytes of each long path, as one argument or one item of a
//! NUL-separated list, and nothing executed.

mod deep;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use super::harness::*;
use super::sshd::Sshd;
use deep::{PATH_MAX, show};

/// Deadline for one "destination equals source" (a few hundred entries; normally well under
/// a second).
const DEEP_DEADLINE: Duration = Duration::from_secs(15);

/// Where `$(touch $CLSYNC_TEST_PWNED)` would land if a name were run through a shell.
fn pwned_abs(env: &Env) -> PathBuf {
    env.p("pwned-abs")
}

/// The names at the bottom of the chain before the daemon starts.
fn bottom_names() -> Vec<OsString> {
    vec![
        "new\nline".into(),
        "-leading-dash".into(),
        "$(touch pwned)".into(),
        "$(touch $CLSYNC_TEST_PWNED)".into(),
        "--rsh=evil".into(),
        format!("{}.txt", "n".repeat(251)).into(), // 255 bytes
    ]
}

/// The names created at the bottom of the chain while the daemon runs.
fn live_names() -> Vec<OsString> {
    vec![
        "live\nnewline".into(),
        "-live-dash".into(),
        "$(touch pwned) live".into(),
        "`touch pwned`".into(),
        "$(touch $CLSYNC_TEST_PWNED) live".into(),
        "l".repeat(255).into(),
    ]
}

/// Builds the source tree below `src`; returns the bottom of the chain (relative).
fn build(src: &Path) -> PathBuf {
    fs::write(src.join("top.txt"), "at the root").unwrap();
    let mut rel = PathBuf::new();
    for i in 0..deep::DEPTH {
        rel.push(deep::component("a", i));
        deep::mkdir(src, &rel);
        deep::write(src, &rel.join("level"), format!("level {i}\n").as_bytes());
    }
    let bottom = rel;
    assert!(bottom.as_os_str().len() > PATH_MAX + 1500);
    for (i, n) in bottom_names().iter().enumerate() {
        let mut data = format!("file {i}: ").into_bytes();
        data.extend_from_slice(n.as_bytes());
        deep::write(src, &bottom.join(n), &data);
    }
    deep::chmod(src, &bottom.join("-leading-dash"), 0o600);
    deep::write(src, &bottom.join("modify-me"), b"before\n");
    deep::chmod(src, &bottom.join("modify-me"), 0o755);
    deep::write(src, &bottom.join("delete-me"), b"to be deleted\n");
    deep::mkdir(src, &bottom.join("ren-old"));
    let inner = deep::mkdir_chain(src, &bottom.join("ren-old"), Path::new("inner1/inner2"));
    deep::write(src, &inner.join("file"), b"moves with its directory\n");
    deep::chmod(src, &bottom.join("ren-old/inner1"), 0o750);
    deep::chmod(src, bottom.parent().unwrap(), 0o700);
    // Symlinks down there: relative, long (about 1,000 bytes, back up and down the
    // chain), and dangling absolute. None of them is followed.
    deep::symlink(Path::new("-leading-dash"), src, &bottom.join("link-rel"));
    let mut long_target = PathBuf::from("../../../../..");
    for i in deep::DEPTH - 5..deep::DEPTH {
        long_target.push(deep::component("a", i));
    }
    long_target.push("-leading-dash");
    deep::symlink(&long_target, src, &bottom.join("link-long"));
    deep::symlink(
        Path::new("/nonexistent/target"),
        src,
        &bottom.join("link-abs"),
    );
    assert!(deep::longest(src) > PATH_MAX + 1500);
    bottom
}

/// What [`live_changes`] did, as paths relative to the source.
struct Changes {
    created: Vec<PathBuf>,
    modified: PathBuf,
    deleted: PathBuf,
    renamed: (PathBuf, PathBuf),
    /// The top of the new chain of directories, and the file at its end.
    new_tree: PathBuf,
    new_tree_file: PathBuf,
}

fn live_changes(src: &Path, bottom: &Path) -> Changes {
    let created: Vec<PathBuf> = live_names().iter().map(|n| bottom.join(n)).collect();
    for (i, p) in created.iter().enumerate() {
        deep::write(src, p, format!("created live {i}\n").as_bytes());
    }
    let modified = bottom.join("modify-me");
    deep::append(src, &modified, b"modified live\n");
    let deleted = bottom.join("delete-me");
    deep::remove_file(src, &deleted);
    let renamed = (bottom.join("ren-old"), bottom.join("ren-new"));
    deep::rename(src, &renamed.0, &renamed.1);
    let new_tree = bottom.join("new-tree");
    deep::mkdir(src, &new_tree);
    let end = deep::mkdir_chain(src, &new_tree, &deep::chain("n", 10));
    let new_tree_file = end.join("leaf\nfile");
    deep::write(src, &new_tree_file, b"at the end of a new chain\n");
    Changes {
        created,
        modified,
        deleted,
        renamed,
        new_tree,
        new_tree_file,
    }
}

/// Renames the chain's directory 24 (its own path is about 4,800 bytes long); returns
/// (from, to, the new bottom of the chain).
fn rename_ancestor(src: &Path, bottom: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let comps: Vec<_> = bottom.components().collect();
    let from: PathBuf = comps[..24].iter().collect();
    let to = from.with_file_name(deep::component("renamed", 23));
    deep::rename(src, &from, &to);
    let mut new_bottom = to.clone();
    new_bottom.extend(&comps[24..]);
    assert!(from.as_os_str().len() > PATH_MAX);
    (from, to, new_bottom)
}

/// Starts the daemon with `CLSYNC_TEST_PWNED` set and waits until `job` is watching (its
/// initial sync has succeeded), for [`DEEP_DEADLINE`].
fn start(env: &Env, job: &str) -> Daemon {
    let pwned = pwned_abs(env);
    let mut d = env.spawn_with(
        &[
            OsStr::new("run"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
        ],
        &[("CLSYNC_TEST_PWNED", pwned.as_os_str())],
    );
    let deadline = Instant::now() + DEEP_DEADLINE;
    while !d
        .log()
        .lines()
        // (Not the debug line "watching N directories; starting the initial sync".)
        .any(|l| l.contains("watching") && l.contains(job) && !l.contains("starting"))
    {
        if let Some(st) = d.try_status() {
            panic!(
                "clsync exited ({st}) before watching {job}\n{}",
                d.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "job {job} not watching within {DEEP_DEADLINE:?} (its initial sync of the deep tree failed?)\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    d.release_start_guard();
    d
}

/// Polls until the trees `src` and `dst` are equal by [`deep::diff`]; panics with the
/// differences and the daemon's log after [`DEEP_DEADLINE`], or as soon as it exits.
fn assert_deep_synced(d: &mut Daemon, src: &Path, dst: &Path) -> Duration {
    assert_synced_within_reach(d, src, dst, usize::MAX)
}

/// [`assert_deep_synced`] for the entries up to `reach` bytes below the root (by
/// [`deep::diff_within`]: deeper ones may be missing, but not wrong or extra).
fn assert_synced_within_reach(d: &mut Daemon, src: &Path, dst: &Path, reach: usize) -> Duration {
    let start = Instant::now();
    loop {
        let diff = deep::diff_within(src, dst, reach);
        if diff.is_empty() {
            return start.elapsed();
        }
        let shown = || {
            let n = diff.len();
            let mut s = diff.iter().take(25).cloned().collect::<Vec<_>>().join("\n");
            if n > 25 {
                s.push_str(&format!("\n... ({} more)", n - 25));
            }
            s
        };
        if let Some(st) = d.try_status() {
            panic!(
                "clsync exited ({st}) while the deep trees differ:\n{}\n{}",
                shown(),
                d.log_tail()
            );
        }
        if start.elapsed() > DEEP_DEADLINE {
            panic!(
                "destination {} not equal to source {} after {DEEP_DEADLINE:?}:\n{}\n{}",
                dst.display(),
                src.display(),
                shown(),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// No name was run through a shell: no `pwned` anywhere in the test's tree (however deep),
/// at the absolute path, or in the test's cwd.
fn assert_not_pwned(env: &Env) {
    for name in ["pwned", "pwned-abs"] {
        let found = deep::find_named(&env.root, OsStr::new(name));
        assert!(
            found.is_empty(),
            "a file name was run as a command: {:?}",
            found.iter().map(|p| show(p)).collect::<Vec<_>>()
        );
        assert!(
            !Path::new(name).exists(),
            "{name} created in the test's cwd"
        );
    }
    assert!(!pwned_abs(env).exists());
}

/// `rsync` (the default mode) and `mirror` with a local destination: initial sync, live
/// changes, the rename of an ancestor.
fn local_destination(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    env.job("deep", &src, &dst, mode, "");
    let mut d = start(&env, "deep");
    let took = assert_deep_synced(&mut d, &src, &dst);
    eprintln!("initial sync of the deep tree: {:.2}s", took.as_secs_f64());
    // Spot checks, independent of the comparison.
    assert!(deep::longest(&dst) > PATH_MAX + 1500);
    assert_eq!(
        deep::read(&dst, &bottom.join("new\nline")).unwrap(),
        b"file 0: new\nline"
    );
    let ch = live_changes(&src, &bottom);
    assert_deep_synced(&mut d, &src, &dst);
    assert!(!deep::exists(&dst, &ch.deleted));
    assert!(!deep::exists(&dst, &ch.renamed.0));
    assert_eq!(
        deep::read(&dst, &ch.modified).unwrap(),
        b"before\nmodified live\n"
    );
    assert!(deep::exists(&dst, &ch.new_tree_file));
    let (from, _, new_bottom) = rename_ancestor(&src, &bottom);
    assert_deep_synced(&mut d, &src, &dst);
    assert!(!deep::exists(&dst, &from));
    assert!(deep::exists(&dst, &new_bottom.join("link-long")));
    assert_not_pwned(&env);
    d.assert_running();
    assert!(d.stop().success());
}

/// The daemon is stopped, the deep part of the source changes, the daemon starts again:
/// its initial sync repairs the destination. Then drift made at the destination (no event
/// tells the daemon) is repaired by `verify_interval`.
fn restart_and_verify(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    env.job("deep", &src, &dst, mode, "verify_interval = \"1s\"\n");
    let mut d = start(&env, "deep");
    assert_deep_synced(&mut d, &src, &dst);
    assert!(d.stop().success());
    let ch = live_changes(&src, &bottom);
    deep::chmod(&src, &bottom.join("-leading-dash"), 0o644);
    let mut d = start(&env, "deep");
    assert_deep_synced(&mut d, &src, &dst);
    assert!(!deep::exists(&dst, &ch.deleted));
    // Drift at the destination, deep down.
    deep::remove_file(&dst, &bottom.join("new\nline"));
    deep::write(&dst, &ch.modified, b"tampered at the destination\n");
    deep::write(&dst, &bottom.join("junk at the destination"), b"x");
    deep::remove_file(&dst, &ch.new_tree_file);
    assert!(!deep::diff(&src, &dst).is_empty());
    let took = assert_deep_synced(&mut d, &src, &dst);
    eprintln!("deep drift repaired in {:.2}s", took.as_secs_f64());
    assert_not_pwned(&env);
    assert!(d.stop().success());
}

crate::both_modes! {
    deep_paths_local_destination => local_destination;
    deep_paths_restart_and_verify => restart_and_verify;
}

// ---------------------------------------------------------------------------------------
// rsync over ssh.

/// How deep below the source a remote destination must be synced. rsync's remote side
/// cannot work below 4,096 bytes of absolute path (README, "Very long paths"), so clsync
/// syncs what rsync can reach: at least the entries up to 2,048 bytes below the source (the
/// `DEEP` of `src/handler/shallow.rs`), deletions included.
const REMOTE_REACH: usize = 2048;

/// The first `n` components of `rel`.
fn prefix(rel: &Path, n: usize) -> PathBuf {
    rel.components().take(n).collect()
}

/// Job `remote`: rsync mode from `src` to `root@127.0.0.1:DST` through `sshd`.
fn remote_job(env: &Env, sshd: &Sshd, src: &Path, dst: &Path) {
    env.write_job(
        "remote",
        &format!(
            "source = {}\ndestination = {}\ndelay = \"100ms\"\n{}",
            toml_path(src),
            toml_str(&format!("root@127.0.0.1:{}", dst.display())),
            sshd.job_extra()
        ),
    );
}

/// `mode = "rsync"` with `root@127.0.0.1:DST` over a real sshd: everything within
/// [`REMOTE_REACH`] is synced, changes at every depth included; what is deeper is reported
/// in the log, and nothing at the destination is stale or foreign.
#[test]
fn deep_paths_over_ssh() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    remote_job(&env, &sshd, &src, &dst);
    let mut d = start(&env, "remote");
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    assert!(deep::exists(&dst, &prefix(&bottom, 9).join("level")));
    // The directories it cannot sync are named.
    let deadline = Instant::now() + DEEP_DEADLINE;
    while !d.log().lines().any(|l| {
        l.contains("WARN")
            && l.contains("not synced to this remote destination")
            && l.contains(src.join(prefix(&bottom, 1)).to_str().unwrap())
    }) {
        assert!(
            Instant::now() < deadline,
            "no warning about the deep directories\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    // Changes at every depth: shallow (about 600 and 1,000 bytes), between the reach and
    // rsync's limit (about 2,800 and 3,000 bytes), and at the bottom (6,000).
    let (shallow, mid) = (prefix(&bottom, 5), prefix(&bottom, 14));
    deep::write(&src, &shallow.join("new shallow"), b"new");
    deep::append(&src, &prefix(&bottom, 3).join("level"), b"modified\n");
    deep::remove_file(&src, &prefix(&bottom, 4).join("level"));
    deep::write(&src, &mid.join("new mid"), b"new");
    deep::append(&src, &mid.join("level"), b"modified\n");
    deep::remove_file(&src, &prefix(&bottom, 15).join("level"));
    live_changes(&src, &bottom);
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    assert!(deep::exists(&dst, &shallow.join("new shallow")));
    // A shallow directory holding the whole chain is renamed.
    let moved = prefix(&bottom, 2).with_file_name(deep::component("moved", 1));
    deep::rename(&src, &prefix(&bottom, 2), &moved);
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    assert!(deep::exists(
        &dst,
        &moved.join(deep::component("a", 2)).join("level")
    ));
    assert_not_pwned(&env);
    d.assert_running();
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------------------
// The command modes: what the handler receives.

/// The NUL-terminated items of a record file (empty if it does not exist yet).
fn items(p: &Path) -> Vec<OsString> {
    let data = fs::read(p).unwrap_or_default();
    let mut v: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|s| OsStr::from_bytes(s).to_owned())
        .collect();
    v.pop();
    v
}

/// One path a handler was given, relative to the source, with its event when the mode
/// says (shell, simple).
#[derive(Debug, Clone)]
struct Got {
    event: Option<String>,
    rel: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Direct,
    Shell,
    Simple,
    RsyncShell,
}

impl Cmd {
    fn mode(self) -> &'static str {
        match self {
            Cmd::Direct => "direct",
            Cmd::Shell => "shell",
            Cmd::Simple => "simple",
            Cmd::RsyncShell => "rsync-shell",
        }
    }

    /// The handler script: it only records what it was given (`rec`: its arguments, `lists`:
    /// the content of its list file), byte for byte, and runs nothing else.
    fn script(self, rec: &Path, lists: &Path) -> String {
        let (rec, lists) = (rec.display(), lists.display());
        match self {
            Cmd::Direct => format!("printf '%s\\0' \"$@\" >> '{rec}'"),
            Cmd::Shell => format!(
                "[ $# -eq 3 ] || exit 9\nprintf '%s\\0' \"$@\" >> '{rec}'\ncat \"$3\" >> '{lists}'"
            ),
            Cmd::Simple => format!("[ $# -eq 2 ] || exit 9\nprintf '%s\\0' \"$@\" >> '{rec}'"),
            Cmd::RsyncShell => format!(
                "[ $# -eq 2 ] || exit 9\nprintf '%s\\0' \"$@\" >> '{rec}'\ncat \"$1\" >> '{lists}'"
            ),
        }
    }

    /// Everything the handler was given so far.
    fn got(self, src: &Path, rec: &Path, lists: &Path) -> Vec<Got> {
        let plain = |p: &OsStr| Got {
            event: None,
            rel: PathBuf::from(p),
        };
        match self {
            // The paths, then the destination, per run.
            Cmd::Direct => items(rec).iter().map(|p| plain(p)).collect(),
            // EVENT\0TYPE\0PATH\0 records.
            Cmd::Shell => items(lists)
                .chunks(3)
                .filter(|c| c.len() == 3)
                .map(|c| Got {
                    event: Some(c[0].to_string_lossy().into_owned()),
                    rel: PathBuf::from(&c[2]),
                })
                .collect(),
            // EVENT /ABS/PATH per run.
            Cmd::Simple => items(rec)
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| Got {
                    event: Some(c[0].to_string_lossy().into_owned()),
                    rel: Path::new(&c[1])
                        .strip_prefix(src)
                        .map(Path::to_path_buf)
                        // Not absolute below the source: matches nothing expected.
                        .unwrap_or_else(|_| Path::new("<not below the source>").join(&c[1])),
                })
                .collect(),
            // A `--files-from` list: `./PATH`, the root as `.`.
            Cmd::RsyncShell => items(lists)
                .iter()
                .map(|p| match p.as_bytes().strip_prefix(b"./") {
                    Some(rest) => plain(OsStr::from_bytes(rest)),
                    None => plain(p),
                })
                .collect(),
        }
    }

    /// What the initial sync gives: the root.
    fn is_root(self, g: &Got) -> bool {
        match self {
            Cmd::Simple => g.rel.as_os_str().is_empty(),
            _ => g.rel == Path::new("."),
        }
    }
}

/// What is still missing from `got`: each `(event, path)` of `exact` given exactly (with
/// that event, when the mode reports events), and each `(top, path)` of `covered` given as a
/// path inside `top` that is `path` or one of its ancestors.
fn missing(got: &[Got], exact: &[(&str, &Path)], covered: &[(&Path, &Path)]) -> Vec<String> {
    let mut out = Vec::new();
    for (ev, p) in exact {
        let ok = got
            .iter()
            .any(|g| g.rel == *p && g.event.as_deref().is_none_or(|e| e == *ev));
        if !ok {
            out.push(format!("{ev} {}", show(p)));
        }
    }
    for (top, p) in covered {
        if !got
            .iter()
            .any(|g| g.rel.starts_with(top) && p.starts_with(&g.rel))
        {
            out.push(format!("something covering {}", show(p)));
        }
    }
    out
}

fn wait_for_paths(
    d: &mut Daemon,
    what: &str,
    mut got: impl FnMut() -> Vec<Got>,
    exact: &[(&str, &Path)],
    covered: &[(&Path, &Path)],
) {
    let deadline = Instant::now() + DEEP_DEADLINE;
    loop {
        let g = got();
        let miss = missing(&g, exact, covered);
        if miss.is_empty() {
            return;
        }
        if let Some(st) = d.try_status() {
            panic!("clsync exited ({st}) waiting for {what}\n{}", d.log_tail());
        }
        if Instant::now() > deadline {
            let given: Vec<String> = g
                .iter()
                .map(|g| format!("{:?} {}", g.event, show(&g.rel)))
                .collect();
            panic!(
                "{what}: the handler was not given, byte for byte:\n  {}\nit was given:\n  {}\n{}",
                miss.join("\n  "),
                given.join("\n  "),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn command_mode(cmd: Cmd) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    let (rec, lists) = (env.p("argv.rec"), env.p("lists.rec"));
    let script = env.script("handler.sh", &cmd.script(&rec, &lists));
    // The handler runs no rsync: the job's rsync stands in as one whose receiver takes
    // missing entries, so that deletions are listed as they are (not as a deletion run).
    let rsync = env.script(
        "rsync-accepts.sh",
        "[ \"$1\" = --version ] && echo 'rsync  version 0.0  protocol version 32'\nexit 0",
    );
    env.write_job(
        "j",
        &format!(
            "source = {}\ndestination = {}\nmode = {}\ndelay = \"100ms\"\n[command]\npath = {}\n[rsync]\npath = {}\n",
            toml_path(&src),
            toml_path(&dst),
            toml_str(cmd.mode()),
            toml_path(&script),
            toml_path(&rsync)
        ),
    );
    let mut d = start(&env, "j");
    let got = || cmd.got(&src, &rec, &lists);
    // The initial sync names the root only: the handler walks the tree itself.
    let deadline = Instant::now() + DEEP_DEADLINE;
    while !got().iter().any(|g| cmd.is_root(g)) {
        d.assert_running();
        assert!(
            Instant::now() < deadline,
            "no initial run\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }

    let ch = live_changes(&src, &bottom);
    let mut exact: Vec<(&str, &Path)> = ch.created.iter().map(|p| ("sync", p.as_path())).collect();
    exact.extend([
        ("sync", ch.modified.as_path()),
        ("delete", ch.deleted.as_path()),
        ("delete", ch.renamed.0.as_path()),
        ("tree", ch.renamed.1.as_path()),
    ]);
    for (_, p) in &exact {
        assert!(p.as_os_str().len() > PATH_MAX, "{}", show(p));
    }
    wait_for_paths(
        &mut d,
        "the live changes",
        got,
        &exact,
        &[(ch.new_tree.as_path(), ch.new_tree_file.as_path())],
    );

    let (from, to, _) = rename_ancestor(&src, &bottom);
    wait_for_paths(
        &mut d,
        "the rename of an ancestor",
        got,
        &[("delete", from.as_path()), ("tree", to.as_path())],
        &[],
    );
    assert_not_pwned(&env);
    d.assert_running();
    assert!(d.stop().success());
}

#[test]
fn deep_paths_direct_mode() {
    command_mode(Cmd::Direct);
}

#[test]
fn deep_paths_shell_mode() {
    command_mode(Cmd::Shell);
}

#[test]
fn deep_paths_simple_mode() {
    command_mode(Cmd::Simple);
}

#[test]
fn deep_paths_rsync_shell_mode() {
    command_mode(Cmd::RsyncShell);
}

// ---------------------------------------------------------------------------------------
// The comparison itself.

/// [`deep::diff`] sees every kind of difference down there: a test built on it can fail.
#[test]
fn deep_diff_sees_differences_past_path_max() {
    let env = Env::new();
    let (a, b) = (env.dir("a"), env.dir("b"));
    let bottom_a = build(&a);
    let bottom = build(&b);
    assert_eq!(bottom_a, bottom);
    // Same mtimes on both sides (the files were written at different times).
    let same_mtimes = |a: &Path, b: &Path| {
        for rel in deep::walk(a) {
            let m = fs::symlink_metadata(deep::at(a, &rel)).unwrap();
            if m.is_file() {
                let t = filetime::FileTime::from_last_modification_time(&m);
                filetime::set_file_mtime(deep::at(b, &rel), t).unwrap();
            }
        }
    };
    same_mtimes(&a, &b);
    assert_eq!(deep::diff(&a, &b), Vec::<String>::new());
    let f = bottom.join("$(touch pwned)");
    type Breaker<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "missing at the destination",
            Box::new(|b| deep::remove_file(b, &f)),
        ),
        (
            "extra at the destination",
            Box::new(|b| deep::write(b, &bottom.join("extra"), b"")),
        ),
        (
            "content differs",
            Box::new(|b| {
                let m = fs::metadata(deep::at(b, &f)).unwrap();
                deep::write(b, &f, b"file 2: $(touch pwneD)");
                let t = filetime::FileTime::from_last_modification_time(&m);
                filetime::set_file_mtime(deep::at(b, &f), t).unwrap();
            }),
        ),
        ("mode", Box::new(|b| deep::chmod(b, &f, 0o600))),
        (
            "mtime",
            Box::new(|b| {
                filetime::set_file_mtime(deep::at(b, &f), filetime::FileTime::from_unix_time(1, 0))
                    .unwrap()
            }),
        ),
        (
            "symlink target",
            Box::new(|b| {
                let l = bottom.join("link-long");
                deep::remove_file(b, &l);
                deep::symlink(Path::new("elsewhere"), b, &l);
            }),
        ),
        (
            "type",
            Box::new(|b| {
                deep::remove_file(b, &f);
                deep::mkdir(b, &f);
            }),
        ),
        (
            "missing at the destination",
            Box::new(|b| deep::remove_file(b, &bottom.join("ren-old/inner1/inner2/file"))),
        ),
    ];
    for (want, break_it) in cases {
        let c = env.dir("c");
        let bottom_c = build(&c);
        assert_eq!(bottom_c, bottom);
        same_mtimes(&a, &c);
        assert_eq!(deep::diff(&a, &c), Vec::<String>::new());
        break_it(&c);
        let diff = deep::diff(&a, &c);
        assert!(
            diff.iter().any(|l| l.starts_with(want)),
            "{want}: not seen, the comparison says {diff:?}"
        );
        // std's `remove_dir_all` works with descriptors: no path is too long for it.
        fs::remove_dir_all(&c).unwrap();
    }
    // Within a reach: deeper entries may be missing, but not extra or different.
    let c = env.dir("c");
    build(&c);
    same_mtimes(&a, &c);
    deep::remove_file(&c, &bottom.join("new\nline"));
    assert_eq!(deep::diff_within(&a, &c, 2048), Vec::<String>::new());
    assert!(!deep::diff(&a, &c).is_empty());
    deep::write(&c, &bottom.join("-leading-dash"), b"wrong");
    assert!(!deep::diff_within(&a, &c, 2048).is_empty());
    deep::remove_file(&c, &bottom.join("-leading-dash"));
    assert_eq!(deep::diff_within(&a, &c, 2048), Vec::<String>::new());
    deep::write(&c, &bottom.join("extra"), b"");
    assert!(!deep::diff_within(&a, &c, 2048).is_empty());
    // A missing destination is a difference, not an empty tree.
    assert!(!deep::diff(&a, &env.p("nothing")).is_empty());
}

/// Review: once deep paths were seen, a batch holding a directory entry that is not
/// recursive (an attribute change: chmod) is still sent to rsync with `-r`, so rsync
/// recurses into the whole chain below it, meets the names over its limit and fails; the
/// batch is retried forever and later changes are stuck behind it.
#[test]
fn review_chmod_of_shallow_ancestor_over_ssh() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let bottom = build(&src);
    remote_job(&env, &sshd, &src, &dst);
    let mut d = start(&env, "remote");
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    // Only the attributes of a shallow directory holding the whole chain change.
    deep::chmod(&src, &prefix(&bottom, 2), 0o750);
    // The chmod arrives (rsync applies what it can even in a run that fails) ...
    let deadline = Instant::now() + DEEP_DEADLINE;
    while fs::metadata(dst.join(prefix(&bottom, 2))).map_or(0, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
    }) != 0o750
    {
        assert!(
            Instant::now() < deadline,
            "chmod not synced\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    // ... and a later change needs a later run, which comes after the chmod run's outcome
    // is logged: that run must not have failed.
    deep::write(&src, Path::new("after-chmod"), b"x");
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    assert!(
        !d.log().lines().any(|l| l.contains("failed (attempt")),
        "{}",
        d.log_tail()
    );
    assert!(d.stop().success());
}

/// Review: every deep root becomes one `--filter=H /ROOT/*` argument of more than 2,048
/// bytes on rsync's command line. A tree with about a thousand deep roots (siblings below
/// one deep directory) exceeds ARG_MAX (2 MiB with the default 8 MiB stack): rsync cannot
/// even be started, and nothing reaches the remote destination any more.
#[test]
fn review_many_deep_roots_over_ssh() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    fs::write(src.join("top.txt"), "at the root").unwrap();
    let base = deep::mkdir_chain(&src, Path::new(""), &deep::chain("a", 10)); // 2,009 bytes
    for i in 0..1100 {
        deep::mkdir(&src, &base.join(deep::component("s", i)));
    }
    // One path past rsync's limit, so that the remote handler cuts batches.
    deep::mkdir_chain(
        &src,
        &base.join(deep::component("s", 0)),
        &deep::chain("b", 12),
    );
    remote_job(&env, &sshd, &src, &dst);
    let mut d = start(&env, "remote");
    assert_synced_within_reach(&mut d, &src, &dst, REMOTE_REACH);
    assert!(d.stop().success());
}
