//! A run's argument vector: the template with its placeholders replaced (only arguments that
//! are exactly a placeholder), paths as arguments that never start with `-`, shell mode's
//! records, and the split of a batch that would not fit in one argument vector.

use std::ffi::{OsStr, OsString};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::Placeholder;
use crate::fs::Lookup;
use crate::model::Entry;

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
