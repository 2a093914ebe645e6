//! lsyncd's `rsync = {...}` table as `[rsync]` of a job.
//!
//! lsyncd builds rsync's options from the table: `archive` implies `recursive`, `links`,
//! `perms`, `times`, `group`, `owner`, `devices`, `specials` (each unless set), and its own
//! default is `links`, `times` and `protect_args` only. clsync always runs `rsync -a`, so
//! what lsyncd would not have preserved is switched off again with rsync's `--no-OPTION`
//! (`--no-perms`, `--no-owner`, ...), and every other option becomes its long form in
//! `args`, after clsync's own. `binary` becomes `path`, `_extra` is appended as it is, and
//! `rsh` (a command line that rsync splits on spaces, honouring quotes) is returned as the
//! words of an ssh command for `[ssh]`. `protect_args` needs no equivalent: clsync passes
//! no file name as an argument.

use super::value::{LValue, Merged};
use crate::import::doc::show_bytes;

/// What the table asks of rsync.
#[derive(Debug, Default, PartialEq)]
pub struct RsyncOptions {
    /// `[rsync] path`, when not lsyncd's default `/usr/bin/rsync`.
    pub path: Option<String>,
    /// `[rsync] args`.
    pub args: Vec<String>,
    /// The words of `rsh`.
    pub rsh: Option<Vec<String>>,
    /// Keys that mean nothing to rsync (a typo lsyncd would have refused, with a
    /// configuration whose own `prepare` skips lsyncd's check).
    pub unknown: Vec<String>,
    /// Notes on how something was carried over.
    pub notes: Vec<String>,
}

/// Options preserved by `rsync -a` (besides recursion), with the `--no-` form that undoes
/// each.
const ARCHIVE: &[(&str, &str)] = &[
    ("links", "--no-links"),
    ("perms", "--no-perms"),
    ("times", "--no-times"),
    ("group", "--no-group"),
    ("owner", "--no-owner"),
    ("devices", "--no-devices"),
    ("specials", "--no-specials"),
];

/// Boolean keys and their long options.
const FLAGS: &[(&str, &str)] = &[
    ("acls", "--acls"),
    ("append", "--append"),
    ("append_verify", "--append-verify"),
    ("backup", "--backup"),
    ("checksum", "--checksum"),
    ("compress", "--compress"),
    ("copy_dirlinks", "--copy-dirlinks"),
    ("copy_links", "--copy-links"),
    ("cvs_exclude", "--cvs-exclude"),
    ("dry_run", "--dry-run"),
    ("executability", "--executability"),
    ("existing", "--existing"),
    ("hard_links", "--hard-links"),
    ("ignore_times", "--ignore-times"),
    ("inplace", "--inplace"),
    ("ipv4", "--ipv4"),
    ("ipv6", "--ipv6"),
    ("keep_dirlinks", "--keep-dirlinks"),
    ("one_file_system", "--one-file-system"),
    ("omit_dir_times", "--omit-dir-times"),
    ("omit_link_times", "--omit-link-times"),
    ("prune_empty_dirs", "--prune-empty-dirs"),
    ("quiet", "--quiet"),
    ("sparse", "--sparse"),
    ("update", "--update"),
    ("verbose", "--verbose"),
    ("whole_file", "--whole-file"),
    ("xattrs", "--xattrs"),
];

/// Keys with a value, and their `--option=` prefix.
const VALUED: &[(&str, &str)] = &[
    ("backup_dir", "--backup-dir="),
    ("bwlimit", "--bwlimit="),
    ("chmod", "--chmod="),
    ("chown", "--chown="),
    ("groupmap", "--groupmap="),
    ("password_file", "--password-file="),
    ("rsync_path", "--rsync-path="),
    ("suffix", "--suffix="),
    ("temp_dir", "--temp-dir="),
    ("timeout", "--timeout="),
    ("usermap", "--usermap="),
];

/// Keys handled otherwise.
const OTHER: &[&str] = &[
    "archive",
    "binary",
    "rsh",
    "_extra",
    "recursive",
    "protect_args",
];

/// A value as rsync would get it from lsyncd's string concatenation.
fn text(v: &LValue) -> Result<String, String> {
    match (v.text(), v) {
        (Ok(Some(s)), _) => Ok(s),
        (Err(b), _) => Err(format!(
            "{} is not UTF-8, which a job file cannot hold",
            show_bytes(b)
        )),
        (Ok(None), LValue::Num(n)) if n.fract() == 0.0 => Ok(format!("{n:.0}")),
        (Ok(None), LValue::Num(n)) => Ok(n.to_string()),
        (Ok(None), other) => Err(format!(
            "expected a string or a number, found {}",
            other.show()
        )),
    }
}

