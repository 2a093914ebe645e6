//! `exclude`, `exclude_from`, `rules` and `rules_file`: compiled here, once, so that a bad
//! pattern or regex is reported at its line and column (a bad line of an exclude or rules
//! file at that file's line), and the job and `clsync explain` share the result. The
//! exclude file's patterns follow `exclude`'s: rsync gets them as `--exclude=` in that
//! order, and the first matching pattern decides.

use std::fs;

use super::context::{Checked, Context, NoValue};
use super::values;
use crate::config::diag::{Diagnostic, Severity};
use crate::config::job_filter::{FilterSource, JobFilter};
use crate::config::paths::resolve;
use crate::rules::{self, Filter, Rule};

/// The job's filter, compiled.
pub(super) fn job_filter(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<JobFilter> {
    let mut source = FilterSource {
        exclude: values::strings(cx.pick(|r| r.exclude.as_ref())),
        ..FilterSource::default()
    };
    let mut compiled = rule_lines(cx, &mut source, diags);
    compiled.extend(rules_file(cx, &mut source, diags));
    let mut excludes = source.exclude.clone();
    excludes.extend(exclude_file(cx, &mut source, diags));
    match Filter::new(&excludes, compiled) {
        Ok(filter) => Ok(JobFilter::new(source, filter)),
        Err(e) => {
            let a = cx.pick(|r| r.exclude.as_ref());
            match a
                .as_ref()
                .and_then(|a| a.get().get(e.index).map(|s| (s, a.file)))
            {
                Some((s, file)) => diags
                    .push(file.error(s.span(), format!("exclude {:?}: {}", s.get_ref(), e.source))),
                None => diags.push(cx.file.error(0..0, e.to_string())),
            }
            Err(NoValue)
        }
    }
}

/// `rules = [...]`: keeps the lines in `source`, returns the ones that compile.
fn rule_lines(
    cx: &Context<'_>,
    source: &mut FilterSource,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Rule> {
    let mut compiled = Vec::new();
    let Some(a) = cx.pick(|r| r.rules.as_ref()) else {
        return compiled;
    };
    for line in a.get() {
        match Rule::parse(line.get_ref()) {
            Ok(Some(r)) => compiled.push(r),
            Ok(None) => {}
            Err(e) => {
                // +1 skips the opening quote of the TOML string.
                let at = line.span().start + 1 + e.column.saturating_sub(1);
                diags.push(
                    a.file
                        .error(at..at, format!("rule {:?}: {}", line.get_ref(), e.kind)),
                );
            }
        }
        source.rules.push(line.get_ref().clone());
    }
    compiled
}

/// `rules_file`: reads it into `source` (its content is part of the configuration), returns
/// its rules when they all compile. Errors point into the rules file itself.
fn rules_file(
    cx: &Context<'_>,
    source: &mut FilterSource,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Rule> {
    let Some(a) = cx.pick(|r| r.rules_file.as_ref()) else {
        return Vec::new();
    };
    let p = resolve(cx.dir, a.get());
    let mut compiled = Vec::new();
    match fs::read(&p) {
        Ok(bytes) => {
            match rules::parse_rules_file(&bytes) {
                Ok(r) => compiled = r,
                Err(errs) => diags.extend(errs.into_iter().map(|e| Diagnostic {
                    severity: Severity::Error,
                    file: p.clone(),
                    line: e.line.unwrap_or(1).max(1),
                    column: e.column.max(1),
                    message: format!("rule {:?}: {}", e.text, e.kind),
                })),
            }
            source.rules_file_text = Some(bytes);
        }
        Err(e) => diags.push(a.err(format!("cannot read rules file {}: {e}", p.display()))),
    }
    source.rules_file = Some(p);
    compiled
}

/// `exclude_from`: reads it into `source` (its content is part of the configuration),
/// returns its patterns when they all compile. Errors point into the exclude file itself;
/// a file that cannot be read is reported at the key.
fn exclude_file(
    cx: &Context<'_>,
    source: &mut FilterSource,
    diags: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let Some(a) = cx.pick(|r| r.exclude_from.as_ref()) else {
        return Vec::new();
    };
    let p = resolve(cx.dir, a.get());
    let mut patterns = Vec::new();
    match fs::read(&p) {
        Ok(bytes) => {
            match rules::parse_exclude_file(&bytes) {
                Ok(lines) => patterns = lines.into_iter().map(|l| l.pattern).collect(),
                Err(errs) => diags.extend(errs.into_iter().map(|e| Diagnostic {
                    severity: Severity::Error,
                    file: p.clone(),
                    line: e.line,
                    column: 1,
                    message: e.message,
                })),
            }
            source.exclude_from_text = Some(bytes);
        }
        Err(e) => diags.push(a.err(format!("cannot read exclude file {}: {e}", p.display()))),
    }
    source.exclude_from = Some(p);
    patterns
}
