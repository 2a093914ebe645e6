//! What a `sync{}` leaves out or deletes: `exclude`, `excludeFrom`, `filter`, `delete`.
//!
//! `exclude` patterns carry over as they are. An `excludeFrom` file (read only below the
//! configuration's directory) becomes `exclude_from` when rsync's `--exclude-from` reads it
//! as lsyncd does; otherwise its patterns, as they are at import time, are appended to
//! `exclude`, since that is what lsyncd did with them. `filter`/`filterFrom` (rsync's +/-
//! rules) have no equivalent and are reported. `delete` keeps lsyncd's four values.

use std::path::Path;

use super::excludes;
use super::lua::beside;
use super::sync::{Mapping, Refusal, utf8};
use super::value::{LValue, MValue, Merged};
use crate::import::{Doc, Findings};

impl Mapping<'_> {
    /// `exclude`, `excludeFrom`, `filter`, `filterFrom` and `delete`; `dir` is the
    /// configuration's directory.
    pub(super) fn filters(&mut self, dir: &Path, ssh_based: bool) -> Result<(), Refusal> {
        let mut exclude = self.exclude()?;
        self.exclude_from(dir, &mut exclude)?;
        if !exclude.is_empty() {
            self.doc.push_strings("", "exclude", &exclude);
        }
        self.rsync_filters();
        map_delete(self.m, ssh_based, &mut self.doc, self.at, self.findings)
    }

    /// The patterns of `exclude` (one string or a list).
    fn exclude(&self) -> Result<Vec<String>, Refusal> {
        let mut exclude: Vec<String> = Vec::new();
        match self.m.get("exclude") {
            Some(MValue::Leaf(v)) => exclude.push(utf8("exclude", v)?),
            Some(MValue::Table(t)) => {
                for v in t.list() {
                    exclude.push(utf8("exclude pattern", v)?);
                }
            }
            None => {}
        }
        Ok(exclude)
    }

    /// `excludeFrom` as `exclude_from`, or its patterns appended to `exclude`.
    fn exclude_from(&mut self, dir: &Path, exclude: &mut Vec<String>) -> Result<(), Refusal> {
        let Some(v) = self.m.leaf("excludeFrom") else {
            return Ok(());
        };
        let (doc, at) = (&mut self.doc, self.at);
        let findings = &mut *self.findings;
        let file = utf8("excludeFrom", v)?;
        let read = beside(dir, Path::new(&file)).and_then(|p| {
            let text = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, excludes::parse(&text)?, text))
        });
        match read {
            Ok((path, (patterns, includes), text))
                if excludes::same_for_rsync(&text, &patterns, &includes)
                    && path.to_str().is_some() =>
            {
                doc.set("", "exclude_from", path.to_str().unwrap_or_default());
                findings.note(
                    at,
                    format!(
                        "excludeFrom = {file:?}: exclude_from = {:?}, read again at every reload",
                        path.display()
                    ),
                );
            }
            Ok((_, (patterns, includes), _)) => {
                doc.comment(
                    "",
                    format!(
                        "lsyncd's excludeFrom = {file:?}: its {} pattern(s) as they were at import time are in `exclude` (rsync's --exclude-from would read its lines differently: leading blanks, `-` without a space, `+` lines or `;` comments)",
                        patterns.len()
                    ),
                );
                findings.note(
                    at,
                    format!(
                        "excludeFrom = {file:?}: its {} pattern(s) were copied into `exclude` (lsyncd too reads the file only at its start)",
                        patterns.len()
                    ),
                );
                if !includes.is_empty() {
                    findings.note(
                        at,
                        format!(
                            "excludeFrom: lsyncd ignores include lines, and so does the import: {}",
                            includes.join(", ")
                        ),
                    );
                }
                exclude.extend(patterns);
            }
            Err(e) => {
                doc.comment(
                    "",
                    format!("lsyncd's excludeFrom = {file:?} could not be read: {e}"),
                );
                findings.warn(at, format!("excludeFrom = {file:?} not carried over: {e}"));
            }
        }
        Ok(())
    }

    /// `filter` and `filterFrom`: reported, not carried over.
    fn rsync_filters(&mut self) {
        for key in ["filter", "filterFrom"] {
            if self.m.get(key).is_some() {
                self.doc.comment(
                    "",
                    format!("lsyncd's {key}: rsync filter rules (+/-) have no equivalent; use `exclude`, or `rules` (regular expressions, first match wins)"),
                );
                self.findings.warn(
                    self.at,
                    format!("{key} has no equivalent: rewrite it as `exclude` patterns or `rules`"),
                );
            }
        }
    }
}

/// `delete` as `delete`. lsyncd's rsyncssh moves a renamed path on the remote host whatever
/// `delete` says; clsync's `delete = false` or `"startup"` copies it and keeps the old
/// name: said in a note.
fn map_delete(
    m: &Merged,
    ssh_based: bool,
    doc: &mut Doc,
    at: &str,
    findings: &mut Findings,
) -> Result<(), Refusal> {
    let keeps_old_names = match m.leaf("delete") {
        Some(LValue::Bool(true)) | None => false,
        Some(LValue::Bool(false)) => {
            doc.set("", "delete", false);
            true
        }
        Some(v) => {
            let s = utf8("delete", v)?;
            if s == "startup" || s == "running" {
                doc.set("", "delete", s.as_str());
                s == "startup"
            } else {
                doc.commented_key(
                    "",
                    "delete",
                    toml::Value::String(s),
                    "lsyncd takes only true, false, \"startup\" or \"running\"",
                );
                findings.warn(
                    at,
                    format!(
                        "delete = {} is not one of lsyncd's values: not carried over (clsync deletes)",
                        v.show()
                    ),
                );
                false
            }
        }
    };
    if ssh_based && keeps_old_names {
        findings.note(
            at,
            "lsyncd's rsyncssh moves a renamed path on the remote host even without deletions; \
             with this `delete` clsync copies it to its new name and keeps the old one",
        );
    }
    Ok(())
}
