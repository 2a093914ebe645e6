//! How a job reaches its destination: lsyncd's `rsync = {...}` and `ssh = {...}` tables as
//! `[rsync]` and `[ssh]`.
//!
//! The rsync table is translated by [`super::rsync_table`]; its options do not apply to
//! mode "mirror" (no rsync) and are reported there. `rsync.rsh` becomes `[ssh]` only for a
//! remote target, and not when default.rsyncssh's own `ssh` table replaces it, as in lsyncd.

use super::rsync_table;
use super::sync::{Mapping, Refusal, utf8};
use super::value::{LValue, MValue, Merged};
use crate::import::{Doc, Findings};

/// Where the job syncs to, as the rsync and ssh mapping needs it.
pub(super) struct Route {
    /// Mode "mirror": a local copy without rsync.
    pub mirror: bool,
    /// The destination is on another host.
    pub remote: bool,
    /// Based on default.rsyncssh.
    pub ssh_based: bool,
}

impl Mapping<'_> {
    /// `rsync = {...}` and, for default.rsyncssh, `ssh = {...}`.
    pub(super) fn rsync_and_ssh(&mut self, route: &Route) -> Result<(), Refusal> {
        if let Some(r) = self.m.table("rsync") {
            let o = rsync_table::map(r)?;
            if route.mirror {
                self.mirror_rsync_options(&o.args, o.path.is_some());
            } else {
                if let Some(p) = o.path {
                    self.doc.set("rsync", "path", p);
                }
                if !o.args.is_empty() {
                    self.doc.push_strings("rsync", "args", &o.args);
                }
                for n in o.notes {
                    self.findings.note(self.at, n);
                }
            }
            for k in o.unknown {
                self.doc.comment(
                    "",
                    format!("lsyncd's rsync.{k}: not an rsync option lsyncd knows"),
                );
                self.findings.warn(
                    self.at,
                    format!("rsync.{k} is not an option lsyncd knows: not carried over"),
                );
            }
            if let Some(words) = o.rsh {
                self.rsh(&words, route);
            }
        }
        if route.ssh_based
            && let Some(ssh) = self.m.table("ssh")
        {
            map_ssh(ssh, &mut self.doc, self.at, self.findings)?;
        }
        Ok(())
    }

    /// default.direct's rsync options: they applied only to lsyncd's startup rsync.
    fn mirror_rsync_options(&mut self, args: &[String], has_path: bool) {
        let extra: Vec<&String> = args.iter().filter(|a| !a.starts_with("--no-")).collect();
        if !extra.is_empty() || has_path {
            self.doc.comment(
                "",
                format!(
                    "lsyncd's rsync options ({}) applied to its startup rsync; mode \"mirror\" copies without rsync",
                    extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                ),
            );
            self.findings.warn(self.at, "the rsync options of default.direct are not carried over: mode \"mirror\" copies without rsync");
        }
        self.findings.note(
            self.at,
            "default.direct became mode \"mirror\": it keeps permissions, times and owners as rsync -a does (lsyncd's cp did not)",
        );
    }

    /// `rsync.rsh` (its words) as `[ssh] command` and `options`.
    fn rsh(&mut self, words: &[String], route: &Route) {
        if !route.remote {
            self.findings
                .note(self.at, "rsync.rsh is not needed: the target is local");
        } else if route.ssh_based && has_ssh_options(self.m) {
            self.findings.note(
                self.at,
                "rsync.rsh is not used: the ssh table's options replace it, as in lsyncd",
            );
        } else {
            self.doc.set_noted(
                "ssh",
                "command",
                words[0].clone(),
                Some("lsyncd's rsync.rsh"),
            );
            if words.len() > 1 {
                self.doc.push_strings("ssh", "options", &words[1..]);
            }
        }
    }
}

fn has_ssh_options(m: &Merged) -> bool {
    m.table("ssh").is_some_and(|s| {
        s.leaf("identityFile").is_some() || s.get("options").is_some() || s.leaf("port").is_some()
    })
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
