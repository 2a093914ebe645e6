//! What a job's rsync is, and whether the receiving rsync accepts `--delete-missing-args`.
//!
//! Version strings cannot tell: Debian's 3.2.7-1+deb12u4 and +deb12u5 both say "3.2.7", and
//! only the second rejects a missing `--files-from` entry (see [`deletions`](super::deletions)).
//! So the local program is probed once per binary (path, inode and mtime: an upgraded rsync
//! is probed again when a job starts), by syncing one missing entry between two empty
//! temporary directories. For a local destination that program is also the receiver. A
//! remote receiver (the other host's rsync, or `--rsync-path`) is learned from its answers:
//! the first batch with a deletion is sent whole; a rejection names the receiver's version
//! (`[Receiver=3.2.7]`), is remembered, and that batch and all later ones are sent with a
//! separate deletion pass. Nothing is lost meanwhile: the rejected run changed nothing, and
//! the same batch is sent again at once.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::HandlerError;

/// Whether a receiver accepts `--delete-missing-args` entries in a `--files-from` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingArgs {
    /// Not known yet (a remote receiver before its first batch with a deletion).
    Unknown,
    Accepted,
    /// Rejected ("invalid file mode", or an rsync older than 3.1 that lacks the option):
    /// deletions go in a separate pass.
    Rejected,
}

/// A local rsync program: what `--version` said, and once asked, what the probe said.
#[derive(Debug)]
pub struct Program {
    /// As configured (`[rsync] path`).
    pub path: PathBuf,
    /// `3.2.7`, when `--version` answered.
    pub version: Option<String>,
    pub protocol: Option<u32>,
    missing_args: OnceLock<MissingArgs>,
}

impl Program {
    /// Whether this program, as the receiver of a local transfer, accepts missing entries
    /// (probed on the first call).
    pub fn missing_args(&self) -> MissingArgs {
        *self
            .missing_args
            .get_or_init(|| probe_missing_args(&self.path))
    }
}

/// Per binary: (path as configured, device, inode, mtime).
type Key = (PathBuf, u64, u64, i64);

static PROGRAMS: Mutex<Option<HashMap<Key, Arc<Program>>>> = Mutex::new(None);

/// What `program` is; probed once per binary, then answered from memory.
pub fn local(program: &Path) -> Arc<Program> {
    let meta = crate::program::locate(program).and_then(|p| std::fs::metadata(p).ok());
    let Some(m) = meta else {
        // Not there (yet): the job's runs will say so; probe again next time.
        return Arc::new(Program {
            path: program.to_path_buf(),
            version: None,
            protocol: None,
            missing_args: OnceLock::from(MissingArgs::Unknown),
        });
    };
    let key = (program.to_path_buf(), m.dev(), m.ino(), m.mtime());
    let mut cache = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(key)
        .or_insert_with(|| Arc::new(probe(program)))
        .clone()
}

/// `3.2.7` and 32 from `rsync  version 3.2.7  protocol version 32`.
pub fn parse_version(out: &str) -> (Option<String>, Option<u32>) {
    let first = out.lines().next().unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().collect();
    let after = |w: &str| {
        words
            .iter()
            .position(|x| *x == w)
            .and_then(|i| words.get(i + 1))
    };
    let version = after("version").map(|v| v.to_string());
    let protocol = words
        .iter()
        .position(|x| *x == "protocol")
        .and_then(|i| words.get(i + 2))
        .and_then(|p| p.parse().ok());
    (version, protocol)
}

/// How long a probe may take: `[rsync] path` may be a wrapper that does more than rsync.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn probe(program: &Path) -> Program {
    let (version, protocol) = version_of(program).unwrap_or((None, None));
    Program {
        path: program.to_path_buf(),
        version,
        protocol,
        missing_args: OnceLock::new(),
    }
}

/// `program --version`, read within [`PROBE_TIMEOUT`].
fn version_of(program: &Path) -> Option<(Option<String>, Option<u32>)> {
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    version_from(cmd)
}

/// The version `cmd` prints (an rsync's `--version`, possibly run on another host), read
/// within [`PROBE_TIMEOUT`].
pub fn version_from(mut cmd: Command) -> Option<(Option<String>, Option<u32>)> {
    use std::io::Read;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let watchdog = super::timeout::Watchdog::start(child.id() as i32, PROBE_TIMEOUT);
    let mut out = String::new();
    let _ = child.stdout.take()?.read_to_string(&mut out);
    let ok = child.wait().ok()?.success();
    let timed_out = watchdog.killed();
    (ok && !timed_out).then(|| parse_version(&out))
}

