//! lsyncd's `settings{...}` as `[daemon]` of `clsync.toml`.
//!
//! | lsyncd | clsync |
//! |---|---|
//! | `pidfile` | `pid_file` |
//! | `statusFile` | `status_file` (JSON, rewritten on every change) |
//! | `logfacility` | `log_target = "syslog"`, `syslog_facility` |
//! | `logfile`, `logident`, `onepass` | comment and warning |
//! | `statusInterval`, `nodaemon`, `insist`, `inotifyMode` | note: clsync's behaviour covers them |
//! | `maxProcesses`, `maxDelays` | applied to every job by [`super::sync`] |

use super::lua::Setting;
use super::value::LValue;
use crate::import::doc::show_bytes;
use crate::import::{Doc, Findings};

/// Facilities `[daemon] syslog_facility` takes.
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// Maps the settings (the last value of each key wins, as in lsyncd) into `main`.
pub fn map(settings: &[Setting], file: &str, main: &mut Doc, findings: &mut Findings) {
    for s in settings {
        let at = if s.loc.file.is_empty() {
            file.to_string()
        } else {
            s.loc.to_string()
        };
        if s.old_syntax {
            findings.note(
                &at,
                format!(
                    "settings.{} = ... (an older lsyncd syntax) was read as settings{{{} = ...}}",
                    s.key, s.key
                ),
            );
        }
        match s.key.as_str() {
            "pidfile" | "statusFile" | "logfacility" => carry(s, &at, main, findings),
            "logfile" | "logident" | "onepass" => without_equivalent(s, &at, main, findings),
            _ => not_needed(s, &at, findings),
        }
    }
}

/// The settings `[daemon]` has a key for.
fn carry(s: &Setting, at: &str, main: &mut Doc, findings: &mut Findings) {
    let string = match &s.value {
        LValue::Str(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    };
    match (s.key.as_str(), string) {
        ("pidfile", Some(p)) => main.set("daemon", "pid_file", p),
        ("statusFile", Some(p)) => {
            main.set_noted(
                "daemon",
                "status_file",
                p,
                Some("lsyncd's statusFile: `clsync status --json`, rewritten on every change"),
            );
            findings.note(
                at,
                "statusFile became [daemon] status_file: it holds `clsync status --json` (JSON), not lsyncd's text report",
            );
        }
        ("logfacility", Some(f)) if FACILITIES.contains(&f.as_str()) => {
            main.set("daemon", "log_target", "syslog");
            main.set("daemon", "syslog_facility", f);
        }
        _ => bad(findings, at, main, s),
    }
}

/// The settings clsync has nothing for: a comment and a warning.
fn without_equivalent(s: &Setting, at: &str, main: &mut Doc, findings: &mut Findings) {
    match s.key.as_str() {
        "logfile" => {
            let shown = s.value.show();
            main.comment(
                "daemon",
                format!(
                    "lsyncd's logfile = {shown}: clsync logs to journald, syslog or stderr ([daemon] log_target), not to a file of its own"
                ),
            );
            findings.warn(
                at,
                format!("logfile = {shown} has no equivalent: clsync logs to journald, syslog or stderr (journalctl -u clsync)"),
            );
        }
        "logident" => {
            main.comment(
                "daemon",
                format!(
                    "lsyncd's logident = {}: clsync's log lines are always named clsync",
                    s.value.show()
                ),
            );
            findings.warn(
                at,
                "logident has no equivalent: clsync's log lines are named clsync",
            );
        }
        _ => {
            main.comment(
                "daemon",
                "lsyncd's onepass (sync once, then exit): run `clsync sync --once JOB` instead of the daemon",
            );
            findings.warn(
                at,
                "onepass has no daemon setting: run `clsync sync --once JOB` for a single pass",
            );
        }
    }
}

/// The settings clsync's behaviour or the jobs cover: a note.
fn not_needed(s: &Setting, at: &str, findings: &mut Findings) {
    match s.key.as_str() {
        "statusInterval" => findings.note(
            at,
            "statusInterval is not needed: clsync rewrites its status file when something changes",
        ),
        "nodaemon" => findings.note(
            at,
            "nodaemon is not needed: clsync runs in the foreground under its service manager",
        ),
        "insist" => findings.note(
            at,
            "insist is clsync's behaviour: a failing initial sync is retried with backoff, whatever is set",
        ),
        "inotifyMode" => findings.note(
            at,
            format!(
                "inotifyMode = {}: clsync reacts to both close-after-write and modify events",
                s.value.show()
            ),
        ),
        "maxProcesses" | "maxDelays" => findings.note(
            at,
            format!("settings' {} is applied to every sync{{}} that follows it", s.key),
        ),
        other => {
            // lua.rs refuses unknown settings; this keeps a new one from vanishing.
            findings.warn(at, format!("setting {other} is not carried over"));
        }
    }
}

fn bad(findings: &mut Findings, at: &str, main: &mut Doc, s: &Setting) {
    let shown = match &s.value {
        LValue::Str(b) => format!("{:?}", show_bytes(b)),
        v => v.show(),
    };
    main.comment(
        "daemon",
        format!("lsyncd's {} = {shown} could not be carried over", s.key),
    );
    findings.warn(
        at,
        format!(
            "{} = {shown} cannot be carried over (not a valid value here)",
            s.key
        ),
    );
}
