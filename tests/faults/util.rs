//! Helpers shared by the fault cases below: a tmpfs mount that is always unmounted, the
//! control socket's JSON status, polling a predicate with a deadline, snapshots of trees
//! that must not change, a daemon run as another user.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// The unprivileged user the permission cases run as.
pub const NOBODY: u32 = 65534;

/// `clsync run --config-dir conf` (cwd = root, log in `root/daemon.log`) under `wrapper`, a
/// program that execs the arguments it is given last (setpriv, strace, ...); returns the
/// wrapper's process and the log's path.
pub fn spawn_wrapped(env: &Env, mut wrapper: Command) -> (Child, PathBuf) {
    let log_path = env.root.join("daemon.log");
    let log = fs::File::create(&log_path).unwrap();
    let child = wrapper
        .arg(env!("CARGO_BIN_EXE_clsync"))
        .args([OsStr::new("run"), OsStr::new("--config-dir")])
        .arg(&env.conf)
        .current_dir(&env.root)
        .env("NO_COLOR", "1")
        .env_remove("CLSYNC_CONFIG_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn the wrapped clsync");
    (child, log_path)
}

/// Debian's `python3 -c SCRIPT ARGS... SECS` as nobody, in the background (a python3 under
/// root's home, as pyenv installs it, is not one nobody can run). The caller stops it by PID.
pub fn nobody_python(script: &str, args: &[&Path], secs: f64) -> Child {
    Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .arg(secs.to_string())
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .expect("python3")
}

/// Runs `script` with `sh -c` as nobody in `cwd`; it must succeed.
pub fn as_nobody(cwd: &Path, script: &str) {
    use std::os::unix::process::CommandExt;
    let st = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .expect("run sh as nobody");
    assert!(st.success(), "as nobody: {script}: {st}");
}

/// A tmpfs mounted by the test; unmounted on drop whatever happened (lazily if busy).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (a `mount -o size=` value) on `path` (created); `None` when
    /// mounting is not possible here (not root, no tmpfs).
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("clsync-fault")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn remount(&self, size: &str) {
        let st = Command::new("mount")
            .arg("-o")
            .arg(format!("remount,size={size}"))
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount {} to {size}", self.path.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.path).status().is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!("FAILED to unmount the test tmpfs {}", self.path.display());
        }
    }
}

/// `[daemon]` settings with everything inside `conf/run/` (like the e2e supervisor tests).
pub const DAEMON_TOML: &str = "[daemon]\nsocket = \"run/ctl.sock\"\npid_file = \"run/clsync.pid\"\nstatus_file = \"run/status.json\"\n";

pub fn socket(env: &Env) -> PathBuf {
    env.conf.join("run/ctl.sock")
}

/// `clsync status --json --socket PATH` as user `uid` (`None`: as we are): exit code, stdout,
/// stderr. Killed after 30 s.
pub fn clsync_status(sock: &Path, uid: Option<u32>) -> CheckOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clsync"));
    cmd.args(["status", "--json", "--socket"])
        .arg(sock)
        .env("NO_COLOR", "1")
        .env_remove("CLSYNC_CONFIG_DIR")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        // std drops the supplementary groups when root sets a uid.
        cmd.uid(u).gid(u);
    }
    let child = cmd.spawn().expect("spawn clsync status");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let out = child.wait_with_output().expect("wait clsync status");
    let _ = tx.send(());
    let _ = killer.join();
    CheckOutput {
        code: out.status.code(),
        stdout: strip_ansi(&String::from_utf8_lossy(&out.stdout)),
        stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// The daemon's JSON status (via `clsync status --json`), panicking with the output when it
/// is not JSON.
pub fn status_json(sock: &Path) -> Value {
    let out = clsync_status(sock, None);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`clsync status --json` is not JSON ({e}):\n{}",
            out.describe()
        )
    })
}

/// The entry of job `name` in a status.
pub fn job_status<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["jobs"]
        .as_array()
        .and_then(|a| a.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no job {name} in {v:#}"))
}

/// Polls `pred` until it holds; panics with `what` and the daemon's log after `timeout`, or
/// as soon as the daemon exits. Returns how long it took.
pub fn wait_for(
    d: &mut Daemon,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if pred() {
            return start.elapsed();
        }
        d.assert_running();
        if start.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}\n{}", d.log_tail());
        }
        std::thread::sleep(POLL);
    }
}

