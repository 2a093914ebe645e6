//! One run of the program: its list files written, its argument vector and environment
//! built, the program run to completion in its own process group (the job's `timeout` kills
//! the whole group), the list files removed unless `keep_lists`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::debug;

use super::lists::{ListFile, ListsDir};
use super::{CommandHandler, ListOf, Values, event, expand, file_kind, rel_arg, shell_records};
use crate::config::{CommandKind, Placeholder};
use crate::fs::Lookup;
use crate::handler::deletions::DeletionPass;
use crate::handler::rsync::{Pass, files_from_list, rsync_args};
use crate::handler::{HandlerError, Launch, Outcome};
use crate::model::{Batch, Entry};
use crate::relpath;

/// The lists of one run, each written when the run needs it.
struct Lists {
    /// The paths: shell mode's records, else the rsync `--files-from` list.
    paths: Option<ListFile>,
    /// The job's excludes, then the rule excludes (or a deletion's rules).
    excludes: Option<ListFile>,
    /// The anchored excludes for what the regex rules deny (inside `excludes`).
    rule_excludes: Vec<u8>,
}

impl CommandHandler {
    /// One run of the program for `entries`; `what`: what its rsync lists and
    /// `%RSYNC-ARGS%` send; `deletes`: whether `%RSYNC-ARGS%` may remove anything.
    pub(super) fn run_one(
        &self,
        entries: &[Entry],
        full: bool,
        deletes: bool,
        what: &ListOf,
    ) -> Result<Outcome, HandlerError> {
        let batch = Batch {
            renames: Vec::new(),
            entries: entries.to_vec(),
            deletes,
        };
        let lists = self.write_lists(&batch, full, what)?;
        let list_path = lists.paths.as_ref().map(|f| f.path());
        let excl_path = lists.excludes.as_ref().map(|f| f.path());
        let rsync_argv = if self.uses(Placeholder::RsyncArgs) {
            let pass = match what {
                _ if full => Pass::Full,
                ListOf::Deletions(_) => Pass::Deletions,
                what => Pass::Paths {
                    batch: &batch,
                    missing_args: matches!(what, ListOf::Paths),
                },
            };
            rsync_args(
                &self.rsync,
                false,
                &pass,
                list_path.map_or(OsStr::new("-"), |p| p.as_os_str()),
                excl_path.filter(|_| !lists.rule_excludes.is_empty()),
                deletes,
            )
        } else {
            Vec::new()
        };
        let include_list: Vec<OsString> = entries.iter().map(|e| rel_arg(&e.rel)).collect();
        let (event, path) = self.event_and_path(entries, full);
        let type_ = if full { "initialsync" } else { "sync" };
        let destination = OsString::from(self.destination.to_string());
        let values = Values {
            include_list: &include_list,
            include_list_path: list_path,
            exclude_list_path: excl_path,
            rsync_args: &rsync_argv,
            type_,
            event,
            path: &path,
            source: &self.source,
            destination: &destination,
            job: &self.job,
        };
        let argv = expand(&self.options.args, &values);
        let program = self.options.path.display().to_string();
        debug!(
            paths = entries.len(),
            full,
            "running {program} {:?}",
            argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>()
        );
        let result = crate::handler::run_process(
            self.command(&argv, &values),
            &program,
            None,
            self.timeout,
            &self.ignore_exit_codes,
            |_| "",
        )
        // What a user's command prints says nothing about what it changed.
        .map(|o| Outcome { changed: None, ..o });
        if self.options.keep_lists {
            for f in [lists.paths, lists.excludes].into_iter().flatten() {
                // (Not inside `debug!`, which does not evaluate its arguments when off.)
                let kept = f.keep();
                debug!("kept list file {}", kept.display());
            }
        }
        result
    }

