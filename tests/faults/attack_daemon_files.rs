//! Attacks on the daemon's own files: the control socket, its directory, the status file and
//! the pid file. The attacker is uid 65534 (`nobody`) with write access to a directory on the
//! way to one of them; the daemon is root, or the unprivileged user `daemon` (uid 1) for the
//! `/tmp/clsync-<uid>` fallback.
//!
//! The races (a file swapped for a symlink between the daemon creating it and changing its
//! mode) are made deterministic with `strace --inject=chmod,fchmodat:delay_enter=…`: every
//! path-based chmod of the daemon waits, so the attacker always wins when there is one to
//! win. Those cases are skipped when `strace` is missing. Every case needs root (to switch
//! users).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{children_of, serial};

/// The unprivileged daemon user of the `/tmp/clsync-<uid>` case (Debian's `daemon`).
const DAEMON_UID: u32 = 1;
/// How long strace holds every path-based chmod of the daemon.
const CHMOD_DELAY: Duration = Duration::from_millis(1500);
/// Bound of every wait below.
const DEADLINE: Duration = Duration::from_secs(30);

fn ok(case: &str, notes: &str) {
    eprintln!("FAULT {case}: ok, {notes}");
}

fn skip(case: &str, why: &str) -> bool {
    eprintln!("FAULT {case}: skipped ({why})");
    true
}

/// Skips (true) unless root.
fn needs_root(case: &str) -> bool {
    !is_root() && skip(case, "needs root to run the attacker as uid 65534")
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// A root-owned file with `mode` and `content`: what the attacker aims at.
fn victim(p: &Path, mode: u32, content: &str) -> PathBuf {
    write(p, content);
    chmod(p, mode);
    p.to_path_buf()
}

/// Asserts that `p` still has `mode` and `content` (the attack did not reach it).
fn assert_untouched(p: &Path, mode: u32, content: &str, log: &str) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| {
        panic!(
            "{} is gone ({e}): the daemon removed it\n{log}",
            p.display()
        )
    });
    assert_eq!(
        m.mode() & 0o7777,
        mode,
        "{}: its mode was changed through the planted symlink\n{log}",
        p.display()
    );
    assert_eq!(m.uid(), 0, "{}: owner changed\n{log}", p.display());
    assert_eq!(fs::read_to_string(p).unwrap(), content, "{}", p.display());
}

/// A directory owned by `nobody` (mode `mode`) in the test's world.
fn nobody_dir(env: &Env, rel: &str, mode: u32) -> PathBuf {
    let d = env.dir(rel);
    chown(&d, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&d, mode);
    d
}

/// `sh -c script` as uid/gid 65534 in `cwd`; killed when dropped.
struct Attacker {
    child: Child,
}

impl Attacker {
    fn start(cwd: &Path, script: &str) -> Attacker {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(cwd)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the attacker");
        Attacker { child }
    }

    /// Waits (bounded) for the script to end.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The attacker's loop: polls `cond` (a shell test) every 10 ms, for at most 20 s, then runs `act`.
fn when(cond: &str, act: &str) -> String {
    format!(
        "i=0; while ! {{ {cond}; }}; do i=$((i+1)); [ $i -gt 2000 ] && exit 1; sleep 0.01; done; {act}"
    )
}

/// `clsync run --config-dir conf` as root under strace, every path-based chmod delayed by
/// [`CHMOD_DELAY`]. Stopped (the daemon by its PID, then strace) when dropped.
struct Traced {
    strace: Child,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Traced {
    /// `None` when strace cannot run here.
    fn spawn(env: &Env) -> Option<Traced> {
        let probe = Command::new("strace")
            .args(["-qq", "-o", "/dev/null", "-e", "trace=chmod", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        let mut wrapper = Command::new("strace");
        wrapper
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=chmod,fchmodat"])
            .arg("-e")
            .arg(format!(
                "inject=chmod,fchmodat:delay_enter={}",
                CHMOD_DELAY.as_micros()
            ))
            .arg("--")
            .env_remove("CLSYNC_LOG");
        let (strace, log_path) = spawn_wrapped(env, wrapper);
        Some(Traced {
            strace,
            log_path,
            status: None,
        })
    }

    fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.log_path).unwrap_or_default(),
        ))
    }

