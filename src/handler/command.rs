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

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;

use super::deletions::{self, DeletionPass};
use super::receiver::MissingArgs;
use super::rsync::{Pass, RsyncHandler, split_missing};
use super::{Handler, HandlerError, Outcome};
use crate::config::{CommandKind, CommandOptions, Destination, HandlerOptions, Placeholder, RunAs};
use crate::fs::Lookup;
use crate::model::{Batch, Entry};
use crate::relpath;
use crate::rules::Filter;

/// `direct` splits a batch into several runs above this many paths…
pub(crate) const MAX_ARGS: usize = 100_000;
/// …or above this many bytes of path arguments (Linux allows 2 MiB of argv and environment
/// by default; the template and the environment need some of it).
pub(crate) const MAX_ARG_BYTES: usize = 1 << 20;

/// What a shell-mode record (and simple mode's `%EVENT%`) says happened to a path.
pub(crate) fn event(full: bool, entry: &Entry, kind: &str) -> &'static str {
    if full {
        "initialsync"
    } else if kind == "missing" {
        "delete"
    } else if entry.recursive {
        "tree"
    } else if entry.attrs_only {
        "attrib"
    } else {
        "sync"
    }
}

/// The type of `path` now (lstat): `file`, `dir`, `symlink`, `other` or `missing`.
pub(crate) fn file_kind(source: &mut Lookup, rel: &Path) -> &'static str {
    match source.lstat(rel) {
        Err(_) => "missing",
        Ok(m) if m.is_symlink() => "symlink",
        Ok(m) if m.is_dir() => "dir",
        Ok(m) if m.is_file() => "file",
        Ok(_) => "other",
    }
}

/// A path relative to the source as an argument or list item: the root is `.`, and a path
/// that starts with `-` (only a top-level name can) is given as `./NAME`, so that no
/// program takes a file name for an option (`cp --parents %INCLUDE-LIST%` with a file named
/// `--target-directory=DIR`).
pub(crate) fn rel_arg(rel: &Path) -> OsString {
    let s = rel.as_os_str();
    if s.is_empty() {
        OsString::from(".")
    } else if s.as_bytes().starts_with(b"-") {
        let mut out = OsString::from("./");
        out.push(s);
        out
    } else {
        s.to_os_string()
    }
}

/// shell mode's list: `EVENT\0TYPE\0PATH\0` per path.
pub(crate) fn shell_records(source: &Path, entries: &[Entry], full: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut look = Lookup::new(source);
    for e in entries {
        let kind = file_kind(&mut look, &e.rel);
        for field in [
            event(full, e, kind).as_bytes(),
            kind.as_bytes(),
            rel_arg(&e.rel).as_bytes(),
        ] {
            out.extend_from_slice(field);
            out.push(0);
        }
    }
    out
}

/// Splits path arguments (their lengths) into consecutive runs of at most `max_count` paths
/// and `max_bytes` bytes (each argument also costs its NUL and its pointer). A path longer
/// than `max_bytes` gets a run of its own.
pub(crate) fn split_runs(
    lens: impl IntoIterator<Item = usize>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut count, mut bytes) = (0, 0, 0);
    let mut i = 0;
    for len in lens {
        let cost = len + 1 + std::mem::size_of::<usize>();
        if count > 0 && (count + 1 > max_count || bytes + cost > max_bytes) {
            runs.push(start..i);
            (start, count, bytes) = (i, 0, 0);
        }
        count += 1;
        bytes += cost;
        i += 1;
    }
    if count > 0 {
        runs.push(start..i);
    }
    runs
}

/// The values placeholders stand for in one run.
pub(crate) struct Values<'a> {
    pub include_list: &'a [OsString],
    pub include_list_path: Option<&'a Path>,
    pub exclude_list_path: Option<&'a Path>,
    pub rsync_args: &'a [OsString],
    pub type_: &'a str,
    pub event: &'a str,
    pub path: &'a Path,
    pub source: &'a Path,
    pub destination: &'a OsStr,
    pub job: &'a str,
}

/// Builds the argument vector: template arguments that are exactly a placeholder are
/// replaced (the list ones by any number of arguments), all others are kept literally.
pub(crate) fn expand(template: &[String], v: &Values<'_>) -> Vec<OsString> {
    let path_or_empty = |p: Option<&Path>| p.map_or_else(OsString::new, |p| p.into());
    let mut out = Vec::new();
    for arg in template {
        match Placeholder::parse(arg) {
            Some(Ok(p)) => match p {
                Placeholder::IncludeList => out.extend(v.include_list.iter().cloned()),
                Placeholder::IncludeListPath => out.push(path_or_empty(v.include_list_path)),
                Placeholder::ExcludeListPath => out.push(path_or_empty(v.exclude_list_path)),
                Placeholder::RsyncArgs => out.extend(v.rsync_args.iter().cloned()),
                Placeholder::Type => out.push(v.type_.into()),
                Placeholder::Event => out.push(v.event.into()),
                Placeholder::Path => out.push(v.path.into()),
                Placeholder::Source => out.push(v.source.into()),
                Placeholder::Destination => out.push(v.destination.into()),
                Placeholder::Job => out.push(v.job.into()),
            },
            // Unknown ones are rejected when the configuration is loaded.
            _ => out.push(arg.into()),
        }
    }
    out
}

