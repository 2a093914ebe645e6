//! A job's filter as configured and as compiled: `exclude`, `exclude_from`, `rules` and
//! `rules_file` are compiled into one [`Filter`] when the configuration is loaded, and
//! every user (the job, `clsync explain`) shares that one.
//!
//! Equality compares what was written (and the content of the rules and exclude files as
//! read), never the compiled regexes: it is what a reload compares to decide whether a job
//! changed.

use std::path::PathBuf;
use std::sync::Arc;

use crate::rules::Filter;

/// The excludes and rules of a job, and the filter they compile to.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub(super) source: FilterSource,
    compiled: Arc<Filter>,
}

/// What a [`JobFilter`] is compiled from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FilterSource {
    pub exclude: Vec<String>,
    pub rules: Vec<String>,
    pub rules_file: Option<PathBuf>,
    /// The rules file's content as read at load time (a change in it is a config change).
    pub rules_file_text: Option<Vec<u8>>,
    /// `exclude_from` (resolved), and its content as read at load time: its patterns
    /// follow `exclude` in the compiled filter, and a change in it is a config change.
    pub exclude_from: Option<PathBuf>,
    pub exclude_from_text: Option<Vec<u8>>,
}

impl JobFilter {
    /// `source` with the filter it compiled to.
    pub(super) fn new(source: FilterSource, compiled: Filter) -> JobFilter {
        JobFilter {
            source,
            compiled: Arc::new(compiled),
        }
    }

    /// The compiled filter.
    pub fn compiled(&self) -> &Arc<Filter> {
        &self.compiled
    }

    /// The exclude file (`exclude_from`), resolved, when the job has one.
    pub fn exclude_from(&self) -> Option<&std::path::Path> {
        self.source.exclude_from.as_deref()
    }

    /// Where exclude pattern `index` of the compiled filter comes from, when it is a line
    /// of the exclude file (its patterns follow `exclude`'s): that line's number.
    pub fn exclude_file_line(&self, index: usize) -> Option<usize> {
        let i = index.checked_sub(self.source.exclude.len())?;
        let text = self.source.exclude_from_text.as_ref()?;
        let lines = crate::rules::parse_exclude_file(text).ok()?;
        lines.get(i).map(|l| l.line)
    }
}

impl PartialEq for JobFilter {
    fn eq(&self, other: &JobFilter) -> bool {
        self.source == other.source
    }
}

impl Eq for JobFilter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sources_are_equal_filters() {
        let source = |exclude: &str| FilterSource {
            exclude: vec![exclude.to_string()],
            ..FilterSource::default()
        };
        let compile = |s: &FilterSource| Filter::new(&s.exclude, vec![]).unwrap();
        let a = JobFilter::new(source("*.tmp"), compile(&source("*.tmp")));
        let b = JobFilter::new(source("*.tmp"), compile(&source("*.tmp")));
        let c = JobFilter::new(source("*.o"), compile(&source("*.o")));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!Arc::ptr_eq(a.compiled(), b.compiled()));
        assert_eq!(a.clone().compiled().excludes(), ["*.tmp"]);
    }
}
