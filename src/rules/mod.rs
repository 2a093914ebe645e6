//! Path filtering: rsync-style exclude globs and clsync-style regex rule lines.
//!
//! A job's [`Filter`] combines two independent mechanisms:
//!
//! * **Exclude globs** (`exclude = [...]` in the configuration, then the lines of
//!   `exclude_from`, read by [`parse_exclude_file`]). The same strings are handed
//!   to rsync as `--exclude=PAT`, so [`Glob`] reimplements rsync's filter-pattern matching
//!   (anchoring, directory-only patterns, `*` / `**` / `***`, character classes, the
//!   old-style `- ` / `+ ` prefixes). Matching is byte-wise, like rsync's `wildmatch`.
//! * **Rule lines** (`rules = [...]` or a legacy rules file), see [`Rule`]: an action
//!   (`+`/`-`), an object-type letter and an extended regular expression matched against the
//!   relative path. Rules are evaluated per action ([`Action`]); see [`Filter::rules_allow`].
//!
//! All paths are relative to the job's source root, without a leading `/`; the root itself is
//! the empty path and is always allowed. Paths are bytes and never assumed to be UTF-8.
//!
//! One idea per file: `action` (what a rule decides), `glob` (rsync exclude patterns), `rule`
//! (rule lines), `exclude_file` (rsync's `--exclude-from` files), `filter` (the compiled
//! filter and its questions), `explain` (which pattern or rule decided), `anchor` (rsync
//! patterns naming one exact path) and `rclone` (patterns for rclone).

mod action;
mod anchor;
mod exclude_file;
mod explain;
mod filter;
mod glob;
pub mod rclone;
#[cfg(test)]
mod rsync_agreement;
mod rule;

pub use action::Action;
pub use exclude_file::{ExcludeLine, ExcludeLineError, parse_exclude_file};
pub use explain::{Explanation, Reason};
pub use filter::{Filter, FilterError};
pub use glob::{Glob, GlobError};
pub use rule::{Rule, RuleError, RuleErrorKind, RuleType, parse_rule_list, parse_rules_file};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn bytes_of(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Proper ancestors of `rel` other than the root, outermost first (`a/b/c` -> `a`, `a/b`).
fn proper_ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i > 0)
        .map(move |(i, _)| &rel[..i])
}

/// 1-based character column of byte offset `off` in `text` (invalid UTF-8 counts one per byte
/// sequence replaced).
fn column_at(text: &[u8], off: usize) -> usize {
    String::from_utf8_lossy(&text[..off.min(text.len())])
        .chars()
        .count()
        + 1
}

#[cfg(test)]
mod test_support {
    //! What the tests of every part of the filter share.
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::{Filter, parse_rule_list};
    use crate::model::Kind;

    pub fn p(b: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(b))
    }

    pub fn filter(excludes: &[&str], rules: &[&str]) -> Filter {
        let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        let rules = parse_rule_list(rules).expect("rules parse");
        Filter::new(&excludes, rules).expect("filter builds")
    }

    pub const F: Kind = Kind::File;
    pub const D: Kind = Kind::Dir;
    pub const O: Kind = Kind::Other;
}
