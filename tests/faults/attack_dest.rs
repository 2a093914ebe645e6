//! Attacks at the destination by the owner of a destination directory. `nobody` owns
//! `SRC/u`, hence (`-a` keeps owners) `DST/u` and everything the daemon copies below it, so
//! it may rename, replace, exchange (`renameat2(RENAME_EXCHANGE)`) and hard-link entries
//! there at any moment while the daemon, as root, writes into them.
//!
//! - A directory swapped for a symlink mid-batch: `DST/u/sub` becomes a symlink to a
//!   root-only directory as soon as the first new entry (the mirror's first temporary file)
//!   appears in it, while a batch of 3,000 new files is being written there.
//! - Hard links (with `fs.protected_hardlinks = 0`): `DST/u/f` replaced by a hard link to a
//!   root file, then the source file's content, mode or mtime changes; and the same raced
//!   against mode changes.
//! - `RENAME_EXCHANGE` of `DST/u/f` or `DST/u/sub` with a symlink to a root file or
//!   directory while the mirror copies and installs a 32 MiB file.
//! - Rename replay into a destination directory swapped for a symlink after the first
//!   rename of a batch went into it (`attack_replay.rs` covers a symlink that is there
//!   before the batch, which one check per run catches).
//!
//! Each case is bounded in time and asserts on the victims themselves (root's files and
//! directories outside both trees: content, mode, owner, times, inode, entries); then the
//! attacker stops and undoes what it did, and the job must converge.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use filetime::FileTime;

use crate::harness::*;
use crate::util::*;
use crate::{report, serial};

