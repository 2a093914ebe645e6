//! One lsyncd `sync{}` as one clsync job.
//!
//! The `sync{}` is first merged as lsyncd merges it ([`Merged::sync_config`]), with the
//! settings lsyncd lets override it (`maxDelays`, `maxProcesses`), then checked as lsyncd's
//! built-in `prepare` checks it (unknown keys, a missing `target`, `host` or
//! `targetdir`): a configuration lsyncd refuses is refused with lsyncd's words.
//!
//! | lsyncd | clsync job |
//! |---|---|
//! | `default.rsync`, `default.rsyncssh` | `mode = "rsync"` |
//! | `default.direct` | `mode = "mirror"` (a local target) |
//! | `source` | `source` (absolute) |
//! | `target`; `host` + `targetdir` | `destination` (`host::module` as `rsync://host/module`) |
//! | `delay` (lsyncd's default 15 s, direct 1 s) | `delay`, always written |
//! | `maxDelays = 1` | `delay = "0s"`; other values: comment |
//! | `maxProcesses` > 1 | `workers` |
//! | `exclude` | `exclude` |
//! | `excludeFrom` | `exclude_from` (absolute); its patterns appended to `exclude` when rsync's rules would read the file differently from lsyncd's |
//! | `delete` | `delete` |
//! | `init = false` | `initial_sync = false` |
//! | `exitcodes` / `rsyncExitCodes` of the user | `ignore_exit_codes` (the codes marked `ok`) |
//! | `rsync = {...}` | `[rsync]` ([`super::rsync_table`]); `rsh` → `[ssh]` |
//! | `ssh = {binary, port, identityFile, options, _extra}` | `[ssh] command, port, identity_file, options` |
//! | `name` | the job's name |
//! | `filter`, `filterFrom`, `subdirs = false`, own Lua functions, unknown keys | comment and warning |
//!
//! A `sync{}` that is not based on one of the three built-in configurations runs its own
//! Lua (`action`, `onCreate`, ...) and is refused.

use std::path::{Path, PathBuf};

use super::lua::SyncCall;
use super::target::{absolute, destination};
use super::transport::Route;
use super::value::{LKey, LTable, LValue, MValue, Merged, check_gauge};
use crate::import::doc::show_bytes;
use crate::import::{Doc, Findings, Job, names};

/// What mapping a `sync{}` needs besides the call.
pub struct Ctx<'a> {
    /// The configuration's directory (canonical): `excludeFrom` files are read only below it.
    pub dir: &'a Path,
    /// Relative sources and targets resolve against it (lsyncd's working directory).
    pub cwd: &'a Path,
}

const BASES: &[&str] = &["default.rsync", "default.rsyncssh", "default.direct"];

/// Keys a job is made of; any other key of a `sync{}` is reported.
const KNOWN: &[&str] = &[
    "source",
    "target",
    "host",
    "targetdir",
    "name",
    "delay",
    "maxDelays",
    "maxProcesses",
    "exclude",
    "excludeFrom",
    "filter",
    "filterFrom",
    "delete",
    "init",
    "exitcodes",
    "rsyncExitCodes",
    "sshExitCodes",
    "rsync",
    "ssh",
    "action",
    "prepare",
    "collect",
    "checkgauge",
    "onMove",
    "onCreate",
    "onModify",
    "onDelete",
    "onAttrib",
    "onStartup",
    "monitor",
    "subdirs",
];

const HOOKS: &[&str] = &[
    "onAttrib",
    "onCreate",
    "onModify",
    "onDelete",
    "onMove",
    "onStartup",
];

/// A refusal: why this `sync{}` is not written.
pub type Refusal = String;

/// The value of `key` as the user's own tables set it (not a stand-in's).
fn user_value<'a>(t: &'a LTable, key: &str) -> Option<&'a LValue> {
    if t.standin.is_some() {
        return None;
    }
    if let Some(v) = t.get(key) {
        return Some(v);
    }
    t.ipairs().into_iter().find_map(|p| match p {
        LValue::Table(pt) => user_value(pt, key),
        _ => None,
    })
}

