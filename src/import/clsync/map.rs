//! A C clsync instance's options as one job (and `[daemon]` settings).
//!
//! | C clsync | clsync |
//! |---|---|
//! | `-W` watch-dir | `source` (absolute) |
//! | `-D` destination-dir | `destination` |
//! | `-M rsyncdirect` | `mode = "rsync"`, `[rsync] args = ["--hard-links"]` (the C `-aH`); `-S` → `[rsync] path` |
//! | `-M rsyncshell`, `shell`, `direct`, `simple` | `mode = "rsync-shell"`, `"shell"`, `"direct"`, `"simple"`; `-S` → `[command] path`, its argument template → `[command] args` |
//! | `-M so`, `rsyncso` | refused (loaded libraries) |
//! | `-R` rules-file | `rules_file` |
//! | `-l` label, `-K` block | the job's name; `%label%` |
//! | `-t` delay-collect (30) | `delay` |
//! | `-T` delay-collect-bigfile (1800), `-B` threshold-bigfile (128 MiB) | `[big_file] delay`, `threshold` (+1: the C program meant "larger than") |
//! | `-w` delay-sync (30) | `retry_delay`, `retry_max_delay` (its wait between tries) |
//! | `-k` timeout-sync | `timeout` |
//! | `-r` retries | `retries` |
//! | `-x` ignore-exitcode | `ignore_exit_codes` |
//! | `-p` threading off / safe / full | `workers = 1` / `2` / `2` |
//! | `-L` lists-dir, `-U` | `[command] lists_dir`, `keep_lists` |
//! | `--skip-initialsync` | `initial_sync = false` |
//! | `--modification-signature='*'` | `loop_guard = true` |
//! | `--sync-handler-uid/gid` | `user`, `group` |
//! | `-z` pid-file, `--status-file`, `-Y` output, `-d`, `-q` | `[daemon] pid_file`, `status_file`, `log_target`, `log_level` |
//! | hooks, socket, standby file, one-shot modes, isolation (chroot, namespaces, capabilities, seccomp, splitting) | comment and warning |
//!
//! The C program's defaults differ from clsync's (30 s delays, a big-file queue); they are
//! written out, so that the job behaves as the instance did.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::Options;
use crate::import::{Doc, Findings, Imported, Job, names};

/// The C clsync's defaults.
const DELAY_COLLECT: u64 = 30;
const DELAY_BIGFILE: u64 = 1800;
const THRESHOLD_BIGFILE: u64 = 128 << 20;
const DELAY_SYNC: u64 = 30;

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

/// Options read by [`build`] itself.
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

