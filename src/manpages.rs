//! The manual pages, written by the hidden `clsync man DIR` (the package build runs it).
//!
//! clsync(8) and one clsync-COMMAND(8) per command come from the clap definitions
//! (`clap_mangen`), so they cannot drift from the real command line. clsync.toml(5) is the
//! hand-written roff of `packaging/man/clsync.toml.5.in` with its job keys filled in from
//! `schemas/job.schema.json`, the schema a test keeps equal to what the parser accepts;
//! a test here checks that every key the parser knows is in the page.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

const SCHEMA: &str = include_str!("../schemas/job.schema.json");
const CONFIG_PAGE: &str = include_str!("../packaging/man/clsync.toml.5.in");
const MAIN_PAGE_EXTRA: &str = include_str!("../packaging/man/clsync.8.extra");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes every page into `dir` and returns their paths.
pub fn write_all(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in pages(cmd)? {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Every page as (file name, roff).
pub fn pages(cmd: clap::Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man = |c: clap::Command| {
        clap_mangen::Man::new(c)
            .section("8")
            .source(format!("clsync {VERSION}"))
            .manual("System Manager's Manual")
    };
    let mut out = Vec::new();
    let mut main = Vec::new();
    man(cmd.clone()).render(&mut main)?;
    // clap_mangen titles the after_help text "EXTRA"; ours is the exit status.
    let main = String::from_utf8_lossy(&main).replace(".SH EXTRA\n", ".SH \"EXIT STATUS\"\n");
    let mut main = main.into_bytes();
    main.extend_from_slice(MAIN_PAGE_EXTRA.as_bytes());
    out.push(("clsync.8".to_string(), main));
    sub_pages(&cmd, &man, &mut out)?;
    out.push(("clsync.toml.5".to_string(), config_page().into_bytes()));
    Ok(out)
}

/// One page per visible subcommand, and per subcommand of those (`clsync-import-lsyncd.8`).
fn sub_pages(
    cmd: &clap::Command,
    man: &impl Fn(clap::Command) -> clap_mangen::Man,
    out: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = man(sub.clone());
        let name = page.get_filename();
        let mut text = Vec::new();
        page.render(&mut text)?;
        text.extend_from_slice(b".SH \"SEE ALSO\"\n.BR clsync (8),\n.BR clsync.toml (5)\n");
        out.push((name, text));
        sub_pages(sub, man, out)?;
    }
    Ok(())
}

/// clsync.toml(5): the template with the schema's keys and value types filled in.
pub fn config_page() -> String {
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA).expect("schemas/job.schema.json is valid JSON");
    CONFIG_PAGE
        .replace("@VERSION@", VERSION)
        .replace(".\\\" @JOB_KEYS@\n", &job_keys(&schema))
        .replace(".\\\" @VALUE_TYPES@\n", &value_types(&schema))
}

/// The top-level keys, then one subsection per table (`[ssh]`, ...), each key with its
/// type, default and description.
fn job_keys(schema: &serde_json::Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let props = schema["properties"].as_object().expect("schema properties");
    let mut out = String::new();
    let (tables, mut keys): (Vec<_>, Vec<_>) = props
        .iter()
        .partition(|(_, spec)| spec.get("properties").is_some());
    // The required keys (source) first, the rest in alphabetical order.
    keys.sort_by_key(|(k, _)| (!required.contains(&k.as_str()), k.as_str()));
    for (key, spec) in keys {
        key_entry(&mut out, key, spec, required.contains(&key.as_str()));
    }
    for (key, spec) in tables {
        let _ = writeln!(out, ".SS \"[{key}]\"");
        if let Some(d) = spec["description"].as_str() {
            let _ = writeln!(out, "{}", roff_text(d));
        }
        for (sub, s) in spec["properties"].as_object().into_iter().flatten() {
            key_entry(&mut out, sub, s, false);
        }
    }
    out
}

fn key_entry(out: &mut String, key: &str, spec: &serde_json::Value, required: bool) {
    let _ = writeln!(out, ".TP\n.B {}", roff_text(key));
    let mut what = type_of(spec);
    if required {
        what.push_str("; required");
    } else if let Some(d) = spec.get("default") {
        let _ = write!(what, "; default \\fB{}\\fR", roff_text(&toml_value(d)));
    }
    let _ = writeln!(out, "({what})");
    if let Some(d) = spec["description"].as_str() {
        let _ = writeln!(out, "{}", roff_text(d));
    }
}