    /// strace's exit status is the daemon's.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.strace.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits until the daemon has exited or logged a line with `text`.
    fn wait_log_or_exit(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.exited().is_none() && !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} within {DEADLINE:?}\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM to the daemon, then waits (bounded) for strace; the exit status.
    fn stop(&mut self) -> ExitStatus {
        if let Some(st) = self.exited() {
            return st;
        }
        for pid in children_of(self.strace.id() as i32) {
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.exited() {
                return st;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("the daemon did not stop\n{}", self.log());
            }
            std::thread::sleep(POLL);
        }
    }

    fn kill(&mut self) {
        for pid in children_of(self.strace.id() as i32) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// The daemon refused to start (exit 3) and said why, naming `path`.
fn assert_refused(st: ExitStatus, log: &str, path: &Path) {
    assert_eq!(
        st.code(),
        Some(3),
        "the daemon should refuse to start ({st})\n{log}"
    );
    assert!(
        log.contains(&path.display().to_string()),
        "the refusal names {}\n{log}",
        path.display()
    );
}

/// The daemon creates the socket's directory `pub/run` (pub is nobody's); while its chmod of
/// that directory waits, nobody swaps the directory for a symlink to a root-owned 0600 file.
/// The daemon must not make that file 0755 (it refuses the directory: it is not its own).
#[test]
fn socket_directory_swapped_for_a_symlink_is_not_chmodded() {
    let case = "attack-socket-dir-symlink-chmod";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o755);
    let target = victim(&env.p("victim"), 0o600, "root's secret\n");
    env.write_main_config(&format!(
        "[daemon]\nsocket = {}\n",
        toml_path(&public.join("run/ctl.sock"))
    ));
    let mut attacker = Attacker::start(
        &public,
        &when(
            "[ -d run ] && [ ! -L run ]",
            &format!("rmdir run && ln -s {} run", target.display()),
        ),
    );
    let Some(mut d) = Traced::spawn(&env) else {
        skip(case, "strace cannot run here");
        return;
    };
    d.wait_log_or_exit("started ");
    let _ = attacker.wait(CHMOD_DELAY * 2);
    assert_untouched(&target, 0o600, "root's secret\n", &d.log());
    let st = d.stop();
    assert_refused(st, &d.log(), &public);
    ok(
        case,
        "the target kept mode 0600; the daemon refused nobody's directory",
    );
}

/// The socket's directory is nobody's; right after `bind`, while the daemon's chmod of the
/// socket waits, nobody replaces the socket with a symlink to a root-owned 0644 file. The
/// file must keep its mode.
#[test]
fn socket_swapped_for_a_symlink_after_bind_is_not_chmodded() {
    let case = "attack-socket-symlink-chmod";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o777);
    let target = victim(&env.p("victim"), 0o644, "root's file\n");
    env.write_main_config(&format!(
        "[daemon]\nsocket = {}\n",
        toml_path(&public.join("ctl.sock"))
    ));
    let mut attacker = Attacker::start(
        &public,
        &when(
            "[ -S ctl.sock ]",
            &format!("ln -s {} .l && mv -fT .l ctl.sock", target.display()),
        ),
    );
    let Some(mut d) = Traced::spawn(&env) else {
        skip(case, "strace cannot run here");
        return;
    };
    d.wait_log_or_exit("started ");
    let _ = attacker.wait(CHMOD_DELAY * 2);
    assert_untouched(&target, 0o644, "root's file\n", &d.log());
    let st = d.stop();
    assert_refused(st, &d.log(), &public);
    ok(
        case,
        "the target kept mode 0644; the daemon refused nobody's directory",
    );
}