/// An attacker: `/usr/bin/python3 -c SCRIPT ARGS...` as nobody (a python3 under root's
/// home, as pyenv installs it, is not one nobody can run). It talks in lines on stdout
/// (`ready`, ...); a line on its stdin, or stdin closed, is its cue to go on or stop.
/// Killed (by PID) and reaped on drop, whatever happened.
struct Attacker {
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Attacker {
    fn spawn(what: &'static str, script: &str, args: &[&OsStr]) -> Attacker {
        let mut child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run /usr/bin/python3 as nobody");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Attacker {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Waits for a line starting with `prefix` (others are skipped) and returns it.
    fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(POLL) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    assert!(
                        Instant::now() < deadline,
                        "the {} did not say `{prefix}` within {timeout:?}",
                        self.what
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait().unwrap();
                    panic!(
                        "the {} exited ({st}) before saying `{prefix}` (3: it never saw what it waits for)",
                        self.what
                    );
                }
            }
        }
    }

    fn tell(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Closes its stdin (its cue to stop) and waits for it (bounded); it must succeed.
    /// Returns its last line.
    fn stop(&mut self, timeout: Duration) -> String {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match self.lines.recv_timeout(POLL) {
                Ok(l) => last = l,
                Err(RecvTimeoutError::Timeout) => {
                    assert!(Instant::now() < deadline, "the {} did not stop", self.what)
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let st = self.wait(deadline);
        assert!(st.success(), "the {} failed: {st}", self.what);
        last
    }

    fn wait(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the {} did not exit", self.what);
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Everything about a victim file that a write, chmod, chown, utimes or replacement
/// through a stray path would change (not its ctime: a hard link to it changes that).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ident {
    ino: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, i64),
    atime: (i64, i64),
    len: u64,
    content: Vec<u8>,
}

/// `None` when `p` is gone. Read with `O_NOATIME`: looking must not change the atime.
fn ident(p: &Path) -> Option<Ident> {
    let m = fs::symlink_metadata(p).ok()?;
    let content = if m.is_file() {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
            .open(p)
            .ok()?;
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v).ok()?;
        v
    } else {
        Vec::new()
    };
    Some(Ident {
        ino: m.ino(),
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
        mtime: (m.mtime(), m.mtime_nsec()),
        atime: (m.atime(), m.atime_nsec()),
        len: m.len(),
        content,
    })
}

/// One line about how a victim file changed (content shown only when short).
fn ident_change(p: &Path, was: &Ident, now: Option<&Ident>) -> String {
    let Some(now) = now else {
        return format!("{}: removed", p.display());
    };
    let mut what = Vec::new();
    if now.ino != was.ino {
        what.push(format!("replaced (inode {} -> {})", was.ino, now.ino));
    }
    if (now.uid, now.gid) != (was.uid, was.gid) {
        what.push(format!(
            "owner {}:{} -> {}:{}",
            was.uid, was.gid, now.uid, now.gid
        ));
    }
    if now.mode != was.mode {
        what.push(format!("mode {:o} -> {:o}", was.mode, now.mode));
    }
    if now.mtime != was.mtime {
        what.push(format!("mtime {:?} -> {:?}", was.mtime, now.mtime));
    }
    if now.atime != was.atime {
        what.push(format!("atime {:?} -> {:?}", was.atime, now.atime));
    }
    if now.content != was.content {
        what.push(if now.len <= 64 {
            format!(
                "content -> {:?}",
                String::from_utf8_lossy(&now.content).as_ref()
            )
        } else {
            format!("content -> {} other bytes", now.len)
        });
    }
    format!("{}: {}", p.display(), what.join(", "))
}

/// Root's times for a victim: an old mtime, and an atime in the future (so that no read
/// with `relatime` moves it: only an explicit `utimes` does).
fn victim_times(p: &Path) {
    let now = FileTime::now().unix_seconds();
    filetime::set_file_times(
        p,
        FileTime::from_unix_time(now + 365 * 86400, 0),
        FileTime::from_unix_time(1_000_000_000, 0),
    )
    .unwrap();
}

/// A root file (0600) outside both trees.
fn root_file(p: &Path, content: &str) -> Ident {
    fs::write(p, content).unwrap();
    chmod(p, 0o600);
    victim_times(p);
    ident(p).unwrap()
}

/// A root-only directory (root, 0700) outside both trees, holding root files (0600).
struct Vault {
    dir: PathBuf,
    before: BTreeMap<PathBuf, Node>,
    files: Vec<(PathBuf, Ident)>,
}

impl Vault {
    fn new(env: &Env, name: &str, files: &[&str]) -> Vault {
        let dir = env.dir(name);
        let files = files
            .iter()
            .map(|f| {
                let p = dir.join(f);
                let id = root_file(&p, &format!("root's own {f}\n"));
                (p, id)
            })
            .collect();
        chmod(&dir, 0o700);
        Vault {
            before: snapshot(&dir, &[]),
            dir,
            files,
        }
    }

    /// Names in the vault that were not there at the start.
    fn intruders(&self) -> usize {
        fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|e| !self.files.iter().any(|(p, _)| *p == e.path()))
            .count()
    }

    /// Every difference from the start, one line each (empty: untouched).
    fn damage(&self) -> Vec<String> {
        let now = snapshot(&self.dir, &[]);
        let mut out = Vec::new();
        for (p, n) in &self.before {
            match now.get(p) {
                None => out.push(format!("removed: {p:?}")),
                Some(m) if m != n => out.push(format!("changed: {p:?}")),
                _ => {}
            }
        }
        for p in now.keys().filter(|p| !self.before.contains_key(*p)) {
            out.push(format!("created: {p:?}"));
        }
        for (p, was) in &self.files {
            let now = ident(p);
            if now.as_ref() != Some(was) {
                out.push(ident_change(p, was, now.as_ref()));
            }
        }
        out
    }

    /// The damage in a few lines: how many names landed here, what became of root's files.
    fn summary(&self, damage: &[String]) -> String {
        let mut out = format!(
            "{} name(s) landed in the root-only directory {}",
            self.intruders(),
            self.dir.display()
        );
        for (p, was) in &self.files {
            let now = ident(p);
            if now.as_ref() != Some(was) {
                out.push_str(&format!("; {}", ident_change(p, was, now.as_ref())));
            }
        }
        let shown: Vec<&str> = damage.iter().take(10).map(String::as_str).collect();
        out.push_str(&format!(
            "\nfirst of {} differences:\n{}",
            damage.len(),
            shown.join("\n")
        ));
        out
    }
}