/// Runs `[command] path` per batch (per path in simple mode). See the module documentation.
pub struct CommandHandler {
    job: String,
    source: PathBuf,
    destination: Destination,
    options: CommandOptions,
    timeout: Option<Duration>,
    ignore_exit_codes: Vec<i32>,
    filter: Arc<Filter>,
    /// Builds `%RSYNC-ARGS%`, the `--files-from` list and the rule excludes, exactly as the
    /// rsync mode does.
    rsync: RsyncHandler,
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
            rsync: RsyncHandler::new(source.clone(), destination.clone(), rsync, filter.clone()),
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

    /// The lists directory, open: `[command] lists_dir` (checked on every call, see
    /// [`open_lists_dir`]) or the job's private directory (created on first use, owned by
    /// the job's `user` when it has one).
    fn lists_dir(&self) -> Result<Arc<ListsDir>, HandlerError> {
        let who = self.rsync.options().run_as.as_ref();
        if let Some(dir) = &self.options.lists_dir {
            return open_lists_dir(dir, who).map(Arc::new);
        }
        let mut guard = self.private_dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, dir)) = guard.as_ref() {
            return Ok(dir.clone());
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("clsync-{}.", self.job))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| HandlerError::Io {
                path: std::env::temp_dir(),
                source: e,
            })?;
        let path = tmp.path().to_path_buf();
        let io = |e| HandlerError::Io {
            path: path.clone(),
            source: e,
        };
        // Created 0700 by us in $TMPDIR (sticky): nobody else can have replaced it yet.
        let fd = open_dir_nofollow(&path).map_err(io)?;
        if let Some(w) = who {
            std::os::unix::fs::fchown(&fd, Some(w.uid), Some(w.gid)).map_err(io)?;
        }
        let dir = Arc::new(ListsDir {
            path,
            fd: fd.into(),
        });
        *guard = Some((tmp, dir.clone()));
        Ok(dir)
    }

    /// Writes a list file (0600, unique name, owned by the job's `user` when it has one)
    /// into the lists directory, opening it on the run's first list.
    fn write_list(
        &self,
        dir: &mut Option<Arc<ListsDir>>,
        prefix: &str,
        data: &[u8],
    ) -> Result<ListFile, HandlerError> {
        let dir = match dir {
            Some(d) => d.clone(),
            None => dir.insert(self.lists_dir()?).clone(),
        };
        ListFile::create(&dir, prefix, data, self.rsync.options().run_as.as_ref())
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
    fn run_rsync_lists(&self, entries: &[Entry]) -> Result<Outcome, HandlerError> {
        let batch = Batch {
            renames: Vec::new(),
            entries: entries.to_vec(),
        };
        if self.rsync.missing_args() != MissingArgs::Rejected {
            let learning = self.rsync.would_learn(&batch);
            match self.run_one(entries, false, &ListOf::Paths) {
                Err(e) if self.rsync.learn_rejection(&e) => {}
                Err(e) if self.rsync.may_be_silent_rejection(learning, &e) => {
                    return match self.run_split(&batch) {
                        Ok(o) => {
                            self.rsync.learn_rejected(None);
                            Ok(o)
                        }
                        Err(_) => Err(e),
                    };
                }
                Ok(o) => {
                    if learning {
                        self.rsync.learn_accepted();
                    }
                    return Ok(o);
                }
                Err(e) => return Err(e),
            }
        }
        self.run_split(&batch)
    }

    /// `batch` as a deletion run and a run of the paths that exist.
    fn run_split(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        let (present, gone) = split_missing(&self.source, batch);
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
            outcome = self.run_one(&parents, false, &ListOf::Deletions(&pass))?;
        }
        if !present.entries.is_empty() {
            let o = self.run_one(&present.entries, false, &ListOf::Existing)?;
            outcome.warnings.extend(o.warnings);
        }
        Ok(outcome)
    }

    /// One run of the program for `entries`; `what`: what its rsync lists and
    /// `%RSYNC-ARGS%` send.
    fn run_one(
        &self,
        entries: &[Entry],
        full: bool,
        what: &ListOf,
    ) -> Result<Outcome, HandlerError> {
        let kind = self.options.kind;
        let batch = Batch {
            renames: Vec::new(),
            entries: entries.to_vec(),
        };
        let rsync_args = self.uses(Placeholder::RsyncArgs);
        let deletion = match what {
            ListOf::Deletions(p) => Some(p),
            _ => None,
        };
        // Opened when the run writes its first list.
        let mut dir = None;
        // The list: shell mode's records, else the rsync `--files-from` list.
        let list = if kind == CommandKind::Shell
            || kind == CommandKind::RsyncShell
            || self.uses(Placeholder::IncludeListPath)
            || (rsync_args && !full)
        {
            let data = if kind == CommandKind::Shell {
                shell_records(&self.source, entries, full)
            } else if let Some(p) = deletion {
                if rsync_args {
                    p.contents.clone()
                } else {
                    p.list.clone()
                }
            } else {
                RsyncHandler::files_from_list(&batch)
            };
            Some(self.write_list(&mut dir, ".clsync-list.", &data)?)
        } else {
            None
        };
        let wants_excludes = kind == CommandKind::RsyncShell
            || rsync_args
            || self.uses(Placeholder::ExcludeListPath);
        let rule_excludes = match deletion {
            _ if !wants_excludes => Vec::new(),
            None => self.rsync.batch_rule_excludes(&batch),
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
        let list_path = list.as_ref().map(|f| f.path());
        let excl_path = excludes.as_ref().map(|f| f.path());
        let rsync_argv = match rsync_args {
            true => {
                let pass = match what {
                    _ if full => Pass::Full,
                    ListOf::Deletions(_) => Pass::Deletions,
                    what => Pass::Paths {
                        batch: &batch,
                        missing_args: matches!(what, ListOf::Paths),
                    },
                };
                self.rsync.args(
                    &pass,
                    list_path.map_or(OsStr::new("-"), |p| p.as_os_str()),
                    excl_path.filter(|_| !rule_excludes.is_empty()),
                )
            }
            false => Vec::new(),
        };
        let include_list: Vec<OsString> = entries.iter().map(|e| rel_arg(&e.rel)).collect();
        let (event, path) = match entries.first() {
            Some(e) if kind == CommandKind::Simple => {
                let abs = relpath::join(&self.source, &e.rel);
                (
                    event(full, e, file_kind(&mut Lookup::new(&self.source), &e.rel)),
                    abs,
                )
            }
            _ => ("", PathBuf::new()),
        };
        let type_ = if full { "initialsync" } else { "sync" };
        let destination = OsString::from(self.destination.to_string());
        let argv = expand(
            &self.options.args,
            &Values {
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
            },
        );
        let mut cmd = Command::new(&self.options.path);
        super::run_as(&mut cmd, self.rsync.options().run_as.as_ref());
        cmd.args(&argv)
            .current_dir(&self.source)
            .env("CLSYNC_JOB", &self.job)
            .env("CLSYNC_SOURCE", &self.source)
            .env("CLSYNC_DESTINATION", &destination)
            .env("CLSYNC_TYPE", type_);
        if let Some(p) = list_path {
            cmd.env("CLSYNC_LIST", p);
        }
        if let Some(p) = excl_path {
            cmd.env("CLSYNC_EXCLUDE_LIST", p);
        }
        let program = self.options.path.display().to_string();
        debug!(
            paths = entries.len(),
            full,
            "running {program} {:?}",
            argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>()
        );
        let result = super::run_process(
            cmd,
            &program,
            None,
            self.timeout,
            &self.ignore_exit_codes,
            |_| "",
        )
        // What a user's command prints says nothing about what it changed.
        .map(|o| Outcome { changed: None, ..o });
        if self.options.keep_lists {
            for f in [list, excludes].into_iter().flatten() {
                // (Not inside `debug!`, which does not evaluate its arguments when off.)
                let kept = f.keep();
                debug!("kept list file {}", kept.display());
            }
        }
        result
    }
}

