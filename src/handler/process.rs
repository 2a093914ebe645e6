//! Handler processes: how an external program (rsync, ssh, a command mode's program) is
//! started and waited for, as the job's `user` when it has one, so that a timeout, a stop or
//! the daemon's death reaches the whole process group; and the local destination those
//! programs expect to exist.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::thread::JoinHandle;
use std::time::Duration;

use super::launch::Launch;
use super::{HandlerError, Outcome, timeout};

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

/// Runs a handler process to completion: in its own process group (so that a timeout or a
/// hard stop kills its children too), `stdin` written to it from another thread (a handler
/// may fill its stderr pipe before it has read all of its input; `None`: no stdin), stdout's
/// lines counted (`Outcome::changed`: what an itemized full sync repaired), stderr kept for
/// the error message. Exit codes in `ignore` count as success,
/// with a warning that `explain(code)` may complete.
pub(crate) fn run_process(
    cmd: Launch,
    program: &str,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    ignore: &[i32],
    explain: impl Fn(i32) -> &'static str,
) -> Result<Outcome, HandlerError> {
    let stdout = Stdout::CountLines;
    run_process_with(cmd, program, stdin, stdout, timeout, ignore, explain)
}

/// What a handler's stdout is read for.
pub(crate) enum Stdout {
    /// Its lines counted (`Outcome::changed`).
    CountLines,
    /// rsync's `--info=progress2` lines, followed into a tally (for `clsync sync`'s
    /// progress display).
    Progress(std::sync::Arc<super::tally::Tally>),
}

/// [`run_process`], reading stdout as `stdout` says.
pub(crate) fn run_process_with(
    cmd: Launch,
    program: &str,
    stdin: Option<Vec<u8>>,
    stdout: Stdout,
    timeout: Option<Duration>,
    ignore: &[i32],
    explain: impl Fn(i32) -> &'static str,
) -> Result<Outcome, HandlerError> {
    let program = program.to_string();
    let mut child = cmd
        .start(stdin.is_some())
        .map_err(|e| HandlerError::Spawn {
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
    let counter = child.stdout.take().map(|out| match stdout {
        Stdout::CountLines => count_lines(out),
        Stdout::Progress(tally) => follow_progress(out, tally),
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
    let timed_out = watchdog.is_some_and(|w| w.killed());
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
    exit_outcome(status, program, stderr, changed, ignore, explain)
}

/// Follows rsync's `--info=progress2` output on a thread of its own, until end of file: each
/// update (ended by `\r` or `\n`) starts with the bytes transferred so far and ends with
/// `(xfr#N, to-chk=…)`, N the files transferred. Counted on top of what `tally` held when
/// the run started. Returns the number of lines, as [`count_lines`] does.
fn follow_progress(
    mut out: impl Read + Send + 'static,
    tally: std::sync::Arc<super::tally::Tally>,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let base = tally.read();
        let mut buf = [0u8; 16 * 1024];
        let mut line = Vec::new();
        let mut lines = 0u64;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b != b'\r' && b != b'\n' {
                    line.push(b);
                    continue;
                }
                lines += u64::from(b == b'\n');
                if let Some((bytes, files)) = progress2(&line) {
                    tally.reached(base.copied + bytes, base.files + files);
                }
                line.clear();
            }
        }
        lines
    })
}

/// (bytes, files) of one `--info=progress2` update, such as
/// `  1,234,567  45%  1.23MB/s  0:00:12 (xfr#12, to-chk=100/2000)`.
fn progress2(line: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(line).ok()?.trim_start();
    let bytes: String = text
        .split(' ')
        .next()?
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let bytes = bytes.parse().ok()?;
    let files = text
        .split_once("(xfr#")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some((bytes, files))
}

/// Counts the lines of `out` on a thread of its own, until end of file.
fn count_lines(mut out: impl Read + Send + 'static) -> JoinHandle<u64> {
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
}

/// What an exit `status` means: success, an ignored code (with a warning that `explain`
/// may complete), or the failure with the tail of `stderr`.
fn exit_outcome(
    status: ExitStatus,
    program: String,
    stderr: String,
    changed: Option<u64>,
    ignore: &[i32],
    explain: impl Fn(i32) -> &'static str,
) -> Result<Outcome, HandlerError> {
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

#[cfg(test)]
mod tests {
    use super::progress2;

    #[test]
    fn progress2_updates_are_read() {
        let u = b"     32,768  50%  1.23MB/s    0:00:01 (xfr#3, to-chk=7/10)";
        assert_eq!(progress2(u), Some((32_768, 3)));
        assert_eq!(
            progress2(b"  1,234,567 100%   45.67MB/s    0:00:10"),
            Some((1_234_567, 0))
        );
        assert_eq!(progress2(b"sending incremental file list"), None);
        assert_eq!(progress2(b""), None);
    }
}