    /// Writes the lists the run's mode and template need, opening the lists directory
    /// with the first.
    fn write_lists(&self, batch: &Batch, full: bool, what: &ListOf) -> Result<Lists, HandlerError> {
        let kind = self.options.kind;
        let rsync_args = self.uses(Placeholder::RsyncArgs);
        let deletion = match what {
            ListOf::Deletions(p) => Some(*p),
            _ => None,
        };
        // Opened when the run writes its first list.
        let mut dir: Option<Arc<ListsDir>> = None;
        let paths = if kind == CommandKind::Shell
            || kind == CommandKind::RsyncShell
            || self.uses(Placeholder::IncludeListPath)
            || (rsync_args && !full)
        {
            let data = self.paths_list(batch, full, deletion);
            Some(self.write_list(&mut dir, ".clsync-list.", &data)?)
        } else {
            None
        };
        let wants_excludes = kind == CommandKind::RsyncShell
            || rsync_args
            || self.uses(Placeholder::ExcludeListPath);
        let rule_excludes = match deletion {
            _ if !wants_excludes => Vec::new(),
            None => self.rsync.batch_rule_excludes(batch),
            // `-d` over the parents sends their other entries: the rules still hold there.
            Some(p) if rsync_args => self.rsync.deletion_rule_excludes(p),
            // The rules form sees only the deleted names.
            Some(_) => Vec::new(),
        };
        let excludes = if kind == CommandKind::RsyncShell
            || self.uses(Placeholder::ExcludeListPath)
            || (rsync_args && !rule_excludes.is_empty())
        {
            let mut data = Vec::new();
            for pat in self.filter.excludes() {
                data.extend_from_slice(pat.as_bytes());
                data.push(0);
            }
            data.extend_from_slice(&rule_excludes);
            if let Some(p) = deletion.filter(|_| !rsync_args) {
                data.extend_from_slice(&p.rules);
            }
            Some(self.write_list(&mut dir, ".clsync-exclude.", &data)?)
        } else {
            None
        };
        Ok(Lists {
            paths,
            excludes,
            rule_excludes,
        })
    }

    /// The content of the run's list: shell mode's records, a deletion pass's parents (its
    /// contents with `%RSYNC-ARGS%`), else the rsync `--files-from` list.
    fn paths_list(&self, batch: &Batch, full: bool, deletion: Option<&DeletionPass>) -> Vec<u8> {
        if self.options.kind == CommandKind::Shell {
            shell_records(&self.source, &batch.entries, full)
        } else if let Some(p) = deletion {
            if self.uses(Placeholder::RsyncArgs) {
                p.contents.clone()
            } else {
                p.list.clone()
            }
        } else {
            files_from_list(batch)
        }
    }

    /// simple mode's `%EVENT%` and `%PATH%` (the absolute source path); empty otherwise.
    fn event_and_path(&self, entries: &[Entry], full: bool) -> (&'static str, PathBuf) {
        match entries.first() {
            Some(e) if self.options.kind == CommandKind::Simple => {
                let abs = relpath::join(&self.source, &e.rel);
                let kind = file_kind(&mut Lookup::new(&self.source), &e.rel);
                (event(full, e, kind), abs)
            }
            _ => ("", PathBuf::new()),
        }
    }

    /// The program with `argv`, as the job's `user`, in the source directory, with the
    /// `CLSYNC_*` environment.
    fn command(&self, argv: &[OsString], v: &Values<'_>) -> Launch {
        let mut cmd = Launch::new(&self.options.path);
        cmd.run_as(self.rsync.options.run_as.as_ref());
        cmd.args(argv)
            .current_dir(&self.source)
            .env("CLSYNC_JOB", &self.job)
            .env("CLSYNC_SOURCE", &self.source)
            .env("CLSYNC_DESTINATION", v.destination)
            .env("CLSYNC_TYPE", v.type_);
        if let Some(p) = v.include_list_path {
            cmd.env("CLSYNC_LIST", p);
        }
        if let Some(p) = v.exclude_list_path {
            cmd.env("CLSYNC_EXCLUDE_LIST", p);
        }
        cmd
    }
}
