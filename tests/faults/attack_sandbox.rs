//! The sandbox (Landlock) against the writer of a source directory (`nobody` owns `SRC/u`,
//! hence `DST/u`) who makes rsync read outside the source:
//!
//! - deterministic: a symlink `u/leak` to a root-only file, and a job that follows symlinks
//!   (`[rsync] args = ["-L"]`; and a command mode running rsync with `-L`). Sandboxed, the
//!   file never reaches the destination; the same job with `sandbox = false` (and the
//!   command mode by default) copies it, which proves the case can fail.
//! - the issue's race: `u/a` is swapped for a symlink to a root-only directory as soon as
//!   rsync opens a big file in it; rsync then opens the next name of its list through the
//!   symlink. Sandboxed, nothing of that directory lands at the destination (every rsync
//!   build the tests have: the machine's and Debian 12's, whose sender follows the leading
//!   symlink).
//!
//! Every case is bounded in time, and the job converges once the attacker stops.
//! `CLSYNC_TEST_SANDBOX=0` runs the sandboxed jobs with `sandbox = false`: the cases must
//! then fail (how their proof was checked).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{report, serial};

const SECRET: &[u8] = b"root words, not for nobody";

/// `sandbox = true`, unless `CLSYNC_TEST_SANDBOX=0` (to see the cases fail without it).
fn sandbox_on() -> &'static str {
    if std::env::var_os("CLSYNC_TEST_SANDBOX").is_some_and(|v| v == "0") {
        "sandbox = false\n"
    } else {
        "sandbox = true\n"
    }
}

/// A world where nobody owns `src/u`, the daemon has a socket (status), and a root-only
/// `victim/secret` lies beside the source; `None` unless root.
fn world() -> Option<(Env, PathBuf, PathBuf, PathBuf)> {
    if !is_root() {
        eprintln!("skipped: needs root (the attacker is nobody)");
        return None;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    env.write_main_config(DAEMON_TOML);
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let u = env.dir("src/u");
    chown_r(&u, NOBODY);
    let victim = env.dir("victim");
    fs::write(victim.join("secret"), SECRET).unwrap();
    chmod(&victim.join("secret"), 0o600);
    chmod(&victim, 0o700);
    Some((env, src, dst, victim))
}

/// A job file: source, destination, delay, then `rest` (top-level keys before any table).
fn job_text(src: &Path, dst: &Path, delay: &str, rest: &str) -> String {
    format!(
        "source = {}\ndestination = {}\ndelay = \"{delay}\"\n{rest}",
        toml_path(src),
        toml_path(dst)
    )
}

/// Every regular file below `root` whose content is [`SECRET`].
fn leaked(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if m.is_file() && fs::read(&p).is_ok_and(|c| c == SECRET) {
            out.push(p);
        }
    }
    out
}

