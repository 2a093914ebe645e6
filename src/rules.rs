//! Path filtering: rsync-style exclude globs and clsync-style regex rule lines.
//!
//! STUB: the API below is fixed; the implementation is being written.

use std::path::Path;

/// What kind of filesystem object a path is (from `lstat`, or guessed from an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, fifos, sockets, devices.
    Other,
}

/// The compiled filter of one job.
#[derive(Debug, Default)]
pub struct Filter {}

impl Filter {
    /// A filter that lets everything through.
    pub fn allow_all() -> Filter {
        Filter {}
    }

    /// True when `rel` itself (not looking at its ancestors) is to be synced.
    pub fn allows(&self, _rel: &Path, _kind: Kind) -> bool {
        true
    }

    /// True when the directory `rel` is to be descended into and watched.
    pub fn allows_dir_walk(&self, _rel: &Path) -> bool {
        true
    }
}

/// One parsed clsync rule line (stub).
#[derive(Debug, Clone)]
pub struct Rule {}

/// A rule line that could not be parsed (stub).
#[derive(Debug, Clone)]
pub struct RuleError {
    /// 1-based line (rules files only; 0 for inline rules).
    pub line: usize,
    /// 1-based column within the rule line.
    pub column: usize,
    pub message: String,
}

impl Rule {
    pub fn parse(_line: &str) -> Result<Option<Rule>, RuleError> {
        Ok(Some(Rule {}))
    }
}

pub fn parse_rules_file(_text: &[u8]) -> Result<Vec<Rule>, Vec<RuleError>> {
    Ok(Vec::new())
}

/// A bad exclude pattern (stub).
#[derive(Debug, Clone)]
pub struct FilterError {
    pub index: usize,
    pub message: String,
}

impl Filter {
    pub fn new(_excludes: &[String], _rules: Vec<Rule>) -> Result<Filter, FilterError> {
        Ok(Filter {})
    }
    pub fn has_rules(&self) -> bool {
        false
    }
    pub fn excludes(&self) -> &[String] {
        &[]
    }
    pub fn allows_path(&self, _rel: &Path, _kind: Kind) -> bool {
        true
    }
}

impl Filter {
    pub fn rsync_anchored(rel: &Path, is_dir: bool) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = vec![b'/'];
        for &b in rel.as_os_str().as_bytes() {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        if is_dir {
            out.push(b'/');
        }
        out
    }
}
