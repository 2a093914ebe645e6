//! Test harness: temp environments, job files, the daemon process, tree comparison.
//!
//! Everything here is real: the real `clsync` binary, real temp dirs, real rsync. Waiting is
//! always "poll with a deadline", never a fixed sleep.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// Default deadline for "destination equals source".
pub const SYNC_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a daemon to report `watching` for its jobs.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Poll interval.
pub const POLL: Duration = Duration::from_millis(50);

/// The first line of an rsync wrapper that counts or fails calls: the daemon's questions
/// to a job's rsync at start (`--version`, and a transfer between two `clsync-probe.*`
/// temporary directories) go to the real rsync, uncounted.
pub const PROBES_PASS: &str =
    "case \"$*\" in --version|*/clsync-probe.*) exec rsync \"$@\";; esac\n";

/// Held for reading by every daemon start (spawn .. `watching`), for writing by the tests that
/// lower `fs.inotify.max_queued_events`: the kernel reads that value when an inotify instance
/// is created, so no other daemon may start while it is lowered.
pub static INOTIFY_START: RwLock<()> = RwLock::new(());
/// Serialises the tests that change global sysctls.
pub static SYSCTL_LOCK: Mutex<()> = Mutex::new(());

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rsync,
    Mirror,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rsync => "rsync",
            Mode::Mirror => "mirror",
        }
    }
}

/// Generates `mod $name { #[test] fn rsync(); #[test] fn mirror(); }` calling `$f(Mode)`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident => $f:ident;)*) => {
        $(
            mod $name {
                #[test]
                fn rsync() {
                    super::$f($crate::e2e::harness::Mode::Rsync)
                }
                #[test]
                fn mirror() {
                    super::$f($crate::e2e::harness::Mode::Mirror)
                }
            }
        )*
    };
}

/// Quotes a string as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn toml_path(p: &Path) -> String {
    toml_str(p.to_str().expect("temp paths are UTF-8"))
}

pub fn toml_list(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", v.join(", "))
}

/// The text of a job file: source, destination, mode, a short delay, then `extra` (more
/// top-level keys, then tables).
pub fn job_toml(src: &Path, dst: &Path, mode: Mode, extra: &str) -> String {
    format!(
        "source = {}\ndestination = {}\nmode = {}\ndelay = \"100ms\"\n{}\n",
        toml_path(src),
        toml_path(dst),
        toml_str(mode.as_str()),
        extra
    )
}

/// A job's `sandbox_write` line for the files a test's handler wrapper writes besides the
/// destination (call counters): the sandbox lets a run write nowhere else.
pub fn sandbox_write(files: &[&Path]) -> String {
    let list: Vec<String> = files.iter().map(|f| toml_path(f)).collect();
    format!("sandbox_write = [{}]\n", list.join(", "))
}

