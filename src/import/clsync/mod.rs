//! `clsync import clsync ARGS...`: a C clsync (0.4) instance as one clsync job.
//!
//! The arguments are the C program's command line, as separate words or as one line (an
//! `ExecStart=` line, a `CLSYNC_ARGS='...'` line, or the options alone: [`words`]). They
//! are parsed as its `getopt_long` parses them ([`getopt`]); then, as the C program does,
//! the configuration file is read (`-H FILE`, else the first of its search list; `-H
//! /NULL/`: none) and the block `-K NAME` (default `default`) and the blocks it inherits
//! from fill in what the command line did not set ([`keyfile`]). `%option%` macros in
//! values are expanded. The result is mapped to a job ([`map`]).
//!
//! [`words`]: crate::import::words

pub mod getopt;
pub mod keyfile;
pub mod map;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Imported, words};

/// Where the C clsync looks for its configuration without `-H`, in order.
fn search_list() -> Vec<PathBuf> {
    let mut list = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        list.push(Path::new(&home).join(".clsync.conf"));
    }
    for p in [
        "/etc/clsync/clsync.conf",
        "/etc/clsync.conf",
        "/usr/local/etc/clsync/clsync.conf",
        "/usr/local/etc/clsync.conf",
    ] {
        list.push(PathBuf::from(p));
    }
    list
}

/// One value of an option, and where it was set.
#[derive(Debug, Clone)]
pub struct OptValue {
    pub value: Option<String>,
    /// `argument -t5`, or `FILE:LINE`.
    pub at: String,
}

/// Every option of the instance, after the command line and the configuration blocks.
#[derive(Debug, Default)]
pub struct Options {
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

    /// The last value's text (`""` for a flag without one).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.last(name).map(|v| v.value.as_deref().unwrap_or(""))
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

/// The handler arguments of a configuration value, split as the C program splits them:
/// on spaces and tabs, with `'...'` and `"..."` quoting and no backslash escapes.
pub fn split_handler_args(v: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in v.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == ' ' || c == '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
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

fn options(args: &[OsString], imported: &mut Imported) -> Option<Options> {
    let findings = &mut imported.findings;
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
    let cl = match getopt::parse(&words) {
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
    read_config(&mut opts, findings);
    expand_macros(&mut opts, findings);
    Some(opts)
}

/// Fills `opts` from the configuration file's blocks.
fn read_config(opts: &mut Options, findings: &mut crate::import::Findings) {
    let path = match opts.text("config-file") {
        Some("/NULL/") => return,
        Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => None,
    };
    let explicit = path.is_some();
    let candidates = path.map(|p| vec![p]).unwrap_or_else(search_list);
    let mut found = None;
    for c in candidates {
        match std::fs::read(&c) {
            Ok(bytes) => {
                found = Some((c, bytes));
                break;
            }
            Err(e) if explicit => {
                let at = opts
                    .last("config-file")
                    .map(|v| v.at.clone())
                    .unwrap_or_default();
                findings.warn(
                    at,
                    format!("{}: {e}; no configuration file was read", c.display()),
                );
            }
            Err(_) => {}
        }
    }
    let Some((file, bytes)) = found else {
        if let Some(b) = opts.last("config-block") {
            findings.note(
                b.at.clone(),
                "no configuration file was found, so the block is empty (as for the C clsync)",
            );
        }
        return;
    };
    let shown = file.display().to_string();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            findings.warn(
                &shown,
                "the configuration file is not UTF-8; it was not read",
            );
            return;
        }
    };
    let kf = match keyfile::KeyFile::parse(&text) {
        Ok(kf) => kf,
        Err(e) => {
            findings.warn(&shown, format!("{e}; the configuration file was not read"));
            return;
        }
    };
    let block = opts.text("config-block").unwrap_or("default").to_string();
    findings.note(
        &shown,
        format!("read block [{block}] and the blocks it inherits from"),
    );
    let chain = kf.chain(&block);
    if chain.is_empty() {
        findings.warn(
            &shown,
            format!("there is no block [{block}] (the C clsync takes it as empty)"),
        );
    }
    opts.block = Some(block);
    for (name, entries) in chain {
        for e in entries {
            let at = format!("{shown}:{} [{name}]", e.line);
            match e.key.as_str() {
                "config-block-inherits" => {}
                "--" | "---" => {
                    let slot = if e.key == "--" {
                        &mut opts.handler_args
                    } else {
                        &mut opts.initial_args
                    };
                    if slot.is_none() {
                        *slot = Some((split_handler_args(&e.value), at));
                    }
                }
                key => match getopt::OPTIONS.iter().find(|(n, _, _)| *n == key) {
                    Some((n, _, _)) => {
                        if !opts.values.contains_key(n) {
                            opts.values.insert(
                                n,
                                vec![OptValue {
                                    value: Some(e.value.clone()),
                                    at,
                                }],
                            );
                        }
                    }
                    None => findings.warn(
                        at,
                        format!(
                            "unknown key {key:?}: the C clsync ignored it too, so it did nothing"
                        ),
                    ),
                },
            }
        }
    }
}

/// Expands `%option%` in option values with the options' values (`%%` is `%`); handler
/// arguments are left to [`map`], which expands their lower-case macros.
fn expand_macros(opts: &mut Options, findings: &mut crate::import::Findings) {
    let snapshot: BTreeMap<&'static str, String> = opts
        .values
        .iter()
        .filter_map(|(k, v)| v.last().and_then(|x| x.value.clone()).map(|x| (*k, x)))
        .collect();
    for values in opts.values.values_mut() {
        for v in values.iter_mut() {
            if let Some(text) = &v.value
                && text.contains('%')
            {
                let (out, unknown) = expand(text, &snapshot);
                for u in unknown {
                    findings.warn(
                        &v.at,
                        format!("%{u}% has no value here; the C clsync made it empty, and so does the import"),
                    );
                }
                v.value = Some(out);
            }
        }
    }
}

/// `text` with `%name%` replaced by `values[name]` (`label` defaults to `nolabel`) and `%%`
/// by `%`; returns the names that had no value.
pub fn expand(text: &str, values: &BTreeMap<&'static str, String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('%') {
            out.push('%');
            rest = a;
            continue;
        }
        match after.find('%') {
            Some(j) => {
                let name = &after[..j];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None if name == "label" => out.push_str("nolabel"),
                    None => unknown.push(name.to_string()),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros() {
        let mut v = BTreeMap::new();
        v.insert("label", "www".to_string());
        assert_eq!(expand("/run/c-%label%.pid", &v).0, "/run/c-www.pid");
        assert_eq!(expand("100%%", &v).0, "100%");
        let (out, unknown) = expand("/x/%nothing%/y", &v);
        assert_eq!(
            (out.as_str(), unknown),
            ("/x//y", vec!["nothing".to_string()])
        );
        assert_eq!(expand("%label%", &BTreeMap::new()).0, "nolabel");
    }

    #[test]
    fn handler_args_of_the_config() {
        assert_eq!(
            split_handler_args("%RSYNC-ARGS% \"a b\"\t'c' %watch-dir%/"),
            ["%RSYNC-ARGS%", "a b", "c", "%watch-dir%/"]
        );
    }
}