/// Polls the daemon's log until `pred(log)` holds (see [`wait_for`]).
pub fn wait_log(
    d: &mut Daemon,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Duration {
    let path = d.log_path.clone();
    wait_for(d, what, timeout, || {
        pred(&strip_ansi(&String::from_utf8_lossy(
            &fs::read(&path).unwrap_or_default(),
        )))
    })
}

/// How many lines of `log` contain every one of `parts`.
pub fn count_in(log: &str, parts: &[&str]) -> usize {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// Lines of the daemon's log that contain every one of `parts`.
pub fn log_lines(d: &Daemon, parts: &[&str]) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}

/// Everything about one entry of a tree that a write through a stray path would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        mtime_ns: i128,
    },
    File {
        mode: u32,
        mtime_ns: i128,
        content: Vec<u8>,
    },
    Link {
        target: PathBuf,
    },
    Other {
        mode: u32,
    },
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// A snapshot of the tree under `root` (symlinks not followed), skipping the paths in
/// `skip` (and what is below them). Directory mtimes are included: an entry created and
/// removed again still shows.
pub fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if skip.iter().any(|s| p == *s) {
            continue;
        }
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let ft = m.file_type();
        let mode = m.permissions().mode();
        let node = if ft.is_symlink() {
            Node::Link {
                target: fs::read_link(&p).unwrap_or_default(),
            }
        } else if ft.is_dir() {
            for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
            Node::Dir {
                mode,
                mtime_ns: mtime_ns(&m),
            }
        } else if ft.is_file() {
            Node::File {
                mode,
                mtime_ns: mtime_ns(&m),
                content: fs::read(&p).unwrap_or_default(),
            }
        } else {
            Node::Other { mode }
        };
        out.insert(rel, node);
    }
    out
}

/// The differences between two snapshots, one line each (empty: equal).
pub fn snapshot_diff(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, n) in a {
        match b.get(p) {
            None => out.push(format!("removed: {p:?}")),
            Some(m) if m != n => out.push(format!("changed: {p:?}: {n:?} -> {m:?}")),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("created: {p:?}"));
    }
    out
}

/// `chown -R uid:uid path`.
pub fn chown_r(path: &Path, uid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {uid} {}", path.display());
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `clsync run --config-dir conf` as another user, through
/// `setpriv --reuid=U --regid=U --clear-groups` (which execs: the PID is the daemon's).
/// Stopped by PID on drop (SIGTERM, then SIGKILL).
pub struct UserDaemon {
    child: Child,
    status: Option<ExitStatus>,
    pub log_path: PathBuf,
}

impl UserDaemon {
    /// `None` when `setpriv` cannot run here.
    pub fn spawn(env: &Env, uid: u32) -> Option<UserDaemon> {
        let probe = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg("true")
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        let mut setpriv = Command::new("setpriv");
        setpriv
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .env("RUST_LOG", "info")
            .env_remove("XDG_RUNTIME_DIR");
        let (child, log_path) = spawn_wrapped(env, setpriv);
        Some(UserDaemon {
            child,
            status: None,
            log_path,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.log_path).unwrap_or_default(),
        ))
    }

    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "---- daemon log (last {} lines) ----\n{}\n---- end ----",
            lines.len() - start,
            lines[start..].join("\n")
        )
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Polls `pred` with a deadline; panics with the log on timeout or if the daemon exits.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if pred() {
                return start.elapsed();
            }
            if let Some(st) = self.exited() {
                panic!("{what}: the daemon exited ({st})\n{}", self.log_tail());
            }
            if start.elapsed() > timeout {
                panic!("{what}: not within {timeout:?}\n{}", self.log_tail());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `tree_diff(src, dst)` is empty; returns how long it took.
    pub fn assert_synced_within(&mut self, src: &Path, dst: &Path, timeout: Duration) -> Duration {
        let mut last = String::new();
        let start = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.wait_for("destination equals source", timeout, || {
                last = tree_diff(src, dst, &[]);
                last.is_empty()
            })
        }));
        match r {
            Ok(_) => start.elapsed(),
            Err(e) => {
                eprintln!("last difference:\n{}", truncate(&last, 4000));
                std::panic::resume_unwind(e)
            }
        }
    }

    /// SIGTERM and wait (20 s); the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(st) = self.exited() {
            return st;
        }
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.exited() {
                return st;
            }
            if Instant::now() > deadline {
                unsafe {
                    libc::kill(self.pid(), libc::SIGKILL);
                }
                panic!(
                    "the daemon did not exit within 20 s of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for UserDaemon {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exited().is_none() {
            if Instant::now() > deadline {
                unsafe {
                    libc::kill(self.pid(), libc::SIGKILL);
                }
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}
