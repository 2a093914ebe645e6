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

use std::path::{Component, Path, PathBuf};

use super::excludes;
use super::lua::{SyncCall, beside};
use super::rsync_table;
use super::value::{LTable, LValue, MValue, Merged, check_gauge};
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

fn utf8(what: &str, v: &LValue) -> Result<String, Refusal> {
    match v {
        LValue::Str(b) => String::from_utf8(b.clone()).map_err(|_| {
            format!(
                "{what} {:?} is not UTF-8: a job file (TOML) can only hold UTF-8 paths",
                show_bytes(b)
            )
        }),
        LValue::Int(i) => Ok(i.to_string()),
        other => Err(format!("{what} must be a string, not {}", other.show())),
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

/// `p` absolute (against `cwd`) and lexically clean.
fn absolute(cwd: &Path, p: &str) -> PathBuf {
    let joined = cwd.join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
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

/// rsync's rule, as clsync's: a `:` before any `/` is a remote host.
fn is_remote(t: &str) -> bool {
    if t.starts_with("rsync://") {
        return true;
    }
    match (t.find(':'), t.find('/')) {
        (Some(c), Some(s)) => c < s && c > 0,
        (Some(c), None) => c > 0,
        _ => false,
    }
}

/// The destination of a target string, and a note on how it was read.
fn destination(target: &str, cwd: &Path) -> Result<(String, bool, Option<String>), Refusal> {
    if let Some(rest) = target.strip_prefix("rsync://") {
        return Ok((format!("rsync://{rest}"), true, None));
    }
    if let Some(i) = target.find("::")
        && !target[..i].contains('/')
        && i > 0
    {
        let d = format!("rsync://{}/{}", &target[..i], &target[i + 2..]);
        let note = format!("target {target:?} (rsync daemon) is written as {d:?}");
        return Ok((d, true, Some(note)));
    }
    if is_remote(target) {
        return Ok((target.to_string(), true, None));
    }
    let p = absolute(cwd, target);
    if p == Path::new("/") {
        return Err("target / cannot be a destination".into());
    }
    let note = (!Path::new(target).is_absolute()).then(|| {
        format!(
            "relative target {target:?} was resolved against the current directory, as lsyncd -nodaemon would: {}",
            p.display()
        )
    });
    let s = p.to_str().ok_or("the target is not UTF-8")?.to_string();
    Ok((s, false, note))
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

fn build(
    call: &SyncCall,
    ctx: &Ctx<'_>,
    at: &str,
    findings: &mut Findings,
) -> Result<Job, Refusal> {
    let mut m = Merged::sync_config(&call.arg, &call.default);
    for key in ["delay", "maxDelays", "maxProcesses"] {
        if let Some(v) = call.settings.get(key) {
            m.set(key, v.clone());
        }
    }
    let lua = own_lua(&m);
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
    let builtin_prepare = matches!(m.leaf("prepare"), Some(LValue::Func(f)) if f.builtin.is_some());
    if builtin_prepare && let Some(gauge) = m.table("checkgauge") {
        check_gauge(&m, gauge, "").map_err(|e| format!("lsyncd refuses it too: {e}"))?;
    }

    let mut doc = Doc::new();
    doc.header(format!(
        "Imported by `clsync import lsyncd` from {at} (sync{{}} with {base})."
    ));

    // source
    let source = m
        .leaf("source")
        .ok_or("source missing from sync (lsyncd refuses it too)")?;
    let source = utf8("source", source)?;
    let source_path = absolute(ctx.cwd, &source);
    if !Path::new(&source).is_absolute() {
        findings.note(
            at,
            format!(
                "relative source {source:?} was resolved against the current directory, as lsyncd does: {}",
                source_path.display()
            ),
        );
    }

    // destination
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
    let (dest, remote, note) = destination(&target, ctx.cwd)?;
    if let Some(n) = note {
        findings.note(at, n);
    }
    if ssh_based && builtin_prepare && !matches!(m.leaf("maxProcesses"), Some(LValue::Int(1))) {
        return Err(
            "default.rsyncssh must have maxProcesses set to 1. (lsyncd refuses it too)".into(),
        );
    }

    let source_str = source_path
        .to_str()
        .ok_or("the source is not UTF-8")?
        .to_string();
    doc.set("", "source", source_str);
    doc.set("", "destination", dest.clone());
    let mirror = base == "default.direct" && !remote;
    doc.set("", "mode", if mirror { "mirror" } else { "rsync" });
    if base == "default.direct" && remote {
        findings.note(
            at,
            "default.direct with a remote target is synced with rsync (mode \"rsync\")",
        );
    }

    // timing
    if let Some(d) = m.leaf("delay") {
        let d = duration(d)?;
        doc.set_noted(
            "",
            "delay",
            d,
            Some("lsyncd's delay (its default: 15 s for rsync, 1 s for direct)"),
        );
    }
    match m.leaf("maxDelays") {
        Some(LValue::Int(1)) => {
            doc.set_noted(
                "",
                "delay",
                "0s",
                Some("lsyncd's maxDelays = 1: every change is synced at once"),
            );
            findings.note(
                at,
                "maxDelays = 1 (sync every change at once) became delay = \"0s\"",
            );
        }
        Some(LValue::Int(1000)) | None => {}
        Some(v) => {
            doc.commented_key(
                "",
                "maxDelays",
                toml::Value::String(v.show()),
                "lsyncd synced early once this many changes were queued; clsync waits for `delay`",
            );
            findings.warn(
                at,
                format!("maxDelays = {} has no equivalent: clsync syncs when `delay` has passed, however many changes are queued", v.show()),
            );
        }
    }
    match m.leaf("maxProcesses") {
        Some(LValue::Int(n)) if *n > 1 && !ssh_based => {
            let w = (*n).min(64);
            doc.set_noted("", "workers", w, Some("lsyncd's maxProcesses"));
        }
        _ => {}
    }
    if let Some(LValue::Bool(false)) = m.leaf("init") {
        doc.set("", "initial_sync", false);
    }
    if let Some(v) = m.leaf("subdirs")
        && !v.truthy()
    {
        doc.comment("", "lsyncd's subdirs = false (watch only the top directory): clsync always syncs the whole tree");
        findings.warn(
            at,
            "subdirs = false has no equivalent: clsync watches and syncs the whole tree",
        );
    }

    // filters
    let mut exclude: Vec<String> = Vec::new();
    match m.get("exclude") {
        Some(MValue::Leaf(v)) => exclude.push(utf8("exclude", v)?),
        Some(MValue::Table(t)) => {
            for v in t.list() {
                exclude.push(utf8("exclude pattern", v)?);
            }
        }
        None => {}
    }
    if let Some(v) = m.leaf("excludeFrom") {
        let file = utf8("excludeFrom", v)?;
        let read = beside(ctx.dir, Path::new(&file)).and_then(|p| {
            let text = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, excludes::parse(&text)?, text))
        });
        match read {
            Ok((path, (patterns, includes), text))
                if excludes::same_for_rsync(&text, &patterns, &includes)
                    && path.to_str().is_some() =>
            {
                doc.set("", "exclude_from", path.to_str().unwrap_or_default());
                findings.note(
                    at,
                    format!(
                        "excludeFrom = {file:?}: exclude_from = {:?}, read again at every reload",
                        path.display()
                    ),
                );
            }
            Ok((_, (patterns, includes), _)) => {
                doc.comment(
                    "",
                    format!(
                        "lsyncd's excludeFrom = {file:?}: its {} pattern(s) as they were at import time are in `exclude` (rsync's --exclude-from would read its lines differently: leading blanks, `-` without a space, `+` lines or `;` comments)",
                        patterns.len()
                    ),
                );
                findings.note(
                    at,
                    format!(
                        "excludeFrom = {file:?}: its {} pattern(s) were copied into `exclude` (lsyncd too reads the file only at its start)",
                        patterns.len()
                    ),
                );
                if !includes.is_empty() {
                    findings.note(
                        at,
                        format!(
                            "excludeFrom: lsyncd ignores include lines, and so does the import: {}",
                            includes.join(", ")
                        ),
                    );
                }
                exclude.extend(patterns);
            }
            Err(e) => {
                doc.comment(
                    "",
                    format!("lsyncd's excludeFrom = {file:?} could not be read: {e}"),
                );
                findings.warn(at, format!("excludeFrom = {file:?} not carried over: {e}"));
            }
        }
    }
    if !exclude.is_empty() {
        doc.push_strings("", "exclude", &exclude);
    }
    for key in ["filter", "filterFrom"] {
        if m.get(key).is_some() {
            doc.comment(
                "",
                format!("lsyncd's {key}: rsync filter rules (+/-) have no equivalent; use `exclude`, or `rules` (regular expressions, first match wins)"),
            );
            findings.warn(
                at,
                format!("{key} has no equivalent: rewrite it as `exclude` patterns or `rules`"),
            );
        }
    }
    map_delete(&m, ssh_based, &mut doc, at, findings)?;

    // exit codes the user set
    let codes =
        user_value(&call.arg, "exitcodes").or_else(|| user_value(&call.arg, "rsyncExitCodes"));
    if let Some(LValue::Table(t)) = codes {
        let mut ok: Vec<i64> = t
            .entries
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (super::value::LKey::Int(c), LValue::Str(s))
                    if s == b"ok" && (1..=255).contains(c) =>
                {
                    Some(*c)
                }
                _ => None,
            })
            .collect();
        ok.sort_unstable();
        doc.set_noted(
            "",
            "ignore_exit_codes",
            toml::Value::Array(ok.into_iter().map(toml::Value::Integer).collect()),
            Some("the exit codes lsyncd's table called ok"),
        );
        findings.note(
            at,
            "exit codes: those marked 'ok' became ignore_exit_codes; clsync retries every other failure with backoff ('again' and 'die' alike)",
        );
    }

    // rsync and ssh
    if let Some(r) = m.table("rsync") {
        let o = rsync_table::map(r)?;
        if mirror {
            let extra: Vec<&String> = o.args.iter().filter(|a| !a.starts_with("--no-")).collect();
            if !extra.is_empty() || o.path.is_some() {
                doc.comment(
                    "",
                    format!(
                        "lsyncd's rsync options ({}) applied to its startup rsync; mode \"mirror\" copies without rsync",
                        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                    ),
                );
                findings.warn(at, "the rsync options of default.direct are not carried over: mode \"mirror\" copies without rsync");
            }
            findings.note(
                at,
                "default.direct became mode \"mirror\": it keeps permissions, times and owners as rsync -a does (lsyncd's cp did not)",
            );
        } else {
            if let Some(p) = o.path {
                doc.set("rsync", "path", p);
            }
            if !o.args.is_empty() {
                doc.push_strings("rsync", "args", &o.args);
            }
            for n in o.notes {
                findings.note(at, n);
            }
        }
        for k in o.unknown {
            doc.comment(
                "",
                format!("lsyncd's rsync.{k}: not an rsync option lsyncd knows"),
            );
            findings.warn(
                at,
                format!("rsync.{k} is not an option lsyncd knows: not carried over"),
            );
        }
        if let Some(words) = o.rsh {
            if !remote {
                findings.note(at, "rsync.rsh is not needed: the target is local");
            } else if ssh_based && has_ssh_options(&m) {
                findings.note(
                    at,
                    "rsync.rsh is not used: the ssh table's options replace it, as in lsyncd",
                );
            } else {
                doc.set_noted(
                    "ssh",
                    "command",
                    words[0].clone(),
                    Some("lsyncd's rsync.rsh"),
                );
                if words.len() > 1 {
                    doc.push_strings("ssh", "options", &words[1..]);
                }
            }
        }
    }
    if ssh_based && let Some(ssh) = m.table("ssh") {
        map_ssh(ssh, &mut doc, at, findings)?;
    }

    // what the job does not do
    for (key, what) in &lua {
        doc.comment(
            "",
            format!("lsyncd's {key} = {what}: clsync runs no Lua; this job syncs as {base} does"),
        );
        findings.warn(at, format!("{key} = {what} is not carried over: clsync runs no Lua (the job syncs as {base} does)"));
    }
    for (k, v) in m.keys() {
        let name = k.show();
        if KNOWN.contains(&name.as_str()) || matches!(k, super::value::LKey::Int(_)) {
            continue;
        }
        let shown = match v {
            MValue::Leaf(v) => v.show(),
            MValue::Table(_) => "a table".into(),
        };
        doc.comment(
            "",
            format!("lsyncd's {name} = {shown}: used only by the configuration's own Lua"),
        );
        findings.warn(
            at,
            format!("{name} = {shown} is not carried over (clsync has no such setting)"),
        );
    }

    let name = match m.leaf("name") {
        Some(v) => utf8("name", v)?,
        None => names::from_destination(&dest),
    };
    Ok(Job { name, doc })
}