/// A job `j` from `src` to `dst` where nobody owns `src/u`, with a control socket (for
/// the count of finished runs) and short retries; `None` unless root.
struct World {
    env: Env,
    src: PathBuf,
    dst: PathBuf,
    /// `src/u`, nobody's.
    u: PathBuf,
    sock: PathBuf,
}

fn world(mode: Mode, delay: &str) -> Option<World> {
    if !is_root() {
        eprintln!("skipped: needs root (the attacker is nobody)");
        return None;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let u = env.dir("src/u");
    chown_r(&u, NOBODY);
    env.write_main_config(DAEMON_TOML);
    let job = job_toml(
        &src,
        &dst,
        mode,
        "retry_delay = \"200ms\"\nretry_max_delay = \"1s\"\n",
    )
    .replace("delay = \"100ms\"", &format!("delay = \"{delay}\""));
    env.write_job("j", &job);
    let sock = socket(&env);
    Some(World {
        env,
        src,
        dst,
        u,
        sock,
    })
}

/// Runs of job `j` finished so far, successful or not.
fn runs(sock: &Path) -> u64 {
    let v = status_json(sock);
    let j = job_status(&v, "j");
    j["syncs"].as_u64().unwrap_or(0) + j["failures"].as_u64().unwrap_or(0)
}

/// Waits until a run finished after the `before`-th; returns the new count.
fn wait_run(d: &mut Daemon, sock: &Path, before: u64, timeout: Duration) -> u64 {
    let mut n = before;
    wait_for(d, "a run of the job to finish", timeout, || {
        n = runs(sock);
        n > before
    });
    n
}

/// Runs `/usr/bin/python3 -c CODE` as nobody in `cwd`; it must succeed. (Creating or
/// renaming thousands of files: one process, not one per file.)
fn nobody_py(cwd: &Path, code: &str) {
    let st = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(code)
        .current_dir(cwd)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .expect("run /usr/bin/python3 as nobody");
    assert!(st.success(), "as nobody: {code}: {st}");
}

/// The attacker, in the source, renames `dir` (below `src/u`) away and back: the job
/// replays that at the destination and syncs the directory anew, as it would after any
/// rename. That is how a job recovers from damage at the destination without waiting for
/// a verification.
fn resync_dir(u: &Path, dir: &str) {
    as_nobody(u, &format!("mv {dir} {dir}.x && mv {dir}.x {dir}"));
}

/// The verdict of a case: the victims must be untouched (`damage` empty) and, once the
/// attacker stopped, the job must converge (`converge`, run either way, so that a failure
/// says both). Reports the case on success.
fn verdict(
    case: &str,
    mode: Mode,
    damage: &[String],
    summary: impl FnOnce() -> String,
    converge: impl FnOnce() -> Duration,
) {
    let conv = std::panic::catch_unwind(std::panic::AssertUnwindSafe(converge));
    if !damage.is_empty() {
        let s = summary();
        eprintln!("ATTACK {case} [{}]: victim damaged: {s}", mode.as_str());
        panic!(
            "[{}] {case}: root's files outside the destination changed: {s}\n(the job {} once the attacker stopped)",
            mode.as_str(),
            if conv.is_ok() {
                "converged"
            } else {
                "did NOT converge either"
            }
        );
    }
    match conv {
        Ok(took) => report(case, Some(mode), took),
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// The end of a destination case: the [`verdict`] on `damage`, convergence once the
/// attacker's directory `dir` is synced anew (after `tidy`), no damage later, a clean stop.
fn conclude(
    case: &str,
    mode: Mode,
    damage: &[String],
    (vault, w, d): (&Vault, &World, &mut Daemon),
    dir: &str,
    tidy: impl FnOnce(),
) {
    verdict(
        case,
        mode,
        damage,
        || vault.summary(damage),
        || {
            tidy();
            resync_dir(&w.u, dir);
            d.assert_synced_within(&w.src, &w.dst, &[], SYNC_DEADLINE)
        },
    );
    let late = vault.damage();
    assert!(late.is_empty(), "later: {}", vault.summary(&late));
    assert!(d.stop().success());
}

/// Watches `DIR` for its first new entry (created or moved in), then renames `DIR` to
/// `DIR.moved` and puts a symlink `DIR -> TARGET` in its place; holds that until a line
/// (or EOF) on stdin, then undoes it (the real directory back, unless the daemon made a
/// new one there meanwhile) and says `undone`. Exit 3 when nothing appeared in time.
const SWAP_ON_FIRST_ENTRY: &str = r#"
import ctypes, os, select, shutil, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
watch, target, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
moved = watch + ".moved"
fd = libc.inotify_init1(os.O_NONBLOCK)
# IN_CREATE | IN_MOVED_TO
if fd < 0 or libc.inotify_add_watch(fd, watch.encode(), 0x100 | 0x80) < 0:
    sys.exit(4)
print("ready", flush=True)
end = time.time() + secs
first = None
while first is None:
    left = end - time.time()
    if left <= 0:
        sys.exit(3)
    if not select.select([fd], [], [], left)[0]:
        continue
    buf = os.read(fd, 65536)
    n = struct.unpack_from("iIII", buf, 0)[3]
    first = buf[16:16 + n].rstrip(b"\0").decode(errors="replace")
os.rename(watch, moved)
os.symlink(target, watch)
print("swapped after " + first, flush=True)
select.select([sys.stdin], [], [], secs)
if os.path.islink(watch):
    os.unlink(watch)
if os.path.lexists(watch):
    shutil.rmtree(moved)
else:
    os.rename(moved, watch)
print("undone", flush=True)
"#;

/// The name of root's file in the root-only directory: one of the batch, early (written
/// after the swap even if the batch is split), so that a path-based install replaces it.
const ROOTS_NAME: &str = "f1050";

/// Finding 2: 3,000 new files in `SRC/u/sub` in one batch; at the first new entry in
/// `DST/u/sub` (the mirror's first temporary file, rsync's too) the attacker swaps
/// `DST/u/sub` for a symlink to a root-only directory that holds a root file named like
/// one of the files of the batch. Nothing may land there, root's file must stay as it is.
fn dir_swapped_mid_batch(mode: Mode) {
    let _s = serial();
    // A delay longer than the writer takes (a few seconds on a slow disk): every name
    // comes in one batch.
    let Some(w) = world(mode, "5s") else {
        return;
    };
    let vault = Vault::new(&w.env, "vault", &[ROOTS_NAME]);
    as_nobody(&w.u, "mkdir sub && echo seed > sub/seed");
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let dsub = w.dst.join("u/sub");
    let mut atk = Attacker::spawn(
        "swapper",
        SWAP_ON_FIRST_ENTRY,
        &[dsub.as_os_str(), vault.dir.as_os_str(), OsStr::new("30")],
    );
    atk.expect("ready", Duration::from_secs(10));
    let before = runs(&w.sock);
    nobody_py(
        &w.u,
        "for i in range(1000, 4000): open('sub/f%d' % i, 'w').write('%d\\n' % i)",
    );
    let swapped = atk.expect("swapped", SYNC_DEADLINE);
    // Hold the swap until the run it interposed on has finished.
    wait_run(&mut d, &w.sock, before, SYNC_DEADLINE);
    atk.tell("undo");
    atk.expect("undone", Duration::from_secs(10));
    atk.stop(Duration::from_secs(10));
    let damage = vault.damage();
    eprintln!(
        "  [{}] {swapped}: {} of 3000 new names landed in the root-only directory",
        mode.as_str(),
        vault.intruders()
    );
    conclude(
        "attack-dest-dir-swapped-mid-batch",
        mode,
        &damage,
        (&vault, &w, &mut d),
        "sub",
        || {},
    );
}

#[test]
fn dest_dir_swapped_mid_batch_mirror() {
    dir_swapped_mid_batch(Mode::Mirror);
}

/// rsync's receiver writes by path too; only a sandbox of its writes (Landlock, beneath
/// the destination) bounds it.
#[test]
fn dest_dir_swapped_mid_batch_rsync() {
    dir_swapped_mid_batch(Mode::Rsync);
}

const PROTECTED_HARDLINKS: &str = "/proc/sys/fs/protected_hardlinks";

/// `fs.protected_hardlinks = 0` (anyone may link anyone's file) until dropped, even on a
/// panic; `None` when it cannot be set.
fn allow_foreign_hard_links() -> Option<SysctlGuard> {
    let g = SysctlGuard::set(PROTECTED_HARDLINKS, "0");
    if g.is_none() {
        eprintln!("skipped: cannot set {PROTECTED_HARDLINKS}");
    }
    g
}

/// Shell code (as nobody, in `SRC/u`) that makes `f` look like `victim` to a quick
/// check (same size, same mtime) but not in content nor mode.
fn lookalike_cmd(victim: &Path, len: u64) -> String {
    format!(
        "head -c {len} /dev/zero | tr '\\0' x > f && touch -m -r {} f",
        victim.display()
    )
}

/// A root 0600 file `victim` and a source file `SRC/u/f` (0644) that looks like it.
fn lookalike(w: &World, victim: &Path) -> Ident {
    let id = root_file(victim, "root's secret, mode 0600\n");
    as_nobody(
        &w.u,
        &format!("{} && chmod 0644 f", lookalike_cmd(victim, id.len)),
    );
    id
}

/// As nobody, in nobody's `DST/u`: `f` becomes a hard link to the victim.
fn plant_link(w: &World, victim: &Path, id: &Ident) {
    as_nobody(
        &w.dst.join("u"),
        &format!("ln {} .lnk && mv -f .lnk f", victim.display()),
    );
    let m = fs::symlink_metadata(w.dst.join("u/f")).unwrap();
    assert_eq!(m.ino(), id.ino, "the link is planted");
}

fn assert_victim(victim: &Path, id: &Ident, step: &str) {
    let now = ident(victim);
    assert!(
        now.as_ref() == Some(id),
        "{step}: the root file changed through the hard link: {}",
        ident_change(victim, id, now.as_ref())
    );
}

/// Finding 7 (hard links): `DST/u/f` is made a hard link to a root 0600 file; then the
/// source file's content changes, then only its mode (the link looks like the source to
/// a quick check: same size and mtime), then only its mtime. Each time the destination
/// must get the source's file and the root file must keep content, mode, owner, times.
#[test]
fn hard_link_to_root_file_at_destination() {
    let _s = serial();
    let Some(w) = world(Mode::Mirror, "100ms") else {
        return;
    };
    let Some(_links) = allow_foreign_hard_links() else {
        return;
    };
    let victim = w.env.p("victim");
    let id = lookalike(&w, &victim);
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let start = Instant::now();
    let steps = [
        ("content", "echo 'new content' > f".to_string()),
        ("mode", "chmod 4755 f".to_string()),
        ("mtime", "touch -m -d @1000000007 f".to_string()),
    ];
    for (step, change) in &steps {
        if *step == "mode" {
            // Back to the lookalike first: only the mode will differ.
            as_nobody(&w.u, &lookalike_cmd(&victim, id.len));
            d.assert_synced(&w.src, &w.dst, &[]);
        }
        plant_link(&w, &victim, &id);
        let before = runs(&w.sock);
        as_nobody(&w.u, change);
        // The victim first (a run that reached it may leave the job unable to converge).
        wait_run(&mut d, &w.sock, before, SYNC_DEADLINE);
        assert_victim(&victim, &id, step);
        d.assert_synced(&w.src, &w.dst, &[]);
        assert_victim(&victim, &id, step);
        assert_ne!(
            fs::symlink_metadata(w.dst.join("u/f")).unwrap().ino(),
            id.ino,
            "{step}: the destination still holds the link"
        );
    }
    report(
        "attack-dest-hard-link-to-root-file",
        Some(Mode::Mirror),
        start.elapsed(),
    );
    assert!(d.stop().success());
}

/// Replaces `F` by a hard link to `VICTIM` (through `TMP` and a rename) whenever it is
/// not one, until stdin says stop; prints how many links it planted.
const LINK_LOOP: &str = r#"
import os, select, sys, time
victim, f, tmp, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
ino = os.stat(victim).st_ino
end, links = time.time() + secs, 0
print("ready", flush=True)
while time.time() < end and not select.select([sys.stdin], [], [], 0)[0]:
    try:
        if os.lstat(f).st_ino != ino:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.link(victim, tmp)
            os.rename(tmp, f)
            links += 1
    except OSError:
        pass
    time.sleep(0.0005)
print("links %d" % links, flush=True)
"#;

/// Toggles `F`'s mode between 4755 and 0644 until stdin says stop.
const CHMOD_LOOP: &str = r#"
import os, select, sys, time
f, secs = sys.argv[1], float(sys.argv[2])
end, i = time.time() + secs, 0
print("ready", flush=True)
while time.time() < end and not select.select([sys.stdin], [], [], 0)[0]:
    i += 1
    os.chmod(f, 0o4755 if i % 2 else 0o644)
    time.sleep(0.002)
print("chmods %d" % i, flush=True)
"#;

/// The race version: nobody keeps replacing `DST/u/f` by a hard link to the root file
/// (which the source file resembles to a quick check) while the source file's mode
/// toggles, for 200 runs of the job; the root file must never change.
#[test]
fn hard_link_race_during_mode_toggles() {
    let _s = serial();
    // No delay: as many runs as the toggles allow.
    let Some(w) = world(Mode::Mirror, "0s") else {
        return;
    };
    let Some(_links) = allow_foreign_hard_links() else {
        return;
    };
    let victim = w.env.p("victim");
    let id = lookalike(&w, &victim);
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let (f, tmp) = (w.dst.join("u/f"), w.dst.join("u/.lnk"));
    let secs = OsStr::new("20");
    let mut linker = Attacker::spawn(
        "linker",
        LINK_LOOP,
        &[victim.as_os_str(), f.as_os_str(), tmp.as_os_str(), secs],
    );
    linker.expect("ready", Duration::from_secs(10));
    let before = runs(&w.sock);
    let sf = w.u.join("f");
    let mut chmodder = Attacker::spawn("chmodder", CHMOD_LOOP, &[sf.as_os_str(), secs]);
    chmodder.expect("ready", Duration::from_secs(10));
    wait_for(
        &mut d,
        "200 runs under attack",
        Duration::from_secs(15),
        || runs(&w.sock) >= before + 200,
    );
    let chmods = chmodder.stop(Duration::from_secs(10));
    let links = linker.stop(Duration::from_secs(10));
    let n = runs(&w.sock) - before;
    eprintln!("  {links}, {chmods}, {n} runs");
    let now = ident(&victim);
    let damage: Vec<String> = if now.as_ref() == Some(&id) {
        Vec::new()
    } else {
        vec![ident_change(&victim, &id, now.as_ref())]
    };
    verdict(
        "attack-dest-hard-link-race",
        Mode::Mirror,
        &damage,
        || damage.join("\n"),
        || {
            // The attacker stops: its temporary name goes; the source settles.
            as_nobody(&w.dst.join("u"), "rm -f .lnk");
            as_nobody(&w.u, "chmod 0640 f");
            d.assert_synced_within(&w.src, &w.dst, &[], SYNC_DEADLINE)
        },
    );
    assert_victim(&victim, &id, "after the attack");
    assert!(d.stop().success());
}

/// Exchanges `A` and `B` (`renameat2(RENAME_EXCHANGE)`) over and over until stdin says
/// stop; when the daemon replaced the symlink (neither is one), plants `B -> VICTIM` again,
/// moving what is at `B` out of the way (to `B.oldN`). Prints how many exchanges it made.
const EXCHANGE_LOOP: &str = r#"
import ctypes, os, select, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, victim, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end, n, swaps = time.time() + secs, 0, 0
print("ready", flush=True)
while time.time() < end and not select.select([sys.stdin], [], [], 0)[0]:
    for _ in range(500):
        if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) == 0:
            swaps += 1
    if not os.path.islink(a) and not os.path.islink(b):
        n += 1
        try:
            if os.path.isdir(b):
                os.rename(b, "%s.old%d" % (b, n))
            elif os.path.lexists(b):
                os.unlink(b)
            os.symlink(victim, b)
        except OSError:
            pass
print("exchanges %d" % swaps, flush=True)
"#;

/// Removes the attacker's leftovers in `DST/u` (the symlink, what it moved aside) and, if
/// the name `keep` was left a symlink, that too: as root, since some of them may be
/// directories the daemon made (root's until its run ends).
fn clear_leftovers(du: &Path, link: &str, keep: &str) {
    for e in fs::read_dir(du).unwrap().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let p = e.path();
        let is_link = fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if name == link || name.starts_with(&format!("{link}.old")) || (name == keep && is_link) {
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir_all(&p).unwrap();
            } else {
                fs::remove_file(&p).unwrap();
            }
        }
    }
}