/// Runs job `rest` against `u/leak -> victim/secret` until its first run is over (the
/// link's target copied, or rsync's partial-transfer exit); returns what leaked and the
/// job's `sandbox` status. Then the attacker removes the link and the job converges.
fn follow_the_link(case: &str, rest: &str) -> Option<(Vec<PathBuf>, String)> {
    let (env, src, dst, victim) = world()?;
    as_nobody(
        &src.join("u"),
        &format!(
            "echo mine > own && ln -s {} leak",
            victim.join("secret").display()
        ),
    );
    env.write_job("j", &job_text(&src, &dst, "100ms", rest));
    let mut d = env.spawn();
    wait_for(&mut d, "the first run", SYNC_DEADLINE, || {
        dst.join("u/leak").exists() || d_log_has(&env, "status 23")
    });
    let found = leaked(&dst);
    let sandbox = job_status(&status_json(&socket(&env)), "j")["sandbox"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    as_nobody(&src.join("u"), "rm leak");
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    report(case, None, took);
    assert!(d.stop().success());
    Some((found, sandbox))
}

fn d_log_has(env: &Env, what: &str) -> bool {
    fs::read_to_string(env.root.join("daemon.log")).is_ok_and(|l| l.contains(what))
}

/// rsync mode with `-L`: sandboxed, the root-only file stays where it is; with
/// `sandbox = false` it is copied (so this case can fail).
#[test]
fn copy_links_reads_nothing_outside_the_source() {
    let _s = serial();
    let rsync_l = "[rsync]\nargs = [\"-L\"]\n";
    let Some((found, state)) = follow_the_link(
        "attack-sandbox-copy-links",
        &format!("{}{rsync_l}", sandbox_on()),
    ) else {
        return;
    };
    assert!(found.is_empty(), "the root-only file leaked to {found:?}");
    assert_eq!(state, "active");
    let (found, state) = follow_the_link(
        "attack-sandbox-copy-links-unsandboxed",
        &format!("sandbox = false\n{rsync_l}"),
    )
    .unwrap();
    assert!(!found.is_empty(), "without the sandbox the case must leak");
    assert_eq!(state, "off");
}

/// A command mode (rsync run by the template, `-L`) is unsandboxed by default and leaks;
/// with `sandbox = true` it reads nothing outside the source.
#[test]
fn command_mode_with_sandbox_reads_nothing_outside_the_source() {
    let _s = serial();
    let command = "mode = \"direct\"\n[rsync]\nargs = [\"-L\"]\n[command]\npath = \"rsync\"\n\
                   args = [\"%RSYNC-ARGS%\", \"--\", \"./\", \"%destination%\"]\n";
    let Some((found, state)) = follow_the_link(
        "attack-sandbox-command-mode",
        &format!("{}{command}", sandbox_on()),
    ) else {
        return;
    };
    assert!(found.is_empty(), "the root-only file leaked to {found:?}");
    assert_eq!(state, "active");
    let (found, state) = follow_the_link("attack-sandbox-command-mode-default", command).unwrap();
    assert!(
        !found.is_empty(),
        "a command mode is unsandboxed by default"
    );
    assert_eq!(state, "off");
}

/// Waits (as nobody) for rsync to open `a/big`, swaps `a` for a symlink to `target`, then
/// watches the destination's `secret` for 5 s: exit 42 if the root-only file shows up
/// there, 3 if rsync never opened `big`.
const SWAP_ON_OPEN: &str = r#"
import ctypes, os, select, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, target, seen = sys.argv[1], sys.argv[2], sys.argv[3]
end = time.time() + float(sys.argv[4])
fd = libc.inotify_init()
libc.inotify_add_watch(fd, a.encode(), 0x20)  # IN_OPEN
def opened_big():
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        _, _, _, n = struct.unpack_from("iIII", buf, i)
        if buf[i + 16:i + 16 + n].rstrip(b"\0") == b"big":
            return True
        i += 16 + n
    return False
while True:
    left = end - time.time()
    if left <= 0:
        sys.exit(3)
    if select.select([fd], [], [], left)[0] and opened_big():
        break
os.rename(a, a + ".real")
os.symlink(target, a)
until = time.time() + 5
while time.time() < until:
    try:
        f = os.open(seen, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        data = os.read(f, 64)
        os.close(f)
    except OSError:
        continue
    if data.startswith(b"root words"):
        sys.exit(42)
"#;

/// The rsync builds to attack: the machine's, and Debian 12's deb12u5 (unpacked by
/// `scripts/second-rsync.sh`, as the test script does) when it can be had.
fn rsync_builds() -> Vec<String> {
    let mut out = vec!["rsync".to_string()];
    let second = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/second-rsync.sh"))
        .output();
    match second {
        Ok(o) if o.status.success() => {
            out.push(String::from_utf8_lossy(&o.stdout).trim().to_string())
        }
        _ => eprintln!("note: no second rsync build (scripts/second-rsync.sh failed)"),
    }
    out
}

/// The issue's race, against each rsync build: the batch lists `u/a/big` then
/// `u/a/secret`; when rsync opens `big`, `u/a` becomes a symlink to the root-only
/// directory, and rsync opens `u/a/secret` by its path next.
#[test]
fn source_dir_swapped_while_rsync_reads() {
    let _s = serial();
    for rsync in rsync_builds() {
        if !swap_while_rsync_reads(&rsync) {
            return;
        }
    }
}

/// One build's round; false when the case cannot run here.
fn swap_while_rsync_reads(rsync: &str) -> bool {
    let Some((env, src, dst, victim)) = world() else {
        return false;
    };
    // One batch for both names: a delay longer than the writes take.
    let rest = format!("{}[rsync]\npath = {}\n", sandbox_on(), toml_str(rsync));
    env.write_job("j", &job_text(&src, &dst, "3s", &rest));
    as_nobody(
        &src.join("u"),
        "mkdir a && head -c 64M /dev/zero > a/big && echo mine > a/secret",
    );
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    as_nobody(
        &src.join("u"),
        "head -c 64M /dev/urandom > a/big && echo mine, changed > a/secret",
    );
    let a = src.join("u/a");
    let mut attacker = nobody_python(
        SWAP_ON_OPEN,
        &[&a, &victim, &dst.join("u/a/secret")],
        SYNC_DEADLINE.as_secs_f64(),
    );
    let end = Instant::now() + SYNC_DEADLINE + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = attacker.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "the attacker did not stop");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_ne!(st.code(), Some(42), "{rsync} read the root-only directory");
    assert!(
        st.success(),
        "the attacker failed ({st}): rsync never opened a/big"
    );
    let found = leaked(&dst);
    assert!(
        found.is_empty(),
        "{rsync}: the root-only file leaked to {found:?}"
    );
    // The attacker stops: the directory is back, and the job converges.
    as_nobody(&src.join("u"), "rm a && mv a.real a");
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    assert!(leaked(&dst).is_empty());
    report(
        &format!("attack-sandbox-swap-while-rsync-reads {rsync}"),
        Some(Mode::Rsync),
        took,
    );
    assert!(d.stop().success());
    true
}