fn has_ssh_options(m: &Merged) -> bool {
    m.table("ssh").is_some_and(|s| {
        s.leaf("identityFile").is_some() || s.get("options").is_some() || s.leaf("port").is_some()
    })
}

/// `delete` as `delete`. lsyncd's rsyncssh moves a renamed path on the remote host whatever
/// `delete` says; clsync's `delete = false` or `"startup"` copies it and keeps the old
/// name: said in a note.
fn map_delete(
    m: &Merged,
    ssh_based: bool,
    doc: &mut Doc,
    at: &str,
    findings: &mut Findings,
) -> Result<(), Refusal> {
    let keeps_old_names = match m.leaf("delete") {
        Some(LValue::Bool(true)) | None => false,
        Some(LValue::Bool(false)) => {
            doc.set("", "delete", false);
            true
        }
        Some(v) => {
            let s = utf8("delete", v)?;
            if s == "startup" || s == "running" {
                doc.set("", "delete", s.as_str());
                s == "startup"
            } else {
                doc.commented_key(
                    "",
                    "delete",
                    toml::Value::String(s),
                    "lsyncd takes only true, false, \"startup\" or \"running\"",
                );
                findings.warn(
                    at,
                    format!(
                        "delete = {} is not one of lsyncd's values: not carried over (clsync deletes)",
                        v.show()
                    ),
                );
                false
            }
        }
    };
    if ssh_based && keeps_old_names {
        findings.note(
            at,
            "lsyncd's rsyncssh moves a renamed path on the remote host even without deletions; \
             with this `delete` clsync copies it to its new name and keeps the old one",
        );
    }
    Ok(())
}