/// nobody plants `pub/run` as a symlink to a root-only directory that holds a file with the
/// socket's name. The daemon must not remove (or replace) that file: it refuses the path.
#[test]
fn socket_directory_symlink_does_not_make_the_daemon_delete() {
    let case = "attack-socket-dir-symlink-unlink";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o755);
    let private = env.dir("root-only");
    chmod(&private, 0o700);
    let target = victim(&private.join("ctl.sock"), 0o600, "not a socket\n");
    let mut attacker = Attacker::start(&public, &format!("ln -s {} run", private.display()));
    assert!(
        attacker.wait(DEADLINE).is_some_and(|s| s.success()),
        "nobody plants the symlink"
    );
    env.write_main_config(&format!(
        "[daemon]\nsocket = {}\n",
        toml_path(&public.join("run/ctl.sock"))
    ));
    let mut d = env.spawn();
    d.release_start_guard();
    let deadline = Instant::now() + DEADLINE;
    while d.try_status().is_none() && !d.log().contains("started ") {
        assert!(Instant::now() < deadline, "{}", d.log_tail());
        std::thread::sleep(POLL);
    }
    let st = d.stop();
    let log = d.log();
    assert_untouched(&target, 0o600, "not a socket\n", &log);
    assert_refused(st, &log, &public);
    ok(
        case,
        "root's file is still there; the daemon refused the path",
    );
}

/// Removes `/tmp/clsync-<uid>` when created and when dropped (a test-only uid).
struct TmpSocketDir(PathBuf);

impl TmpSocketDir {
    fn new(uid: u32) -> TmpSocketDir {
        let p = PathBuf::from(format!("/tmp/clsync-{uid}"));
        let g = TmpSocketDir(p);
        g.clear();
        g
    }

    /// The directory of its own that nobody points `/tmp/clsync-<uid>` at.
    fn decoy(&self) -> PathBuf {
        PathBuf::from(format!("{}-nobody", self.0.display()))
    }

    fn clear(&self) {
        for p in [self.0.clone(), self.decoy()] {
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
                Ok(_) => fs::remove_file(&p).unwrap(),
                Err(_) => {}
            }
        }
    }
}

impl Drop for TmpSocketDir {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `clsync ARGS` as `uid` (gid the same), without `XDG_RUNTIME_DIR`; killed after 30 s.
fn clsync_as(uid: u32, args: &[&OsStr]) -> CheckOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clsync"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLSYNC_CONFIG_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .uid(uid)
        .gid(uid);
    let child = cmd.spawn().expect("spawn clsync");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if rx.recv_timeout(DEADLINE).is_err() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let out = child.wait_with_output().expect("wait clsync");
    let _ = tx.send(());
    let _ = killer.join();
    CheckOutput {
        code: out.status.code(),
        stdout: strip_ansi(&String::from_utf8_lossy(&out.stdout)),
        stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// A configuration directory for a daemon run as `uid` (no job, default socket).
fn env_for(uid: u32) -> Env {
    let env = Env::new();
    chmod(&env.root, 0o755);
    chown_r(&env.conf, uid);
    env
}

/// Waits until the user daemon has exited or started (then stops it); its exit status.
fn settle(d: &mut UserDaemon) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    while d.exited().is_none() && !d.log().contains("started ") {
        assert!(Instant::now() < deadline, "{}", d.log_tail());
        std::thread::sleep(POLL);
    }
    d.stop()
}

/// A daemon run by an ordinary user (uid 1) without `XDG_RUNTIME_DIR` puts its socket in
/// `/tmp/clsync-1`. When nobody made that directory first (mode 0777), or made it a symlink
/// to a directory of its own, the daemon refuses it and the client does not talk through it;
/// when it is missing the daemon makes it 0700, and an old 0755 one of its own is tightened.
#[test]
fn tmp_socket_directory_taken_by_another_user() {
    let case = "attack-tmp-socket-dir-preempted";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    if nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(DAEMON_UID))
        .ok()
        .flatten()
        .is_none()
    {
        skip(case, "no user with uid 1 (`daemon`)");
        return;
    }
    let dir = TmpSocketDir::new(DAEMON_UID);
    let env = env_for(DAEMON_UID);
    let conf = env.conf.as_os_str();
    let status_args = [OsStr::new("status"), OsStr::new("--config-dir"), conf];

