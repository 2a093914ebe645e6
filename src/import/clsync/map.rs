//! A C clsync instance's options as one job (and `[daemon]` settings): what it is (mode,
//! source, destination, name), then each group of options in its own step.
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
//! written out, so that the job behaves as the instance did. The steps: [`timing`] (delays,
//! thresholds, retries, exit codes), [`settings`] (rules, initial sync, workers, loop guard,
//! user), [`handler`] (`[command]` or `[rsync]`), [`daemon`], and [`unmapped`] (the rest).
//!
//! [`timing`]: super::timing
//! [`settings`]: super::settings
//! [`handler`]: super::handler
//! [`daemon`]: super::daemon
//! [`unmapped`]: super::unmapped

use std::path::{Path, PathBuf};

use super::{Options, daemon, handler, settings, timing, unmapped};
use crate::import::paths::{absolute, text as path_text};
use crate::import::{Doc, Findings, Imported, Job, names};

/// What the steps share: the options, the C mode and clsync's, and where relative paths
/// are resolved.
pub(super) struct Instance<'a> {
    pub opts: &'a Options,
    /// The C mode, as written (its first comma-separated word).
    pub mode: String,
    /// clsync's `mode`.
    pub new_mode: &'static str,
    /// The directory relative paths are resolved against (UTF-8).
    pub cwd: PathBuf,
}

impl Instance<'_> {
    /// Where `name` was set, for a finding.
    pub fn at(&self, name: &str) -> String {
        self.opts.at(name)
    }

    /// Whether clsync runs the handler as a `[command]` (every mode but rsync).
    pub fn command_mode(&self) -> bool {
        self.new_mode != "rsync"
    }

    /// `p` absolute against the instance's directory, as job file text.
    pub fn absolute_text(&self, p: &str) -> Option<String> {
        path_text(&absolute(&self.cwd, p))
    }
}

/// The job of `opts`, with its findings in `imported` (and `[daemon]` settings in
/// `imported.main`); `None` when refused.
pub fn build(opts: &Options, imported: &mut Imported) -> Option<Job> {
    let findings = &mut imported.findings;
    let instance = instance(opts, findings)?;
    let watch = watch_dir(opts, findings)?;
    let source = source(&instance, watch, findings);
    let dest_given = opts.text("destination-dir").filter(|d| !d.is_empty());
    let name = job_name(opts, watch, dest_given);
    let mut doc = Doc::new();
    doc.header(format!(
        "Imported by `clsync import clsync` from a C clsync instance (mode {}{}).",
        instance.mode,
        opts.block
            .as_ref()
            .map(|b| format!(", block [{b}]"))
            .unwrap_or_default()
    ));
    let source = source?;
    doc.set("", "source", source.clone());
    let destination = destination(&instance, dest_given, &name, &mut doc, findings)?;
    doc.set("", "destination", destination.clone());
    doc.set("", "mode", instance.new_mode);
    timing::write(&instance, &mut doc, findings);
    timing::write_exit_codes(&instance, &mut doc, findings);
    settings::write(&instance, &mut doc, findings)?;
    let given_destination = dest_given.map(|_| destination.as_str());
    handler::write(&instance, &source, given_destination, &mut doc, findings)?;
    daemon::write(opts, imported);
    let findings = &mut imported.findings;
    unmapped::report(opts, &mut doc, findings);
    if opts.flag("rsync-prefer-include") && !instance.command_mode() {
        findings.note(
            instance.at("rsync-prefer-include"),
            "rsync-prefer-include is not needed: clsync lists paths itself",
        );
    }
    Some(Job { name, doc })
}