/// `ssh = {...}` of default.rsyncssh as `[ssh]`.
fn map_ssh(ssh: &Merged, doc: &mut Doc, at: &str, findings: &mut Findings) -> Result<(), Refusal> {
    if let Some(b) = ssh.leaf("binary") {
        let b = utf8("ssh.binary", b)?;
        if b != "/usr/bin/ssh" {
            doc.set("ssh", "command", b);
        }
    }
    if let Some(p) = ssh.leaf("port") {
        let port = match p {
            LValue::Int(i) => Some(*i),
            LValue::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            _ => None,
        };
        match port {
            Some(p) if (1..=65535).contains(&p) => doc.set("ssh", "port", p),
            _ => return Err(format!("ssh.port = {} is not a port number", p.show())),
        }
    }
    if let Some(i) = ssh.leaf("identityFile") {
        doc.set("ssh", "identity_file", utf8("ssh.identityFile", i)?);
    }
    let mut options = Vec::new();
    if let Some(o) = ssh.table("options") {
        // lsyncd writes `-o KEY=VALUE` for each entry (in table order; here sorted).
        for (k, v) in o.keys() {
            if let super::value::LKey::Str(_) = k
                && let MValue::Leaf(v) = v
            {
                options.push("-o".to_string());
                options.push(format!("{}={}", k.show(), utf8("ssh option", v)?));
            }
        }
    }
    if let Some(e) = ssh.table("_extra") {
        for v in e.list() {
            options.push(utf8("ssh._extra", v)?);
        }
        if !e.list().is_empty() {
            findings.note(
                at,
                "ssh._extra applies to rsync's ssh as well (lsyncd gave it only to the ssh that moves files)",
            );
        }
    }
    if !options.is_empty() {
        doc.push_strings("ssh", "options", &options);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let cwd = Path::new("/home/u");
        assert_eq!(destination("/srv/x/", cwd).unwrap().0, "/srv/x");
        let (d, remote, note) = destination("trg", cwd).unwrap();
        assert_eq!((d.as_str(), remote), ("/home/u/trg", false));
        assert!(note.is_some());
        assert_eq!(destination("h:/d/", cwd).unwrap().0, "h:/d/");
        assert_eq!(destination("u@h:d", cwd).unwrap().0, "u@h:d");
        assert_eq!(
            destination("h::mod/sub", cwd).unwrap().0,
            "rsync://h/mod/sub"
        );
        assert_eq!(destination("rsync://h/m", cwd).unwrap().0, "rsync://h/m");
        assert!(destination("/", cwd).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(&LValue::Int(15)).unwrap(), "15s");
        assert_eq!(duration(&LValue::Num(0.5)).unwrap(), "500ms");
        assert!(duration(&LValue::Int(-1)).is_err());
    }
}