/// `mib` MiB of fresh random bytes into each of `names` (below `src/u`), as nobody.
fn rewrite(u: &Path, names: &[&str], mib: usize) {
    as_nobody(
        u,
        &format!(
            "for f in {}; do head -c {} /dev/urandom > $f; done",
            names.join(" "),
            mib << 20
        ),
    );
}

/// Rewrites `names` up to `rounds` times, each time waiting until a run has finished
/// after it; stops early once `damaged()` says the attack got through. Returns the rounds.
fn rewrites(
    d: &mut Daemon,
    w: &World,
    names: &[&str],
    mib: usize,
    rounds: usize,
    damaged: impl Fn() -> bool,
) -> usize {
    for i in 0..rounds {
        let before = runs(&w.sock);
        rewrite(&w.u, names, mib);
        wait_run(d, &w.sock, before, SYNC_DEADLINE);
        if damaged() {
            return i + 1;
        }
    }
    rounds
}

/// `DST/u/big` is exchanged with a symlink to a root file, over and over, while the
/// mirror copies a 32 MiB `SRC/u/big` (rewritten 4 times) and installs it: the root file
/// must never change (nothing written, chmodded, chowned or timed through the symlink).
#[test]
fn exchange_file_with_symlink_during_copy() {
    let _s = serial();
    let Some(w) = world(Mode::Mirror, "100ms") else {
        return;
    };
    let victim = w.env.p("victim");
    let id = root_file(&victim, "root only, mode 0600\n");
    rewrite(&w.u, &["big"], 32);
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let du = w.dst.join("u");
    as_nobody(&du, &format!("ln -s {} L", victim.display()));
    let (a, b) = (du.join("big"), du.join("L"));
    let mut atk = Attacker::spawn(
        "exchanger",
        EXCHANGE_LOOP,
        &[
            a.as_os_str(),
            b.as_os_str(),
            victim.as_os_str(),
            OsStr::new("20"),
        ],
    );
    atk.expect("ready", Duration::from_secs(10));
    let rounds = rewrites(&mut d, &w, &["big"], 32, 4, || {
        ident(&victim).as_ref() != Some(&id)
    });
    let swaps = atk.stop(Duration::from_secs(10));
    eprintln!("  {swaps}, {rounds} rewrites");
    let now = ident(&victim);
    let damage: Vec<String> = if now.as_ref() == Some(&id) {
        Vec::new()
    } else {
        vec![ident_change(&victim, &id, now.as_ref())]
    };
    verdict(
        "attack-dest-exchange-file-during-copy",
        Mode::Mirror,
        &damage,
        || damage.join("\n"),
        || {
            clear_leftovers(&du, "L", "big");
            as_nobody(&w.u, "touch big");
            d.assert_synced_within(&w.src, &w.dst, &[], SYNC_DEADLINE)
        },
    );
    assert!(
        ident(&victim).as_ref() == Some(&id),
        "the root file changed after the attack"
    );
    assert!(d.stop().success());
}

