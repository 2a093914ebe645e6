//! The C instance's remaining per-job options as the job's top-level settings:
//! `rules_file`, `initial_sync`, `workers`, `loop_guard`, `user`, `group` (and what the
//! monitor choice means).
//!
//! Each is a direct translation; where the C option meant more than clsync's setting does,
//! a finding says so.

use std::path::Path;

use super::map::Instance;
use crate::import::paths::{absolute, text as path_text};
use crate::import::{Doc, Findings};

/// Writes the settings; `None` when the rules file's path is not UTF-8.
pub(super) fn write(instance: &Instance, doc: &mut Doc, findings: &mut Findings) -> Option<()> {
    let opts = instance.opts;
    if let Some(r) = opts.text("rules-file").filter(|r| !r.is_empty()) {
        let p = absolute(&instance.cwd, r);
        rules_file_check(&p, &instance.at("rules-file"), findings);
        doc.set("", "rules_file", path_text(&p)?);
    }
    if opts.flag("skip-initialsync") {
        doc.set("", "initial_sync", false);
    }
    workers(instance, doc, findings);
    loop_guard(instance, doc, findings);
    if let Some(u) = opts.text("sync-handler-uid") {
        doc.set("", "user", u.to_string());
    }
    if let Some(g) = opts.text("sync-handler-gid") {
        doc.set("", "group", g.to_string());
    }
    match opts.text("monitor") {
        None | Some("inotify") | Some("") => {}
        Some(m) => findings.note(
            instance.at("monitor"),
            format!("monitor {m}: clsync uses inotify on Linux and kqueue elsewhere"),
        ),
    }
    Some(())
}

/// `workers` of threading (-p).
fn workers(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    match instance.opts.text("threading") {
        Some("off") => doc.set_noted("", "workers", 1, Some("threading off (-p off)")),
        Some("safe") => doc.set_noted("", "workers", 2, Some("threading safe (-p safe)")),
        Some("full") => {
            doc.set_noted("", "workers", 2, Some("threading full (-p full)"));
            findings.note(
                instance.at("threading"),
                "threading full: clsync's workers never sync overlapping paths at once",
            );
        }
        Some(other) if !other.is_empty() => {
            findings.warn(
                instance.at("threading"),
                format!("unknown threading mode {other:?}"),
            );
        }
        _ => {}
    }
}

/// `loop_guard` of modification-signature `*`; a field list has no equivalent.
fn loop_guard(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    match instance.opts.text("modification-signature") {
        Some("*") => {
            doc.set_noted("", "loop_guard", true, Some("modification-signature '*'"));
            findings.note(
                instance.at("modification-signature"),
                "modification-signature '*' became loop_guard: a change that only echoes what this job sent is not sent back",
            );
        }
        Some(v) if !v.is_empty() => {
            doc.comment("", format!("modification-signature {v:?}: syncing only changes of some attributes has no equivalent"));
            findings.warn(
                instance.at("modification-signature"),
                "modification-signature with a field list has no equivalent",
            );
        }
        _ => {}
    }
}

/// Checks what the C clsync's reading of a rules file did differently: it dropped the last
/// character of a last line without a newline.
fn rules_file_check(p: &Path, at: &str, findings: &mut Findings) {
    match std::fs::read(p) {
        Ok(text) => {
            if !text.is_empty() && !text.ends_with(b"\n") {
                let last = text.rsplit(|&b| b == b'\n').next().unwrap_or_default();
                findings.warn(
                    at,
                    format!(
                        "{}: the last line {:?} has no newline: the C clsync dropped its last character, clsync reads it whole, so the rule now applies",
                        p.display(),
                        String::from_utf8_lossy(last)
                    ),
                );
            }
        }
        Err(e) => findings.note(
            at,
            format!("{}: {e} (clsync check will say so too)", p.display()),
        ),
    }
}
