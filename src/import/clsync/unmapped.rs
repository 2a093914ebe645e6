//! The C instance's options that the other steps do not map: a note for those whose
//! behaviour clsync has anyway, a comment and a warning for those with no equivalent.
//!
//! Every option of the C program's table is in [`MAPPED`], [`COVERED`] or, with what it
//! did, [`NO_EQUIVALENT`]; an option in none of them is reported as having no equivalent.

use super::Options;
use crate::import::{Doc, Findings};

/// Options with no equivalent, and what to say about them.
const NO_EQUIVALENT: &[(&str, &str)] = &[
    ("standby-file", "pausing while a file exists"),
    (
        "max-iterations",
        "a limit of sync passes (clsync sync --once JOB runs until the source is quiet)",
    ),
    (
        "exit-on-no-events",
        "exiting when idle (clsync sync --once JOB does that for one job)",
    ),
    (
        "only-initialsync",
        "a single initial sync (clsync sync --once JOB does that for one job)",
    ),
    ("full-initialsync", "ignoring the rules in the initial sync"),
    ("pre-exit-hook", "a program run before exit"),
    ("exit-hook", "a program run at exit"),
    ("custom-signals", "signals that switch configuration blocks"),
    (
        "socket",
        "the C control socket (clsync has its own: clsync status, reload)",
    ),
    ("socket-auth", "the C control socket"),
    ("socket-mod", "the C control socket"),
    ("socket-own", "the C control socket"),
    ("dump-dir", "state dumps"),
    ("cancel-syscalls", "skipping lstat on events"),
    (
        "one-file-system",
        "staying on one file system (rsync's --one-file-system in [rsync] args covers the copy, not the watching)",
    ),
    ("exclude-mount-points", "excluding mount points' contents"),
    ("have-recursive-sync", "whole-directory handler calls"),
    ("privileged-uid", "privilege splitting"),
    ("privileged-gid", "privilege splitting"),
    ("chroot", "a chroot (use systemd's RootDirectory=)"),
    ("pivot-root", "pivot_root (use systemd's sandboxing)"),
    (
        "detach-network",
        "network namespaces (use systemd's PrivateNetwork=)",
    ),
    ("detach-ipc", "IPC namespaces (use systemd's PrivateIPC=)"),
    (
        "detach-miscellanea",
        "namespaces (use systemd's sandboxing)",
    ),
    ("splitting", "privilege splitting"),
    ("check-execvp-arguments", "exec argument checks"),
    ("add-permitted-hook-files", "exec argument checks"),
    ("forget-privthread-info", "privilege splitting"),
    ("permit-mprotect", "seccomp"),
    ("shm-mprotect", "seccomp"),
    ("mountpoints", "unmounting (use systemd's sandboxing)"),
    (
        "preserve-capabilities",
        "capabilities (use systemd's AmbientCapabilities=)",
    ),
    (
        "inherit-capabilities",
        "capabilities (use systemd's AmbientCapabilities=)",
    ),
    (
        "uid",
        "the C program's own user (clsync runs as its service's User=)",
    ),
    (
        "gid",
        "the C program's own group (clsync runs as its service's Group=)",
    ),
];

/// Options whose behaviour clsync has anyway, and why that is enough.
const COVERED: &[(&str, &str)] = &[
    (
        "background",
        "clsync runs in the foreground under its service manager",
    ),
    (
        "ignore-failures",
        "clsync never drops a failed batch: it retries it with backoff",
    ),
    (
        "exit-on-sync-skipping",
        "clsync rescans after a lost event instead of exiting",
    ),
    ("fts-experimental-optimization", "it did nothing"),
    (
        "rsync-inclimit",
        "clsync splits batches too big for one run itself",
    ),
    (
        "sync-on-quit",
        "on SIGTERM clsync syncs what is pending before it exits",
    ),
    ("verbose", "clsync's log level is [daemon] log_level"),
    ("config-file", "read by the import"),
    ("config-block", "read by the import"),
    ("config-block-inherits", "read by the import"),
];

/// Options read by the steps of [`super::map::build`].
const MAPPED: &[&str] = &[
    "watch-dir",
    "destination-dir",
    "mode",
    "sync-handler",
    "rules-file",
    "label",
    "delay-collect",
    "delay-collect-bigfile",
    "threshold-bigfile",
    "delay-sync",
    "timeout-sync",
    "retries",
    "ignore-exitcode",
    "threading",
    "lists-dir",
    "dont-unlink-lists",
    "skip-initialsync",
    "modification-signature",
    "sync-handler-uid",
    "sync-handler-gid",
    "pid-file",
    "status-file",
    "output",
    "debug",
    "quiet",
    "monitor",
    "rsync-prefer-include",
    "synclist-simplify",
];

/// Reports every option given that is not in [`MAPPED`].
pub(super) fn report(opts: &Options, doc: &mut Doc, findings: &mut Findings) {
    for (name, values) in &opts.values {
        if MAPPED.contains(name) {
            continue;
        }
        let Some(v) = values.last() else { continue };
        if let Some((_, why)) = COVERED.iter().find(|(n, _)| n == name) {
            if !name.starts_with("config-") {
                findings.note(&v.at, format!("{name}: {why}"));
            }
            continue;
        }
        let what = NO_EQUIVALENT
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| *w)
            .unwrap_or("no equivalent");
        let shown = match &v.value {
            Some(x) => format!("{name} = {x}"),
            None => name.to_string(),
        };
        doc.comment(
            "",
            format!("The C instance's {shown}: {what}; not carried over."),
        );
        findings.warn(&v.at, format!("{name} is not carried over: {what}"));
    }
}