/// Syncs one missing `--files-from` entry between two empty temporary directories.
fn probe_missing_args(program: &Path) -> MissingArgs {
    let Ok(dir) = tempfile::Builder::new().prefix("clsync-probe.").tempdir() else {
        return MissingArgs::Unknown;
    };
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    if std::fs::create_dir(&src).is_err() || std::fs::create_dir(&dst).is_err() {
        return MissingArgs::Unknown;
    }
    let mut cmd = super::Launch::new(program);
    cmd.args([
        "-a",
        "-r",
        "--delete-missing-args",
        "--files-from=-",
        "--from0",
        "--",
    ])
    .arg(dir_arg(&src))
    .arg(dir_arg(&dst));
    let res = super::run_process(
        cmd,
        &program.display().to_string(),
        Some(b"./missing\0".to_vec()),
        Some(PROBE_TIMEOUT),
        &[],
        |_| "",
    );
    match res {
        Ok(_) => MissingArgs::Accepted,
        Err(e) if rejects_missing_args(&e).is_some() => MissingArgs::Rejected,
        Err(_) => MissingArgs::Unknown,
    }
}

fn dir_arg(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push("/");
    s.into()
}

/// `Some(receiver version if it said)` when `e` is a receiver refusing a missing
/// `--files-from` entry, or an rsync that does not know `--delete-missing-args` at all.
pub fn rejects_missing_args(e: &HandlerError) -> Option<Option<String>> {
    let HandlerError::Exit { code, stderr, .. } = e else {
        return None;
    };
    let rejected = (*code == 2 && stderr.contains("invalid file mode"))
        || (*code == 1 && stderr.contains("delete-missing-args"));
    if !rejected {
        return None;
    }
    // rsync's own words are not translated: "... [Receiver=3.2.7]" (or "[receiver=…]" from
    // a server-side receiver).
    let lower = stderr.to_ascii_lowercase();
    let version = lower.split("[receiver=").nth(1).and_then(|rest| {
        let v: String = rest.chars().take_while(|&c| c != ']').collect();
        (!v.is_empty()).then_some(v)
    });
    Some(version)
}

/// The receiving end of one job's transfers: the local program, and what the receiver
/// (that program, or the remote one) has shown it accepts.
#[derive(Debug)]
pub struct Receiver {
    path: PathBuf,
    remote: bool,
    /// Probed on first use, in the job's thread (never in the supervisor's).
    program: OnceLock<Arc<Program>>,
    /// What the receiver accepts and its version; None until first asked.
    learned: Mutex<Option<(MissingArgs, Option<String>)>>,
}

/// How a job's rsync is set up, for `clsync status` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub program: String,
    pub version: Option<String>,
    pub protocol: Option<u32>,
    /// `local` or `remote`: which rsync receives.
    pub receiver: &'static str,
    pub receiver_version: Option<String>,
    /// Whether the receiver accepts `--delete-missing-args` (null: not known yet).
    pub delete_missing_args: Option<bool>,
    /// `in-batch`, or `separate-pass` when the receiver rejects missing entries.
    pub deletions: &'static str,
}

impl Receiver {
    /// `program` sending to a local destination (`remote` false: it receives too) or to
    /// another host.
    pub fn new(program: &Path, remote: bool) -> Receiver {
        Receiver {
            path: program.to_path_buf(),
            remote,
            program: OnceLock::new(),
            learned: Mutex::new(None),
        }
    }

    fn program(&self) -> &Arc<Program> {
        self.program.get_or_init(|| local(&self.path))
    }