/// The job of `opts`, with its findings in `imported` (and `[daemon]` settings in
/// `imported.main`); `None` when refused.
pub fn build(opts: &Options, imported: &mut Imported) -> Option<Job> {
    let findings = &mut imported.findings;
    let at = |name: &str| {
        opts.last(name)
            .map(|v| v.at.clone())
            .unwrap_or_else(|| "command line".into())
    };
    let Some(mode) = opts.text("mode") else {
        findings.refuse("command line", "no mode (-M): the C clsync requires one");
        return None;
    };
    let mode = mode.split(',').next().unwrap_or("").trim().to_string();
    let new_mode = match mode.as_str() {
        "rsyncdirect" => "rsync",
        "rsyncshell" => "rsync-shell",
        "shell" | "direct" | "simple" => mode.as_str(),
        "so" | "rsyncso" => {
            findings.refuse(
                at("mode"),
                format!("mode {mode} loads a handler library into the daemon; clsync runs programs, not libraries. Rewrite the handler as a program (mode \"shell\" or \"rsync-shell\")"),
            );
            return None;
        }
        other => {
            findings.refuse(
                at("mode"),
                format!("unknown mode {other:?} (the C clsync refuses it too)"),
            );
            return None;
        }
    };
    let command_mode = new_mode != "rsync";
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.to_str().is_none() {
        // Relative paths become absolute against it, and a job file holds UTF-8 only.
        findings.refuse("command line", "the current directory's path is not UTF-8");
        return None;
    }

    let Some(watch) = opts.text("watch-dir").filter(|w| !w.is_empty()) else {
        findings.refuse(
            "command line",
            "no watch directory (-W): the C clsync requires one",
        );
        return None;
    };
    let source = absolute(&cwd, watch);
    if !Path::new(watch).is_absolute() {
        findings.note(
            at("watch-dir"),
            format!(
                "relative watch-dir {watch:?} was resolved against the current directory: {}",
                source.display()
            ),
        );
    }
    let dest_given = opts.text("destination-dir").filter(|d| !d.is_empty());
    let label = opts.text("label").map(str::to_string);
    let name = label
        .clone()
        .or_else(|| {
            opts.text("config-block")
                .filter(|b| !b.is_empty() && *b != "default")
                .map(str::to_string)
        })
        .or_else(|| dest_given.map(names::from_destination))
        .unwrap_or_else(|| names::from_destination(watch));

    let mut doc = Doc::new();
    doc.header(format!(
        "Imported by `clsync import clsync` from a C clsync instance (mode {mode}{}).",
        opts.block
            .as_ref()
            .map(|b| format!(", block [{b}]"))
            .unwrap_or_default()
    ));
    doc.set("", "source", path_text(&source)?);

    let destination = match dest_given {
        Some(d) if is_remote(d) => d.to_string(),
        Some(d) => {
            let p = absolute(&cwd, d);
            if !Path::new(d).is_absolute() {
                findings.note(
                    at("destination-dir"),
                    format!("relative destination-dir {d:?} was resolved against the current directory: {}", p.display()),
                );
            }
            path_text(&p)?
        }
        None if new_mode == "rsync" || new_mode == "direct" => {
            findings.refuse(
                "command line",
                format!("mode {mode} needs a destination directory (-D), as in the C clsync"),
            );
            return None;
        }
        None => {
            let placeholder = format!("/var/lib/clsync/{}", names::sanitize(&name));
            doc.comment(
                "",
                "The C instance had no destination-dir (its handler chose where to sync); clsync needs one:\nset `destination` to where the handler syncs (it gets it as $CLSYNC_DESTINATION and %destination%).",
            );
            findings.warn(
                at("mode"),
                format!("no destination-dir (-D): `destination` was set to {placeholder}, which the handler gets as $CLSYNC_DESTINATION; set it to the real target"),
            );
            placeholder
        }
    };
    doc.set("", "destination", destination.clone());
    doc.set("", "mode", new_mode);

    // Timing: the C defaults, written out.
    let secs = |name: &str, default: u64, findings: &mut Findings| -> u64 {
        match opts.text(name) {
            None => default,
            Some(v) => match parse_number(v) {
                Some(n) => n,
                None => {
                    findings.warn(
                        at(name),
                        format!("{v:?} is not a number: the default {default} is used"),
                    );
                    default
                }
            },
        }
    };
    let t = secs("delay-collect", DELAY_COLLECT, findings);
    if new_mode == "simple" {
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
    let w = secs("delay-sync", DELAY_SYNC, findings);
    if w > 0 {
        doc.set_noted(
            "",
            "retry_delay",
            format!("{w}s"),
            Some("delay-sync (-w): the wait between tries"),
        );
        doc.set("", "retry_max_delay", format!("{w}s"));
    }
    if w > t && new_mode != "simple" {
        doc.comment(
            "",
            format!("delay-sync (-w) {w}: the C clsync also let at least {w} s pass between syncs; clsync syncs `delay` after the first change"),
        );
        findings.warn(
            at("delay-sync"),
            format!("delay-sync {w} s is longer than delay-collect {t} s: the C clsync's minimum time between syncs has no equivalent"),
        );
    }
    let threshold = secs("threshold-bigfile", THRESHOLD_BIGFILE, findings);
    if threshold > 0 && new_mode != "simple" {
        let big = secs("delay-collect-bigfile", DELAY_BIGFILE, findings);
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
    if let Some(k) = opts.text("timeout-sync") {
        match parse_number(k) {
            Some(0) => {}
            Some(n) => {
                doc.set_noted("", "timeout", format!("{n}s"), Some("timeout-sync (-k)"));
                findings.note(
                    at("timeout-sync"),
                    "timeout-sync: clsync kills a handler run that takes longer and retries the batch (the C clsync exited)",
                );
            }
            None => findings.warn(at("timeout-sync"), format!("{k:?} is not a number")),
        }
    }
    if let Some(r) = opts.text("retries") {
        match parse_number(r) {
            Some(n) => {
                doc.set_noted(
                    "",
                    "retries",
                    n as i64,
                    Some("retries (-r): reported failed after this many tries"),
                );
                findings.note(
                    at("retries"),
                    "retries: after that many failed tries clsync reports the job failed and keeps retrying (the C clsync exited)",
                );
            }
            None => findings.warn(at("retries"), format!("{r:?} is not a number")),
        }
    }

    // Exit codes: comma lists, repeatable, 0 clears.
    let mut codes: Vec<i64> = if new_mode == "rsync" {
        vec![24]
    } else {
        Vec::new()
    };
    let mut codes_given = false;
    for v in opts.values.get("ignore-exitcode").into_iter().flatten() {
        codes_given = true;
        for part in v.value.as_deref().unwrap_or("").split(',') {
            match parse_number(part) {
                Some(0) => codes.clear(),
                Some(c) if c <= 255 => codes.push(c as i64),
                _ => findings.warn(&v.at, format!("{part:?} is not an exit code")),
            }
        }
    }
    if codes_given {
        if new_mode == "rsync" && !codes.contains(&24) {
            // rsyncdirect always ignored 24.
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

    if let Some(r) = opts.text("rules-file").filter(|r| !r.is_empty()) {
        let p = absolute(&cwd, r);
        rules_file_check(&p, &at("rules-file"), findings);
        doc.set("", "rules_file", path_text(&p)?);
    }
    if opts.flag("skip-initialsync") {
        doc.set("", "initial_sync", false);
    }
    match opts.text("threading") {
        Some("off") => doc.set_noted("", "workers", 1, Some("threading off (-p off)")),
        Some("safe") => doc.set_noted("", "workers", 2, Some("threading safe (-p safe)")),
        Some("full") => {
            doc.set_noted("", "workers", 2, Some("threading full (-p full)"));
            findings.note(
                at("threading"),
                "threading full: clsync's workers never sync overlapping paths at once",
            );
        }
        Some(other) if !other.is_empty() => {
            findings.warn(at("threading"), format!("unknown threading mode {other:?}"));
        }
        _ => {}
    }
    match opts.text("modification-signature") {
        Some("*") => {
            doc.set_noted("", "loop_guard", true, Some("modification-signature '*'"));
            findings.note(
                at("modification-signature"),
                "modification-signature '*' became loop_guard: a change that only echoes what this job sent is not sent back",
            );
        }
        Some(v) if !v.is_empty() => {
            doc.comment("", format!("modification-signature {v:?}: syncing only changes of some attributes has no equivalent"));
            findings.warn(
                at("modification-signature"),
                "modification-signature with a field list has no equivalent",
            );
        }
        _ => {}
    }
    if let Some(u) = opts.text("sync-handler-uid") {
        doc.set("", "user", u.to_string());
    }
    if let Some(g) = opts.text("sync-handler-gid") {
        doc.set("", "group", g.to_string());
    }
    match opts.text("monitor") {
        None | Some("inotify") | Some("") => {}
        Some(m) => findings.note(
            at("monitor"),
            format!("monitor {m}: clsync uses inotify on Linux and kqueue elsewhere"),
        ),
    }

    // The handler.
    let handler = opts.text("sync-handler").filter(|s| !s.is_empty());
    let mut values: BTreeMap<&'static str, String> = opts
        .values
        .iter()
        .filter_map(|(k, v)| v.last().and_then(|x| x.value.clone()).map(|x| (*k, x)))
        .collect();
    values.insert("watch-dir", path_text(&source)?);
    if dest_given.is_some() {
        values.insert("destination-dir", destination.clone());
    }
    values.entry("label").or_insert_with(|| "nolabel".into());
    if command_mode {
        let path = match (handler, new_mode) {
            // The C clsync resolved a handler path against its working directory.
            (Some(h), _) if h.contains('/') => path_text(&absolute(&cwd, h))?,
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
        let label = values["label"].clone();
        let (template, where_) = match &opts.handler_args {
            Some((a, w)) => (a.clone(), w.clone()),
            None => (
                default_template(&mode, &label, opts.flag("rsync-prefer-include")),
                format!("mode {mode}"),
            ),
        };
        let args = translate(&template, new_mode, &values, &where_, findings);
        doc.set(
            "command",
            "args",
            toml::Value::Array(args.into_iter().map(toml::Value::String).collect()),
        );
        match new_mode {
            "shell" | "rsync-shell" => {
                doc.comment(
                    "command",
                    "The list files are clsync's (see clsync.toml(5), \"List files\"): NUL-separated, not the C clsync's\nline lists; a handler written for the C clsync must read them as such.",
                );
                findings.warn(
                    at("mode"),
                    format!("mode {mode}: the handler gets clsync's NUL-separated list files, not the C clsync's line lists; adapt it (see clsync.toml(5), \"List files\")"),
                );
            }
            "simple" => findings.note(
                at("mode"),
                "mode simple: the handler runs once per changed path of a batch, after `delay`, not once per raw event",
            ),
            _ => {}
        }
        if let Some(l) = opts.text("lists-dir").filter(|l| !l.is_empty()) {
            doc.set("command", "lists_dir", path_text(&absolute(&cwd, l))?);
        }
        if opts.flag("dont-unlink-lists") {
            doc.set("command", "keep_lists", true);
        }
        if opts.flag("synclist-simplify") {
            findings.warn(
                at("synclist-simplify"),
                "synclist-simplify has no equivalent: the shell list holds EVENT TYPE PATH records",
            );
        }
        if let Some((_, w)) = &opts.initial_args {
            findings.warn(w.clone(), "the initial-sync template (---) has no equivalent: the handler gets TYPE initialsync instead");
        }
    } else {
        doc.set_noted(
            "rsync",
            "args",
            toml::Value::Array(vec!["--hard-links".into()]),
            Some("the C clsync ran rsync -aH"),
        );
        if let Some(h) = handler
            && h != "rsync"
            && h != "/usr/bin/rsync"
        {
            let h = if h.contains('/') {
                path_text(&absolute(&cwd, h))?
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
                    at(o),
                    format!("{o} is not needed: mode rsync passes its lists on rsync's stdin"),
                );
            }
        }
    }

    // Daemon settings.
    daemon_settings(opts, imported);
    let findings = &mut imported.findings;

    // What has no equivalent.
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
    if opts.flag("rsync-prefer-include") && !command_mode {
        findings.note(
            at("rsync-prefer-include"),
            "rsync-prefer-include is not needed: clsync lists paths itself",
        );
    }
    Some(Job { name, doc })
}

/// `[daemon]` settings of the instance, into `imported.main`.
fn daemon_settings(opts: &Options, imported: &mut Imported) {
    let main = &mut imported.main;
    let findings = &mut imported.findings;
    let at = |name: &str| opts.last(name).map(|v| v.at.clone()).unwrap_or_default();
    if let Some(p) = opts.text("pid-file").filter(|p| !p.is_empty()) {
        main.set("daemon", "pid_file", p.to_string());
        findings.note(
            at("pid-file"),
            "pid-file is the daemon's, shared by all its jobs ([daemon] pid_file)",
        );
    }
    if let Some(p) = opts.text("status-file").filter(|p| !p.is_empty()) {
        main.set("daemon", "status_file", p.to_string());
        findings.note(at("status-file"), "status-file becomes [daemon] status_file: JSON of every job (clsync status --json), not one word");
    }
    match opts.text("output") {
        Some("syslog") => main.set("daemon", "log_target", "syslog"),
        Some("stderr") => main.set("daemon", "log_target", "stderr"),
        Some("stdout") => {
            main.set("daemon", "log_target", "stderr");
            findings.note(at("output"), "output stdout: clsync logs to stderr instead");
        }
        Some(o) if !o.is_empty() => findings.warn(at("output"), format!("unknown output {o:?}")),
        _ => {}
    }
    if opts.flag("debug") {
        main.set("daemon", "log_level", "debug");
    } else if opts.flag("quiet") {
        main.set("daemon", "log_level", "error");
        findings.note(at("quiet"), "quiet: clsync still logs errors");
    }
    if main.has_keys() {
        main.header("Imported by `clsync import clsync` from a C clsync instance's settings.");
    }
}

/// The C clsync's default handler arguments of a command mode.
fn default_template(mode: &str, label: &str, prefer_include: bool) -> Vec<String> {
    let v: Vec<&str> = match mode {
        "simple" => vec!["sync", label, "%EVENT-MASK%", "%INCLUDE-LIST%"],
        "direct" => vec!["%INCLUDE-LIST%", "%destination-dir%/"],
        "shell" => vec!["synclist", label, "%INCLUDE-LIST-PATH%"],
        _ if prefer_include => vec!["rsynclist", label, "%INCLUDE-LIST-PATH%"],
        _ => vec![
            "rsynclist",
            label,
            "%INCLUDE-LIST-PATH%",
            "%EXCLUDE-LIST-PATH%",
        ],
    };
    v.into_iter().map(String::from).collect()
}

/// The C template's words as clsync's `[command] args`: lower-case macros (option values)
/// are expanded now, as the C program did at start; per-sync macros become clsync's
/// placeholders where there is one.
fn translate(
    template: &[String],
    mode: &str,
    values: &BTreeMap<&'static str, String>,
    at: &str,
    findings: &mut Findings,
) -> Vec<String> {
    let mut out = Vec::new();
    for word in template {
        if let Some(p) = placeholder(word, mode) {
            match p {
                Ok(p) => out.push(p.to_string()),
                Err(why) => findings.warn(at, format!("{word}: {why}")),
            }
            continue;
        }
        // --option=%MACRO%: two words, which programs that parse options take alike.
        if let Some((opt, rest)) = word.split_once('=')
            && opt.starts_with("--")
            && let Some(Ok(p)) = placeholder(rest, mode)
        {
            findings.note(
                at,
                format!(
                    "{word} became two arguments, {opt} {p}: clsync replaces only whole arguments"
                ),
            );
            out.push(opt.to_string());
            out.push(p.to_string());
            continue;
        }
        let (expanded, unknown) = super::expand(&lower_only(word), values);
        let expanded = expanded.replace('\u{0}', "%");
        for u in unknown {
            findings.warn(
                at,
                format!("{word}: %{u}% has no value; it was left out as the C clsync did"),
            );
        }
        if expanded.contains('%') && looks_like_placeholder(&expanded) {
            findings.warn(at, format!("{word}: a per-sync macro inside a longer argument has no equivalent; it is passed literally"));
        }
        out.push(expanded);
    }
    out
}

/// Protects upper-case macros from [`super::expand`] (as NUL-marked text).
fn lower_only(word: &str) -> String {
    let re = regex::Regex::new(r"%([A-Z][A-Z-]*)%").expect("valid regex");
    re.replace_all(word, "\u{0}$1\u{0}").into_owned()
}

fn looks_like_placeholder(s: &str) -> bool {
    regex::Regex::new(r"%[A-Za-z0-9_-]+%")
        .expect("valid regex")
        .is_match(s)
}

/// A whole-word C macro as clsync's placeholder; `None` when `word` is not one.
fn placeholder(word: &str, mode: &str) -> Option<Result<&'static str, &'static str>> {
    Some(match word {
        "%INCLUDE-LIST%" if mode == "simple" => Ok("%PATH%"),
        "%INCLUDE-LIST%" => Ok("%INCLUDE-LIST%"),
        "%INCLUDE-LIST-PATH%" => Ok("%INCLUDE-LIST-PATH%"),
        "%EXCLUDE-LIST-PATH%" => Ok("%EXCLUDE-LIST-PATH%"),
        "%RSYNC-ARGS%" => Ok("%RSYNC-ARGS%"),
        "%TYPE%" => Ok("%TYPE%"),
        "%EVENT-MASK%" if mode == "simple" => Ok("%EVENT%"),
        "%EVENT-MASK%" => Err("there is no event mask outside mode simple; left out"),
        "%PID%" => Err("clsync passes no process id; left out"),
        w if w.starts_with('%')
            && w.ends_with('%')
            && w.len() > 2
            && w[1..2].chars().all(|c| c.is_ascii_uppercase()) =>
        {
            Err("an unknown per-sync macro, empty in the C clsync; left out")
        }
        _ => return None,
    })
}

/// Checks what the C clsync's reading of a rules file did differently: it dropped the last
/// character of a last line without a newline.
fn rules_file_check(p: &Path, at: &str, findings: &mut Findings) {
    match std::fs::read(p) {
        Ok(text) => {
            if !text.is_empty() && !text.ends_with(b"\n") {
                let last = text.rsplit(|&b| b == b'\n').next().unwrap_or_default();
                findings.warn(
                    at,
                    format!(
                        "{}: the last line {:?} has no newline: the C clsync dropped its last character, clsync reads it whole, so the rule now applies",
                        p.display(),
                        String::from_utf8_lossy(last)
                    ),
                );
            }
        }
        Err(e) => findings.note(
            at,
            format!("{}: {e} (clsync check will say so too)", p.display()),
        ),
    }
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

fn absolute(cwd: &Path, p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(p).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn path_text(p: &Path) -> Option<String> {
    p.to_str().map(str::to_string)
}

/// `proto://...` and `[user@]host:path` are remote, as the C clsync decides.
fn is_remote(d: &str) -> bool {
    d.contains("://")
        || match (d.find(':'), d.find('/')) {
            (Some(c), Some(s)) => c < s && c > 0,
            (Some(c), None) => c > 0,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        v.insert("label", "www".into());
        v.insert("watch-dir", "/src".into());
        v.insert("destination-dir", "/dst".into());
        v
    }

    #[test]
    fn templates() {
        let mut f = Findings::default();
        let t: Vec<String> = ["sync", "%label%", "%EVENT-MASK%", "%INCLUDE-LIST%"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            translate(&t, "simple", &values(), "x", &mut f),
            ["sync", "www", "%EVENT%", "%PATH%"]
        );
        let t: Vec<String> = [
            "-a",
            "--include-from=%INCLUDE-LIST-PATH%",
            "%watch-dir%/",
            "%PID%",
            "x%TYPE%",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            translate(&t, "direct", &values(), "x", &mut f),
            [
                "-a",
                "--include-from",
                "%INCLUDE-LIST-PATH%",
                "/src/",
                "x%TYPE%"
            ]
        );
        assert!(f.lost_something());
    }

    #[test]
    fn numbers_like_strtol() {
        assert_eq!(parse_number(" 30 "), Some(30));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("010"), Some(8));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("x"), None);
    }
}
