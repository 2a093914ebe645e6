//! `sandbox` (`true`, `false` or `"auto"`: on unless a command mode or mode rclone), `sandbox_read` and
//! `sandbox_write` (paths, relative ones against the configuration directory).

use toml::Spanned;

use super::context::{Checked, Context, NoValue};
use crate::config::diag::Diagnostic;
use crate::config::model::SandboxOptions;
use crate::config::paths::resolve;
use crate::config::raw::RawJob;

pub(super) fn sandbox(
    cx: &Context<'_>,
    command_mode: bool,
    diags: &mut Vec<Diagnostic>,
) -> Checked<SandboxOptions> {
    let enabled = match cx.pick(|r| r.sandbox.as_ref()) {
        None => Ok(!command_mode),
        Some(a) => match a.get() {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::String(s) if s == "auto" => Ok(!command_mode),
            other => {
                diags.push(a.err(format!(
                    "sandbox must be true, false or \"auto\", not {other}"
                )));
                Err(NoValue)
            }
        },
    };
    let read = paths(cx, |r| r.sandbox_read.as_ref(), diags);
    let write = paths(cx, |r| r.sandbox_write.as_ref(), diags);
    Ok(SandboxOptions {
        enabled: enabled?,
        read: read?,
        write: write?,
    })
}

/// A list of paths; an empty one is an error.
fn paths<'a>(
    cx: &Context<'a>,
    key: impl Fn(&'a RawJob) -> Option<&'a Spanned<Vec<Spanned<String>>>>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Vec<std::path::PathBuf>> {
    let Some(a) = cx.pick(key) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in a.get() {
        if p.get_ref().is_empty() {
            diags.push(a.file.error(p.span(), "empty path"));
        } else {
            out.push(resolve(cx.dir, p.get_ref()));
        }
    }
    if out.len() == a.get().len() {
        Ok(out)
    } else {
        Err(NoValue)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_dir;
    use crate::config::test_support::write;
    use std::fs;
    use std::path::PathBuf;

    /// `sandbox`: "auto" is on for rsync and mirror, off for the command modes; `true` and
    /// `false` force it; paths resolve against the configuration directory; `[defaults]`
    /// gives them to every job; a bad value is an error at its line and column.
    #[test]
    fn sandbox_keys() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\nsandbox_write = [\"logs\"]\n",
        );
        let job = |name: &str, rest: &str| {
            write(
                t.path(),
                &format!("jobs.d/{name}.toml"),
                &format!("source = \"src\"\ndestination = \"dst-{name}\"\n{rest}"),
            )
        };
        job("r", "sandbox_read = [\"/etc/extra\", \"rel\"]\n");
        job("m", "mode = \"mirror\"\nsandbox = false\n");
        job("c", "mode = \"direct\"\n[command]\npath = \"true\"\n");
        job(
            "cs",
            "mode = \"direct\"\nsandbox = true\n[command]\npath = \"true\"\n",
        );
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let get = |n: &str| l.jobs.iter().find(|j| j.name == n).unwrap().sandbox.clone();
        let r = get("r");
        assert!(r.enabled);
        assert_eq!(r.read, [PathBuf::from("/etc/extra"), t.path().join("rel")]);
        assert_eq!(r.write, [t.path().join("logs")]);
        assert!(!get("m").enabled);
        assert!(!get("c").enabled);
        assert!(get("cs").enabled);
        job("bad", "sandbox = \"yes\"\n");
        let l = load_dir(t.path());
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let bad = t.path().join("jobs.d/bad.toml");
        assert!(
            msgs.iter().any(|m| m
                == &format!(
                    "{}:3:11: sandbox must be true, false or \"auto\", not \"yes\"",
                    bad.display()
                )),
            "{msgs:#?}"
        );
    }
}
