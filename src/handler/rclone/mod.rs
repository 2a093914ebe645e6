//! The rclone handler (mode `rclone`): destinations that rclone reaches, `remote:path` of
//! an rclone configuration (S3, GCS, Azure, SFTP, a local disk…).
//!
//! A full sync is one `rclone sync SRC DST` with the job's excludes as rclone filter rules
//! ([`crate::rules::rclone`]). A live batch is at most two runs ([`plan`]): the paths that
//! are not regular files at the source (deleted ones, directories, whole when `recursive`,
//! and both sides of renames) as one `rclone sync SRC DST` restricted to them by anchored
//! exact rules after the job's own, then the regular files as one
//! `rclone copy --files-from-raw -`. Lists go on stdin,
//! so names are data, never arguments; SRC is absolute and DST a remote (it cannot start
//! with `-`) and both come after `--`. rclone's own retries are one attempt
//! (`--retries=1`, before the user's `args`, which may say otherwise): the job retries with
//! its backoff. A batch that fails is tried once more after a deletion of what may stand
//! in the way at the destination (a directory where the source now has a file, or the
//! reverse), which rclone cannot replace by itself. Symlinks and special files are not synced (rclone skips them): the
//! destination loses what it held under such a name.

mod plan;

use std::path::{Path, PathBuf};

use tracing::debug;

use super::{Handler, HandlerError, Outcome};
use crate::config::{HandlerOptions, RcloneOptions};
use crate::model::Batch;
use plan::Found;

/// Syncs each batch with rclone (see the module documentation).
pub struct RcloneHandler {
    source: PathBuf,
    /// `remote:path` as configured.
    destination: String,
    rclone: RcloneOptions,
    /// The timeout, accepted exit codes and identity of every run.
    options: HandlerOptions,
}

impl RcloneHandler {
    pub fn new(
        source: PathBuf,
        destination: String,
        rclone: RcloneOptions,
        options: HandlerOptions,
    ) -> RcloneHandler {
        RcloneHandler {
            source,
            destination,
            rclone,
            options,
        }
    }

    /// One rclone run: `subcommand`, its `flags`, SRC (`with_source`) and DST, `stdin` on
    /// its stdin.
    fn run_rclone(
        &self,
        subcommand: &str,
        flags: &[&str],
        with_source: bool,
        stdin: Vec<u8>,
    ) -> Result<Outcome, HandlerError> {
        let mut cmd = super::Launch::new(&self.rclone.path);
        cmd.run_as(self.options.run_as.as_ref());
        cmd.arg(subcommand).arg("--retries=1");
        if let Some(c) = &self.rclone.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(flags).args(&self.rclone.args).arg("--");
        if with_source {
            cmd.arg(&self.source);
        }
        cmd.arg(&self.destination);
        let program = format!("{} {subcommand}", self.rclone.path.display());
        debug!(
            stdin_bytes = stdin.len(),
            "running {:?}",
            cmd.get_args().collect::<Vec<_>>()
        );
        super::run_process(
            cmd,
            &program,
            Some(stdin),
            self.options.timeout,
            &self.options.ignore_exit_codes,
            |_| "",
        )
    }

    /// `rclone sync` of what `rules` (anchored `+` lines; empty: the whole tree) select,
    /// within the job's filter.
    fn sync(&self, rules: &[u8]) -> Result<Outcome, HandlerError> {
        let mut filter = Vec::new();
        for l in &self.rclone.filter {
            filter.extend_from_slice(l.as_bytes());
            filter.push(b'\n');
        }
        if !rules.is_empty() {
            filter.extend_from_slice(rules);
            filter.extend_from_slice(b"- **\n");
        }
        self.run_rclone(
            "sync",
            &["--filter-from", "-", "--create-empty-src-dirs"],
            true,
            filter,
        )
    }

    /// The two passes of a live batch.
    fn passes(&self, p: &plan::Plan) -> Result<Outcome, HandlerError> {
        let mut outcome = Outcome::default();
        if !p.sync.is_empty() {
            outcome = self.sync(&p.sync)?;
        }
        if !p.copy.is_empty() {
            let flags = ["--files-from-raw", "-", "--no-traverse"];
            outcome.absorb(self.run_rclone("copy", &flags, true, p.copy.clone())?);
        }
        Ok(outcome)
    }

    /// Deletes at the destination what `rules` (anchored `+` lines) select, and the
    /// directories that leaves empty.
    fn clear(&self, rules: &[u8]) -> Result<Outcome, HandlerError> {
        let mut filter = rules.to_vec();
        filter.extend_from_slice(b"- **\n");
        let flags = ["--filter-from", "-", "--rmdirs"];
        self.run_rclone("delete", &flags, false, filter)
    }

    /// What the source holds at `rel`, no symlink followed.
    fn found(look: &mut crate::fs::Lookup, rel: &Path) -> Found {
        match look.lstat(rel) {
            Ok(m) if m.is_file() => Found::File,
            Ok(m) if m.is_dir() => Found::Dir,
            _ => Found::Absent,
        }
    }
}

impl Handler for RcloneHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.source)
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let mut look = crate::fs::Lookup::new(&self.source);
        let p = plan::plan(batch, |rel| Self::found(&mut look, rel));
        if p.full {
            return self.sync(&[]);
        }
        match self.passes(&p) {
            Err(e) if !p.in_the_way.is_empty() => {
                debug!("{e}; deleting what may be in the way at the destination, then again");
                if self.clear(&p.in_the_way).is_err() {
                    return Err(e);
                }
                self.passes(&p)
            }
            r => r,
        }
    }
}