impl Handler for CommandHandler {
    fn source(&self) -> Option<&Path> {
        Some(&self.source)
    }

    fn run(&self, batch: &Batch) -> Result<Outcome, HandlerError> {
        if let Destination::Local(dst) = &self.destination {
            super::ensure_local_destination(dst, self.rsync.options().run_as.as_ref())?;
        }
        let full = batch.is_full();
        let entries: Vec<Entry> = if full {
            Batch::full().entries
        } else {
            batch.entries.clone()
        };
        let batch = Batch {
            renames: Vec::new(),
            entries,
        };
        let runs_rsync = self.runs_rsync();
        let mut outcome = Outcome::default();
        for run in self.runs(&batch) {
            let entries = &batch.entries[run];
            let o = if runs_rsync && !full {
                self.run_rsync_lists(entries)?
            } else {
                self.run_one(entries, full, &ListOf::Paths)?
            };
            outcome.warnings.extend(o.warnings);
        }
        Ok(outcome)
    }

    /// The destination as a run makes it, and the lists directory when it can be had (if
    /// not, a run that needs it fails with the reason).
    fn prepare(&self) -> Result<Vec<PathBuf>, HandlerError> {
        if let Destination::Local(dst) = &self.destination {
            super::ensure_local_destination(dst, self.rsync.options().run_as.as_ref())?;
        }
        Ok(self
            .lists_dir()
            .map(|d| d.path.clone())
            .into_iter()
            .collect())
    }

    fn rsync_report(&self) -> Option<super::receiver::Report> {
        self.runs_rsync()
            .then(|| self.rsync.rsync_report())
            .flatten()
    }
}

/// A lists directory, held open: list files are created in it with `openat` (`O_EXCL`,
/// `O_NOFOLLOW`) and removed with `unlinkat`, so a path swapped after the check cannot
/// send them anywhere else.
pub(crate) struct ListsDir {
    path: PathBuf,
    fd: OwnedFd,
}

