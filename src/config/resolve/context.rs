//! What every part of resolving a job reads: the configuration directory, the file being
//! resolved and the `[defaults]` it inherits, and how a value is picked from them (the job
//! file's, else the default's, remembering which file it came from for diagnostics).

use std::path::Path;

use toml::Spanned;

use crate::config::diag::{Diagnostic, SourceFile};
use crate::config::raw::RawJob;

/// The defaults every job file inherits: the `[defaults]` table of `clsync.toml`.
pub(in crate::config) struct Defaults {
    pub file: SourceFile,
    pub raw: RawJob,
}

/// What is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) enum Role {
    /// A job file: `source` and `destination` are required, and a job is built.
    JobFile,
    /// `[defaults]` on its own: only its values are checked, and no job is built.
    Defaults,
}

/// A value that is not there: either its problem was pushed as a diagnostic, or it does not
/// exist in this [`Role`]. Resolution goes on, so that every problem is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) struct NoValue;

/// A resolved value, or [`NoValue`].
pub(in crate::config) type Checked<T> = Result<T, NoValue>;

/// The inputs of resolving one job file (or `[defaults]`).
pub(in crate::config) struct Context<'a> {
    pub dir: &'a Path,
    pub raw: &'a RawJob,
    pub file: &'a SourceFile,
    pub defaults: Option<&'a Defaults>,
    pub role: Role,
}

/// A value together with the file it was written in (the job file or `clsync.toml`).
pub(in crate::config) struct At<'a, T> {
    pub v: &'a Spanned<T>,
    pub file: &'a SourceFile,
}

impl<'a, T> At<'a, T> {
    pub fn get(&self) -> &'a T {
        self.v.get_ref()
    }

    pub fn err(&self, msg: impl Into<String>) -> Diagnostic {
        self.file.error(self.v.span(), msg)
    }
}

impl<'a> Context<'a> {
    /// The job's value of a key, else the default's (`key` reads it from a raw table).
    pub(in crate::config) fn pick<T>(
        &self,
        key: impl Fn(&'a RawJob) -> Option<&'a Spanned<T>>,
    ) -> Option<At<'a, T>> {
        if let Some(v) = key(self.raw) {
            return Some(At { v, file: self.file });
        }
        let d = self.defaults?;
        key(&d.raw).map(|v| At { v, file: &d.file })
    }

    /// Where "missing key" errors point: the file's last line, not past its final newline.
    pub(super) fn eof(&self) -> usize {
        self.file.text.trim_end().len()
    }
}
