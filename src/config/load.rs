//! Loading a configuration directory: `clsync.toml` (daemon settings and `[defaults]`) and
//! every job file of `jobs.d`, each resolved into [`JobConfig`]s.
//!
//! Loading never stops at the first problem: every error of every file is collected as a
//! [`Diagnostic`], said once and in file order, so that `clsync check` and a reload show
//! them all at once.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::daemon::{self, DaemonConfig};
use super::diag::{self, Diagnostic, Severity, SourceFile};
use super::fan_out;
use super::model::JobConfig;
use super::raw;
use super::resolve::{self, Context, Defaults, Role};

/// The result of loading a configuration directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub dir: PathBuf,
    pub daemon: DaemonConfig,
    /// Valid jobs (disabled ones included, with `enabled = false`).
    pub jobs: Vec<JobConfig>,
    /// Every error and warning, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// False when `clsync.toml` itself is invalid: then no job can be trusted.
    pub main_ok: bool,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Loads `dir/clsync.toml` and every `dir/jobs.d/*.toml`.
pub fn load_dir(dir: &Path) -> Loaded {
    let mut out = Loaded {
        dir: dir.to_path_buf(),
        main_ok: true,
        ..Loaded::default()
    };
    if !dir.is_dir() {
        out.diagnostics.push(diag::file_error(
            dir,
            "configuration directory does not exist or is not a directory",
        ));
        out.main_ok = false;
        return out;
    }
    let defaults = load_main(dir, &mut out);
    let jobs_dir = dir.join("jobs.d");
    let files = match job_files(&jobs_dir) {
        Ok(f) => f,
        Err(e) => {
            if jobs_dir.exists() {
                out.diagnostics
                    .push(diag::file_error(&jobs_dir, format!("cannot list: {e}")));
            }
            Vec::new()
        }
    };
    for file in files {
        for job in load_job_file(dir, &file, defaults.as_ref(), &mut out.diagnostics) {
            if out.jobs.iter().any(|j| j.name == job.name) {
                out.diagnostics.push(diag::file_error(
                    &job.file,
                    format!(
                        "job name {:?} is used twice (a fan-out target is named NAME@DESTINATION)",
                        job.name
                    ),
                ));
                continue;
            }
            out.jobs.push(job);
        }
    }
    dedup(&mut out.diagnostics);
    out
}

/// A bad default is found again by every job that inherits it: say it once. Within a file,
/// diagnostics come in line order.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert(d.to_string()));
    // Stable: files keep the order they were read in.
    let mut order: Vec<PathBuf> = Vec::new();
    for d in diags.iter() {
        if !order.contains(&d.file) {
            order.push(d.file.clone());
        }
    }
    diags.sort_by_key(|d| {
        (
            order.iter().position(|f| *f == d.file).unwrap_or(0),
            d.line,
            d.column,
        )
    });
}

/// Loads one job file against `dir`'s defaults (used by `clsync check FILE`).
pub fn load_single(dir: &Path, file: &Path) -> Loaded {
    load_single_as(dir, file, file)
}

/// Loads `file` as if it were named `named`: `clsync.toml` checks it as `dir`'s main
/// configuration, `NAME.toml` as the job `NAME` (for validators, such as Ansible's, that check
/// a temporary copy under another name). Diagnostics name `file`.
pub fn load_single_as(dir: &Path, file: &Path, named: &Path) -> Loaded {
    let mut out = Loaded {
        dir: dir.to_path_buf(),
        main_ok: true,
        ..Loaded::default()
    };
    if named.file_name() == Some(OsStr::new(MAIN_FILE)) {
        load_main_from(dir, file, &mut out);
        dedup(&mut out.diagnostics);
        return out;
    }
    let defaults = if dir.is_dir() {
        load_main(dir, &mut out)
    } else {
        None
    };
    let job = load_job_file_one(dir, file, named, defaults.as_ref(), &mut out.diagnostics);
    out.jobs
        .extend(job.map(fan_out::expand).unwrap_or_default());
    dedup(&mut out.diagnostics);
    out
}

/// The job files of a `jobs.d` directory, sorted: regular files (or links to them) named
/// `*.toml` that are not hidden (editor lock files such as `.#web.toml` are hidden).
fn job_files(jobs_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(jobs_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") || !bytes.ends_with(b".toml") || bytes.len() == 5 {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(SourceFile::new(path, text)),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let f = SourceFile::new(path, text);
                diags.push(f.error(valid..valid, "file is not valid UTF-8 (TOML must be UTF-8)"));
                None
            }
        },
        Err(e) => {
            diags.push(diag::file_error(path, format!("cannot read: {e}")));
            None
        }
    }
}

/// The main configuration's file name in a configuration directory.
const MAIN_FILE: &str = "clsync.toml";

fn load_main(dir: &Path, out: &mut Loaded) -> Option<Defaults> {
    let path = dir.join(MAIN_FILE);
    if !path.exists() {
        return None;
    }
    load_main_from(dir, &path, out)
}

