//! The command modes (`direct`, `shell`, `simple`, `rsync-shell`): an external program
//! (`[command] path`) is run for each batch, as the C clsync's modes of the same names did.
//!
//! The program is executed directly with an argument vector built from `[command] args` (or
//! the mode's default template): never through a shell, cwd = the source directory, in its
//! own process group (the job's `timeout` kills the whole group). A template argument that is
//! *exactly* a placeholder such as `%INCLUDE-LIST%` is replaced; placeholders inside a larger
//! argument stay literal, so a file name can never become part of another argument, and
//! names reach the program either as whole arguments or NUL-separated in list files. A
//! path is never given with a leading `-`: a top-level name like `--target-directory=DIR`
//! comes as `./--target-directory=DIR` (`rel_arg`; rsync lists have `./` on every path).
//!
//! List files are written into the job's lists directory (`[command] lists_dir`, else a
//! private `0700` directory under `$TMPDIR` removed with the handler), `0600`, one unique
//! name per run, removed after the run unless `keep_lists`. A configured `lists_dir` must
//! belong to the daemon's user or the job's `user` and not be writable by group or others
//! (checked on the open directory at every run, see `open_lists_dir`); the files are
//! created and removed relative to that descriptor. With `user`, the private directory and
//! the list files belong to that user, so that the program can read them.
//!
//! A program that runs rsync (`rsync-shell`, or `%RSYNC-ARGS%`) gets its lists and arguments
//! from the job's [`RsyncTarget`], as the rsync handler builds them, and teaches it what the
//! receiver accepts; the command handler owns no other handler. Files: `argv` (the argument
//! vector), `lists` (list files and their directory), `run` (one run of the program).

mod argv;
mod lists;
mod run;
#[cfg(test)]
mod tests;

use argv::{
    MAX_ARG_BYTES, MAX_ARGS, Values, event, expand, file_kind, rel_arg, shell_records, split_runs,
};
use lists::ListsDir;

use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::deletions::{self, DeletionPass};
use super::rsync::RsyncTarget;
use super::{Handler, HandlerError, Outcome};
use crate::config::{CommandKind, CommandOptions, Destination, HandlerOptions, Placeholder};
use crate::model::{Batch, Entry};
use crate::rules::Filter;

/// Runs `[command] path` per batch (per path in simple mode). See the module documentation.
pub struct CommandHandler {
    job: String,
    source: PathBuf,
    destination: Destination,
    options: CommandOptions,
    timeout: Option<Duration>,
    ignore_exit_codes: Vec<i32>,
    filter: Arc<Filter>,
    /// The job's rsync and its receiver: `%RSYNC-ARGS%`, the `--files-from` list and the
    /// rule excludes are built from it exactly as the rsync mode builds them.
    rsync: RsyncTarget,
    /// The default lists directory, created on first use, removed when the handler is
    /// dropped; held open.
    private_dir: Mutex<Option<(tempfile::TempDir, Arc<ListsDir>)>>,
}

impl CommandHandler {
    pub fn new(
        job: String,
        source: PathBuf,
        destination: Destination,
        options: CommandOptions,
        rsync: HandlerOptions,
        filter: Arc<Filter>,
    ) -> CommandHandler {
        CommandHandler {
            job,
            timeout: rsync.timeout,
            ignore_exit_codes: rsync.ignore_exit_codes.clone(),
            rsync: RsyncTarget::new(source.clone(), destination.clone(), rsync, filter.clone()),
            source,
            destination,
            options,
            filter,
            private_dir: Mutex::new(None),
        }
    }

    /// The program runs rsync with clsync's lists or arguments (`rsync-shell`, or a
    /// template with `%RSYNC-ARGS%`).
    fn runs_rsync(&self) -> bool {
        self.options.kind == CommandKind::RsyncShell || self.uses(Placeholder::RsyncArgs)
    }

    fn uses(&self, p: Placeholder) -> bool {
        self.options
            .args
            .iter()
            .any(|a| Placeholder::parse(a) == Some(Ok(p)))
    }

    /// The batch's runs: one per path in simple mode; in the other modes one, unless the
    /// paths as arguments (`%INCLUDE-LIST%`) would not fit in an argument vector.
    fn runs(&self, batch: &Batch) -> Vec<Range<usize>> {
        let n = batch.entries.len();
        if self.options.kind == CommandKind::Simple {
            (0..n).map(|i| i..i + 1).collect()
        } else if self.uses(Placeholder::IncludeList) {
            split_runs(
                batch.entries.iter().map(|e| rel_arg(&e.rel).len()),
                MAX_ARGS,
                MAX_ARG_BYTES,
            )
        } else {
            std::iter::once(0..n).collect()
        }
    }

