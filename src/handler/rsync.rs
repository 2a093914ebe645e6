//! The rsync handler: one `rsync` process per batch, whatever the batch's size.
//!
//! A full sync is `rsync -a --delete SRC/ DST/`. A live batch passes its paths as a
//! NUL-separated `--files-from` list on rsync's stdin (names are data, never arguments),
//! with `-r` so that new directories arrive whole and `--delete-missing-args` so that paths
//! gone from the source are deleted at the destination. Excludes go to rsync as
//! `--exclude=PATTERN` so that rsync and the live path agree; regex rules, which rsync does
//! not know, are turned into an anchored exclude list by walking the directories involved.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tracing::debug;

use super::{Batch, Handler, HandlerError, Outcome};
use crate::config::{Destination, RsyncOptions};
use crate::relpath;
use crate::rules::{Filter, Kind};

pub struct RsyncHandler {
    source: PathBuf,
    destination: Destination,
    options: RsyncOptions,
    filter: Arc<Filter>,
}

impl RsyncHandler {
    pub fn new(
        source: PathBuf,
        destination: Destination,
        options: RsyncOptions,
        filter: Arc<Filter>,
    ) -> RsyncHandler {
        RsyncHandler {
            source,
            destination,
            options,
            filter,
        }
    }

    fn dir_arg(p: &Path) -> OsString {
        let mut s = p.as_os_str().to_os_string();
        if !s.as_bytes().ends_with(b"/") {
            s.push("/");
        }
        s
    }

    fn dest_arg(&self) -> OsString {
        match &self.destination {
            Destination::Local(p) => Self::dir_arg(p),
            Destination::Remote(s) => {
                let mut s = OsString::from(s);
                if !s.as_bytes().ends_with(b"/") {
                    s.push("/");
                }
                s
            }
        }
    }

    /// Anchored excludes for everything the regex rules deny below the directories of `dirs`.
    fn rule_excludes(&self, dirs: &[PathBuf]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = dirs.to_vec();
        while let Some(rel) = stack.pop() {
            let Ok(rd) = fs::read_dir(relpath::join(&self.source, &rel)) else {
                continue;
            };
            for entry in rd.flatten() {
                let child = if rel.as_os_str().is_empty() {
                    PathBuf::from(entry.file_name())
                } else {
                    rel.join(entry.file_name())
                };
                let ft = entry.file_type().ok();
                let kind = match ft {
                    Some(t) if t.is_dir() => Kind::Dir,
                    Some(t) if t.is_file() => Kind::File,
                    _ => Kind::Other,
                };
                let is_dir = kind == Kind::Dir;
                let allowed = self.filter.allows(&child, kind)
                    && (!is_dir || self.filter.allows_dir_walk(&child));
                if !allowed {
                    out.extend_from_slice(&Filter::rsync_anchored(&child, is_dir));
                    out.push(0);
                } else if is_dir {
                    stack.push(child);
                }
            }
        }
        out
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.options.path);
        cmd.arg("-a").arg("--delete");
        for pat in self.filter.excludes() {
            cmd.arg(format!("--exclude={pat}"));
        }
        cmd.args(&self.options.args);
        cmd
    }
}

impl Handler for RsyncHandler {
    fn local_destination(&self) -> Option<&Path> {
        match &self.destination {
            Destination::Local(d) => Some(d),
            Destination::Remote(_) => None,
        }
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        // rsync creates only the last component of a destination.
        if let Destination::Local(dst) = &self.destination {
            fs::create_dir_all(dst).map_err(|e| HandlerError::Io {
                path: dst.clone(),
                source: e,
            })?;
        }
        let mut cmd = self.command();
        let full = batch.is_full();
        // Directories rsync will recurse into, for the regex-rules exclude list.
        let mut recursed: Vec<PathBuf> = Vec::new();
        let mut list: Vec<u8> = Vec::new();
        if full {
            recursed.push(PathBuf::new());
        } else {
            // --ignore-times: an event says the content changed, even when a rewrite kept
            // the size and put the mtime back (tar x, cp -p, touch -r).
            cmd.args(["-r", "--delete-missing-args", "--files-from=-", "--from0"]);
            if batch.entries.iter().any(|e| !e.attrs_only && !e.recursive) {
                cmd.arg("--ignore-times");
            }
            for e in &batch.entries {
                // "./" makes rsync send the root as an implied directory too, so the
                // root's mtime follows entries created or deleted in it.
                list.extend_from_slice(b"./");
                list.extend_from_slice(e.rel.as_os_str().as_bytes());
                list.push(0);
                if self.filter.has_rules()
                    && fs::symlink_metadata(relpath::join(&self.source, &e.rel))
                        .is_ok_and(|m| m.is_dir())
                {
                    recursed.push(e.rel.clone());
                }
            }
        }
        // Kept alive until rsync has exited.
        let mut _excl_file = None;
        if self.filter.has_rules() {
            let excludes = self.rule_excludes(&recursed);
            if !excludes.is_empty() {
                let mut f = tempfile::Builder::new()
                    .prefix(".clsync-exclude.")
                    .tempfile()
                    .map_err(|e| HandlerError::Io {
                        path: std::env::temp_dir(),
                        source: e,
                    })?;
                f.write_all(&excludes).map_err(|e| HandlerError::Io {
                    path: f.path().to_path_buf(),
                    source: e,
                })?;
                // rsync reads the file while parsing options: --from0 must come first.
                if full {
                    cmd.arg("--from0");
                }
                let mut arg = OsString::from("--exclude-from=");
                arg.push(f.path());
                cmd.arg(arg);
                _excl_file = Some(f);
            }
        }
        cmd.arg("--");
        cmd.arg(Self::dir_arg(&self.source));
        cmd.arg(self.dest_arg());
        cmd.stdin(if full { Stdio::null() } else { Stdio::piped() })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // rsync must die with its own process group when a job is stopped hard.
        cmd.process_group(0);
        let program = self.options.path.display().to_string();
        debug!(
            paths = batch.entries.len(),
            full,
            "running {program} {:?}",
            cmd.get_args().collect::<Vec<_>>()
        );
        let mut child = cmd.spawn().map_err(|e| HandlerError::Spawn {
            program: program.clone(),
            source: e,
        })?;
        // Write the list from another thread: rsync may fill its stderr pipe before it has
        // read all of stdin.
        let writer = child.stdin.take().map(|mut stdin| {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&list);
            })
        });
        let watchdog = self
            .options
            .timeout
            .map(|t| super::timeout::Watchdog::start(child.id() as i32, t));
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
        if timed_out {
            return Err(HandlerError::Timeout {
                program,
                timeout: self.options.timeout.unwrap_or_default(),
            });
        }
        match status.code() {
            Some(0) => Ok(Outcome::default()),
            Some(code) if self.options.ignore_exit_codes.contains(&code) => Ok(Outcome {
                warnings: vec![format!(
                    "{program} exited with status {code} (ignored by ignore_exit_codes){}",
                    if code == 24 {
                        ": some files vanished during the transfer"
                    } else {
                        ""
                    }
                )],
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
}
