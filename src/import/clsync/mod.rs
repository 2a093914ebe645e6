//! `clsync import clsync ARGS...`: a C clsync (0.4) instance as one clsync job.
//!
//! The arguments are the C program's command line, as separate words or as one line (an
//! `ExecStart=` line, a `CLSYNC_ARGS='...'` line, or the options alone: [`words`]). They
//! are parsed as its `getopt_long` parses them ([`getopt`]); then, as the C program does,
//! the configuration file is read (`-H FILE`, else the first of its search list; `-H
//! /NULL/`: none) and the block `-K NAME` (default `default`) and the blocks it inherits
//! from fill in what the command line did not set ([`config_file`], [`keyfile`]).
//! `%option%` macros in values are expanded ([`macros`]). The result is mapped to a job
//! ([`map`]).
//!
//! This file holds the entry point and the options as read ([`Options`]), so that a step
//! sees every option the same way, wherever it was set.
//!
//! [`words`]: crate::import::words

mod config_file;
mod daemon;
mod getopt;
mod handler;
mod keyfile;
mod macros;
mod map;
mod settings;
mod template;
mod timing;
mod unmapped;

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::{Findings, Imported, words};

/// One value of an option, and where it was set.
#[derive(Debug, Clone)]
pub(crate) struct OptValue {
    pub value: Option<String>,
    /// `argument -t5`, or `FILE:LINE`.
    pub at: String,
}

/// Every option of the instance, after the command line and the configuration blocks.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// By long name; the command line may give an option several times.
    pub values: BTreeMap<&'static str, Vec<OptValue>>,
    /// The sync handler's arguments (`--` on the command line or key `--`), and where.
    pub handler_args: Option<(Vec<String>, String)>,
    /// Key `---`: the initial-sync arguments of mode shell.
    pub initial_args: Option<(Vec<String>, String)>,
    /// The configuration block used, when a file was read.
    pub block: Option<String>,
}

impl Options {
    /// The last value given.
    pub fn last(&self, name: &str) -> Option<&OptValue> {
        self.values.get(name).and_then(|v| v.last())
    }

    /// Where the last value was set, for a finding (`command line` when it was not).
    pub fn at(&self, name: &str) -> String {
        self.last(name)
            .map(|v| v.at.clone())
            .unwrap_or_else(|| "command line".into())
    }

    /// The last value's text (`""` for a flag without one).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.last(name).map(|v| v.value.as_deref().unwrap_or(""))
    }

    /// Every option's last value (flags given without one are left out).
    pub fn last_values(&self) -> BTreeMap<&'static str, String> {
        self.values
            .iter()
            .filter_map(|(k, v)| v.last().and_then(|x| x.value.clone()).map(|x| (*k, x)))
            .collect()
    }

    /// A flag's state: given without a value or with a non-zero number.
    pub fn flag(&self, name: &str) -> bool {
        match self.last(name) {
            None => false,
            Some(OptValue { value: None, .. }) => true,
            Some(OptValue { value: Some(v), .. }) => v.trim() != "0" && !v.trim().is_empty(),
        }
    }
}

/// Imports the C clsync instance that `args` start.
pub fn import(args: &[OsString]) -> Imported {
    let mut imported = Imported::default();
    if let Some(opts) = options(args, &mut imported)
        && let Some(job) = map::build(&opts, &mut imported)
    {
        imported.jobs.push(job);
    }
    imported
}

/// The words of the command line, however they were given.
fn command_words(args: &[OsString]) -> Result<Vec<String>, String> {
    let strings: Vec<String> = args
        .iter()
        .map(|a| {
            a.to_str()
                .map(str::to_string)
                .ok_or_else(|| format!("argument {a:?} is not UTF-8, which a job file cannot hold"))
        })
        .collect::<Result<_, _>>()?;
    let one_line = strings.len() == 1
        && (strings[0].contains([' ', '\t', '\n']) || strings[0].starts_with("ExecStart="));
    let words = if one_line {
        words::split(&strings[0])?
    } else {
        strings
    };
    Ok(words::strip_invocation(words))
}

/// The instance's options: its command line, then its configuration file, macros
/// expanded; `None` (with an error) when the command line cannot start a sync.
fn options(args: &[OsString], imported: &mut Imported) -> Option<Options> {
    let findings = &mut imported.findings;
    let words = checked_words(args, findings)?;
    let mut opts = command_line_options(&words, findings)?;
    config_file::read(&mut opts, findings);
    macros::expand_options(&mut opts, findings);
    Some(opts)
}

/// The command line's words; `None` (with an error) when they hold systemd's `%i`.
fn checked_words(args: &[OsString], findings: &mut Findings) -> Option<Vec<String>> {
    let words = match command_words(args) {
        Ok(w) => w,
        Err(e) => {
            findings.error("command line", e);
            return None;
        }
    };
    if let Some(w) = words.iter().find(|w| w.contains("%i") || w.contains("%I")) {
        findings.error(
            format!("argument {w}"),
            "%i is systemd's instance name: give the command line with it replaced by the instance (e.g. -K www)",
        );
        return None;
    }
    for w in words.iter().filter(|w| w.contains('$')) {
        findings.warn(
            format!("argument {w}"),
            "a shell or systemd variable is not expanded: give its value instead",
        );
    }
    Some(words)
}

/// The options of the command line `words`; `None` (with an error) when getopt refuses
/// it or it only asks for help or a version.
fn command_line_options(words: &[String], findings: &mut Findings) -> Option<Options> {
    let cl = match getopt::parse(words) {
        Ok(cl) => cl,
        Err(e) => {
            findings.error(
                "command line",
                format!("{e} (the C clsync 0.4.5 refuses it too)"),
            );
            return None;
        }
    };
    let mut opts = Options::default();
    for g in &cl.options {
        if matches!(g.name, "help" | "version") {
            findings.error(
                format!("argument {}", g.written),
                "this command line prints help or a version; it syncs nothing",
            );
            return None;
        }
        opts.values.entry(g.name).or_default().push(OptValue {
            value: g.value.clone(),
            at: format!("argument {}", g.written),
        });
    }
    for w in &cl.stray {
        findings.note(
            format!("argument {w}"),
            "a word that is not an option's value became a sync-handler argument, as in the C clsync (an optional value must be attached: -d1, not -d 1)",
        );
    }
    if let Some(h) = cl.handler_args {
        opts.handler_args = Some((h, "arguments after --".into()));
    }
    Some(opts)
}
