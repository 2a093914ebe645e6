//! The C clsync's configuration file, as the program reads it: `-H FILE`, else the first
//! file of its search list that can be read (`-H /NULL/`: none); the block `-K NAME`
//! (default `default`) and the blocks it inherits from fill in the options that the
//! command line did not set, and keys `--` / `---` give the handler's arguments.
//!
//! The command line wins over the file, and a nearer block over the one it inherits from;
//! an unknown key did nothing in the C program, and is reported.

use std::path::{Path, PathBuf};

use super::keyfile::{Entry, KeyFile};
use super::{OptValue, Options, getopt};
use crate::import::Findings;
use crate::import::words::WordBuilder;

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

/// Fills `opts` from the configuration file's blocks.
pub(super) fn read(opts: &mut Options, findings: &mut Findings) {
    let Some((file, bytes)) = find(opts, findings) else {
        return;
    };
    let shown = file.display().to_string();
    let Some(kf) = parse(&shown, bytes, findings) else {
        return;
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
            apply(opts, e, at, findings);
        }
    }
}

/// The configuration file and its bytes: `-H`'s (with a warning when it cannot be read),
/// else the first of the search list; `None` when there is none.
fn find(opts: &Options, findings: &mut Findings) -> Option<(PathBuf, Vec<u8>)> {
    let path = match opts.text("config-file") {
        Some("/NULL/") => return None,
        Some("") | None => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    let explicit = path.is_some();
    let candidates = path.map(|p| vec![p]).unwrap_or_else(search_list);
    for c in candidates {
        match std::fs::read(&c) {
            Ok(bytes) => return Some((c, bytes)),
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
    if let Some(b) = opts.last("config-block") {
        findings.note(
            b.at.clone(),
            "no configuration file was found, so the block is empty (as for the C clsync)",
        );
    }
    None
}

/// The file's blocks; `None` (with a warning) when it is not UTF-8 or not a key file.
fn parse(shown: &str, bytes: Vec<u8>, findings: &mut Findings) -> Option<KeyFile> {
    let Ok(text) = String::from_utf8(bytes) else {
        findings.warn(
            shown,
            "the configuration file is not UTF-8; it was not read",
        );
        return None;
    };
    match KeyFile::parse(&text) {
        Ok(kf) => Some(kf),
        Err(e) => {
            findings.warn(shown, format!("{e}; the configuration file was not read"));
            None
        }
    }
}

/// One key of a block, unless an earlier source set it: an option, or the handler's
/// arguments (`--`) or initial-sync arguments (`---`).
fn apply(opts: &mut Options, e: &Entry, at: String, findings: &mut Findings) {
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
        key => match getopt::specs().find(|s| s.name == key) {
            Some(spec) => {
                opts.values.entry(spec.name).or_insert_with(|| {
                    vec![OptValue {
                        value: Some(e.value.clone()),
                        at,
                    }]
                });
            }
            None => findings.warn(
                at,
                format!("unknown key {key:?}: the C clsync ignored it too, so it did nothing"),
            ),
        },
    }
}

/// The handler arguments of a configuration value, split as the C program splits them:
/// on spaces and tabs, with `'...'` and `"..."` quoting and no backslash escapes.
fn split_handler_args(v: &str) -> Vec<String> {
    let mut words = WordBuilder::default();
    let mut quote: Option<char> = None;
    for c in v.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => words.push(c),
            None if c == ' ' || c == '\t' => words.close(),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                words.open();
            }
            None => words.push(c),
        }
    }
    words.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_args_of_the_config() {
        assert_eq!(
            split_handler_args("%RSYNC-ARGS% \"a b\"\t'c' %watch-dir%/"),
            ["%RSYNC-ARGS%", "a b", "c", "%watch-dir%/"]
        );
    }
}
