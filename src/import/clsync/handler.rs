//! The C instance's sync handler as the job's `[command]` (every mode but rsync) or
//! `[rsync]` (mode rsyncdirect).
//!
//! A command mode keeps the handler program (made absolute as the C program resolved it)
//! and its argument template, translated by [`template`]; mode rsyncdirect becomes clsync's
//! own rsync invocation, whose arguments clsync builds itself, so custom ones are reported.
//!
//! [`template`]: super::template

use std::collections::BTreeMap;

use super::map::Instance;
use super::template;
use crate::import::{Doc, Findings};

/// Writes the handler's table; `None` (refused) when a command mode has no handler, or a
/// path is not UTF-8. `source` and `destination` (when the instance gave one) are the
/// values of `%watch-dir%` and `%destination-dir%`.
pub(super) fn write(
    instance: &Instance,
    source: &str,
    destination: Option<&str>,
    doc: &mut Doc,
    findings: &mut Findings,
) -> Option<()> {
    if !instance.command_mode() {
        return rsync(instance, doc, findings);
    }
    let mut values = instance.opts.last_values();
    values.insert("watch-dir", source.to_string());
    if let Some(d) = destination {
        values.insert("destination-dir", d.to_string());
    }
    values.entry("label").or_insert_with(|| "nolabel".into());
    command(instance, &values, doc, findings)
}

/// The handler program given (-S), if any.
fn handler<'a>(instance: &Instance<'a>) -> Option<&'a str> {
    instance.opts.text("sync-handler").filter(|s| !s.is_empty())
}

/// `[command]`: the program, its arguments (`values`: the lower-case macros' values), the
/// list files.
fn command(
    instance: &Instance,
    values: &BTreeMap<&'static str, String>,
    doc: &mut Doc,
    findings: &mut Findings,
) -> Option<()> {
    let opts = instance.opts;
    let mode = &instance.mode;
    let path = match (handler(instance), instance.new_mode) {
        // The C clsync resolved a handler path against its working directory.
        (Some(h), _) if h.contains('/') => instance.absolute_text(h)?,
        (Some(h), _) => h.to_string(),
        (None, "direct") => "cp".to_string(),
        (None, _) => {
            findings.refuse(
                "command line",
                format!("mode {mode} needs a sync handler (-S), as in the C clsync"),
            );
            return None;
        }
    };
    doc.set("command", "path", path);
    let (words, where_) = match &opts.handler_args {
        Some((a, w)) => (a.clone(), w.clone()),
        None => (
            template::default(mode, &values["label"], opts.flag("rsync-prefer-include")),
            format!("mode {mode}"),
        ),
    };
    let args = template::translate(&words, instance.new_mode, values, &where_, findings);
    doc.set(
        "command",
        "args",
        toml::Value::Array(args.into_iter().map(toml::Value::String).collect()),
    );
    list_files(instance, doc, findings)
}

/// What the handler reads: the list files' format, where they are, whether they are kept.
fn list_files(instance: &Instance, doc: &mut Doc, findings: &mut Findings) -> Option<()> {
    let opts = instance.opts;
    let mode = &instance.mode;
    match instance.new_mode {
        "shell" | "rsync-shell" => {
            doc.comment(
                "command",
                "The list files are clsync's (see clsync.toml(5), \"List files\"): NUL-separated, not the C clsync's\nline lists; a handler written for the C clsync must read them as such.",
            );
            findings.warn(
                instance.at("mode"),
                format!("mode {mode}: the handler gets clsync's NUL-separated list files, not the C clsync's line lists; adapt it (see clsync.toml(5), \"List files\")"),
            );
        }
        "simple" => findings.note(
            instance.at("mode"),
            "mode simple: the handler runs once per changed path of a batch, after `delay`, not once per raw event",
        ),
        _ => {}
    }
    if let Some(l) = opts.text("lists-dir").filter(|l| !l.is_empty()) {
        doc.set("command", "lists_dir", instance.absolute_text(l)?);
    }
    if opts.flag("dont-unlink-lists") {
        doc.set("command", "keep_lists", true);
    }
    if opts.flag("synclist-simplify") {
        findings.warn(
            instance.at("synclist-simplify"),
            "synclist-simplify has no equivalent: the shell list holds EVENT TYPE PATH records",
        );
    }
    if let Some((_, w)) = &opts.initial_args {
        findings.warn(w.clone(), "the initial-sync template (---) has no equivalent: the handler gets TYPE initialsync instead");
    }
    Some(())
}

/// `[rsync]`: the C clsync's `rsync -aH`, and its rsync program.
fn rsync(instance: &Instance, doc: &mut Doc, findings: &mut Findings) -> Option<()> {
    let opts = instance.opts;
    doc.set_noted(
        "rsync",
        "args",
        toml::Value::Array(vec!["--hard-links".into()]),
        Some("the C clsync ran rsync -aH"),
    );
    if let Some(h) = handler(instance)
        && h != "rsync"
        && h != "/usr/bin/rsync"
    {
        let h = if h.contains('/') {
            instance.absolute_text(h)?
        } else {
            h.to_string()
        };
        doc.set("rsync", "path", h);
    }
    if let Some((a, w)) = &opts.handler_args {
        doc.comment(
            "rsync",
            format!("The C instance ran rsync with its own arguments: {}\nclsync runs its own rsync command (-a --delete, and a --files-from list); add options to `args`.", a.join(" ")),
        );
        findings.warn(
            w.clone(),
            "custom rsync arguments are not carried over: clsync builds rsync's command itself (add options to [rsync] args)",
        );
    }
    for o in ["lists-dir", "dont-unlink-lists"] {
        if opts.last(o).is_some() {
            findings.note(
                instance.at(o),
                format!("{o} is not needed: mode rsync passes its lists on rsync's stdin"),
            );
        }
    }
    Some(())
}
