//! The command modes (`direct`, `shell`, `simple`, `rsync-shell`): what the external
//! handler is given, and `[command]` resolved for them (job file over `[defaults.command]`,
//! key by key). A whole-argument placeholder must be known, so that a typo is not passed on
//! literally; `[command]` in the job file of an rsync or mirror job is an error.

use std::path::PathBuf;

use toml::Spanned;

use super::diag::Diagnostic;
use super::paths::{program_path, resolve};
use super::placeholder::Placeholder;
use super::resolve::{At, Checked, Context, ModeName, NoValue, Role};

/// The command modes: what the external handler is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// The batch's paths as arguments: `HANDLER PATH... DESTINATION`.
    Direct,
    /// A list file of `EVENT TYPE PATH` records: `HANDLER TYPE JOB LIST`.
    Shell,
    /// One run per path: `HANDLER EVENT /ABS/PATH`.
    Simple,
    /// rsync `--files-from`/`--exclude-from` lists for a script that runs rsync itself.
    RsyncShell,
}

impl CommandKind {
    pub const ALL: [CommandKind; 4] = [
        CommandKind::Direct,
        CommandKind::Shell,
        CommandKind::Simple,
        CommandKind::RsyncShell,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Direct => "direct",
            CommandKind::Shell => "shell",
            CommandKind::Simple => "simple",
            CommandKind::RsyncShell => "rsync-shell",
        }
    }

    /// The argument template used when `[command] args` is not set.
    pub fn default_args(self) -> &'static [&'static str] {
        match self {
            CommandKind::Direct => &["%INCLUDE-LIST%", "%destination%"],
            CommandKind::Shell => &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
            CommandKind::Simple => &["%EVENT%", "%PATH%"],
            CommandKind::RsyncShell => &["%INCLUDE-LIST-PATH%", "%EXCLUDE-LIST-PATH%"],
        }
    }
}

/// `[command]` options of the command modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    pub kind: CommandKind,
    /// The handler program; a bare name is looked up in `PATH`.
    pub path: PathBuf,
    /// The argument template (the mode's default when not configured).
    pub args: Vec<String>,
    /// Where list files are written; `None`: a private directory per job under `$TMPDIR`.
    pub lists_dir: Option<PathBuf>,
    /// Keep list files after each run (debugging).
    pub keep_lists: bool,
}

/// The `[command]` keys of a job, each from the job file or `[defaults.command]`.
struct Keys<'a> {
    path: Option<At<'a, String>>,
    args: Option<At<'a, Vec<Spanned<String>>>>,
    lists_dir: Option<At<'a, String>>,
    keep_lists: Option<At<'a, bool>>,
}