/// Reads `path` as `dir`'s main configuration.
fn load_main_from(dir: &Path, path: &Path, out: &mut Loaded) -> Option<Defaults> {
    let before = out.diagnostics.len();
    let Some(file) = read_text(path, &mut out.diagnostics) else {
        out.main_ok = false;
        return None;
    };
    let Some(raw) = raw::read_main(&file, &mut out.diagnostics) else {
        out.main_ok = false;
        return None;
    };
    if let Some(d) = &raw.daemon {
        out.daemon = daemon::daemon_config(dir, d);
        daemon::check(&file, d, &mut out.diagnostics);
    }
    let defaults = raw.defaults.unwrap_or_default();
    for (field, span) in [
        ("source", defaults.source.as_ref().map(|s| s.span())),
        (
            "destination",
            defaults.destination.as_ref().map(|s| s.span()),
        ),
    ] {
        if let Some(span) = span {
            out.diagnostics.push(file.error(
                span,
                format!("`{field}` cannot be a default: set it in each job file"),
            ));
        }
    }
    let defaults = Defaults {
        file,
        raw: defaults,
    };
    check_defaults(dir, &defaults, &mut out.diagnostics);
    if out.diagnostics[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        out.main_ok = false;
    }
    Some(defaults)
}

fn job_name(file: &Path) -> Result<String, String> {
    let stem = file
        .file_name()
        .map(|n| n.as_bytes())
        .and_then(|n| n.strip_suffix(b".toml"))
        .unwrap_or_default();
    let ok = !stem.is_empty()
        && stem
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(String::from_utf8_lossy(stem).into_owned())
    } else {
        Err(format!(
            "job file name {:?} must be NAME.toml with NAME made of letters, digits, '-', '_', '.', '@'",
            file.file_name().unwrap_or(OsStr::new(""))
        ))
    }
}

/// Parses and checks one job file; pushes diagnostics; returns the job when it has no error.
fn load_job_file(
    dir: &Path,
    path: &Path,
    defaults: Option<&Defaults>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<JobConfig> {
    load_job_file_one(dir, path, path, defaults, diags)
        .map(fan_out::expand)
        .unwrap_or_default()
}

/// Reads the job file `path`; the job is named after `named`'s file name.
fn load_job_file_one(
    dir: &Path,
    path: &Path,
    named: &Path,
    defaults: Option<&Defaults>,
    diags: &mut Vec<Diagnostic>,
) -> Option<JobConfig> {
    let before = diags.len();
    let file = read_text(path, diags)?;
    let name = match job_name(named) {
        Ok(n) => n,
        Err(e) => {
            diags.push(diag::file_error(path, e));
            return None;
        }
    };
    let raw = raw::read_job(&file, diags)?;
    let cx = Context {
        dir,
        raw: &raw,
        file: &file,
        defaults,
        role: Role::JobFile,
    };
    let job = resolve::job(&cx, name, path, diags).ok();
    if diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    job
}

/// Checks the values of `[defaults]` on their own, so that a bad default is reported even
/// when every job overrides it.
fn check_defaults(dir: &Path, d: &Defaults, diags: &mut Vec<Diagnostic>) {
    let cx = Context {
        dir,
        raw: &d.raw,
        file: &d.file,
        defaults: None,
        role: Role::Defaults,
    };
    // No job is built from `[defaults]`: only its diagnostics count.
    let _ = resolve::job(&cx, String::new(), &d.file.path, diags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::write;
    use std::time::Duration;

    #[test]
    fn defaults_are_inherited_and_overridden() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\ndelay = \"5s\"\nexclude = [\"*.tmp\"]\n[defaults.rsync]\nargs = [\"-z\"]\n",
        );
        write(
            t.path(),
            "jobs.d/a.toml",
            "source = \"src\"\ndestination = \"dst\"\n",
        );
        write(
            t.path(),
            "jobs.d/b.toml",
            "source = \"src\"\ndestination = \"dst2\"\ndelay = \"0s\"\n[rsync]\npath = \"/usr/bin/rsync\"\n",
        );
        write(t.path(), "jobs.d/README", "not a job");
        write(t.path(), "jobs.d/c.toml.dpkg-old", "garbage = [");
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        assert_eq!(l.jobs.len(), 2);
        let (a, b) = (&l.jobs[0], &l.jobs[1]);
        assert_eq!(a.name, "a");
        assert_eq!(a.delay, Duration::from_secs(5));
        assert_eq!(a.filter.source.exclude, vec!["*.tmp".to_string()]);
        assert_eq!(a.rsync.args, vec!["-z".to_string()]);
        assert_eq!(a.source, t.path().join("src"));
        assert_eq!(b.delay, Duration::ZERO);
        assert_eq!(b.rsync.args, vec!["-z".to_string()]);
        assert_eq!(b.rsync.path, PathBuf::from("/usr/bin/rsync"));
    }

    #[test]
    fn errors_have_file_line_column() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "jobs.d/a.toml",
            "source = \"src\"\ndestination = \"dst\"\ndealy = \"5s\"\n",
        );
        write(
            t.path(),
            "jobs.d/b.toml",
            "source = \"src\"\ndestination = \"src/inner\"\ndelay = \"5 parsecs\"\nmode = \"rsyncc\"\n",
        );
        let l = load_dir(t.path());
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let a = t.path().join("jobs.d/a.toml");
        let b = t.path().join("jobs.d/b.toml");
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:3:1: ", a.display())) && m.contains("dealy")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:2:15: ", b.display()))
                    && m.contains("inside the source")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:3:9: ", b.display())) && m.contains("parsecs")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{}:4:8: ", b.display()))
                    && m.contains("unknown mode")),
            "{msgs:#?}"
        );
        assert!(l.jobs.is_empty());
    }
}