/// Opens `path` as a directory without following a symlink in its last component.
fn open_dir_nofollow(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `name (uid N)`, or `uid N` for a uid without a name.
fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// Why `[command] lists_dir` (its `fstat`) is not safe for list files: it must belong to
/// the daemon's user (`euid`) or the job's `user`, must not be writable by group or others
/// (anyone who can write there could replace a list between its writing and the program's
/// reading, or plant names in it), and the job's `user` must be able to reach files in it.
pub(crate) fn lists_dir_problem(
    uid: u32,
    gid: u32,
    mode: u32,
    euid: u32,
    who: Option<&RunAs>,
) -> Option<String> {
    let mode = mode & 0o7777;
    if uid != euid && who.is_none_or(|w| w.uid != uid) {
        let owners = match who {
            Some(w) if w.uid != euid => format!(
                "{} (the daemon) or {} (the job's user)",
                describe_uid(euid),
                describe_uid(w.uid)
            ),
            _ => format!("{} (the daemon)", describe_uid(euid)),
        };
        return Some(format!(
            "is owned by {}, not by {owners}",
            describe_uid(uid)
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "has mode {mode:04o}: it must not be writable by group or others"
        ));
    }
    if let Some(w) = who {
        let search = if uid == w.uid {
            0o100
        } else if gid == w.gid {
            0o010
        } else {
            0o001
        };
        if mode & search == 0 {
            return Some(format!(
                "has mode {mode:04o} and owner {}: the job's user {} cannot reach the list files in it",
                describe_uid(uid),
                describe_uid(w.uid)
            ));
        }
    }
    None
}

/// Opens `[command] lists_dir` for this run's list files. A missing directory is created
/// `0700` (its missing parents too, `0755` when handlers run as the job's `user`, who must
/// reach it) and given to the job's `user`. An existing one is refused when it is a
/// symlink, not a directory, or fails [`lists_dir_problem`]; the checks are made on the
/// opened descriptor, which the list files are then created in.
pub(crate) fn open_lists_dir(path: &Path, who: Option<&RunAs>) -> Result<ListsDir, HandlerError> {
    let refuse = |why: &str| {
        HandlerError::Other(format!(
            "[command] lists_dir {}: {why}; refusing to write list files there",
            path.display()
        ))
    };
    let io = |e| HandlerError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut created = false;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("is a symlink")),
        Ok(m) if !m.is_dir() => return Err(refuse("is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(if who.is_some() { 0o755 } else { 0o700 })
                    .create(parent)
                    .map_err(|e| HandlerError::Io {
                        path: parent.to_path_buf(),
                        source: e,
                    })?;
            }
            match fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => created = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        Err(e) => return Err(io(e)),
    }
    let fd = open_dir_nofollow(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => refuse("is a symlink"),
        Some(libc::ENOTDIR) => refuse("is not a directory"),
        _ => io(e),
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    let st = fd.metadata().map_err(io)?;
    let ours = created && st.uid() == euid;
    if ours && let Some(w) = who {
        std::os::unix::fs::fchown(&fd, Some(w.uid), Some(w.gid)).map_err(io)?;
    } else if let Some(why) = lists_dir_problem(st.uid(), st.gid(), st.mode(), euid, who) {
        return Err(refuse(&why));
    }
    Ok(ListsDir {
        path: path.to_path_buf(),
        fd: fd.into(),
    })
}

/// A list file of one run, in its (open) lists directory; removed when dropped, unless
/// kept.
pub(crate) struct ListFile {
    dir: Arc<ListsDir>,
    name: OsString,
    path: PathBuf,
    kept: bool,
}

impl ListFile {
    /// Creates a new file `PREFIX<random>` in `dir`, `0600` (owned by `who` when set), with
    /// `data`.
    fn create(
        dir: &Arc<ListsDir>,
        prefix: &str,
        data: &[u8],
        who: Option<&RunAs>,
    ) -> Result<ListFile, HandlerError> {
        use nix::fcntl::OFlag;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| HandlerError::Io { path, source: e }
        };
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        let mut tries = 0;
        let (fd, name) = loop {
            let name = format!("{prefix}{}", random_suffix());
            match nix::fcntl::openat(&dir.fd, name.as_str(), flags, mode) {
                Ok(fd) => break (fd, OsString::from(name)),
                Err(nix::errno::Errno::EEXIST) if tries < 100 => tries += 1,
                Err(e) => return Err(io(&dir.path)(e.into())),
            }
        };
        let file = ListFile {
            dir: dir.clone(),
            path: dir.path.join(&name),
            name,
            kept: false,
        };
        let mut f = fs::File::from(fd);
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io(&file.path))?;
        if let Some(w) = who {
            std::os::unix::fs::fchown(&f, Some(w.uid), Some(w.gid)).map_err(io(&file.path))?;
        }
        f.write_all(data).map_err(io(&file.path))?;
        Ok(file)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place (`keep_lists`); returns its path.
    fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for ListFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = nix::unistd::unlinkat(
                &self.dir.fd,
                self.name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

/// 16 hex digits that differ from call to call (std's per-instance random hash keys).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(list: &'a [OsString], rsync: &'a [OsString]) -> Values<'a> {
        Values {
            include_list: list,
            include_list_path: Some(Path::new("/l/list")),
            exclude_list_path: Some(Path::new("/l/excl")),
            rsync_args: rsync,
            type_: "sync",
            event: "delete",
            path: Path::new("/src/a"),
            source: Path::new("/src"),
            destination: OsStr::new("host:/dst"),
            job: "www",
        }
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn placeholders_are_whole_arguments_only() {
        let list = [OsString::from("a b"), OsString::from("--rsh=evil")];
        let rsync = [OsString::from("-a"), OsString::from("--delete")];
        let t: Vec<String> = [
            "%INCLUDE-LIST%",
            "%destination%",
            "x%job%y",
            "%job%",
            "--job=%job%",
            "%TYPE%",
            "%INCLUDE-LIST-PATH%",
            "%EXCLUDE-LIST-PATH%",
            "%RSYNC-ARGS%",
            "%source%",
            "%EVENT%",
            "%PATH%",
            "%",
            "%%",
            "100%",
            "%d%m",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = expand(&t, &values(&list, &rsync));
        assert_eq!(
            strs(&got),
            [
                "a b",
                "--rsh=evil",
                "host:/dst",
                "x%job%y",
                "www",
                "--job=%job%",
                "sync",
                "/l/list",
                "/l/excl",
                "-a",
                "--delete",
                "/src",
                "delete",
                "/src/a",
                "%",
                "%%",
                "100%",
                "%d%m",
            ]
        );
        // An empty list expands to no argument at all, not to an empty one.
        let got = expand(&["%INCLUDE-LIST%".into(), "x".into()], &values(&[], &[]));
        assert_eq!(strs(&got), ["x"]);
    }

    #[test]
    fn placeholder_parsing() {
        assert_eq!(
            Placeholder::parse("%INCLUDE-LIST%"),
            Some(Ok(Placeholder::IncludeList))
        );
        assert_eq!(Placeholder::parse("%job%"), Some(Ok(Placeholder::Job)));
        assert_eq!(Placeholder::parse("%INCLUDE_LIST%"), Some(Err(())));
        assert_eq!(Placeholder::parse("%Job%"), Some(Err(())));
        assert_eq!(Placeholder::parse("%label%"), Some(Err(())));
        assert_eq!(Placeholder::parse("%%"), None);
        assert_eq!(Placeholder::parse("%1x%"), None);
        assert_eq!(Placeholder::parse("%a b%"), None);
        assert_eq!(Placeholder::parse("x%job%"), None);
        assert!(Placeholder::Event.simple_only() && !Placeholder::Job.simple_only());
        // Every mode's default template uses known placeholders only.
        for k in CommandKind::ALL {
            for a in k.default_args() {
                let p = Placeholder::parse(a).unwrap().unwrap();
                assert!(!p.simple_only() || k == CommandKind::Simple);
            }
        }
    }

    #[test]
    fn argv_splitting() {
        assert!(split_runs([], 10, 1000).is_empty());
        assert_eq!(split_runs([1, 1, 1], 10, 1000), vec![0..3]);
        assert_eq!(split_runs([1; 5], 2, 1000), vec![0..2, 2..4, 4..5]);
        // Each path costs len + NUL + pointer.
        let cost = 1 + 1 + std::mem::size_of::<usize>();
        assert_eq!(split_runs([1; 4], 100, 2 * cost), vec![0..2, 2..4]);
        // A path longer than the limit still gets a run of its own.
        assert_eq!(split_runs([5, 5000, 5], 100, 100), vec![0..1, 1..2, 2..3]);
        // The real limits: 250,000 short paths take three runs.
        let runs = split_runs(std::iter::repeat_n(3, 250_000), MAX_ARGS, MAX_ARG_BYTES);
        assert_eq!(runs.len(), 3);
        assert!(runs.iter().all(|r| r.len() <= MAX_ARGS));
        assert_eq!(runs.last().unwrap().end, 250_000);
    }

    fn odd_names() -> Vec<PathBuf> {
        vec![
            PathBuf::from(OsStr::from_bytes(b"new\nline")),
            PathBuf::from(OsStr::from_bytes(b"dir/\xff\xfe latin")),
            PathBuf::from("$(touch pwned)"),
            PathBuf::from("--rsh=evil"),
            PathBuf::from(OsStr::from_bytes(b"tab\tand\\back")),
        ]
    }

    #[test]
    fn rsync_list_round_trips_odd_names() {
        let mut entries: Vec<Entry> = odd_names()
            .into_iter()
            .map(|rel| Entry {
                rel,
                ..Entry::default()
            })
            .collect();
        entries.push(Entry::default());
        let batch = Batch {
            renames: vec![],
            entries: entries.clone(),
        };
        let list = RsyncHandler::files_from_list(&batch);
        let back = read_nul_list(&list);
        let want: Vec<PathBuf> = entries
            .iter()
            .map(|e| {
                if e.rel.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    Path::new("./").join(&e.rel)
                }
            })
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn shell_records_round_trip_odd_names() {
        let t = tempfile::tempdir().unwrap();
        let names = odd_names();
        fs::create_dir(t.path().join("dir")).unwrap();
        fs::write(t.path().join(&names[0]), "x").unwrap();
        fs::write(t.path().join(&names[1]), "x").unwrap();
        std::os::unix::fs::symlink("nowhere", t.path().join(&names[2])).unwrap();
        // names[3] and [4] are missing: deleted.
        let mut entries: Vec<Entry> = names
            .iter()
            .map(|rel| Entry {
                rel: rel.clone(),
                ..Entry::default()
            })
            .collect();
        entries[1].attrs_only = true;
        entries.push(Entry {
            rel: PathBuf::from("dir"),
            recursive: true,
            attrs_only: false,
        });
        entries.push(Entry::default());
        let data = shell_records(t.path(), &entries, false);
        assert_eq!(data.last(), Some(&0), "every field is NUL-terminated");
        let fields: Vec<&[u8]> = data[..data.len() - 1].split(|&b| b == 0).collect();
        let records: Vec<(String, String, PathBuf)> = fields
            .chunks(3)
            .map(|c| {
                (
                    String::from_utf8(c[0].to_vec()).unwrap(),
                    String::from_utf8(c[1].to_vec()).unwrap(),
                    PathBuf::from(OsStr::from_bytes(c[2])),
                )
            })
            .collect();
        let want = [
            ("sync", "file", names[0].clone()),
            ("attrib", "file", names[1].clone()),
            ("sync", "symlink", names[2].clone()),
            // An option-like name comes as `./NAME`.
            ("delete", "missing", PathBuf::from("./--rsh=evil")),
            ("delete", "missing", names[4].clone()),
            ("tree", "dir", PathBuf::from("dir")),
            ("sync", "dir", PathBuf::from(".")),
        ];
        let want: Vec<(String, String, PathBuf)> = want
            .into_iter()
            .map(|(e, k, p)| (e.to_string(), k.to_string(), p))
            .collect();
        assert_eq!(records, want);
        // A full batch is one record.
        let full = shell_records(t.path(), &Batch::full().entries, true);
        assert_eq!(full, b"initialsync\0dir\0.\0");
    }

    /// A stand-in for `[rsync] path`: a fake rsync whose receiver accepts missing
    /// entries, or (`rejects`) one that answers them as Debian's 3.2.7-1+deb12u5 does.
    fn fake_rsync(t: &Path, rejects: bool) -> PathBuf {
        let prog = t.join(if rejects { "rsync-rejects" } else { "rsync-ok" });
        let reject = if rejects {
            "case \"$*\" in *--delete-missing-args*) echo 'invalid file mode 00 for missing [Receiver]' >&2; echo 'rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.2.7]' >&2; exit 2;; esac"
        } else {
            ""
        };
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'rsync  version 3.2.7  protocol version 32'; exit 0; }}\n{reject}\nexit 0\n"
        );
        fs::write(&prog, script).unwrap();
        fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
        prog
    }

    fn handler(t: &Path, kind: CommandKind, script: &str, args: &[&str]) -> CommandHandler {
        handler_with(t, kind, script, args, false)
    }

    fn handler_with(
        t: &Path,
        kind: CommandKind,
        script: &str,
        args: &[&str],
        rejects: bool,
    ) -> CommandHandler {
        handler_as(t, kind, script, args, rejects, None)
    }

    fn handler_as(
        t: &Path,
        kind: CommandKind,
        script: &str,
        args: &[&str],
        rejects: bool,
        run_as: Option<RunAs>,
    ) -> CommandHandler {
        let prog = t.join("handler.sh");
        fs::write(&prog, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(t.join("src")).unwrap();
        let rsync = HandlerOptions {
            path: fake_rsync(t, rejects),
            run_as,
            ..HandlerOptions::default()
        };
        CommandHandler::new(
            "j".into(),
            t.join("src"),
            Destination::Local(t.join("dst")),
            CommandOptions {
                kind,
                path: prog,
                args: args.iter().map(|s| s.to_string()).collect(),
                lists_dir: Some(t.join("lists")),
                keep_lists: false,
            },
            rsync,
            Arc::new(Filter::new(&["*.tmp".to_string()], vec![]).unwrap()),
        )
    }

    /// With a receiver that rejects missing entries, `%RSYNC-ARGS%` runs the program twice
    /// for a batch with a deletion: the deletion pass (the parents' contents), then the
    /// paths that exist (without `--delete-missing-args`).
    #[test]
    fn rsync_args_split_deletions_for_a_rejecting_receiver() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = handler_with(
            t.path(),
            CommandKind::RsyncShell,
            &format!(
                "{{ printf '%s\\0' \"$@\"; echo; cat \"$CLSYNC_LIST\"; echo; }} >> '{}'",
                out.display()
            ),
            &["%RSYNC-ARGS%"],
            true,
        );
        assert_eq!(h.rsync.missing_args(), MissingArgs::Rejected);
        let report = h.rsync_report().unwrap();
        assert_eq!(report.version.as_deref(), Some("3.2.7"));
        assert_eq!(report.deletions, "separate-pass");
        fs::create_dir_all(t.path().join("src/d")).unwrap();
        fs::write(t.path().join("src/d/new"), "x").unwrap();
        let e = |p: &str| Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        };
        let batch = Batch {
            renames: vec![],
            entries: vec![e("d/gone"), e("d/new")],
        };
        h.run(&batch).unwrap();
        let got = String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned();
        let runs: Vec<&str> = got.split("\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            runs.len(),
            4,
            "two runs, each its args and its list: {got:?}"
        );
        assert!(runs[0].contains("\0-d\0--no-r\0"), "{}", runs[0]);
        assert!(!runs[0].contains("--delete-missing-args"), "{}", runs[0]);
        assert_eq!(runs[1], "./d/.\0");
        assert!(!runs[2].contains("--delete-missing-args"), "{}", runs[2]);
        assert!(
            runs[2].contains("\0-r\0--ignore-missing-args\0"),
            "{}",
            runs[2]
        );
        assert_eq!(runs[3], "./d/new\0");
    }

    /// A receiver not known to reject learns it from the program's own failure, and the
    /// same batch is sent again as two runs at once.
    #[test]
    fn rsync_args_learn_a_rejection_from_the_first_failure() {
        let t = tempfile::tempdir().unwrap();
        let calls = t.path().join("calls");
        let h = handler_with(
            t.path(),
            CommandKind::RsyncShell,
            &format!(
                "echo x >> '{}'\ncase \"$*\" in *--delete-missing-args*) echo 'invalid file mode 00 for d/gone [Receiver]' >&2; echo 'rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.4.3]' >&2; exit 2;; esac",
                calls.display()
            ),
            &["%RSYNC-ARGS%"],
            false,
        );
        assert_eq!(h.rsync.missing_args(), MissingArgs::Accepted);
        let batch = Batch {
            renames: vec![],
            entries: vec![Entry {
                rel: PathBuf::from("gone"),
                ..Entry::default()
            }],
        };
        h.run(&batch).unwrap();
        assert_eq!(fs::read_to_string(&calls).unwrap().lines().count(), 2);
        assert_eq!(h.rsync.missing_args(), MissingArgs::Rejected);
        let r = h.rsync_report().unwrap();
        assert_eq!(r.receiver_version.as_deref(), Some("3.4.3"));
    }

    #[test]
    fn runs_with_argv_env_and_list_files() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = handler(
            t.path(),
            CommandKind::RsyncShell,
            &format!(
                "{{ printf '%s\\0' \"$@\" \"$PWD\" \"$CLSYNC_JOB\" \"$CLSYNC_TYPE\" \"$CLSYNC_LIST\"; cat \"$CLSYNC_LIST\"; stat -c %a \"$1\" \"$(dirname \"$1\")\"; }} > '{}'",
                out.display()
            ),
            &["%INCLUDE-LIST-PATH%", "%RSYNC-ARGS%"],
        );
        let batch = Batch {
            renames: vec![],
            entries: vec![Entry {
                rel: PathBuf::from("--rsh=evil"),
                ..Entry::default()
            }],
        };
        h.run(&batch).unwrap();
        let got = fs::read(&out).unwrap();
        let s = String::from_utf8_lossy(&got);
        let parts: Vec<&str> = s.split('\0').collect();
        let list = parts[0];
        assert!(list.starts_with(&format!(
            "{}/.clsync-list.",
            t.path().join("lists").display()
        )));
        assert_eq!(
            &parts[1..8],
            [
                "-a",
                "--delete",
                "--exclude=*.tmp",
                "-r",
                "--delete-missing-args",
                &format!("--files-from={list}"),
                "--from0"
            ]
        );
        assert_eq!(parts[8], "--ignore-times");
        let src = t.path().join("src");
        assert_eq!(parts[9], src.to_str().unwrap());
        assert_eq!(&parts[10..13], ["j", "sync", list]);
        assert_eq!(parts[13], "./--rsh=evil");
        assert_eq!(parts[14], "600\n700\n", "list file 0600, lists dir 0700");
        // Removed after the run.
        assert!(!Path::new(list).exists());
        assert!(t.path().join("dst").is_dir());
    }

    #[test]
    fn failures_and_private_lists_dir() {
        let t = tempfile::tempdir().unwrap();
        let mut h = handler(
            t.path(),
            CommandKind::Shell,
            "echo oops >&2; exit 3",
            &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
        );
        h.options.lists_dir = None;
        let err = h.run(&Batch::full()).unwrap_err();
        assert!(
            matches!(&err, HandlerError::Exit { code: 3, stderr, .. } if stderr.contains("oops")),
            "{err}"
        );
        let private = h.lists_dir().unwrap().path.clone();
        assert!(private.is_dir());
        let mode = fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(fs::read_dir(&private).unwrap().count(), 0);
        h.ignore_exit_codes = vec![3];
        let ok = h.run(&Batch::full()).unwrap();
        assert_eq!(ok.warnings.len(), 1);
        drop(h);
        assert!(
            !private.exists(),
            "the private lists dir is removed with the handler"
        );
    }

    #[test]
    fn option_like_names_are_given_as_dot_slash() {
        let arg = |p: &str| rel_arg(Path::new(p)).into_string().unwrap();
        assert_eq!(arg(""), ".");
        assert_eq!(arg("-"), "./-");
        assert_eq!(arg("--target-directory=zz"), "./--target-directory=zz");
        assert_eq!(arg("-e sh"), "./-e sh");
        assert_eq!(arg("a-b"), "a-b");
        // Below the root a name cannot be taken for an option: left as it is.
        assert_eq!(arg("dir/-x"), "dir/-x");
        assert_eq!(arg(".-x"), ".-x");
    }

    /// `%INCLUDE-LIST%` (direct) and the shell records give a top-level name that starts
    /// with `-` as `./NAME`, the root as `.`; rsync lists have `./` on every path anyway.
    #[test]
    fn include_list_and_records_never_start_with_a_dash() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let e = |p: &str| Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        };
        let batch = Batch {
            renames: vec![],
            entries: vec![e("--target-directory=zz"), e("-"), e("d/-x"), e("zz")],
        };
        let record = format!("printf '%s\\0' \"$@\" > '{}'", out.display());
        let h = handler(
            t.path(),
            CommandKind::Direct,
            &record,
            &["-a", "%INCLUDE-LIST%", "%destination%"],
        );
        h.run(&batch).unwrap();
        let dst = t.path().join("dst");
        let want = [
            "-a",
            "./--target-directory=zz",
            "./-",
            "d/-x",
            "zz",
            dst.to_str().unwrap(),
        ];
        assert_eq!(
            read_nul_list(&fs::read(&out).unwrap()),
            want.map(PathBuf::from)
        );
        let h = handler(
            t.path(),
            CommandKind::Shell,
            &format!("cat \"$3\" > '{}'", out.display()),
            &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
        );
        h.run(&batch).unwrap();
        let paths: Vec<PathBuf> = read_nul_list(&fs::read(&out).unwrap())
            .into_iter()
            .skip(2)
            .step_by(3)
            .collect();
        assert_eq!(
            paths,
            ["./--target-directory=zz", "./-", "d/-x", "zz"].map(PathBuf::from)
        );
        // simple: one run per path; `%INCLUDE-LIST%` is the one path.
        let h = handler(
            t.path(),
            CommandKind::Simple,
            &format!("printf '%s\\0' \"$@\" >> '{}'", out.display()),
            &["%EVENT%", "%INCLUDE-LIST%", "%PATH%"],
        );
        fs::remove_file(&out).unwrap();
        h.run(&batch).unwrap();
        let got = read_nul_list(&fs::read(&out).unwrap());
        assert_eq!(got[1], Path::new("./--target-directory=zz"));
        assert_eq!(got[2], t.path().join("src/--target-directory=zz"));
        assert_eq!(got[4], Path::new("./-"));
    }

    fn run_as(uid: u32) -> RunAs {
        RunAs {
            user: "u".into(),
            uid,
            gid: uid,
        }
    }

    #[test]
    fn lists_dir_ownership_and_mode_rules() {
        let ok = |uid, gid, mode, who: Option<&RunAs>| lists_dir_problem(uid, gid, mode, 0, who);
        assert_eq!(ok(0, 0, 0o40700, None), None);
        assert_eq!(ok(0, 0, 0o755, None), None);
        let other = ok(65534, 65534, 0o700, None).unwrap();
        assert!(
            other.contains("owned by") && other.contains("65534"),
            "{other}"
        );
        for mode in [0o777, 0o1777, 0o720, 0o702, 0o770] {
            let why = ok(0, 0, mode, None).unwrap();
            assert!(
                why.contains("writable by group or others"),
                "{mode:o}: {why}"
            );
        }
        // The job's user may own it; the daemon's own directory must let the user in.
        let nobody = run_as(65534);
        assert_eq!(ok(65534, 65534, 0o700, Some(&nobody)), None);
        assert_eq!(ok(0, 0, 0o711, Some(&nobody)), None);
        assert_eq!(ok(0, 65534, 0o750, Some(&nobody)), None);
        let shut = ok(0, 0, 0o700, Some(&nobody)).unwrap();
        assert!(shut.contains("cannot reach"), "{shut}");
        let stranger = ok(1000, 1000, 0o700, Some(&nobody)).unwrap();
        assert!(stranger.contains("the job's user"), "{stranger}");
        assert!(ok(65534, 65534, 0o770, Some(&nobody)).is_some());
    }

    /// `[command] lists_dir` is checked on every run: a symlink, a file, a directory
    /// writable by others (or, as root, owned by someone else) is refused before anything
    /// is written or run, and a fixed one is used again.
    #[test]
    fn unsafe_lists_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let ran = t.path().join("ran");
        let h = handler(
            t.path(),
            CommandKind::Shell,
            &format!("echo x >> '{}'", ran.display()),
            &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
        );
        let lists = t.path().join("lists");
        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        let refused = |h: &CommandHandler, what: &str| {
            let err = h.run(&Batch::full()).unwrap_err().to_string();
            assert!(
                err.contains("lists_dir") && err.contains(what) && err.contains("refusing"),
                "{err}"
            );
            assert!(!ran.exists(), "the program ran");
            assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
        };
        std::os::unix::fs::symlink(&real, &lists).unwrap();
        refused(&h, "is a symlink");
        fs::remove_file(&lists).unwrap();
        fs::write(&lists, "").unwrap();
        refused(&h, "not a directory");
        fs::remove_file(&lists).unwrap();
        fs::rename(&real, &lists).unwrap();
        fs::set_permissions(&lists, fs::Permissions::from_mode(0o777)).unwrap();
        let real = lists.clone();
        let err = h.run(&Batch::full()).unwrap_err().to_string();
        assert!(
            err.contains("0777") && err.contains("group or others"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
        if nix::unistd::geteuid().is_root() {
            fs::set_permissions(&lists, fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&lists, Some(65534), Some(65534)).unwrap();
            let err = h.run(&Batch::full()).unwrap_err().to_string();
            assert!(err.contains("owned by") && err.contains("65534"), "{err}");
            std::os::unix::fs::chown(&lists, Some(0), Some(0)).unwrap();
        }
        fs::set_permissions(&lists, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!ran.exists());
        h.run(&Batch::full()).unwrap();
        assert!(ran.exists(), "a fixed lists_dir is used");
    }

    /// With the job's `user`, the lists directory it creates (configured or private) and
    /// the list files belong to that user, still 0700 / 0600.
    #[test]
    fn lists_belong_to_the_jobs_user() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        // The program runs as nobody: it must reach its script and a place to write.
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let outdir = t.path().join("out.d");
        fs::create_dir(&outdir).unwrap();
        fs::set_permissions(&outdir, fs::Permissions::from_mode(0o777)).unwrap();
        let out = outdir.join("out");
        let mut h = handler_as(
            t.path(),
            CommandKind::RsyncShell,
            &format!(
                "cat \"$1\" \"$2\" > /dev/null || exit 7\nstat -c '%u %a' \"$1\" \"$2\" \"$(dirname \"$1\")\" > '{}'",
                out.display()
            ),
            &["%INCLUDE-LIST-PATH%", "%EXCLUDE-LIST-PATH%"],
            false,
            Some(run_as(65534)),
        );
        h.options.lists_dir = Some(t.path().join("deep/er/lists"));
        h.options.keep_lists = true;
        h.run(&Batch::full()).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "65534 600\n65534 600\n65534 700\n"
        );
        let kept = fs::read_dir(t.path().join("deep/er/lists"))
            .unwrap()
            .count();
        assert_eq!(kept, 2, "keep_lists keeps the list and the exclude list");
        let parent = fs::metadata(t.path().join("deep/er")).unwrap();
        assert_eq!(parent.permissions().mode() & 0o777, 0o755);
        assert_eq!(parent.uid(), 0);
        // An existing directory keeps its owner.
        let mine = t.path().join("mine");
        fs::DirBuilder::new().mode(0o711).create(&mine).unwrap();
        h.options.lists_dir = Some(mine.clone());
        h.run(&Batch::full()).unwrap();
        assert_eq!(fs::metadata(&mine).unwrap().uid(), 0);
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "65534 600\n65534 600\n0 711\n"
        );
        // The private directory.
        h.options.lists_dir = None;
        h.run(&Batch::full()).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "65534 600\n65534 600\n65534 700\n"
        );
    }
}