impl<'a> Keys<'a> {
    fn pick(cx: &Context<'a>) -> Keys<'a> {
        Keys {
            path: cx.pick(|r| r.command.as_ref()?.path.as_ref()),
            args: cx.pick(|r| r.command.as_ref()?.args.as_ref()),
            lists_dir: cx.pick(|r| r.command.as_ref()?.lists_dir.as_ref()),
            keep_lists: cx.pick(|r| r.command.as_ref()?.keep_lists.as_ref()),
        }
    }
}

/// The `[command]` options of a command mode; `None` for the other modes (and for
/// `[defaults]`, whose values are only checked).
pub(super) fn options(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Option<CommandOptions>> {
    let keys = Keys::pick(cx);
    let kind = mode.ok().and_then(ModeName::command_kind);
    let values_ok = check_values(&keys, kind, diags);
    if cx.role == Role::Defaults {
        return Ok(None);
    }
    let Some(kind) = kind else {
        if let Ok(mode) = mode {
            reject_table(cx, mode, diags);
        }
        return Ok(None);
    };
    let Some(path) = keys.path else {
        let span = match cx.pick(|r| r.mode.as_ref()) {
            Some(m) if std::ptr::eq(m.file, cx.file) => m.v.span(),
            _ => cx.file.text.len()..cx.file.text.len(),
        };
        diags.push(cx.file.error(
            span,
            format!(
                "mode {:?} needs `command.path`: the handler program to run",
                kind.as_str()
            ),
        ));
        return Err(NoValue);
    };
    if !values_ok {
        return Err(NoValue);
    }
    Ok(Some(CommandOptions {
        kind,
        path: program_path(cx.dir, path.get()),
        args: match keys.args {
            Some(a) => a.get().iter().map(|s| s.get_ref().clone()).collect(),
            None => kind.default_args().iter().map(|s| s.to_string()).collect(),
        },
        lists_dir: keys.lists_dir.map(|a| resolve(cx.dir, a.get())),
        keep_lists: keys.keep_lists.is_some_and(|a| *a.get()),
    }))
}

/// `[command]` of the job file itself in an rsync or mirror job (an inherited one is for the
/// command jobs).
fn reject_table(cx: &Context<'_>, mode: ModeName, diags: &mut Vec<Diagnostic>) {
    if let Some(c) = &cx.raw.command {
        diags.push(cx.file.error(
            c.span.clone(),
            format!(
                "`[command]` is for the command modes (direct, shell, simple, rsync-shell), not for mode {:?}",
                mode.as_str()
            ),
        ));
    }
}

/// Checks the values on their own: known placeholders (and `simple`'s only in mode simple),
/// no empty path. False when one is bad.
fn check_values(keys: &Keys<'_>, kind: Option<CommandKind>, diags: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    if let Some(a) = &keys.args {
        for arg in a.get() {
            match Placeholder::parse(arg.get_ref()) {
                None => {}
                Some(Err(())) => {
                    ok = false;
                    diags.push(a.file.error(
                        arg.span(),
                        format!(
                            "unknown placeholder {:?}: expected one of {}",
                            arg.get_ref(),
                            Placeholder::names().join(", ")
                        ),
                    ));
                }
                Some(Ok(p))
                    if p.simple_only() && kind.is_some_and(|k| k != CommandKind::Simple) =>
                {
                    ok = false;
                    diags.push(a.file.error(
                        arg.span(),
                        format!(
                            "placeholder {:?} is only valid in mode \"simple\"",
                            arg.get_ref()
                        ),
                    ));
                }
                Some(Ok(_)) => {}
            }
        }
    }
    for (at, key) in [
        (&keys.path, "command.path"),
        (&keys.lists_dir, "command.lists_dir"),
    ] {
        if let Some(a) = at
            && a.get().is_empty()
        {
            ok = false;
            diags.push(a.err(format!("`{key}` is empty")));
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::write;
    use crate::config::{Mode, load_dir};
    use std::fs;

    #[test]
    fn command_modes_and_their_defaults() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "clsync.toml",
            "[defaults]\nmode = \"shell\"\n[defaults.command]\npath = \"my-handler\"\nkeep_lists = true\n",
        );
        let job = |name: &str, extra: &str| {
            write(
                t.path(),
                &format!("jobs.d/{name}.toml"),
                &format!("source = \"src\"\ndestination = \"dst-{name}\"\n{extra}"),
            )
        };
        job("a", "");
        job(
            "b",
            "mode = \"direct\"\nignore_exit_codes = [24]\n[command]\npath = \"bin/h\"\nargs = [\"-v\", \"%INCLUDE-LIST%\"]\nlists_dir = \"lists\"\n",
        );
        job("c", "mode = \"rsync\"\n");
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:#?}", l.diagnostics);
        let Mode::Command(a) = &l.jobs[0].mode else {
            panic!("{:?}", l.jobs[0].mode)
        };
        assert_eq!(a.kind, CommandKind::Shell);
        assert_eq!(a.path, PathBuf::from("my-handler"));
        assert_eq!(a.args, ["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"]);
        assert!(a.keep_lists && a.lists_dir.is_none());
        assert_eq!(l.jobs[0].mode.as_str(), "shell");
        assert!(l.jobs[0].rsync.ignore_exit_codes.is_empty());
        let Mode::Command(b) = &l.jobs[1].mode else {
            panic!()
        };
        assert_eq!(b.kind, CommandKind::Direct);
        assert_eq!(b.path, t.path().join("bin/h"));
        assert_eq!(b.args, ["-v", "%INCLUDE-LIST%"]);
        assert_eq!(b.lists_dir, Some(t.path().join("lists")));
        assert_eq!(l.jobs[1].rsync.ignore_exit_codes, [24]);
        // An inherited [defaults.command] does not bother an rsync job.
        assert_eq!(l.jobs[2].mode, Mode::Rsync);
        assert_eq!(l.jobs[2].rsync.ignore_exit_codes, [24]);
    }

    #[test]
    fn command_errors() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        let head = "source = \"src\"\ndestination = \"dst\"\n";
        let cases = [
            // (job text after head, line, column, message part)
            (
                "mode = \"mirror\"\n[command]\npath = \"x\"\n",
                4,
                2,
                "not for mode \"mirror\"",
            ),
            (
                "[command]\nargs = [\"x\"]\n",
                3,
                2,
                "not for mode \"rsync\"",
            ),
            ("mode = \"simple\"\n", 3, 8, "needs `command.path`"),
            (
                "mode = \"direct\"\n[command]\npath = \"h\"\nargs = [\"%INCLUDE_LIST%\", \"%job%\"]\n",
                6,
                9,
                "unknown placeholder \"%INCLUDE_LIST%\"",
            ),
            (
                "mode = \"shell\"\n[command]\npath = \"h\"\nargs = [\"%job%\", \"%EVENT%\"]\n",
                6,
                18,
                "only valid in mode \"simple\"",
            ),
            ("mode = \"rsync-shel\"\n", 3, 8, "unknown mode"),
        ];
        for (i, (text, line, col, msg)) in cases.iter().enumerate() {
            let dir = t.path().join(format!("c{i}"));
            write(&dir, "jobs.d/j.toml", &format!("{head}{text}"));
            fs::create_dir_all(dir.join("src")).unwrap();
            let l = load_dir(&dir);
            let errs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
            let want = format!("{}:{line}:{col}: ", dir.join("jobs.d/j.toml").display());
            assert!(
                errs.iter().any(|e| e.starts_with(&want) && e.contains(msg)),
                "case {i}: want {want}{msg}\n{errs:#?}"
            );
            assert!(l.jobs.is_empty());
        }
        // A missing path with the mode from [defaults]: at the end of the job file.
        let dir = t.path().join("d");
        fs::create_dir_all(dir.join("src")).unwrap();
        write(&dir, "clsync.toml", "[defaults]\nmode = \"direct\"\n");
        write(&dir, "jobs.d/j.toml", head);
        let l = load_dir(&dir);
        let errs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        let want = format!("{}:3:1: ", dir.join("jobs.d/j.toml").display());
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&want) && e.contains("needs `command.path`")),
            "{errs:#?}"
        );
    }
}