    /// What is known: for a local destination, the program's own answer to the probe.
    fn known(&self) -> std::sync::MutexGuard<'_, Option<(MissingArgs, Option<String>)>> {
        let mut l = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        if l.is_none() {
            let p = self.program();
            *l = Some(if self.remote {
                (MissingArgs::Unknown, None)
            } else {
                (p.missing_args(), p.version.clone())
            });
        }
        l
    }

    pub fn missing_args(&self) -> MissingArgs {
        self.known().as_ref().map_or(MissingArgs::Unknown, |k| k.0)
    }

    /// Records what a run showed; true when this changed what was known.
    pub fn learn(&self, missing_args: MissingArgs, version: Option<String>) -> bool {
        let mut l = self.known();
        let Some(k) = l.as_mut() else {
            return false;
        };
        let changed = k.0 != missing_args;
        k.0 = missing_args;
        if version.is_some() {
            k.1 = version;
        }
        changed
    }

    pub fn report(&self) -> Report {
        let (ma, rv) = self.known().clone().unwrap_or((MissingArgs::Unknown, None));
        let program = self.program();
        Report {
            program: program.path.display().to_string(),
            version: program.version.clone(),
            protocol: program.protocol,
            receiver: if self.remote { "remote" } else { "local" },
            receiver_version: rv,
            delete_missing_args: match ma {
                MissingArgs::Unknown => None,
                MissingArgs::Accepted => Some(true),
                MissingArgs::Rejected => Some(false),
            },
            deletions: if ma == MissingArgs::Rejected {
                "separate-pass"
            } else {
                "in-batch"
            },
        }
    }
}

impl Report {
    /// One line for the log: the program, its version, and the receiver.
    pub fn describe(&self) -> String {
        let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "(version unknown)".into());
        let mut s = format!("rsync: {} {}", self.program, v(&self.version));
        if let Some(p) = self.protocol {
            s.push_str(&format!(" (protocol {p})"));
        }
        if self.receiver == "remote" {
            match (&self.receiver_version, self.delete_missing_args) {
                (None, None) => s.push_str("; the remote rsync is learned at the first deletion"),
                (rv, _) => s.push_str(&format!("; remote rsync {}", v(rv))),
            }
        }
        if self.delete_missing_args == Some(false) {
            s.push_str(&format!(
                "; the receiver{} rejects --delete-missing-args with --files-from \
                 (RsyncProject/rsync issue 910, e.g. Debian 12's 3.2.7-1+deb12u5): \
                 batches with deletions are sent as two runs, the deletions by parent directory",
                self.receiver_version
                    .as_ref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("rsync  version 3.2.7  protocol version 32\nCopyright"),
            (Some("3.2.7".into()), Some(32))
        );
        assert_eq!(
            parse_version("rsync  version v3.4.1  protocol version 32"),
            (Some("v3.4.1".into()), Some(32))
        );
        assert_eq!(parse_version(""), (None, None));
    }

    #[test]
    fn rejections_are_recognised_with_the_receiver_version() {
        let exit = |code, stderr: &str| HandlerError::Exit {
            program: "rsync".into(),
            code,
            stderr: stderr.into(),
        };
        let e = exit(
            2,
            "invalid file mode 00 for f4 [Receiver]\nrsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.2.7]",
        );
        assert_eq!(rejects_missing_args(&e), Some(Some("3.2.7".into())));
        let server = exit(
            2,
            "invalid file mode 00 for a/gone [receiver]\nrsync error: protocol incompatibility (code 2) at flist.c(874) [receiver=3.2.7]",
        );
        assert_eq!(rejects_missing_args(&server), Some(Some("3.2.7".into())));
        let old = exit(1, "rsync: --delete-missing-args: unknown option");
        assert_eq!(rejects_missing_args(&old), Some(None));
        assert_eq!(rejects_missing_args(&exit(2, "protocol mismatch")), None);
        assert_eq!(rejects_missing_args(&exit(23, "invalid file mode")), None);
    }

    /// The probe tells the builds apart (run with CLSYNC_TEST_RSYNC_AFFECTED set to an
    /// affected build to check the other answer).
    #[test]
    fn the_probe_answers_for_real_rsync() {
        if crate::program::locate(Path::new("rsync")).is_none() {
            eprintln!("skipped: no rsync");
            return;
        }
        let p = local(Path::new("rsync"));
        assert!(p.version.is_some(), "{p:?}");
        assert_ne!(p.missing_args(), MissingArgs::Unknown, "{p:?}");
        assert!(Arc::ptr_eq(&p, &local(Path::new("rsync"))), "probed once");
        if let Some(bad) = std::env::var_os("CLSYNC_TEST_RSYNC_AFFECTED") {
            let b = local(Path::new(&bad));
            assert_eq!(b.missing_args(), MissingArgs::Rejected, "{b:?}");
            let r = Receiver::new(Path::new(&bad), false).report();
            assert_eq!(
                (r.delete_missing_args, r.deletions),
                (Some(false), "separate-pass")
            );
        }
    }
}