/// "duration", "string", "integer, 1 to 64", "array of strings", "one of ...".
fn type_of(spec: &serde_json::Value) -> String {
    if let Some(r) = spec["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if let Some(e) = spec["enum"].as_array() {
        let names: Vec<String> = e.iter().map(|v| roff_text(&toml_value(v))).collect();
        return format!("one of {}", names.join(", "));
    }
    match spec["type"].as_str() {
        Some("array") => match spec["items"]["type"].as_str() {
            Some(t) => format!("array of {t}s"),
            None => "array".into(),
        },
        Some("integer") => match (spec["minimum"].as_i64(), spec["maximum"].as_i64()) {
            (Some(lo), Some(hi)) => format!("integer, {lo} to {hi}"),
            (Some(lo), None) => format!("integer, at least {lo}"),
            _ => "integer".into(),
        },
        Some(t) => t.to_string(),
        None => "value".into(),
    }
}

/// A JSON default as it is written in TOML.
fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// The schema's `$defs` (duration, size) as a tagged list.
fn value_types(schema: &serde_json::Value) -> String {
    let mut out = String::new();
    for (name, spec) in schema["$defs"].as_object().into_iter().flatten() {
        let _ = writeln!(out, ".TP\n.I {}", roff_text(name));
        if let Some(d) = spec["description"].as_str() {
            let _ = writeln!(out, "{}", roff_text(d));
        }
    }
    out
}

/// Plain text (from the schema) as roff: escapes, `code` in bold, other characters than
/// ASCII as groff's \[uXXXX], and no line starting with a control character.
fn roff_text(s: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '`' => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '\n' => out.push('\n'),
            c if c.is_ascii() => out.push(c),
            c => {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    out.lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The keys the parser accepts in one table, from its "expected one of" message for an
    /// unknown key there.
    fn parser_keys(main: &str, job: &str) -> Vec<String> {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("jobs.d")).unwrap();
        std::fs::write(t.path().join("clsync.toml"), main).unwrap();
        std::fs::write(t.path().join("jobs.d/j.toml"), job).unwrap();
        let l = clsync::config::load_dir(t.path());
        let msg = l
            .diagnostics
            .iter()
            .find(|d| d.message.contains("expected one of"))
            .unwrap_or_else(|| panic!("no unknown-key error for {main:?} {job:?}"))
            .message
            .clone();
        let list = msg.split("expected one of ").nth(1).unwrap();
        let list = list.split(" (did you mean").next().unwrap();
        list.split(", ")
            .map(|k| k.trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn config_page_has_every_key_the_parser_knows() {
        let page = config_page();
        let entries: Vec<&str> = page
            .lines()
            .filter_map(|l| {
                l.strip_prefix(".B ").or_else(|| {
                    l.strip_prefix(".SS \"[")
                        .and_then(|t| t.strip_suffix("]\""))
                })
            })
            .collect();
        let cases = [
            ("[daemon]\nsurprise = 1\n", ""),
            ("", "source = \"s\"\nsurprise = 1\n"),
            ("", "source = \"s\"\n[big_file]\nsurprise = 1\n"),
            ("", "source = \"s\"\n[rsync]\nsurprise = 1\n"),
            ("", "source = \"s\"\n[ssh]\nsurprise = 1\n"),
            ("", "source = \"s\"\n[command]\nsurprise = 1\n"),
        ];
        for (main, job) in cases {
            for key in parser_keys(main, job) {
                let roff = roff_text(&key);
                assert!(
                    entries.contains(&roff.as_str()),
                    "clsync.toml(5) does not describe `{key}` (table of {main:?}{job:?}): \
                     add it to packaging/man/clsync.toml.5.in (daemon keys) or to \
                     schemas/job.schema.json (job keys)"
                );
            }
        }
        for marker in ["@JOB_KEYS@", "@VALUE_TYPES@", "@VERSION@"] {
            assert!(!page.contains(marker), "{marker} left in the page");
        }
        assert!(page.contains(&format!("clsync {VERSION}")));
    }

    #[test]
    fn templates_are_ascii() {
        for t in [CONFIG_PAGE, MAIN_PAGE_EXTRA] {
            assert!(t.is_ascii());
        }
        assert!(config_page().is_ascii());
    }

    #[test]
    fn a_page_per_visible_command() {
        let pages = pages(crate::cli::Cli::command()).unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for n in [
            "clsync.8",
            "clsync-run.8",
            "clsync-check.8",
            "clsync.toml.5",
        ] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("-man.") || n.contains("-help."))
        );
        let main = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(main.contains("clsync\\-run(8)") || main.contains("clsync-run(8)"));
        assert!(main.contains(".SH SIGNALS"));
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(roff_text("a `b` -c\\d"), "a \\fBb\\fR \\-c\\ed");
        assert_eq!(roff_text(".x 'y"), "\\&.x 'y");
        assert_eq!(roff_text("NAME@1, \u{2026}"), "NAME@1, \\[u2026]");
    }
}
