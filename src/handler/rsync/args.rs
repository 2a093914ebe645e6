//! rsync's command line for one run, as free functions of the job's [`RsyncTarget`]: the
//! rsync handler and the command modes that run rsync (`%RSYNC-ARGS%`, `rsync-shell`) build
//! it the same way, so what a script's rsync does is what the rsync mode would do.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::RsyncTarget;
use crate::config::Destination;
use crate::model::Batch;

/// What one rsync run sends.
pub(crate) enum Pass<'a> {
    /// The whole tree.
    Full,
    /// A live batch's paths; `missing_args`: with `--delete-missing-args` (paths gone from
    /// the source are deleted), else the list holds only paths that exist.
    Paths {
        batch: &'a Batch,
        missing_args: bool,
    },
    /// A deletion pass: the contents of the parents of deleted paths, one level deep
    /// ([`deletions`]).
    Deletions,
    /// Directories whose attributes changed: each directory itself, not its tree (the
    /// root, listed as `.`, with its entries one level deep).
    DirAttrs,
}

impl<'a> Pass<'a> {
    /// `batch` as one run, deletions included.
    pub(crate) fn of(batch: &'a Batch) -> Pass<'a> {
        if batch.is_full() {
            Pass::Full
        } else {
            Pass::Paths {
                batch,
                missing_args: true,
            }
        }
    }
}

pub(crate) fn dir_arg(p: &Path) -> OsString {
    let mut s = p.as_os_str().to_os_string();
    if !s.as_bytes().ends_with(b"/") {
        s.push("/");
    }
    s
}

/// The destination as rsync's last argument, with a trailing `/`.
pub(crate) fn dest_arg(destination: &Destination) -> OsString {
    match destination {
        Destination::Local(p) => dir_arg(p),
        Destination::Remote(s) => {
            let mut s = OsString::from(s);
            if !s.as_bytes().ends_with(b"/") {
                s.push("/");
            }
            s
        }
    }
}

/// True when the user's `[rsync] args` hold filters of their own (`--exclude`, `--include`,
/// `--filter`, `-f`, `-F`, `-C`, alone or in a cluster such as `-vf`): rsync may then leave
/// out what the job's filter would send.
pub(crate) fn has_own_filters(args: &[String]) -> bool {
    args.iter().any(|a| {
        let a = a.as_str();
        let short = a.strip_prefix('-').filter(|s| !s.starts_with('-'));
        short.is_some_and(|s| s.contains(['C', 'F', 'f']))
            || ["--cvs-exclude", "--exclude", "--include", "--filter"]
                .iter()
                .any(|o| a.starts_with(o))
    })
}

/// The NUL-separated `--files-from` list of a live batch. Each path is written as
/// `./PATH`: the "./" makes rsync send the root as an implied directory too, so the
/// root's mtime follows entries created or deleted in it. The root itself is `.`.
pub(crate) fn files_from_list(batch: &Batch) -> Vec<u8> {
    let mut list = Vec::new();
    for e in &batch.entries {
        if e.rel.as_os_str().is_empty() {
            list.push(b'.');
        } else {
            list.extend_from_slice(b"./");
            list.extend_from_slice(e.rel.as_os_str().as_bytes());
        }
        list.push(0);
    }
    list
}

/// clsync's own rsync options for one run (everything before `-- SRC/ DST/`): `-a
/// --delete` (`-a` alone when the run may not remove anything, `deletes` false), the job's
/// excludes, `[rsync] args`, and for a live batch `-r
/// [--delete-missing-args] --files-from=FILES_FROM --from0` (the list from
/// [`files_from_list`]; `--ignore-missing-args` instead when it may not remove), for
/// directories' attributes `-d --no-r --ignore-missing-args --files-from=FILES_FROM
/// --from0`, or for a deletion pass `-d --no-r --files-from=FILES_FROM --from0
/// --filter=merge RULES`. `itemize`: one line per change on stdout (full syncs, whole or
/// in parts).
/// `exclude_from`: a NUL-separated file of the rule excludes, when there are any.
pub(crate) fn rsync_args(
    target: &RsyncTarget,
    itemize: bool,
    pass: &Pass,
    files_from: &OsStr,
    exclude_from: Option<&Path>,
    deletes: bool,
) -> Vec<OsString> {
    let full = matches!(pass, Pass::Full);
    let mut args: Vec<OsString> = vec!["-a".into()];
    if deletes {
        args.push("--delete".into());
    }
    if itemize {
        // One line per changed path on stdout: counted, to report what a full sync
        // (a verification) had to repair.
        args.push("--itemize-changes".into());
    }
    if let Destination::Remote(d) = &target.destination
        && crate::config::split_remote(d).is_some()
        && !target.options.ssh.is_default()
    {
        args.push("-e".into());
        args.push(crate::handler::remote::rsync_e(&target.options.ssh).into());
    }
    for pat in target.filter.excludes() {
        args.push(format!("--exclude={pat}").into());
    }
    args.extend(target.options.args.iter().map(OsString::from));
    if !full {
        let mut ff = OsString::from("--files-from=");
        ff.push(files_from);
        match pass {
            Pass::Paths {
                missing_args: true, ..
            } if deletes => args.extend(["-r".into(), "--delete-missing-args".into()]),
            // A path gone since the split is the next batch's deletion, not an error.
            Pass::Paths { .. } => args.extend(["-r".into(), "--ignore-missing-args".into()]),
            Pass::DirAttrs => {
                args.extend(["-d".into(), "--no-r".into(), "--ignore-missing-args".into()])
            }
            // One level, and no subdirectory pruned from the list (which would make the
            // receiver delete it).
            _ => args.extend([
                "-d".into(),
                "--no-r".into(),
                "--ignore-missing-args".into(),
                "--no-prune-empty-dirs".into(),
            ]),
        }
        args.extend([ff, "--from0".into()]);
    }
    match pass {
        // --ignore-times: an event says the content changed, even when a rewrite kept
        // the size and put the mtime back (tar x, cp -p, touch -r).
        Pass::Paths { batch, .. }
            if batch.entries.iter().any(|e| !e.attrs_only && !e.recursive) =>
        {
            args.push("--ignore-times".into());
        }
        _ => {}
    }
    if let Some(x) = exclude_from {
        // rsync reads the file while parsing options: --from0 must come first.
        if full {
            args.push("--from0".into());
        }
        let mut arg = OsString::from("--exclude-from=");
        arg.push(x);
        args.push(arg);
    }
    args
}
