//! Running rsync for a batch: one process per pass, the `--files-from` list on its stdin,
//! the exclude and hide lists in private files; a receiver that rejects missing entries gets
//! the deletions as a pass of their own ([`deletions`]).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::RsyncHandler;
use super::args::{self, Pass};
use super::parallel;
use crate::fs::Lookup;
use crate::handler::deletions;
use crate::handler::{HandlerError, Outcome, Stdout};
use crate::model::{Batch, Entry};

/// `batch` as (the rest, the directories whose attributes alone changed). rsync recurses
/// into every directory of a `-r` run's list, and `--ignore-times` (a file's new content)
/// would then make it copy a whole tree again for one `chmod` of its top: such directories
/// go to a run of their own ([`Pass::DirAttrs`]), after the rest, so that their times are
/// set last.
///
/// Except those above a path of the rest (with `implied_dirs`, rsync's default): rsync
/// sends every directory above a listed path with its attributes, and sets them when that
/// run ends, so the run of the rest sets them already. Under churn these are most of them
/// (the root always, when anything else is synced), and the second rsync is not started.
fn split_dir_attrs(source: &Path, batch: &Batch, implied_dirs: bool) -> (Batch, Batch) {
    let mut look = Lookup::new(source);
    let (mut dirs, rest): (Vec<Entry>, Vec<Entry>) = batch.entries.iter().cloned().partition(|e| {
        e.attrs_only
            && !e.recursive
            && (e.rel.as_os_str().is_empty() || look.lstat(&e.rel).is_ok_and(|m| m.is_dir()))
    });
    if implied_dirs && !dirs.is_empty() && !rest.is_empty() {
        // Only paths there now: rsync sends no implied directory for a missing one.
        let above: HashSet<&Path> = rest
            .iter()
            .filter(|e| look.lstat(&e.rel).is_ok())
            .flat_map(|e| crate::relpath::ancestors(&e.rel))
            .collect();
        dirs.retain(|d| !above.contains(d.rel.as_path()));
    }
    let rest = Batch {
        renames: batch.renames.clone(),
        entries: rest,
        deletes: batch.deletes,
    };
    let dirs = Batch {
        renames: Vec::new(),
        entries: dirs,
        deletes: batch.deletes,
    };
    (rest, dirs)
}

impl RsyncHandler {
    /// The handler's lists directory ([`RsyncHandler::lists`]), made on the first call.
    pub(super) fn lists_dir(&self) -> Result<PathBuf, HandlerError> {
        use std::os::unix::fs::PermissionsExt;
        let mut guard = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = guard.as_ref() {
            return Ok(d.path().to_path_buf());
        }
        let io = |path: PathBuf| move |e| HandlerError::Io { path, source: e };
        let d = tempfile::Builder::new()
            .prefix("clsync-rsync.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(io(std::env::temp_dir()))?;
        if let Some(w) = &self.target.options.run_as {
            // Made by us, 0700, in $TMPDIR (sticky): nobody else can have replaced it yet.
            std::os::unix::fs::chown(d.path(), Some(w.uid), Some(w.gid))
                .map_err(io(d.path().to_path_buf()))?;
        }
        let path = d.path().to_path_buf();
        *guard = Some(d);
        Ok(path)
    }

    /// A private temporary file in the lists directory holding `bytes` for rsync to read
    /// (owned by the job's `user` when rsync runs as one).
    fn list_file(
        &self,
        prefix: &str,
        bytes: &[u8],
    ) -> Result<tempfile::NamedTempFile, HandlerError> {
        let io = |path: PathBuf| move |e| HandlerError::Io { path, source: e };
        let dir = self.lists_dir()?;
        let mut f = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&dir)
            .map_err(io(dir))?;
        f.write_all(bytes).map_err(io(f.path().to_path_buf()))?;
        if let Some(w) = &self.target.options.run_as {
            std::os::unix::fs::fchown(f.as_file(), Some(w.uid), Some(w.gid))
                .map_err(io(f.path().to_path_buf()))?;
        }
        Ok(f)
    }