    /// The runs of a live batch for a program that runs rsync (`rsync-shell`, or a template
    /// with `%RSYNC-ARGS%`): one, or for a receiver that rejects missing entries and a
    /// batch with deletions, a deletion run and a run of the paths that exist
    /// ([`deletions`]). With `%RSYNC-ARGS%` the deletion run sends the parents' contents one
    /// level deep; otherwise its list holds the parents and its exclude list (after the
    /// job's excludes) the rules that limit rsync to the deleted names, so that a script
    /// following the documented pattern (`rsync -a --delete -r --files-from="$1" --from0
    /// --exclude-from="$2"`) deletes them.
    ///
    /// A batch that may not remove anything (`deletes` false) is one run of the paths that
    /// exist, so that neither `%RSYNC-ARGS%` nor a script deletes a path gone from the source.
    fn run_rsync_lists(&self, entries: &[Entry], deletes: bool) -> Result<Outcome, HandlerError> {
        let batch = Batch {
            renames: Vec::new(),
            entries: entries.to_vec(),
            deletes,
        };
        if !deletes {
            let (present, _) = deletions::split_missing(&self.source, &batch);
            if present.entries.is_empty() {
                return Ok(Outcome::default());
            }
            return self.run_one(&present.entries, false, false, &ListOf::Existing);
        }
        self.rsync.whole_or_split(
            &batch,
            || self.run_one(entries, false, true, &ListOf::Paths),
            || self.run_split(&batch),
        )
    }

    /// `batch` as a deletion run and a run of the paths that exist.
    fn run_split(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let (present, gone) = deletions::split_missing(&self.source, batch);
        let mut outcome = Outcome::default();
        if let Some(pass) = deletions::plan(&gone) {
            let parents: Vec<Entry> = pass
                .list
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| Entry {
                    rel: PathBuf::from(OsStr::from_bytes(s.strip_prefix(b"./").unwrap_or(b""))),
                    ..Entry::default()
                })
                .collect();
            outcome = self.run_one(&parents, false, true, &ListOf::Deletions(&pass))?;
        }
        if !present.entries.is_empty() {
            let o = self.run_one(&present.entries, false, true, &ListOf::Existing)?;
            outcome.warnings.extend(o.warnings);
        }
        Ok(outcome)
    }
}

impl Handler for CommandHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.source)
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        if let Destination::Local(dst) = &self.destination {
            crate::handler::ensure_local_destination(dst, self.rsync.options.run_as.as_ref())?;
        }
        let full = batch.is_full();
        let entries: Vec<Entry> = if full {
            Batch::full().entries
        } else {
            batch.entries.clone()
        };
        let deletes = batch.deletes;
        let batch = Batch {
            renames: Vec::new(),
            entries,
            deletes,
        };
        let runs_rsync = self.runs_rsync();
        let mut outcome = Outcome::default();
        for run in self.runs(&batch) {
            let entries = &batch.entries[run];
            let o = if runs_rsync && !full {
                self.run_rsync_lists(entries, deletes)?
            } else {
                self.run_one(entries, full, deletes, &ListOf::Paths)?
            };
            outcome.warnings.extend(o.warnings);
        }
        Ok(outcome)
    }

    /// The destination as a run makes it, and the lists directory when it can be had (if
    /// not, a run that needs it fails with the reason).
    fn prepare(&self) -> Result<Vec<PathBuf>, HandlerError> {
        if let Destination::Local(dst) = &self.destination {
            crate::handler::ensure_local_destination(dst, self.rsync.options.run_as.as_ref())?;
        }
        Ok(self
            .lists_dir()
            .map(|d| d.path.clone())
            .into_iter()
            .collect())
    }

    fn rsync_report(&self) -> Option<super::receiver::Report> {
        self.runs_rsync().then(|| self.rsync.report())
    }
}

/// What the rsync lists and `%RSYNC-ARGS%` of a run send.
enum ListOf<'a> {
    /// The batch's paths, with `--delete-missing-args`.
    Paths,
    /// Only paths that exist: deletions go in a pass of their own.
    Existing,
    Deletions(&'a DeletionPass),
}

/// Reads a NUL-separated list back into paths (tests, and scripts' point of view).
#[cfg(test)]
fn read_nul_list(data: &[u8]) -> Vec<PathBuf> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(OsStr::from_bytes(s)))
        .collect()
}