pub(super) fn utf8(what: &str, v: &LValue) -> Result<String, Refusal> {
    match v.text() {
        Ok(Some(s)) => Ok(s),
        Err(b) => Err(format!(
            "{what} {:?} is not UTF-8: a job file (TOML) can only hold UTF-8 paths",
            show_bytes(b)
        )),
        Ok(None) => Err(format!("{what} must be a string, not {}", v.show())),
    }
}

/// Seconds as a clsync duration.
fn duration(v: &LValue) -> Result<String, Refusal> {
    let secs = match v {
        LValue::Int(i) => *i as f64,
        LValue::Num(n) => *n,
        other => return Err(format!("delay must be a number, not {}", other.show())),
    };
    if !(0.0..1e9).contains(&secs) {
        return Err(format!("delay {secs} is out of range"));
    }
    if secs.fract() == 0.0 {
        Ok(format!("{secs:.0}s"))
    } else {
        Ok(format!("{}ms", (secs * 1000.0).round() as u64))
    }
}

/// The first line of `s`, at most 40 characters of it.
fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let cut: String = line.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// The custom Lua in a merged configuration: (key, description).
fn own_lua(m: &Merged) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["action", "init", "prepare", "collect"].iter().chain(HOOKS) {
        match m.leaf(key) {
            Some(LValue::Func(f)) if f.builtin.is_none() => out.push((
                key.to_string(),
                match f.line {
                    Some(l) => format!("a Lua function (line {l})"),
                    None => "a Lua function".into(),
                },
            )),
            Some(LValue::Str(s)) if HOOKS.contains(key) => out.push((
                key.to_string(),
                format!("the shell command {:?}", short(&show_bytes(s))),
            )),
            _ => {}
        }
    }
    out
}

/// Maps `call`; `None` when refused (the reason is in `findings`).
pub fn map(call: &SyncCall, ctx: &Ctx<'_>, findings: &mut Findings) -> Option<Job> {
    let at = call.loc.to_string();
    match build(call, ctx, &at, findings) {
        Ok(job) => Some(job),
        Err(why) => {
            findings.refuse(&at, format!("sync{{}} not imported: {why}"));
            None
        }
    }
}

/// The job being written for one `sync{}`: the merged configuration it reads, the document
/// it writes and where its findings go. Each section of the mapping is one method.
pub(super) struct Mapping<'a> {
    pub(super) m: &'a Merged,
    pub(super) doc: Doc,
    pub(super) at: &'a str,
    pub(super) findings: &'a mut Findings,
}

fn build(
    call: &SyncCall,
    ctx: &Ctx<'_>,
    at: &str,
    findings: &mut Findings,
) -> Result<Job, Refusal> {
    let m = merged(call);
    let lua = own_lua(&m);
    let base = base_of(&m, &lua)?;
    let builtin_prepare = matches!(m.leaf("prepare"), Some(LValue::Func(f)) if f.builtin.is_some());
    if builtin_prepare && let Some(gauge) = m.table("checkgauge") {
        check_gauge(&m, gauge, "").map_err(|e| format!("lsyncd refuses it too: {e}"))?;
    }

    let mut doc = Doc::new();
    doc.header(format!(
        "Imported by `clsync import lsyncd` from {at} (sync{{}} with {base})."
    ));
    let mut job = Mapping {
        m: &m,
        doc,
        at,
        findings,
    };
    let ssh_based = base == "default.rsyncssh";
    let source_path = job.source(ctx.cwd)?;
    let (dest, remote) = job.destination(base, ctx.cwd, builtin_prepare)?;
    let source_str = source_path
        .to_str()
        .ok_or("the source is not UTF-8")?
        .to_string();
    job.doc.set("", "source", source_str);
    job.doc.set("", "destination", dest.clone());
    let mirror = base == "default.direct" && !remote;
    job.doc
        .set("", "mode", if mirror { "mirror" } else { "rsync" });
    if base == "default.direct" && remote {
        job.findings.note(
            at,
            "default.direct with a remote target is synced with rsync (mode \"rsync\")",
        );
    }
    job.timing(ssh_based)?;
    job.filters(ctx.dir, ssh_based)?;
    job.exit_codes(&call.arg);
    job.rsync_and_ssh(&Route {
        mirror,
        remote,
        ssh_based,
    })?;
    job.not_carried_over(&lua, base);

    let name = match m.leaf("name") {
        Some(v) => utf8("name", v)?,
        None => names::from_destination(&dest),
    };
    Ok(Job { name, doc: job.doc })
}

