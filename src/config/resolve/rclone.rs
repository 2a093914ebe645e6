//! `[rclone]` (`path`, `config`, `args`) of mode `rclone`, and what of the job's filter
//! rclone can be given: each `exclude` pattern is translated ([`crate::rules::rclone`]) or
//! refused at its line and column, and regex `rules` / `rules_file`, which rclone's globs
//! cannot express, are refused. `[rclone]` in a job file of another mode is an error. A
//! destination's remote missing from `[rclone] config` is a warning.

use super::context::{Checked, Context, NoValue, Role};
use super::mode::ModeName;
use super::values;
use crate::config::diag::Diagnostic;
use crate::config::model::RcloneOptions;
use crate::config::paths::{program_path, resolve};
use crate::rules::rclone::translate_exclude;

/// The `[rclone]` options of mode `rclone`; `None` in the other modes and for `[defaults]`.
pub(super) fn options(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Option<RcloneOptions>> {
    let Ok(mode) = mode else {
        return Err(NoValue);
    };
    if mode != ModeName::Rclone {
        if let (Some(t), Role::JobFile) = (&cx.raw.rclone, cx.role) {
            diags.push(cx.file.error(
                t.span.clone(),
                format!(
                    "`[rclone]` is for mode \"rclone\", not for mode {:?}",
                    mode.as_str()
                ),
            ));
        }
        return Ok(None);
    }
    let filter = filter(cx, diags);
    let config = cx.pick(|r| r.rclone.as_ref()?.config.as_ref()).map(|a| {
        let p = resolve(cx.dir, a.get());
        if !p.is_file() {
            diags.push(a.file.warning(
                a.v.span(),
                format!(
                    "rclone configuration {} is not a readable file (yet)",
                    p.display()
                ),
            ));
        }
        p
    });
    if cx.role == Role::Defaults {
        return Ok(None);
    }
    Ok(Some(RcloneOptions {
        path: cx
            .pick(|r| r.rclone.as_ref()?.path.as_ref())
            .map_or_else(|| "rclone".into(), |a| program_path(cx.dir, a.get())),
        config,
        args: values::strings(cx.pick(|r| r.rclone.as_ref()?.args.as_ref())),
        filter: filter?,
    }))
}

/// Why remote `name` (of `remote:path`) is not known to `[rclone] config`, when the file
/// can tell: a warning for `clsync check` (the file may still change before the job runs).
pub(super) fn unknown_remote(cx: &Context<'_>, destination: &str) -> Option<String> {
    let name = destination.split(':').next().filter(|n| !n.is_empty())?;
    let name = name.split(',').next()?;
    let a = cx.pick(|r| r.rclone.as_ref()?.config.as_ref())?;
    let path = resolve(cx.dir, a.get());
    let text = std::fs::read_to_string(&path).ok()?;
    let env = format!(
        "RCLONE_CONFIG_{}_TYPE",
        name.to_uppercase().replace('-', "_")
    );
    if text.starts_with("RCLONE_ENCRYPT_V0:") || std::env::var_os(env).is_some() {
        return None;
    }
    let section = format!("[{name}]");
    (!text.lines().any(|l| l.trim() == section)).then(|| {
        format!(
            "rclone remote {name:?} is not in the rclone configuration {}",
            path.display()
        )
    })
}

/// The job's `exclude` as rclone filter lines; regex rules refused.
fn filter(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<Vec<String>> {
    let mut ok = true;
    if let Some(a) = cx.pick(|r| r.rules.as_ref()) {
        ok = false;
        diags.push(a.err(
            "mode \"rclone\" cannot use regex `rules`: rclone filters are globs; write them as `exclude` patterns",
        ));
    }
    if let Some(a) = cx.pick(|r| r.rules_file.as_ref()) {
        ok = false;
        diags.push(a.err(
            "mode \"rclone\" cannot use a `rules_file`: rclone filters are globs; write them as `exclude` patterns",
        ));
    }
    let mut lines = Vec::new();
    if let Some(a) = cx.pick(|r| r.exclude.as_ref()) {
        for p in a.get() {
            match translate_exclude(p.get_ref()) {
                Ok(l) => lines.extend(l),
                Err(why) => {
                    ok = false;
                    diags.push(a.file.error(
                        p.span(),
                        format!("exclude {:?} cannot be given to rclone: {why}", p.get_ref()),
                    ));
                }
            }
        }
    }
    if ok { Ok(lines) } else { Err(NoValue) }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::write;
    use crate::config::{Mode, load_dir};
    use std::fs;

    /// A job of mode rclone: `[rclone]` resolved (paths against the configuration
    /// directory), excludes translated; each mistake at its file, line and column.
    #[test]
    fn rclone_keys_and_their_errors() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(t.path(), "clsync.toml", "");
        write(t.path(), "rclone.conf", "[dst]\ntype = local\n");
        write(
            t.path(),
            "jobs.d/ok.toml",
            "source = \"src\"\ndestination = \"dst:/data\"\nmode = \"rclone\"\nexclude = [\"*.tmp\", \"/cache/\"]\n[rclone]\nconfig = \"rclone.conf\"\nargs = [\"--transfers=2\"]\n",
        );
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let Mode::Rclone(r) = &l.jobs[0].mode else {
            panic!("{:?}", l.jobs[0].mode)
        };
        assert_eq!(r.path, std::path::Path::new("rclone"));
        assert_eq!(
            r.config.as_deref(),
            Some(t.path().join("rclone.conf").as_path())
        );
        assert_eq!(r.args, ["--transfers=2"]);
        assert_eq!(r.filter, ["- *.tmp", "- *.tmp/", "- /cache/"]);
        assert!(!l.jobs[0].sandbox.enabled, "auto is off for rclone");
        assert!(l.jobs[0].rsync.ignore_exit_codes.is_empty());

        fs::remove_file(t.path().join("jobs.d/ok.toml")).unwrap();
        write(
            t.path(),
            "jobs.d/local.toml",
            "source = \"src\"\nmode = \"rclone\"\ndestination = \"/srv/x\"\n",
        );
        write(
            t.path(),
            "jobs.d/table.toml",
            "source = \"src\"\ndestination = \"/srv/y\"\n[rclone]\npath = \"rclone\"\n",
        );
        write(
            t.path(),
            "jobs.d/filter.toml",
            "source = \"src\"\ndestination = \"r:x\"\nmode = \"rclone\"\nexclude = [\"ok\", \"a/***/b\"]\nrules = [\"-f^x$\"]\n",
        );
        let l = load_dir(t.path());
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let at = |file: &str, lc: &str, text: &str| {
            let want = format!(
                "{}:{lc}: {text}",
                t.path().join("jobs.d").join(file).display()
            );
            assert!(
                msgs.iter().any(|m| m.starts_with(&want)),
                "{want}\n{msgs:#?}"
            );
        };
        at(
            "local.toml",
            "3:15",
            "mode \"rclone\" needs an rclone remote",
        );
        at(
            "table.toml",
            "3:2",
            "`[rclone]` is for mode \"rclone\", not for mode \"rsync\"",
        );
        at(
            "filter.toml",
            "4:18",
            "exclude \"a/***/b\" cannot be given to rclone",
        );
        at(
            "filter.toml",
            "5:9",
            "mode \"rclone\" cannot use regex `rules`",
        );
        assert_eq!(msgs.len(), 4, "{msgs:#?}");

        for f in ["local", "table", "filter"] {
            fs::remove_file(t.path().join(format!("jobs.d/{f}.toml"))).unwrap();
        }
        write(
            t.path(),
            "jobs.d/unknown.toml",
            "source = \"src\"\ndestination = \"nope:x\"\nmode = \"rclone\"\n[rclone]\nconfig = \"rclone.conf\"\n",
        );
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let w: Vec<String> = l.diagnostics.iter().map(|d| d.to_string()).collect();
        let want = format!(
            "{}:2:15: warning: rclone remote \"nope\" is not in the rclone configuration",
            t.path().join("jobs.d/unknown.toml").display()
        );
        assert!(w.iter().any(|m| m.starts_with(&want)), "{w:#?}");
    }
}