    /// `batch` with the NUL-separated anchored `excludes` (besides the job's own) and
    /// `hidden` patterns (`--filter=H`): one rsync run, or for a receiver that rejects
    /// missing entries, a deletion pass and a run of the paths that exist.
    pub(super) fn transfer(
        &self,
        batch: &Batch,
        excludes: &[u8],
        hidden: &[Vec<u8>],
    ) -> Result<Outcome, HandlerError> {
        if batch.is_full() {
            let deletes = batch.deletes && !self.target.destination_is_empty();
            return self.transfer_full(deletes, excludes, hidden);
        }
        // Only when rsync is sure to send the paths below: no filter of the user's own may
        // leave one out, and implied directories are on.
        let args = &self.target.options.args;
        let implied_dirs = !args::has_own_filters(args)
            && !args
                .iter()
                .any(|a| ["--no-implied-dirs", "--no-i-d"].contains(&a.as_str()));
        let (rest, dirs) = split_dir_attrs(&self.target.source, batch, implied_dirs);
        let mut outcome = Outcome::default();
        if !rest.entries.is_empty() {
            outcome = self.transfer_paths(&rest, excludes, hidden)?;
        }
        if !dirs.entries.is_empty() {
            let list = args::files_from_list(&dirs);
            outcome.absorb(self.transfer_pass(
                dirs.deletes,
                &Pass::DirAttrs,
                list,
                excludes,
                hidden,
            )?);
        }
        Ok(outcome)
    }

    /// The whole tree: one run, or the root and then parts at once ([`parallel`]).
    fn transfer_full(
        &self,
        deletes: bool,
        excludes: &[u8],
        hidden: &[Vec<u8>],
    ) -> Result<Outcome, HandlerError> {
        let dirs = (self.lanes > 1
            && self.progress.is_none()
            && self.target.is_shell_or_local()
            && parallel::splits(&self.target.options.args))
        .then(|| parallel::top_level_dirs(&self.target.source))
        .flatten();
        let Some(dirs) = dirs else {
            return self.transfer_pass(deletes, &Pass::Full, Vec::new(), excludes, hidden);
        };
        let itemize = self.count_changes;
        let run = |pass: &Pass, list| {
            self.run_rsync_pass(deletes, pass, list, itemize, excludes, hidden, &[])
        };
        let mut outcome = run(&Pass::DirAttrs, b".\0".to_vec())?;
        outcome.absorb(combine_lanes(self.run_lanes(&dirs, deletes, &run))?);
        Ok(outcome)
    }