/// Maps the merged `rsync` table. Errors are values that cannot be written.
pub fn map(rsync: &Merged) -> Result<RsyncOptions, String> {
    let mut out = RsyncOptions::default();
    let flag = |k: &str| rsync.leaf(k).map(LValue::truthy);
    let archive = flag("archive") == Some(true);
    let preserved = |k: &str| match flag(k) {
        Some(v) => v,
        // archive implies these unless they are set.
        None => archive,
    };
    for (key, no) in ARCHIVE {
        if !preserved(key) {
            out.args.push(no.to_string());
        }
    }
    if !out.args.is_empty() {
        out.notes.push(format!(
            "lsyncd's rsync options did not preserve everything `rsync -a` does: {} undo{} that",
            out.args.join(" "),
            if out.args.len() == 1 { "es" } else { "" }
        ));
    }
    for (key, opt) in FLAGS {
        // archive says false for hard_links, acls, xattrs: only an explicit true counts.
        if flag(key) == Some(true)
            || matches!(rsync.leaf(key), Some(v) if !matches!(v, LValue::Bool(_)) && v.truthy())
        {
            out.args.push(opt.to_string());
        }
    }
    for (key, opt) in VALUED {
        if let Some(v) = rsync.leaf(key)
            && v.truthy()
        {
            out.args.push(format!(
                "{opt}{}",
                text(v).map_err(|e| format!("rsync.{key}: {e}"))?
            ));
        }
    }
    if let Some(v) = rsync.leaf("binary") {
        let b = text(v).map_err(|e| format!("rsync.binary: {e}"))?;
        if b != "/usr/bin/rsync" {
            out.path = Some(b);
        }
    }
    if let Some(extra) = rsync.table("_extra") {
        for v in extra.list() {
            out.args
                .push(text(v).map_err(|e| format!("rsync._extra: {e}"))?);
        }
    } else if let Some(v) = rsync.leaf("_extra") {
        out.args
            .push(text(v).map_err(|e| format!("rsync._extra: {e}"))?);
    }
    if let Some(v) = rsync.leaf("rsh")
        && v.truthy()
    {
        let line = text(v).map_err(|e| format!("rsync.rsh: {e}"))?;
        out.rsh = Some(split_rsh(&line).map_err(|e| format!("rsync.rsh: {e}"))?);
    }
    for (k, _) in rsync.keys() {
        let name = k.show();
        let known = ARCHIVE.iter().any(|(a, _)| *a == name)
            || FLAGS.iter().any(|(a, _)| *a == name)
            || VALUED.iter().any(|(a, _)| *a == name)
            || OTHER.contains(&name.as_str())
            || matches!(k, super::value::LKey::Int(_));
        if !known {
            out.unknown.push(name);
        }
    }
    Ok(out)
}

/// Splits a remote-shell command as rsync does: on spaces, with `'...'` and `"..."`
/// quoting the spaces inside them and a doubled quote inside quotes standing for itself.
pub fn split_rsh(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                if chars.peek() == Some(&q) {
                    chars.next();
                    cur.push(q);
                } else {
                    quote = None;
                }
            }
            Some(_) => cur.push(c),
            None if c == ' ' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in {cmd:?}"));
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::lsyncd::value::{LKey, LTable, LValue};
    use std::rc::Rc;

    fn merged(entries: Vec<(&str, LValue)>) -> Merged {
        let t = LTable {
            standin: None,
            entries: entries
                .into_iter()
                .map(|(k, v)| (LKey::str(k), v))
                .collect(),
        };
        let mut m = Merged::default();
        crate::import::lsyncd::value::inherit(&mut m, &Rc::new(t), false);
        m
    }

    fn s(x: &str) -> LValue {
        LValue::Str(x.as_bytes().to_vec())
    }

    #[test]
    fn lsyncd_default_undoes_what_archive_adds() {
        let m = merged(vec![
            ("binary", s("/usr/bin/rsync")),
            ("links", LValue::Bool(true)),
            ("times", LValue::Bool(true)),
            ("protect_args", LValue::Bool(true)),
        ]);
        let o = map(&m).unwrap();
        assert_eq!(
            o.args,
            [
                "--no-perms",
                "--no-group",
                "--no-owner",
                "--no-devices",
                "--no-specials"
            ]
        );
        assert_eq!(o.path, None);
    }

    #[test]
    fn archive_and_options() {
        let m = merged(vec![
            ("binary", s("/opt/rsync")),
            ("archive", LValue::Bool(true)),
            ("compress", LValue::Bool(true)),
            ("bwlimit", LValue::Int(500)),
            ("owner", LValue::Bool(false)),
            ("rsh", s("/usr/bin/ssh -p 2222 -o 'ProxyCommand=nc %h %p'")),
            (
                "_extra",
                LValue::Table(Rc::new(LTable {
                    standin: None,
                    entries: vec![(LKey::Int(1), s("--max-delete=100"))],
                })),
            ),
            ("compresss", LValue::Bool(true)),
        ]);
        let o = map(&m).unwrap();
        assert_eq!(
            o.args,
            [
                "--no-owner",
                "--compress",
                "--bwlimit=500",
                "--max-delete=100"
            ]
        );
        assert_eq!(o.path.as_deref(), Some("/opt/rsync"));
        assert_eq!(
            o.rsh.unwrap(),
            ["/usr/bin/ssh", "-p", "2222", "-o", "ProxyCommand=nc %h %p"]
        );
        assert_eq!(o.unknown, ["compresss"]);
    }

    #[test]
    fn rsh_quoting_like_rsync() {
        assert_eq!(
            split_rsh("ssh  -l  'a b' \"c\"\"d\"").unwrap(),
            ["ssh", "-l", "a b", "c\"d"]
        );
        assert!(split_rsh("ssh 'x").is_err());
    }
}