/// One test's world: a temp dir holding the config dir (`conf/`), sources, destinations,
/// the daemon's log.
pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub conf: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("clsync-e2e-")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().canonicalize().unwrap();
        let conf = root.join("conf");
        fs::create_dir_all(conf.join("jobs.d")).unwrap();
        Env {
            _tmp: tmp,
            root,
            conf,
        }
    }

    /// `root/rel`.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `root/rel`, created as a directory.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.p(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn write_job(&self, name: &str, text: &str) -> PathBuf {
        let p = self.conf.join("jobs.d").join(format!("{name}.toml"));
        fs::write(&p, text).unwrap();
        p
    }

    /// A job `name` syncing `root/src_rel` to `root/dst_rel`.
    pub fn job(&self, name: &str, src: &Path, dst: &Path, mode: Mode, extra: &str) -> PathBuf {
        self.write_job(name, &job_toml(src, dst, mode, extra))
    }

    pub fn write_main_config(&self, text: &str) {
        fs::write(self.conf.join("clsync.toml"), text).unwrap();
    }

    /// Writes an executable shell script `root/name` and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.p(name);
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .unwrap();
        f.sync_all().unwrap();
        drop(f);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A handler script `name` that runs `first` (shell code) on its first `n` calls and
    /// `then` on the others. Returns (script, call counter file).
    /// The counter file exists (empty), so that a job can name it in `sandbox_write`
    /// ([`sandbox_write`]).
    pub fn flaky_script(&self, name: &str, n: u32, first: &str, then: &str) -> (PathBuf, PathBuf) {
        let calls = self.p(&format!("{name}.calls"));
        fs::write(&calls, "").unwrap();
        let script = self.script(
            name,
            &format!(
                "{PROBES_PASS}echo call >> '{c}'\nif [ \"$(wc -l < '{c}')\" -le {n} ]; then {first}; fi\n{then}",
                c = calls.display()
            ),
        );
        (script, calls)
    }

    /// An rsync wrapper that counts its calls in `root/rsync-calls` and returns (script, counter).
    /// The counter exists (empty), for the job's `sandbox_write` ([`sandbox_write`]).
    pub fn rsync_counter(&self) -> (PathBuf, PathBuf) {
        let counter = self.p("rsync-calls");
        fs::write(&counter, "").unwrap();
        let script = self.script(
            "rsync-counter.sh",
            &format!(
                "{PROBES_PASS}echo call >> '{}'\nexec rsync \"$@\"",
                counter.display()
            ),
        );
        (script, counter)
    }

    /// Spawns `clsync run --config-dir conf` (cwd = root).
    pub fn spawn(&self) -> Daemon {
        self.spawn_with(
            &[
                OsStr::new("run"),
                OsStr::new("--config-dir"),
                self.conf.as_os_str(),
            ],
            &[],
        )
    }

    pub fn spawn_with(&self, args: &[&OsStr], envs: &[(&str, &OsStr)]) -> Daemon {
        let guard = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
        let mut d = Daemon::spawn(&self.root, args, envs, &self.root.join("daemon.log"));
        d.start_guard = Some(guard);
        d
    }

    /// Starts the daemon with the sysctl file `sysctl` set to `value` (computed while no
    /// other daemon may start), waits until `jobs` are watching, and restores the value at
    /// once: the kernel reads inotify limits when the daemon creates or fills its instance.
    /// `None` (nothing changed) when the sysctl cannot be written.
    pub fn start_with_sysctl(
        &self,
        sysctl: &str,
        value: impl FnOnce() -> String,
        jobs: &[&str],
    ) -> Option<Daemon> {
        let _exclusive = INOTIFY_START.write().unwrap_or_else(|e| e.into_inner());
        let _low = SysctlGuard::set(sysctl, &value())?;
        let mut d = Daemon::spawn(
            &self.root,
            &[
                OsStr::new("run"),
                OsStr::new("--config-dir"),
                self.conf.as_os_str(),
            ],
            &[],
            &self.root.join("daemon.log"),
        );
        d.wait_watching(jobs);
        Some(d)
        // `_low` restores the value here, then `_exclusive` lets other daemons start.
    }

    /// Starts the daemon and waits until every job in `jobs` reports `watching`.
    pub fn start(&self, jobs: &[&str]) -> Daemon {
        let mut d = self.spawn();
        d.wait_watching(jobs);
        d
    }
}

/// The daemon under test. Drop sends SIGTERM to its PID, waits, then SIGKILLs.
pub struct Daemon {
    child: Option<Child>,
    pid: i32,
    pub log_path: PathBuf,
    status: Option<ExitStatus>,
    start_guard: Option<RwLockReadGuard<'static, ()>>,
}