/// The `sync{}` merged as lsyncd merges it, with the settings that override it.
fn merged(call: &SyncCall) -> Merged {
    let mut m = Merged::sync_config(&call.arg, &call.default);
    for key in ["delay", "maxDelays", "maxProcesses"] {
        if let Some(v) = call.settings.get(key) {
            m.set(key, v.clone());
        }
    }
    m
}

/// The built-in configuration the `sync{}` is based on; refused when it runs its own Lua.
fn base_of<'a>(m: &'a Merged, lua: &[(String, String)]) -> Result<&'a str, Refusal> {
    let Some(base) = m.bases.iter().copied().find(|b| BASES.contains(b)) else {
        if lua.is_empty() {
            return Err(
                "it has no action (lsyncd refuses it too: \"no actions specified\")".into(),
            );
        }
        let list: Vec<String> = lua.iter().map(|(k, d)| format!("{k} = {d}")).collect();
        return Err(format!(
            "it runs its own Lua ({}) and is not based on default.rsync, default.rsyncssh or default.direct; clsync runs no Lua. A job with mode \"shell\" or \"simple\" and a program of yours can do what it did (see clsync.toml(5))",
            list.join(", ")
        ));
    };
    Ok(base)
}

impl Mapping<'_> {
    /// `source`, absolute.
    fn source(&mut self, cwd: &Path) -> Result<PathBuf, Refusal> {
        let source = self
            .m
            .leaf("source")
            .ok_or("source missing from sync (lsyncd refuses it too)")?;
        let source = utf8("source", source)?;
        let source_path = absolute(cwd, &source);
        if !Path::new(&source).is_absolute() {
            self.findings.note(
                self.at,
                format!(
                    "relative source {source:?} was resolved against the current directory, as lsyncd does: {}",
                    source_path.display()
                ),
            );
        }
        Ok(source_path)
    }

    /// `target` (or `host` + `targetdir`) as the destination, and whether it is remote.
    fn destination(
        &mut self,
        base: &str,
        cwd: &Path,
        builtin_prepare: bool,
    ) -> Result<(String, bool), Refusal> {
        let m = self.m;
        let ssh_based = base == "default.rsyncssh";
        let target = match (m.leaf("target"), m.leaf("host"), m.leaf("targetdir")) {
            (Some(t), _, _) if !ssh_based => utf8("target", t)?,
            (_, Some(h), Some(d)) => format!("{}:{}", utf8("host", h)?, utf8("targetdir", d)?),
            _ if ssh_based => {
                return Err(if m.leaf("host").is_none() {
                    "default.rsyncssh needs \"host\" configured (lsyncd refuses it too)".into()
                } else {
                    "default.rsyncssh needs \"targetdir\" configured (lsyncd refuses it too)".into()
                });
            }
            _ => {
                return Err(format!(
                    "{base} needs \"target\" configured (lsyncd refuses it too)"
                ));
            }
        };
        let (dest, remote, note) = destination(&target, cwd)?;
        if let Some(n) = note {
            self.findings.note(self.at, n);
        }
        if ssh_based && builtin_prepare && !matches!(m.leaf("maxProcesses"), Some(LValue::Int(1))) {
            return Err(
                "default.rsyncssh must have maxProcesses set to 1. (lsyncd refuses it too)".into(),
            );
        }
        Ok((dest, remote))
    }

    /// `delay`, `maxDelays`, `maxProcesses`, `init` and `subdirs`.
    fn timing(&mut self, ssh_based: bool) -> Result<(), Refusal> {
        let (m, at) = (self.m, self.at);
        if let Some(d) = m.leaf("delay") {
            let d = duration(d)?;
            self.doc.set_noted(
                "",
                "delay",
                d,
                Some("lsyncd's delay (its default: 15 s for rsync, 1 s for direct)"),
            );
        }
        self.max_delays();
        match m.leaf("maxProcesses") {
            Some(LValue::Int(n)) if *n > 1 && !ssh_based => {
                let w = (*n).min(64);
                self.doc
                    .set_noted("", "workers", w, Some("lsyncd's maxProcesses"));
            }
            _ => {}
        }
        if let Some(LValue::Bool(false)) = m.leaf("init") {
            self.doc.set("", "initial_sync", false);
        }
        if let Some(v) = m.leaf("subdirs")
            && !v.truthy()
        {
            self.doc.comment("", "lsyncd's subdirs = false (watch only the top directory): clsync always syncs the whole tree");
            self.findings.warn(
                at,
                "subdirs = false has no equivalent: clsync watches and syncs the whole tree",
            );
        }
        Ok(())
    }

    /// `maxDelays = 1` as `delay = "0s"`; other values have no equivalent.
    fn max_delays(&mut self) {
        let at = self.at;
        match self.m.leaf("maxDelays") {
            Some(LValue::Int(1)) => {
                self.doc.set_noted(
                    "",
                    "delay",
                    "0s",
                    Some("lsyncd's maxDelays = 1: every change is synced at once"),
                );
                self.findings.note(
                    at,
                    "maxDelays = 1 (sync every change at once) became delay = \"0s\"",
                );
            }
            Some(LValue::Int(1000)) | None => {}
            Some(v) => {
                self.doc.commented_key(
                    "",
                    "maxDelays",
                    toml::Value::String(v.show()),
                    "lsyncd synced early once this many changes were queued; clsync waits for `delay`",
                );
                self.findings.warn(
                    at,
                    format!("maxDelays = {} has no equivalent: clsync syncs when `delay` has passed, however many changes are queued", v.show()),
                );
            }
        }
    }

    /// The codes the user's `exitcodes` / `rsyncExitCodes` mark `ok` as `ignore_exit_codes`.
    fn exit_codes(&mut self, arg: &LTable) {
        let codes = user_value(arg, "exitcodes").or_else(|| user_value(arg, "rsyncExitCodes"));
        let Some(LValue::Table(t)) = codes else {
            return;
        };
        let mut ok: Vec<i64> = t
            .entries
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (LKey::Int(c), LValue::Str(s)) if s == b"ok" && (1..=255).contains(c) => Some(*c),
                _ => None,
            })
            .collect();
        ok.sort_unstable();
        self.doc.set_noted(
            "",
            "ignore_exit_codes",
            toml::Value::Array(ok.into_iter().map(toml::Value::Integer).collect()),
            Some("the exit codes lsyncd's table called ok"),
        );
        self.findings.note(
            self.at,
            "exit codes: those marked 'ok' became ignore_exit_codes; clsync retries every other failure with backoff ('again' and 'die' alike)",
        );
    }

    /// The configuration's own Lua and keys clsync has no setting for: comments and warnings.
    fn not_carried_over(&mut self, lua: &[(String, String)], base: &str) {
        let at = self.at;
        for (key, what) in lua {
            self.doc.comment(
                "",
                format!(
                    "lsyncd's {key} = {what}: clsync runs no Lua; this job syncs as {base} does"
                ),
            );
            self.findings.warn(at, format!("{key} = {what} is not carried over: clsync runs no Lua (the job syncs as {base} does)"));
        }
        for (k, v) in self.m.keys() {
            let name = k.show();
            if KNOWN.contains(&name.as_str()) || matches!(k, LKey::Int(_)) {
                continue;
            }
            let shown = match v {
                MValue::Leaf(v) => v.show(),
                MValue::Table(_) => "a table".into(),
            };
            self.doc.comment(
                "",
                format!("lsyncd's {name} = {shown}: used only by the configuration's own Lua"),
            );
            self.findings.warn(
                at,
                format!("{name} = {shown} is not carried over (clsync has no such setting)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(&LValue::Int(15)).unwrap(), "15s");
        assert_eq!(duration(&LValue::Num(0.5)).unwrap(), "500ms");
        assert!(duration(&LValue::Int(-1)).is_err());
    }
}