    /// The parts of a full sync: up to `lanes` threads (this one among them) take chunks of
    /// `dirs` and run `run` on each as one `-r` run, until none is left or one failed.
    fn run_lanes(
        &self,
        dirs: &[PathBuf],
        deletes: bool,
        run: &RunPass<'_>,
    ) -> Vec<Result<Outcome, HandlerError>> {
        let parts = parallel::Parts::new(dirs, self.lanes);
        let span = tracing::Span::current();
        let lane = || -> Result<Outcome, HandlerError> {
            let _in_job = span.enter();
            let mut outcome = Outcome::default();
            while let Some(chunk) = parts.take() {
                let batch = Batch {
                    renames: Vec::new(),
                    entries: chunk.iter().map(|d| Entry::tree(d)).collect(),
                    deletes,
                };
                let pass = Pass::Paths {
                    batch: &batch,
                    missing_args: false,
                };
                match run(&pass, args::files_from_list(&batch)) {
                    Ok(o) => outcome.absorb(o),
                    Err(e) => {
                        parts.fail();
                        return Err(e);
                    }
                }
            }
            Ok(outcome)
        };
        std::thread::scope(|s| {
            let others: Vec<_> = (1..self.lanes.min(dirs.len()))
                .map(|_| s.spawn(lane))
                .collect();
            let mut all = vec![lane()];
            all.extend(
                others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            all
        })
    }

    /// The paths of a live batch: one rsync run, or two for a receiver that rejects
    /// missing entries.
    fn transfer_paths(
        &self,
        batch: &Batch,
        excludes: &[u8],
        hidden: &[Vec<u8>],
    ) -> Result<Outcome, HandlerError> {
        // Nothing to delete: no deletion pass, whatever the receiver takes.
        if !batch.deletes {
            return self.transfer_split(batch, excludes, hidden);
        }
        self.target.whole_or_split(
            batch,
            || {
                let list = args::files_from_list(batch);
                self.transfer_pass(batch.deletes, &Pass::of(batch), list, excludes, hidden)
            },
            || self.transfer_split(batch, excludes, hidden),
        )
    }

    /// `batch` as two runs: the deletion pass (none when the batch may not remove), then
    /// the paths that exist.
    fn transfer_split(
        &self,
        batch: &Batch,
        excludes: &[u8],
        hidden: &[Vec<u8>],
    ) -> Result<Outcome, HandlerError> {
        let (present, gone) = deletions::split_missing(&self.target.source, batch);
        let mut outcome = Outcome::default();
        if let Some(pass) = deletions::plan(&gone).filter(|_| batch.deletes) {
            // The pass sends the parents' other entries too: what the rules deny there
            // stays excluded; its `P`/`R` rules go in the merge file beside the hidden roots.
            let excl = self.target.deletion_rule_excludes(&pass);
            outcome = self.run_rsync_pass(
                true,
                &Pass::Deletions,
                pass.contents,
                false,
                &excl,
                hidden,
                &pass.protect,
            )?;
        }
        if !present.entries.is_empty() {
            let list = args::files_from_list(&present);
            let paths = Pass::Paths {
                batch: &present,
                missing_args: false,
            };
            outcome.absorb(self.transfer_pass(batch.deletes, &paths, list, excludes, hidden)?);
        }
        Ok(outcome)
    }

    /// The hidden deep roots (`H` rules) and `extra` rules, in a merge file given to `cmd`
    /// first: not on the command line, since there may be thousands of deep roots, each
    /// pattern over 2,048 bytes, far more than ARG_MAX allows; NUL-terminated rules, read
    /// with --from0 (which must come before the merge rule). First, too, because a user's
    /// `--include` must not let rsync into the deep roots.
    fn merge_rules(
        &self,
        cmd: &mut crate::handler::Launch,
        hidden: &[Vec<u8>],
        extra: &[u8],
    ) -> Result<Option<tempfile::NamedTempFile>, HandlerError> {
        if hidden.is_empty() && extra.is_empty() {
            return Ok(None);
        }
        let mut rules = Vec::new();
        for h in hidden {
            rules.extend_from_slice(b"H ");
            rules.extend_from_slice(h);
            rules.push(0);
        }
        rules.extend_from_slice(extra);
        let f = self.list_file(".clsync-hide.", &rules)?;
        cmd.arg("--from0");
        let mut arg = OsString::from("--filter=merge ");
        arg.push(f.path());
        cmd.arg(arg);
        Ok(Some(f))
    }

    /// One rsync process for `pass`, its `--files-from` `list` on stdin.
    fn transfer_pass(
        &self,
        deletes: bool,
        pass: &Pass,
        list: Vec<u8>,
        excludes: &[u8],
        hidden: &[Vec<u8>],
    ) -> Result<Outcome, HandlerError> {
        let itemize = self.count_changes && matches!(pass, Pass::Full);
        self.run_rsync_pass(deletes, pass, list, itemize, excludes, hidden, &[])
    }

    /// One rsync process for `pass`; `itemize`: one line per change, counted; `extra`:
    /// NUL-terminated filter rules for its merge file besides the hidden deep roots.
    #[allow(clippy::too_many_arguments)]
    fn run_rsync_pass(
        &self,
        deletes: bool,
        pass: &Pass,
        list: Vec<u8>,
        itemize: bool,
        excludes: &[u8],
        hidden: &[Vec<u8>],
        extra: &[u8],
    ) -> Result<Outcome, HandlerError> {
        let full = matches!(pass, Pass::Full);
        // Kept alive until rsync has exited.
        let _excl_file = if excludes.is_empty() {
            None
        } else {
            Some(self.list_file(".clsync-exclude.", excludes)?)
        };
        let mut cmd = crate::handler::Launch::new(&self.target.options.path);
        cmd.run_as(self.target.options.run_as.as_ref());
        // Kept alive until rsync has exited.
        let _rules_file = self.merge_rules(&mut cmd, hidden, extra)?;
        let progress = self.progress.as_ref().filter(|_| full);
        cmd.args(args::rsync_args(
            &self.target,
            itemize && progress.is_none(),
            pass,
            OsStr::new("-"),
            _excl_file.as_ref().map(|f| f.path()),
            deletes,
        ));
        if progress.is_some() {
            // The whole list first, so that rsync's totals are the tree's.
            cmd.args(["--info=progress2", "--no-inc-recursive"]);
        }
        cmd.arg("--");
        cmd.arg(args::dir_arg(&self.target.source));
        cmd.arg(args::dest_arg(&self.target.destination));
        let program = self.target.options.path.display().to_string();
        debug!(
            list_bytes = list.len(),
            full,
            "running {program} {:?}",
            cmd.get_args().collect::<Vec<_>>()
        );
        let stdout = match progress {
            Some(t) => Stdout::Progress(t.clone()),
            None => Stdout::CountLines,
        };
        crate::handler::run_process_with(
            cmd,
            &program,
            (!full).then_some(list),
            stdout,
            self.target.options.timeout,
            &self.target.options.ignore_exit_codes,
            |code| {
                if code == 24 {
                    ": some files vanished during the transfer"
                } else {
                    ""
                }
            },
        )
    }
}

/// One rsync run of a pass and its `--files-from` list.
type RunPass<'a> = dyn Fn(&Pass, Vec<u8>) -> Result<Outcome, HandlerError> + Sync + 'a;

/// The lanes' outcomes together, or the first error; an error that a path is too deep for
/// rsync ahead of any other, since it is what hands the sync to the mirror.
fn combine_lanes(lanes: Vec<Result<Outcome, HandlerError>>) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let mut failed: Vec<HandlerError> = Vec::new();
    for r in lanes {
        match r {
            Ok(o) => outcome.absorb(o),
            Err(e) => failed.push(e),
        }
    }
    match failed.iter().position(super::too_deep_for_rsync) {
        Some(i) => Err(failed.swap_remove(i)),
        None => failed.into_iter().next().map_or(Ok(outcome), Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, attrs_only: bool) -> Entry {
        Entry {
            rel: rel.into(),
            recursive: false,
            attrs_only,
        }
    }

    /// Directories above a path of the main pass get their attributes from it (rsync's
    /// implied directories): no pass of their own, unless `--no-implied-dirs`.
    #[test]
    fn directories_above_the_main_pass_need_no_attribute_pass() {
        let src = tempfile::tempdir().unwrap();
        for d in ["a", "b"] {
            std::fs::create_dir(src.path().join(d)).unwrap();
        }
        std::fs::write(src.path().join("a/f"), "x").unwrap();
        let batch = Batch {
            renames: Vec::new(),
            entries: vec![
                entry("", true),
                entry("a", true),
                entry("a/f", false),
                entry("b", true),
            ],
            deletes: true,
        };
        let names = |b: &Batch| b.entries.iter().map(|e| e.rel.clone()).collect::<Vec<_>>();
        let (rest, dirs) = split_dir_attrs(src.path(), &batch, true);
        assert_eq!(names(&rest), [PathBuf::from("a/f")]);
        assert_eq!(names(&dirs), [PathBuf::from("b")]);
        let (_, dirs) = split_dir_attrs(src.path(), &batch, false);
        assert_eq!(names(&dirs), ["", "a", "b"].map(PathBuf::from));
        // Nothing else synced: the root's attributes are a pass of their own.
        let only = Batch {
            entries: vec![entry("", true)],
            ..batch
        };
        let (rest, dirs) = split_dir_attrs(src.path(), &only, true);
        assert!(rest.entries.is_empty());
        assert_eq!(names(&dirs), [PathBuf::from("")]);
    }
}