/// `DST/u/sub` is exchanged with a symlink to a root-only directory (holding a root file
/// `big1`), over and over, while the mirror copies 32 MiB in `SRC/u/sub` (four 8 MiB files
/// `bigN`, rewritten up to 6 times) into temporary files there and installs them: nothing
/// may land in that directory, root's `big1` must stay as it is. (Several files: a run
/// checks the directory before the first; the others test what it does after that.)
#[test]
fn exchange_dir_with_symlink_during_copy() {
    let _s = serial();
    let Some(w) = world(Mode::Mirror, "100ms") else {
        return;
    };
    let vault = Vault::new(&w.env, "vault", &["big1"]);
    let bigs = ["sub/big0", "sub/big1", "sub/big2", "sub/big3"];
    as_nobody(&w.u, "mkdir sub");
    rewrite(&w.u, &bigs, 8);
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let du = w.dst.join("u");
    as_nobody(&du, &format!("ln -s {} L", vault.dir.display()));
    let (a, b) = (du.join("sub"), du.join("L"));
    let mut atk = Attacker::spawn(
        "exchanger",
        EXCHANGE_LOOP,
        &[
            a.as_os_str(),
            b.as_os_str(),
            vault.dir.as_os_str(),
            OsStr::new("20"),
        ],
    );
    atk.expect("ready", Duration::from_secs(10));
    let rounds = rewrites(&mut d, &w, &bigs, 8, 6, || !vault.damage().is_empty());
    let swaps = atk.stop(Duration::from_secs(10));
    let damage = vault.damage();
    eprintln!(
        "  {swaps}, {rounds} rewrites; {} name(s) landed in the root-only directory",
        vault.intruders()
    );
    conclude(
        "attack-dest-exchange-dir-during-copy",
        Mode::Mirror,
        &damage,
        (&vault, &w, &mut d),
        "sub",
        || clear_leftovers(&du, "L", "sub"),
    );
}

