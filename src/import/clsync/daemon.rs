//! The C instance's process settings as clsync's `[daemon]` table (in `clsync.toml`):
//! `pid_file`, `status_file`, `log_target`, `log_level`.
//!
//! They belong to the daemon, not to a job: one clsync daemon runs every imported job, so
//! a finding says that they are shared.

use super::Options;
use crate::import::Imported;

/// `[daemon]` settings of the instance, into `imported.main`.
pub(super) fn write(opts: &Options, imported: &mut Imported) {
    let main = &mut imported.main;
    let findings = &mut imported.findings;
    if let Some(p) = opts.text("pid-file").filter(|p| !p.is_empty()) {
        main.set("daemon", "pid_file", p.to_string());
        findings.note(
            opts.at("pid-file"),
            "pid-file is the daemon's, shared by all its jobs ([daemon] pid_file)",
        );
    }
    if let Some(p) = opts.text("status-file").filter(|p| !p.is_empty()) {
        main.set("daemon", "status_file", p.to_string());
        findings.note(opts.at("status-file"), "status-file becomes [daemon] status_file: JSON of every job (clsync status --json), not one word");
    }
    match opts.text("output") {
        Some("syslog") => main.set("daemon", "log_target", "syslog"),
        Some("stderr") => main.set("daemon", "log_target", "stderr"),
        Some("stdout") => {
            main.set("daemon", "log_target", "stderr");
            findings.note(
                opts.at("output"),
                "output stdout: clsync logs to stderr instead",
            );
        }
        Some(o) if !o.is_empty() => {
            findings.warn(opts.at("output"), format!("unknown output {o:?}"))
        }
        _ => {}
    }
    if opts.flag("debug") {
        main.set("daemon", "log_level", "debug");
    } else if opts.flag("quiet") {
        main.set("daemon", "log_level", "error");
        findings.note(opts.at("quiet"), "quiet: clsync still logs errors");
    }
    if main.has_keys() {
        main.header("Imported by `clsync import clsync` from a C clsync instance's settings.");
    }
}