    // 1. nobody made /tmp/clsync-1, mode 0777.
    let mut a = Attacker::start(
        Path::new("/tmp"),
        &format!("mkdir {0} && chmod 0777 {0}", dir.0.display()),
    );
    assert!(a.wait(DEADLINE).is_some_and(|s| s.success()));
    let Some(mut d) = UserDaemon::spawn(&env, DAEMON_UID) else {
        skip(case, "setpriv cannot switch to uid 1 here");
        return;
    };
    let st = settle(&mut d);
    let log = d.log();
    assert_refused(st, &log, &dir.0);
    assert!(
        fs::read_dir(&dir.0).unwrap().next().is_none(),
        "the daemon put something in nobody's directory\n{log}"
    );
    // nobody puts a socket of its own there: the client refuses to talk to it.
    let marks = nobody_dir(&env, "marks", 0o755);
    let fake = UnixListenerAs::nobody(&dir.0.join("clsync.sock"), &marks);
    let out = clsync_as(
        DAEMON_UID,
        &[
            OsStr::new("status"),
            OsStr::new("--socket"),
            fake.path.as_os_str(),
        ],
    );
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains(&dir.0.display().to_string()) && !fake.answered(),
        "the client talked to nobody's socket: {}",
        out.describe()
    );
    drop(fake);
    dir.clear();

    // 2. nobody made /tmp/clsync-1 a symlink to a 0700 directory of its own.
    let mut a = Attacker::start(
        Path::new("/tmp"),
        &format!(
            "mkdir -m 0700 {1} && ln -s {1} {0}",
            dir.0.display(),
            dir.decoy().display()
        ),
    );
    assert!(a.wait(DEADLINE).is_some_and(|s| s.success()));
    let mut d = UserDaemon::spawn(&env, DAEMON_UID).unwrap();
    let st = settle(&mut d);
    let log = d.log();
    assert_refused(st, &log, &dir.0);
    assert!(
        fs::read_dir(dir.decoy()).unwrap().next().is_none(),
        "the daemon put something in nobody's directory\n{log}"
    );
    dir.clear();

    // 3. Missing: the daemon makes it, 0700, and answers its user.
    let mut d = UserDaemon::spawn(&env, DAEMON_UID).unwrap();
    d.wait_for("the socket directory", DEADLINE, || {
        fs::read_dir(&dir.0).is_ok_and(|mut r| r.next().is_some())
    });
    let m = fs::symlink_metadata(&dir.0).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), m.mode() & 0o7777), (DAEMON_UID, 0o700));
    let out = clsync_as(DAEMON_UID, &status_args);
    assert_eq!(out.code, Some(0), "{}\n{}", out.describe(), d.log_tail());
    assert!(d.stop().success(), "{}", d.log_tail());
    dir.clear();

    // 4. An old 0755 directory of its own is tightened to 0700.
    fs::create_dir(&dir.0).unwrap();
    chown(&dir.0, Some(DAEMON_UID), Some(DAEMON_UID)).unwrap();
    chmod(&dir.0, 0o755);
    let mut d = UserDaemon::spawn(&env, DAEMON_UID).unwrap();
    d.wait_for("the socket", DEADLINE, || {
        fs::read_dir(&dir.0).is_ok_and(|mut r| r.next().is_some())
    });
    assert_eq!(mode_of(&dir.0), 0o700);
    assert!(d.stop().success(), "{}", d.log_tail());
    ok(
        case,
        "nobody's /tmp/clsync-1 (0777, or a symlink) refused by daemon and client; made 0700 when missing",
    );
}

/// A Unix socket bound and listened on by uid 65534 (a forked child that answers every
/// connection with a fake status and records that it did). Killed when dropped.
struct UnixListenerAs {
    path: PathBuf,
    mark: PathBuf,
    child: Child,
}

