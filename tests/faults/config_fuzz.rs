//! Bad input for the configuration parsers: arbitrary bytes, random TOML-ish text, deep
//! nesting, huge values, invalid regexes and absurd durations never panic, and every error
//! points at a real line and column of the file.

use std::fs;

use clsync::config;
use clsync::rules::{Rule, parse_rules_file};
use proptest::prelude::*;

fn check_file(bytes: &[u8]) {
    let t = tempfile::tempdir().unwrap();
    let jobs = t.path().join("jobs.d");
    fs::create_dir(&jobs).unwrap();
    let file = jobs.join("fuzz.toml");
    fs::write(&file, bytes).unwrap();
    let loaded = config::load_single(t.path(), &file);
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    for d in &loaded.diagnostics {
        assert!(d.line >= 1 && d.column >= 1, "{d}");
        if d.file == file {
            assert!(d.line <= lines, "{d} (file has {lines} lines)");
        }
        assert!(!d.message.is_empty());
    }
    // Invalid input is never silently accepted as a job.
    if loaded.has_errors() {
        assert!(loaded.jobs.is_empty());
    }
}

/// Text made of the pieces a job file is made of, so that the parser gets past the syntax.
fn tomlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("source"),
        Just("destination"),
        Just("mode"),
        Just("delay"),
        Just("exclude"),
        Just("rules"),
        Just("workers"),
        Just("timeout"),
        Just("ignore_exit_codes"),
        Just("initial_sync"),
        Just("enabled"),
        Just("[big_file]"),
        Just("threshold"),
        Just("[rsync]"),
        Just("args"),
        Just("dealy"),
    ];
    let value = prop_oneof![
        Just("\"/tmp\"".to_string()),
        Just("\"1s\"".to_string()),
        Just("\"99999999999h\"".to_string()),
        Just("\"1e400 TiB\"".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775807".to_string()),
        Just("[\"+f(\", \"-q\", \"\"]".to_string()),
        Just("[\"a[\", \"**/\", \"\\\\\"]".to_string()),
        Just("true".to_string()),
        Just("{ a = 1 }".to_string()),
        "\"[^\"\\\\]{0,12}\"".prop_map(|s| s),
    ];
    prop::collection::vec((key, value), 0..12).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| {
                if k.starts_with('[') {
                    format!("{k}\n")
                } else {
                    format!("{k} = {v}\n")
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_file(&bytes);
    }

    #[test]
    fn tomlish_text_never_panics(text in tomlish()) {
        check_file(text.as_bytes());
    }

    #[test]
    fn rule_lines_never_panic(line in ".{0,40}") {
        let _ = Rule::parse(&line);
    }

    #[test]
    fn rules_files_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Err(errors) = parse_rules_file(&bytes) {
            let lines = bytes.split(|&b| b == b'\n').count();
            for e in errors {
                let line = e.line.unwrap_or(1);
                prop_assert!(line >= 1 && line <= lines, "{e}");
                prop_assert!(e.column >= 1);
            }
        }
    }
}

#[test]
fn deep_nesting_and_huge_files_are_errors_not_crashes() {
    let deep = format!(
        "source = \"/tmp\"\ndestination = \"/tmp/x\"\nexclude = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check_file(deep.as_bytes());
    let tables = format!("a = {}1{}\n", "{b = ".repeat(50_000), "}".repeat(50_000));
    check_file(tables.as_bytes());
    let huge = format!(
        "source = \"/tmp\"\ndestination = \"/tmp/x\"\nexclude = [{}]\n",
        vec!["\"*.x\""; 5_000].join(",")
    );
    check_file(huge.as_bytes());
}