/// The instance's modes and directory; `None` (refused) for a mode clsync cannot run or a
/// directory that a job file cannot hold.
fn instance<'a>(opts: &'a Options, findings: &mut Findings) -> Option<Instance<'a>> {
    let Some(mode) = opts.text("mode") else {
        findings.refuse("command line", "no mode (-M): the C clsync requires one");
        return None;
    };
    let mode = mode.split(',').next().unwrap_or("").trim().to_string();
    let new_mode = match mode.as_str() {
        "rsyncdirect" => "rsync",
        "rsyncshell" => "rsync-shell",
        "shell" => "shell",
        "direct" => "direct",
        "simple" => "simple",
        "so" | "rsyncso" => {
            findings.refuse(
                opts.at("mode"),
                format!("mode {mode} loads a handler library into the daemon; clsync runs programs, not libraries. Rewrite the handler as a program (mode \"shell\" or \"rsync-shell\")"),
            );
            return None;
        }
        other => {
            findings.refuse(
                opts.at("mode"),
                format!("unknown mode {other:?} (the C clsync refuses it too)"),
            );
            return None;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.to_str().is_none() {
        // Relative paths become absolute against it, and a job file holds UTF-8 only.
        findings.refuse("command line", "the current directory's path is not UTF-8");
        return None;
    }
    Some(Instance {
        opts,
        mode,
        new_mode,
        cwd,
    })
}

/// The watch directory as given; `None` (refused) without one.
fn watch_dir<'a>(opts: &'a Options, findings: &mut Findings) -> Option<&'a str> {
    let watch = opts.text("watch-dir").filter(|w| !w.is_empty());
    if watch.is_none() {
        findings.refuse(
            "command line",
            "no watch directory (-W): the C clsync requires one",
        );
    }
    watch
}

/// `source`: the watch directory made absolute (with a note when it was relative); `None`
/// when its path is not UTF-8.
fn source(instance: &Instance, watch: &str, findings: &mut Findings) -> Option<String> {
    let source = absolute(&instance.cwd, watch);
    if !Path::new(watch).is_absolute() {
        findings.note(
            instance.at("watch-dir"),
            format!(
                "relative watch-dir {watch:?} was resolved against the current directory: {}",
                source.display()
            ),
        );
    }
    path_text(&source)
}

/// The job's name: the label, else the configuration block, else one made of the
/// destination (or the watch directory).
fn job_name(opts: &Options, watch: &str, dest_given: Option<&str>) -> String {
    opts.text("label")
        .map(str::to_string)
        .or_else(|| {
            opts.text("config-block")
                .filter(|b| !b.is_empty() && *b != "default")
                .map(str::to_string)
        })
        .or_else(|| dest_given.map(names::from_destination))
        .unwrap_or_else(|| names::from_destination(watch))
}

/// `destination`: the given one (absolute when local), else a placeholder for a mode whose
/// handler chose where to sync; `None` (refused) when the mode needs one.
fn destination(
    instance: &Instance,
    dest_given: Option<&str>,
    name: &str,
    doc: &mut Doc,
    findings: &mut Findings,
) -> Option<String> {
    match dest_given {
        Some(d) if is_remote(d) => Some(d.to_string()),
        Some(d) => {
            let p = absolute(&instance.cwd, d);
            if !Path::new(d).is_absolute() {
                findings.note(
                    instance.at("destination-dir"),
                    format!("relative destination-dir {d:?} was resolved against the current directory: {}", p.display()),
                );
            }
            path_text(&p)
        }
        None if instance.new_mode == "rsync" || instance.new_mode == "direct" => {
            findings.refuse(
                "command line",
                format!(
                    "mode {} needs a destination directory (-D), as in the C clsync",
                    instance.mode
                ),
            );
            None
        }
        None => {
            let placeholder = format!("/var/lib/clsync/{}", names::sanitize(name));
            doc.comment(
                "",
                "The C instance had no destination-dir (its handler chose where to sync); clsync needs one:\nset `destination` to where the handler syncs (it gets it as $CLSYNC_DESTINATION and %destination%).",
            );
            findings.warn(
                instance.at("mode"),
                format!("no destination-dir (-D): `destination` was set to {placeholder}, which the handler gets as $CLSYNC_DESTINATION; set it to the real target"),
            );
            Some(placeholder)
        }
    }
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