impl UnixListenerAs {
    /// Listens on `path`; a file in `marks` (writable by nobody) records a connection.
    fn nobody(path: &Path, marks: &Path) -> UnixListenerAs {
        let mark = marks.join("answered");
        let script = format!(
            "import socket, os\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.bind({p:?})\n\
             os.chmod({p:?}, 0o666)\n\
             s.listen(8)\n\
             while True:\n\
             \x20   c, _ = s.accept()\n\
             \x20   open({m:?}, 'w').close()\n\
             \x20   try:\n\
             \x20       c.sendall(b'{{\"ok\": true, \"jobs\": [], \"version\": \"fake\"}}\\n')\n\
             \x20   except OSError:\n\
             \x20       pass\n\
             \x20   c.close()\n",
            p = path.display().to_string(),
            m = mark.display().to_string(),
        );
        let child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for the fake daemon");
        let deadline = Instant::now() + DEADLINE;
        while !fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            assert!(Instant::now() < deadline, "the fake daemon did not bind");
            std::thread::sleep(Duration::from_millis(10));
        }
        UnixListenerAs {
            path: path.to_path_buf(),
            mark,
            child,
        }
    }

    fn answered(&self) -> bool {
        self.mark.exists()
    }
}

impl Drop for UnixListenerAs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clsync status` and `clsync reload` refuse a socket whose directory another user owns,
/// and a socket answered by another user even in a directory that looks right (root's).
#[test]
fn client_refuses_a_socket_of_another_user() {
    let case = "attack-client-foreign-socket";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o755);
    let marks = nobody_dir(&env, "marks", 0o755);
    let fake = UnixListenerAs::nobody(&public.join("ctl.sock"), &marks);
    for cmd in ["status", "reload"] {
        let out = run_clsync(
            &env.root,
            &[
                OsStr::new(cmd),
                OsStr::new("--socket"),
                fake.path.as_os_str(),
            ],
        );
        assert_eq!(out.code, Some(3), "{cmd}: {}", out.describe());
        assert!(
            out.stderr.contains(&public.display().to_string()),
            "{cmd}: the refusal names the directory: {}",
            out.describe()
        );
    }
    assert!(!fake.answered(), "the client talked to nobody's socket");

    // The directory is root's now (0755), but the one listening is still nobody.
    chown(&public, Some(0), Some(0)).unwrap();
    let out = run_clsync(
        &env.root,
        &[
            OsStr::new("status"),
            OsStr::new("--socket"),
            fake.path.as_os_str(),
        ],
    );
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains("65534"),
        "the refusal names the peer's uid: {}",
        out.describe()
    );
    assert!(
        out.stdout.trim().is_empty(),
        "nobody's answer was shown: {}",
        out.describe()
    );
    ok(
        case,
        "status and reload refused nobody's directory, and nobody's socket in root's",
    );
}

/// The status file is 0600 by default and `status_file_mode` when set; the pid file 0644.
/// A mode that grants more than 0644 is a configuration error.
#[test]
fn status_file_mode_default_and_configured() {
    let case = "attack-status-file-mode";
    let _s = serial();
    for (setting, want) in [("", 0o600), ("status_file_mode = \"0640\"\n", 0o640)] {
        let env = Env::new();
        env.write_main_config(&format!("{DAEMON_TOML}{setting}"));
        let status = env.conf.join("run/status.json");
        let pid = env.conf.join("run/clsync.pid");
        let mut d = env.spawn();
        d.release_start_guard();
        wait_for(&mut d, "the status file", DEADLINE, || {
            status.exists() && pid.exists()
        });
        assert_eq!(mode_of(&status), want, "status file ({setting:?})");
        assert_eq!(mode_of(&pid), 0o644, "pid file");
        assert!(d.stop().success(), "{}", d.log_tail());
    }
    for bad in ["0664", "0646", "0755", "1600", "0o640", "640x", ""] {
        let env = Env::new();
        env.write_main_config(&format!("{DAEMON_TOML}status_file_mode = \"{bad}\"\n"));
        let out = run_check(
            &env.root,
            &[OsStr::new("--config-dir"), env.conf.as_os_str()],
        );
        assert_eq!(out.code, Some(1), "{bad:?}: {}", out.describe());
        assert!(
            out.errors_in("clsync.toml")
                .iter()
                .any(|e| e.line == 5 && e.message.contains("status_file_mode")),
            "{bad:?}: {}",
            out.describe()
        );
    }
    ok(
        case,
        "status file 0600 by default, 0640 when set; pid file 0644",
    );
}

/// nobody plants symlinks at the status file's and the pid file's paths (in a directory it
/// may write): the daemon replaces them with its files; their targets are untouched.
#[test]
fn symlinks_at_the_status_and_pid_paths_are_replaced() {
    let case = "attack-status-pid-symlink";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o777);
    let secret = victim(&env.p("secret"), 0o600, "root's secret\n");
    let other = victim(&env.p("other"), 0o644, "root's file\n");
    let mut a = Attacker::start(
        &public,
        &format!(
            "ln -s {} status.json && ln -s {} clsync.pid",
            secret.display(),
            other.display()
        ),
    );
    assert!(a.wait(DEADLINE).is_some_and(|s| s.success()));
    env.write_main_config(&format!(
        "[daemon]\nsocket = \"run/ctl.sock\"\nstatus_file = {}\npid_file = {}\n",
        toml_path(&public.join("status.json")),
        toml_path(&public.join("clsync.pid")),
    ));
    let mut d = env.spawn();
    d.release_start_guard();
    for f in ["status.json", "clsync.pid"] {
        let p = public.join(f);
        wait_for(&mut d, f, DEADLINE, || {
            fs::symlink_metadata(&p).is_ok_and(|m| m.is_file())
        });
    }
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(public.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["pid"], d.pid());
    assert!(d.stop().success(), "{}", d.log_tail());
    let log = d.log();
    assert_untouched(&secret, 0o600, "root's secret\n", &log);
    assert_untouched(&other, 0o644, "root's file\n", &log);
    ok(case, "both symlinks replaced, their targets unchanged");
}

/// The status and pid files go to a directory nobody may write. While the daemon's chmod of
/// its temporary file waits, nobody swaps the temporary file for a symlink to a root-owned
/// 0600 file: that file must stay 0600 (the mode is set on the temporary file's descriptor).
#[test]
fn status_temp_file_swapped_for_a_symlink_is_not_chmodded() {
    let case = "attack-status-temp-symlink-chmod";
    let _s = serial();
    if needs_root(case) {
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let public = nobody_dir(&env, "pub", 0o777);
    let secret = victim(&env.p("secret"), 0o600, "root's secret\n");
    env.write_main_config(&format!(
        "[daemon]\nsocket = \"run/ctl.sock\"\nstatus_file = {}\npid_file = {}\n",
        toml_path(&public.join("status.json")),
        toml_path(&public.join("clsync.pid")),
    ));
    // Every temporary file (`.clsync.*`) that appears is replaced by a symlink to the secret.
    let attacker = Attacker::start(
        &public,
        &format!(
            "i=0; while [ $i -lt 3000 ]; do for f in .clsync.*; do \
             if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then ln -sf {} .l && mv -fT .l \"$f\"; fi; \
             done; i=$((i+1)); sleep 0.005; done",
            secret.display()
        ),
    );
    let Some(mut d) = Traced::spawn(&env) else {
        skip(case, "strace cannot run here");
        return;
    };
    // Both written (each rename comes after its chmod).
    let deadline = Instant::now() + DEADLINE;
    while ["status.json", "clsync.pid"]
        .iter()
        .any(|f| fs::symlink_metadata(public.join(f)).is_err())
    {
        assert!(d.exited().is_none(), "the daemon exited\n{}", d.log());
        assert!(Instant::now() < deadline, "no status file\n{}", d.log());
        std::thread::sleep(POLL);
    }
    drop(attacker);
    let st = d.stop();
    let log = d.log();
    assert_untouched(&secret, 0o600, "root's secret\n", &log);
    assert!(st.success(), "{st}\n{log}");
    ok(case, "the secret kept mode 0600");
}