/// Renames replayed into a destination directory that is swapped for a symlink after the
/// first of them went in. One batch: 2,000 files `gN` move into `d`, then 1,000 files
/// `d/kN` move out of it. At the first entry moved into `DST/u/d` the attacker swaps it for
/// a symlink to a root-only directory holding root files `g2999` and `k1999` (names the
/// batch moves last in each direction). Nothing may be moved into that directory, nor
/// root's files out of it.
fn rename_replay_into_swapped_dir(mode: Mode) {
    let _s = serial();
    let Some(w) = world(mode, "2s") else {
        return;
    };
    let vault = Vault::new(&w.env, "vault", &["g2999", "k1999"]);
    nobody_py(
        &w.u,
        "import os\n\
         os.mkdir('d')\n\
         for i in range(1000, 3000): open('g%d' % i, 'w').write('%d\\n' % i)\n\
         for i in range(1000, 2000): open('d/k%d' % i, 'w').write('%d\\n' % i)",
    );
    let mut d = w.env.start(&["j"]);
    d.assert_synced(&w.src, &w.dst, &[]);
    let dd = w.dst.join("u/d");
    let mut atk = Attacker::spawn(
        "swapper",
        SWAP_ON_FIRST_ENTRY,
        &[dd.as_os_str(), vault.dir.as_os_str(), OsStr::new("30")],
    );
    atk.expect("ready", Duration::from_secs(10));
    let before = runs(&w.sock);
    nobody_py(
        &w.u,
        "import os\n\
         for i in range(1000, 3000): os.rename('g%d' % i, 'd/g%d' % i)\n\
         for i in range(1000, 2000): os.rename('d/k%d' % i, 'k%d' % i)",
    );
    let swapped = atk.expect("swapped", SYNC_DEADLINE);
    wait_run(&mut d, &w.sock, before, SYNC_DEADLINE);
    atk.tell("undo");
    atk.expect("undone", Duration::from_secs(10));
    atk.stop(Duration::from_secs(10));
    let damage = vault.damage();
    eprintln!(
        "  [{}] {swapped}: {} name(s) moved into the root-only directory",
        mode.as_str(),
        vault.intruders()
    );
    conclude(
        "attack-dest-rename-replay-into-swapped-dir",
        mode,
        &damage,
        (&vault, &w, &mut d),
        "d",
        || {},
    );
}

#[test]
fn rename_replay_into_swapped_dir_mirror() {
    rename_replay_into_swapped_dir(Mode::Mirror);
}

#[test]
fn rename_replay_into_swapped_dir_rsync() {
    rename_replay_into_swapped_dir(Mode::Rsync);
}
