//! Sync handlers: what turns a batch of changed paths into a destination that matches the
//! source.
//!
//! A handler receives a [`Batch`] and must leave every listed path at the destination equal
//! to the *current* state of the same path at the source (not the state at event time):
//! a path that no longer exists at the source is deleted at the destination, a path that
//! exists is copied, and a `recursive` entry makes the whole subtree equal (including
//! deletion of extraneous entries that the filter does not exclude). Because handlers look at
//! the current state, replaying a batch is always safe, which is what makes retries simple.

pub mod command;
pub mod deletions;
pub mod mirror;
pub mod receiver;
pub mod remote;
pub mod renames;
pub mod rsync;
pub mod shallow;
pub mod timeout;

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::model::{Batch, Entry};

/// Why a handler run failed. Every failure is retried by the job with backoff.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited with status {code}{}", stderr_tail(.stderr))]
    Exit {
        program: String,
        code: i32,
        stderr: String,
    },
    #[error("{program} was killed by signal {signal}")]
    Signaled { program: String, signal: i32 },
    #[error(
        "{program} ran longer than the timeout of {timeout:?} and was {}",
        if *.killed { "killed" } else { "stopped" }
    )]
    Timeout {
        program: String,
        timeout: std::time::Duration,
        /// A handler process killed by the watchdog; false for the mirror, which stops
        /// cooperatively between operations.
        killed: bool,
        /// The run changed the destination before it stopped, so a retry has less to do:
        /// the mirror, which only stops a run that has made progress. Unknown (false) for
        /// a killed process.
        progressed: bool,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl HandlerError {
    /// The failed run still changed the destination (see [`HandlerError::Timeout`]): not
    /// a sign that the job is stuck.
    pub fn made_progress(&self) -> bool {
        matches!(
            self,
            HandlerError::Timeout {
                progressed: true,
                ..
            }
        )
    }
}

fn stderr_tail(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        let tail: Vec<&str> = s.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(": {}", tail.join(" | "))
    }
}

/// What a handler reports on success, for logs and counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Non-fatal problems (e.g. rsync's "some files vanished"): logged, not retried.
    pub warnings: Vec<String>,
    /// How many paths the run changed at the destination, when the handler can tell (rsync's
    /// itemized full syncs): what a verification repaired.
    pub changed: Option<u64>,
}

impl Outcome {
    /// Adds what a further run of the same batch reported.
    pub fn absorb(&mut self, other: Outcome) {
        self.warnings.extend(other.warnings);
        self.changed = match (self.changed, other.changed) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// A sync handler. Implementations must be safe to call from several worker threads at once
/// on batches whose paths are disjoint (the job guarantees disjointness).
pub trait Handler: Send + Sync {
    /// Brings every path of `batch` at the destination up to date with the source.
    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError>;

    /// The destination directory, when it is local: if it disappears (removed by hand, a
    /// disk unmounted), only a full sync can make it whole again, and the job checks for that.
    fn local_destination(&self) -> Option<&std::path::Path> {
        None
    }

    /// The source directory, so that batches can be kept inside it ([`confine`]).
    fn source(&self) -> Option<&std::path::Path> {
        None
    }

    /// The job's rsync and what its receiver accepts, for handlers that run rsync.
    fn rsync_report(&self) -> Option<receiver::Report> {
        None
    }

    /// True when `e` says the call itself is wrong (rsync's usage, protocol and
    /// unsupported-action errors): retrying the same call cannot help, and the job says so.
    fn is_permanent(&self, _e: &HandlerError) -> bool {
        false
    }

    /// Makes ready, before a sandboxed run and outside its sandbox, what the run writes
    /// into without being able to create it there: a missing local destination (made as
    /// the run would make it), and the handler's lists directory, whose path is returned
    /// for the sandbox ([`crate::sandbox`]) to let the run write beneath it.
    fn prepare(&self) -> Result<Vec<PathBuf>, HandlerError> {
        if let Some(d) = self.local_destination() {
            ensure_local_destination(d, None)?;
        }
        Ok(Vec::new())
    }
}

/// Runs a handler process to completion: in its own process group (so that a timeout or a
/// hard stop kills its children too), `stdin` written to it from another thread (a handler
/// may fill its stderr pipe before it has read all of its input; `None`: no stdin), stdout
/// discarded, stderr kept for the error message. Exit codes in `ignore` count as success,
/// with a warning that `explain(code)` may complete.
/// Makes `cmd` run as the job's `user`/`group`. (std clears the supplementary groups when
/// root changes the uid.)
pub(crate) fn run_as(cmd: &mut Command, who: Option<&crate::config::RunAs>) {
    use std::os::unix::process::CommandExt;
    if let Some(w) = who {
        cmd.gid(w.gid).uid(w.uid);
    }
}

/// Creates a local destination directory that does not exist yet (rsync would create only
/// its last component), owned by the job's `user` when handlers run as one.
pub(crate) fn ensure_local_destination(
    dst: &std::path::Path,
    who: Option<&crate::config::RunAs>,
) -> Result<(), HandlerError> {
    if dst.exists() {
        return Ok(());
    }
    let io = |e| HandlerError::Io {
        path: dst.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dst).map_err(io)?;
    if let Some(w) = who {
        std::os::unix::fs::chown(dst, Some(w.uid), Some(w.gid)).map_err(io)?;
    }
    Ok(())
}

pub(crate) fn run_process(
    mut cmd: Command,
    program: &str,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    ignore: &[i32],
    explain: impl Fn(i32) -> &'static str,
) -> Result<Outcome, HandlerError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd.process_group(0);
    // A handler must not outlive a daemon killed with SIGKILL: an orphaned rsync would keep
    // writing into the destination while the restarted daemon syncs it. SIGTERM lets rsync
    // remove its temporary files. (The signal fires when the worker thread that started the
    // handler ends; workers wait for their handlers, so that is only at the daemon's death.)
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing is allocated between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = program.to_string();
    let mut child = cmd.spawn().map_err(|e| HandlerError::Spawn {
        program: program.clone(),
        source: e,
    })?;
    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let watchdog = timeout.map(|t| timeout::Watchdog::start(child.id() as i32, t));
    // stdout is only counted (rsync's itemized changes), on its own thread so that neither
    // pipe can fill up while the other is read.
    let counter = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            let mut lines = 0u64;
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
            lines
        })
    });
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let mut bytes = Vec::new();
        let _ = e.read_to_end(&mut bytes);
        stderr = String::from_utf8_lossy(&bytes).into_owned();
    }
    let status = child.wait().map_err(|e| HandlerError::Spawn {
        program: program.clone(),
        source: e,
    })?;
    let timed_out = watchdog.is_some_and(|w| w.finish());
    if let Some(w) = writer {
        let _ = w.join();
    }
    let changed = counter.and_then(|c| c.join().ok());
    if timed_out {
        return Err(HandlerError::Timeout {
            program,
            timeout: timeout.unwrap_or_default(),
            killed: true,
            progressed: false,
        });
    }
    match status.code() {
        Some(0) => Ok(Outcome {
            warnings: Vec::new(),
            changed,
        }),
        Some(code) if ignore.contains(&code) => Ok(Outcome {
            warnings: vec![format!(
                "{program} exited with status {code} (ignored by ignore_exit_codes){}",
                explain(code)
            )],
            changed,
        }),
        Some(code) => Err(HandlerError::Exit {
            program,
            code,
            stderr,
        }),
        None => Err(HandlerError::Signaled {
            program,
            signal: status.signal().unwrap_or(0),
        }),
    }
}

