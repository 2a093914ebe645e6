//! The C instance's timing and failure options as the job's: `delay`, `retry_delay`,
//! `[big_file]`, `timeout`, `retries` and `ignore_exit_codes`.
//!
//! The C defaults (30 s delays, a 128 MiB big-file threshold) differ from clsync's, so they
//! are written out even when the instance did not give them. Numbers are read as the C
//! program's `strtol(..., 0)` reads them.

use super::map::Instance;
use crate::import::{Doc, Findings};

/// The C clsync's defaults.
const DELAY_COLLECT: u64 = 30;
const DELAY_BIGFILE: u64 = 1800;
const THRESHOLD_BIGFILE: u64 = 128 << 20;
const DELAY_SYNC: u64 = 30;

/// Writes the delays, the big-file queue, the timeout and the retries.
pub(super) fn write(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    let simple = instance.new_mode == "simple";
    let t = secs(instance, "delay-collect", DELAY_COLLECT, findings);
    if simple {
        // Mode simple ran its handler at each event, without the queues and their delays.
        doc.set_noted(
            "",
            "delay",
            "0s",
            Some("mode simple ran the handler at once"),
        );
    } else {
        doc.set_noted("", "delay", format!("{t}s"), Some("delay-collect (-t)"));
    }
    let w = secs(instance, "delay-sync", DELAY_SYNC, findings);
    if w > 0 {
        doc.set_noted(
            "",
            "retry_delay",
            format!("{w}s"),
            Some("delay-sync (-w): the wait between tries"),
        );
        doc.set("", "retry_max_delay", format!("{w}s"));
    }
    if w > t && !simple {
        doc.comment(
            "",
            format!("delay-sync (-w) {w}: the C clsync also let at least {w} s pass between syncs; clsync syncs `delay` after the first change"),
        );
        findings.warn(
            instance.at("delay-sync"),
            format!("delay-sync {w} s is longer than delay-collect {t} s: the C clsync's minimum time between syncs has no equivalent"),
        );
    }
    big_file(instance, doc, findings);
    timeout(instance, doc, findings);
    retries(instance, doc, findings);
}

/// An option's number of seconds (or bytes), else `default` (with a warning when the value
/// is not a number).
fn secs(instance: &Instance, name: &str, default: u64, findings: &mut Findings) -> u64 {
    match instance.opts.text(name) {
        None => default,
        Some(v) => match parse_number(v) {
            Some(n) => n,
            None => {
                findings.warn(
                    instance.at(name),
                    format!("{v:?} is not a number: the default {default} is used"),
                );
                default
            }
        },
    }
}

/// `[big_file]`: the C threshold meant "larger than", clsync's "at least", hence +1.
fn big_file(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    let threshold = secs(instance, "threshold-bigfile", THRESHOLD_BIGFILE, findings);
    if threshold == 0 || instance.new_mode == "simple" {
        return;
    }
    let big = secs(instance, "delay-collect-bigfile", DELAY_BIGFILE, findings);
    doc.set_noted(
        "big_file",
        "threshold",
        toml::Value::Integer((threshold + 1).min(i64::MAX as u64) as i64),
        Some(format!(
            "threshold-bigfile (-B) {threshold}: files larger than it"
        )),
    );
    doc.set_noted(
        "big_file",
        "delay",
        format!("{big}s"),
        Some("delay-collect-bigfile (-T)"),
    );
}

/// `timeout` of timeout-sync (0: none).
fn timeout(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    let Some(k) = instance.opts.text("timeout-sync") else {
        return;
    };
    match parse_number(k) {
        Some(0) => {}
        Some(n) => {
            doc.set_noted("", "timeout", format!("{n}s"), Some("timeout-sync (-k)"));
            findings.note(
                instance.at("timeout-sync"),
                "timeout-sync: clsync kills a handler run that takes longer and retries the batch (the C clsync exited)",
            );
        }
        None => findings.warn(
            instance.at("timeout-sync"),
            format!("{k:?} is not a number"),
        ),
    }
}

/// `retries`: clsync reports the job failed after them instead of exiting.
fn retries(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    let Some(r) = instance.opts.text("retries") else {
        return;
    };
    match parse_number(r) {
        Some(n) => {
            doc.set_noted(
                "",
                "retries",
                n as i64,
                Some("retries (-r): reported failed after this many tries"),
            );
            findings.note(
                instance.at("retries"),
                "retries: after that many failed tries clsync reports the job failed and keeps retrying (the C clsync exited)",
            );
        }
        None => findings.warn(instance.at("retries"), format!("{r:?} is not a number")),
    }
}

/// `ignore_exit_codes` of ignore-exitcode: comma lists, repeatable, 0 clears; mode
/// rsyncdirect always ignored 24.
pub(super) fn write_exit_codes(instance: &Instance, doc: &mut Doc, findings: &mut Findings) {
    let rsync = instance.new_mode == "rsync";
    let mut codes: Vec<i64> = if rsync { vec![24] } else { Vec::new() };
    let mut codes_given = false;
    for v in instance
        .opts
        .values
        .get("ignore-exitcode")
        .into_iter()
        .flatten()
    {
        codes_given = true;
        for part in v.value.as_deref().unwrap_or("").split(',') {
            match parse_number(part) {
                Some(0) => codes.clear(),
                Some(c) if c <= 255 => codes.push(c as i64),
                _ => findings.warn(&v.at, format!("{part:?} is not an exit code")),
            }
        }
    }
    if !codes_given {
        return;
    }
    if rsync && !codes.contains(&24) {
        codes.push(24);
    }
    codes.sort_unstable();
    codes.dedup();
    doc.set_noted(
        "",
        "ignore_exit_codes",
        toml::Value::Array(codes.into_iter().map(toml::Value::Integer).collect()),
        Some("ignore-exitcode (-x)"),
    );
}

/// A number as the C program's `strtol(..., 0)` reads it: decimal, `0x` hex, `0` octal.
fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_strtol() {
        assert_eq!(parse_number(" 30 "), Some(30));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("010"), Some(8));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("x"), None);
    }
}