impl Daemon {
    pub fn spawn(cwd: &Path, args: &[&OsStr], envs: &[(&str, &OsStr)], log_path: &Path) -> Daemon {
        let log = fs::File::create(log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clsync"));
        cmd.args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("CLSYNC_CONFIG_DIR")
            .env_remove("CLSYNC_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // CLSYNC_TEST_LOG=debug: every daemon of the run logs at that level.
        if let Some(level) = std::env::var_os("CLSYNC_TEST_LOG") {
            cmd.env("CLSYNC_LOG", level);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn clsync");
        Daemon {
            pid: child.id() as i32,
            child: Some(child),
            log_path: log_path.to_path_buf(),
            status: None,
            start_guard: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The daemon's output so far, ANSI escapes removed.
    pub fn log(&self) -> String {
        let raw = fs::read(&self.log_path).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&raw))
    }

    /// The end of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(80);
        format!(
            "---- daemon log ({}, last {} of {} lines) ----\n{}\n---- end of daemon log ----",
            self.log_path.display(),
            lines.len() - start,
            lines.len(),
            lines[start..].join("\n")
        )
    }

    /// `Some(status)` once the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(st)) = child.try_wait()
        {
            self.status = Some(st);
        }
        self.status
    }

    /// Panics (with the log) if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.try_status() {
            panic!("clsync exited unexpectedly with {st}\n{}", self.log_tail());
        }
    }

    /// Waits until the log has a line containing `watching` and the job name, for each job.
    /// With an empty list, waits for any `watching` line.
    pub fn wait_watching(&mut self, jobs: &[&str]) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let log = self.log();
            // Not the debug line "watching N directories; starting the initial sync".
            let watching = |l: &&str| l.contains("watching") && !l.contains("starting the initial");
            let missing: Vec<&str> = if jobs.is_empty() {
                if log.lines().any(|l| watching(&l)) {
                    vec![]
                } else {
                    vec!["<any>"]
                }
            } else {
                jobs.iter()
                    .copied()
                    .filter(|j| !log.lines().any(|l| watching(&l) && l.contains(j)))
                    .collect()
            };
            if missing.is_empty() {
                break;
            }
            if let Some(st) = self.try_status() {
                panic!(
                    "clsync exited ({st}) before reporting `watching` for {missing:?}\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "no `watching` line for jobs {missing:?} within {READY_DEADLINE:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
        self.start_guard = None;
    }

    /// Lets other daemons start (normally released by `wait_watching`).
    pub fn release_start_guard(&mut self) {
        self.start_guard = None;
    }

    pub fn signal(&self, sig: libc::c_int) {
        if self.status.is_none() {
            unsafe {
                libc::kill(self.pid, sig);
            }
        }
    }

    /// Waits for exit with a deadline; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, wait (20 s), return the exit status. Panics (after SIGKILL) on timeout.
    pub fn stop(&mut self) -> ExitStatus {
        self.start_guard = None;
        if let Some(st) = self.try_status() {
            return st;
        }
        self.signal(libc::SIGTERM);
        match self.wait_exit(Duration::from_secs(20)) {
            Some(st) => st,
            None => {
                self.signal(libc::SIGKILL);
                let _ = self.wait_exit(Duration::from_secs(5));
                panic!(
                    "clsync did not exit within 20 s of SIGTERM\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// Polls until `rsync -anci --delete [--exclude=..] src/ dst/` prints nothing, or panics
    /// with the difference and the daemon log after `SYNC_DEADLINE`.
    pub fn assert_synced(&mut self, src: &Path, dst: &Path, excludes: &[&str]) {
        self.assert_synced_within(src, dst, excludes, SYNC_DEADLINE);
    }

    pub fn assert_synced_within(
        &mut self,
        src: &Path,
        dst: &Path,
        excludes: &[&str],
        timeout: Duration,
    ) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let diff = tree_diff(src, dst, excludes);
            if diff.is_empty() {
                return start.elapsed();
            }
            if let Some(st) = self.try_status() {
                panic!(
                    "clsync exited ({st}) while {} != {}:\n{}\n{}",
                    src.display(),
                    dst.display(),
                    truncate(&diff, 4000),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "destination {} not equal to source {} after {:?}; rsync -anci --delete says:\n{}\n{}",
                    dst.display(),
                    src.display(),
                    timeout,
                    truncate(&diff, 4000),
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Creates a new marker file in `src` and waits until the whole tree is synced. Since
    /// inotify delivers events in order, everything the daemon saw before the marker has been
    /// handled by then; use it before asserting that something did *not* happen.
    pub fn barrier(&mut self, src: &Path, dst: &Path, excludes: &[&str]) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        fs::write(src.join(format!("barrier-{n}")), format!("barrier {n}\n")).unwrap();
        self.assert_synced(src, dst, excludes);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.start_guard = None;
        if self.try_status().is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.wait_exit(Duration::from_secs(5));
        }
    }
}

/// `rsync -anci --delete` output (plus errors); empty means equal.
pub fn tree_diff(src: &Path, dst: &Path, excludes: &[&str]) -> String {
    let mut cmd = Command::new("rsync");
    cmd.arg("-anci").arg("--delete");
    for e in excludes {
        cmd.arg(format!("--exclude={e}"));
    }
    let mut s = src.as_os_str().to_owned();
    s.push("/");
    let mut d = dst.as_os_str().to_owned();
    d.push("/");
    cmd.arg(s).arg(d);
    let out = cmd.output().expect("run rsync");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&format!(
            "rsync exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    text
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &s[..end], s.len() - end)
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Writes a file, creating parents.
pub fn write(p: &Path, content: &str) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, content).unwrap();
}

pub fn append(p: &Path, content: &str) {
    let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

/// Populates `dir` with a small nested tree.
pub fn populate(dir: &Path, tag: &str) {
    for (rel, content) in [
        ("a.txt", "alpha"),
        ("b/b1.txt", "beta one"),
        ("b/b2.txt", "beta two\n"),
        ("b/c/deep.txt", "deep"),
        ("b/c/d/e/deeper.bin", "\0\x01\x02binary"),
        ("empty/.keep", ""),
    ] {
        write(&dir.join(rel), &format!("{content} {tag}"));
    }
    fs::create_dir_all(dir.join("empty-dir")).unwrap();
}

/// All paths (relative, as bytes) under `root` whose file name equals `name`.
pub fn find_named(root: &Path, name: &OsStr) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name() == name {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}

pub fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_owned()
}

/// Result of running `clsync check ...`.
pub struct CheckOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CheckOutput {
    /// Every `file:line:column: message` line of stderr (ANSI stripped).
    pub fn errors(&self) -> Vec<Diag> {
        let re = regex::Regex::new(r"^(.*?):(\d+):(\d+): ?(.*)$").unwrap();
        self.stderr
            .lines()
            .filter_map(|l| {
                let c = re.captures(l)?;
                Some(Diag {
                    file: c[1].to_string(),
                    line: c[2].parse().ok()?,
                    column: c[3].parse().ok()?,
                    message: c[4].to_string(),
                })
            })
            .collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "exit code {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.code, self.stderr, self.stdout
        )
    }

    /// The diagnostics about a file whose path ends with `file_name`.
    pub fn errors_in(&self, file_name: &str) -> Vec<Diag> {
        self.errors()
            .into_iter()
            .filter(|d| d.file.ends_with(file_name))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Diag {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Runs `clsync check ARGS` (cwd = `cwd`) with a deadline.
pub fn run_check(cwd: &Path, args: &[&OsStr]) -> CheckOutput {
    let mut all: Vec<&OsStr> = vec![OsStr::new("check")];
    all.extend_from_slice(args);
    run_clsync(cwd, &all)
}

/// Runs `clsync ARGS` (cwd = `cwd`) and kills it after 30 s.
pub fn run_clsync(cwd: &Path, args: &[&OsStr]) -> CheckOutput {
    let child = Command::new(env!("CARGO_BIN_EXE_clsync"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("CLSYNC_CONFIG_DIR")
        .env_remove("CLSYNC_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clsync");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let out = child.wait_with_output().expect("wait clsync");
    let _ = tx.send(());
    CheckOutput {
        code: out.status.code(),
        stdout: strip_ansi(&String::from_utf8_lossy(&out.stdout)),
        stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// Restores a sysctl file's value on drop.
pub struct SysctlGuard {
    path: PathBuf,
    old: String,
}

impl SysctlGuard {
    /// Sets `path` to `value`; `None` (nothing changed) when it cannot be written.
    pub fn set(path: &str, value: &str) -> Option<SysctlGuard> {
        let old = fs::read_to_string(path).ok()?;
        fs::write(path, value).ok()?;
        Some(SysctlGuard {
            path: PathBuf::from(path),
            old: old.trim().to_string(),
        })
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, &self.old) {
            eprintln!(
                "FAILED to restore {} to {}: {e}",
                self.path.display(),
                self.old
            );
        }
    }
}

/// Number of lines in a counter file (0 if missing).
pub fn count_lines(p: &Path) -> usize {
    fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The name of the fan-out target of job `job` whose destination is `dst` (as the daemon
/// names it: the destination with bytes outside `[A-Za-z0-9._-]` as `_`).
pub fn target_name(job: &str, dst: &str) -> String {
    let label: String = dst
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{job}@{}", label.trim_matches('_'))
}