/// Keeps a batch inside the source: an entry whose path goes through something that is no
/// longer a real directory (a directory swapped for a symlink, or removed) is replaced by the
/// highest such ancestor. Without this, rsync and the mirror would follow a symlinked parent
/// and copy what lies outside the source (e.g. `/etc`) into the destination; with it, the
/// ancestor itself is synced (as a symlink, or deleted).
pub fn confine(source: &std::path::Path, batch: Batch) -> Batch {
    use std::collections::{BTreeMap, HashMap};
    if batch.is_full() {
        return batch;
    }
    let mut real: HashMap<PathBuf, bool> = HashMap::new();
    let mut look = crate::fs::Lookup::new(source);
    let mut out: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    for e in batch.entries {
        let mut ancestors: Vec<&std::path::Path> = crate::relpath::ancestors(&e.rel).collect();
        ancestors.pop(); // the root itself
        let bad = ancestors.into_iter().rev().find(|a| {
            !*real
                .entry(a.to_path_buf())
                .or_insert_with(|| look.lstat(a).is_ok_and(|m| m.is_dir()))
        });
        let e = match bad {
            Some(a) => Entry {
                rel: a.to_path_buf(),
                recursive: false,
                attrs_only: false,
            },
            None => e,
        };
        match out.get_mut(&e.rel) {
            Some(x) => {
                x.recursive |= e.recursive;
                x.attrs_only &= e.attrs_only;
            }
            None => {
                out.insert(e.rel.clone(), e);
            }
        }
    }
    Batch {
        renames: batch.renames,
        entries: out.into_values().collect(),
    }
}

#[cfg(test)]
mod confine_tests {
    use super::*;

    #[test]
    fn entries_below_a_symlink_or_a_missing_dir_become_that_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        std::fs::create_dir_all(s.join("real/dir")).unwrap();
        std::fs::write(s.join("real/dir/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", s.join("link")).unwrap();
        let e = |p: &str| Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        };
        let b = confine(
            s,
            Batch {
                renames: vec![],
                entries: vec![
                    e("real/dir/f"),
                    e("link/passwd"),
                    e("link"),
                    e("gone/deep/x"),
                    e("top"),
                ],
            },
        );
        let got: Vec<String> = b
            .entries
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect();
        assert_eq!(got, ["gone", "link", "real/dir/f", "top"]);
    }
}
