//! The command modes (direct, shell, simple, rsync-shell): real handler scripts that record
//! what they were given, and for direct and rsync-shell really sync. File names are data:
//! `$(touch pwned)` and `--rsh=evil` must arrive intact and never run or act as options.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::harness::*;

const PWNED: &str = "$(touch pwned)";
const EVIL: &str = "--rsh=evil";
/// How `EVIL` is passed as an argument or shell record: never with a leading `-`.
const EVIL_ARG: &str = "./--rsh=evil";

/// A job file for a command mode.
fn command_job(env: &Env, src: &Path, dst: &Path, mode: &str, extra: &str, command: &str) {
    env.write_job(
        "j",
        &format!(
            "source = {}\ndestination = {}\nmode = {}\ndelay = \"100ms\"\n{extra}\n[command]\n{command}\n",
            toml_path(src),
            toml_path(dst),
            toml_str(mode)
        ),
    );
}

/// The NUL-terminated items of a record file (empty if it does not exist yet).
fn items(p: &Path) -> Vec<OsString> {
    let data = fs::read(p).unwrap_or_default();
    let mut v: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|s| OsStr::from_bytes(s).to_owned())
        .collect();
    // The last item is what follows the last NUL: nothing.
    v.pop();
    v
}

fn wait_until(d: &mut Daemon, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + SYNC_DEADLINE;
    while !ok() {
        if let Some(st) = d.try_status() {
            panic!("clsync exited ({st}) waiting for {what}\n{}", d.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

/// `c/` with content and `b` exist before the start; then `a` is created, `b` deleted, `c`
/// renamed to `d`, and the two hostile names are created.
fn initial_tree(src: &Path) {
    write(&src.join("b"), "bee");
    write(&src.join("c/inner.txt"), "in c");
    write(&src.join("c/sub/deep.txt"), "deep in c");
    write(&src.join("keep.txt"), "kept");
}

fn changes(src: &Path) {
    write(&src.join("a"), "new a");
    fs::remove_file(src.join("b")).unwrap();
    fs::rename(src.join("c"), src.join("d")).unwrap();
    write(&src.join(PWNED), "not a command");
    write(&src.join(EVIL), "not an option");
    append(&src.join("keep.txt"), " and modified");
}

fn assert_not_pwned(env: &Env) {
    let found = find_named(&env.root, OsStr::new("pwned"));
    assert!(
        found.is_empty(),
        "a file name was run as a command: {found:?}"
    );
}

/// direct: the paths are arguments; the script deletes at the destination what is gone
/// from the source and feeds the rest back to rsync as a NUL list (without
/// `--delete-missing-args`, which some receivers reject).
#[test]
fn direct_mode_syncs_with_paths_as_arguments() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    initial_tree(&src);
    let rec = env.p("argv.rec");
    let script = env.script(
        "direct.sh",
        &format!(
            r#"printf '%s\0' "$@" >> '{rec}'
n=$#
i=0
for p; do
  i=$((i+1))
  [ $i -lt $n ] || continue
  if [ -e "./$p" ] || [ -L "./$p" ]; then printf './%s\0' "$p"; else rm -rf -- "$CLSYNC_DESTINATION/$p"; fi
done | rsync -a --delete -r --files-from=- --from0 ./ "$CLSYNC_DESTINATION"/"#,
            rec = rec.display()
        ),
    );
    command_job(
        &env,
        &src,
        &dst,
        "direct",
        "",
        &format!("path = {}", toml_path(&script)),
    );
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    // The initial sync: the root as ".", then the destination.
    let first = items(&rec);
    assert_eq!(
        first,
        [OsString::from("."), dst.clone().into_os_string()],
        "{}",
        d.log_tail()
    );
    changes(&src);
    d.assert_synced(&src, &dst, &[]);
    let all = items(&rec);
    // A name that starts with `-` comes as `./NAME`: never an option.
    for name in [PWNED, EVIL_ARG, "a", "b", "c", "d", "keep.txt"] {
        assert!(
            all.iter().any(|a| a == name),
            "{name:?} is one whole argument: {all:?}"
        );
    }
    assert!(!all.iter().any(|a| a == EVIL), "{all:?}");
    assert_not_pwned(&env);
    assert!(d.stop().success());
}

/// rsync-shell: the script gets a NUL `--files-from` list and a NUL exclude list (the job's
/// excludes and what its rules deny), and runs rsync itself. With a receiver that rejects
/// missing entries, a deleted name comes as a `+ /NAME` rule of a deletion run's exclude list
/// instead (its parent in the list).
#[test]
fn rsync_shell_mode_syncs_with_list_files() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    initial_tree(&src);
    write(&src.join("junk.tmp"), "excluded by pattern");
    write(&src.join("c/secret"), "excluded by rule");
    let (rec, lists_rec) = (env.p("argv.rec"), env.p("lists.rec"));
    let excl_rec = env.p("excl.rec");
    let lists = env.p("lists");
    let script = env.script(
        "rsync-shell.sh",
        &format!(
            r#"printf '%s\0' "$@" >> '{rec}'
cat "$1" >> '{lists_rec}'
cat "$2" >> '{excl_rec}'
[ "$CLSYNC_LIST" = "$1" ] || exit 9
rsync -a --delete -r --delete-missing-args --files-from="$1" --from0 --exclude-from="$2" ./ "$CLSYNC_DESTINATION"/"#,
            rec = rec.display(),
            lists_rec = lists_rec.display(),
            excl_rec = excl_rec.display()
        ),
    );
    command_job(
        &env,
        &src,
        &dst,
        "rsync-shell",
        "exclude = [\"*.tmp\"]\nrules = ['-f(^|/)secret$']",
        &format!(
            "path = {}\nlists_dir = {}\nkeep_lists = true",
            toml_path(&script),
            toml_path(&lists)
        ),
    );
    let excluded = ["*.tmp", "secret"];
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &excluded);
    assert!(!dst.join("junk.tmp").exists() && !dst.join("c/secret").exists());
    // The initial sync's lists: "." and the excludes, with the rule-denied path anchored.
    let argv = items(&rec);
    assert_eq!(argv.len(), 2, "{argv:?}");
    assert_eq!(items(&lists_rec), [OsString::from(".")]);
    // (The walk for the rules also lists what the patterns exclude: harmless.)
    let excl = items(Path::new(&argv[1]));
    assert_eq!(excl[0], "*.tmp", "{excl:?}");
    assert!(excl.iter().any(|x| x == "/c/secret"), "{excl:?}");
    // keep_lists: the files stay, 0600 in a 0700 directory.
    for f in &argv {
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f:?}");
        assert!(Path::new(f).starts_with(&lists));
    }
    assert_eq!(
        fs::metadata(&lists).unwrap().permissions().mode() & 0o777,
        0o700
    );
    changes(&src);
    write(&src.join("d/more.tmp"), "excluded");
    d.assert_synced(&src, &dst, &excluded);
    let listed = items(&lists_rec);
    let rules = items(&excl_rec);
    for name in [PWNED, EVIL, "a", "b", "c", "d", "keep.txt"] {
        let (want, rule) = (format!("./{name}"), format!("+ /{name}"));
        assert!(
            listed.iter().any(|a| a == want.as_str()) || rules.iter().any(|r| r == rule.as_str()),
            "{want:?} is one whole list item (or {rule:?} one whole rule): {listed:?} {rules:?}"
        );
    }
    assert!(!dst.join("d/more.tmp").exists());
    assert_not_pwned(&env);
    assert!(d.stop().success());
}

/// The records of a shell-mode list file: (EVENT, TYPE, PATH).
fn records(list: &[OsString]) -> Vec<(String, String, OsString)> {
    list.chunks(3)
        .map(|c| {
            (
                c[0].to_string_lossy().into_owned(),
                c[1].to_string_lossy().into_owned(),
                c[2].clone(),
            )
        })
        .collect()
}

/// shell: `TYPE JOB LIST` with `EVENT\0TYPE\0PATH\0` records in the list.
#[test]
fn shell_mode_gets_event_records() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    initial_tree(&src);
    let (rec, lists_rec) = (env.p("argv.rec"), env.p("lists.rec"));
    let script = env.script(
        "shell.sh",
        &format!(
            r#"printf '%s\0' "$@" "$CLSYNC_TYPE" "$CLSYNC_JOB" "$CLSYNC_SOURCE" >> '{rec}'
cat "$3" >> '{lists_rec}'"#,
            rec = rec.display(),
            lists_rec = lists_rec.display()
        ),
    );
    command_job(
        &env,
        &src,
        &dst,
        "shell",
        "",
        &format!("path = {}", toml_path(&script)),
    );
    let mut d = env.start(&["j"]);
    let argv = items(&rec);
    assert_eq!(argv.len(), 6, "{argv:?}");
    assert_eq!(argv[0], "initialsync");
    assert_eq!(argv[1], "j");
    assert_eq!(
        (&argv[3], &argv[4]),
        (&OsString::from("initialsync"), &OsString::from("j"))
    );
    assert_eq!(argv[5], src.as_os_str());
    let list_file = PathBuf::from(&argv[2]);
    assert!(!list_file.exists(), "list files are removed after the run");
    let private = list_file.parent().unwrap().to_path_buf();
    assert!(private.is_dir());
    assert_eq!(
        fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        records(&items(&lists_rec)),
        [("initialsync".into(), "dir".into(), ".".into())]
    );
    changes(&src);
    let want: Vec<(&str, &str, &str)> = vec![
        ("sync", "file", "a"),
        ("delete", "missing", "b"),
        ("tree", "dir", "d"),
        ("delete", "missing", "c"),
        ("sync", "file", PWNED),
        ("sync", "file", EVIL_ARG),
        ("sync", "file", "keep.txt"),
    ];
    let has = |r: &[(String, String, OsString)], w: &(&str, &str, &str)| {
        r.iter().any(|(e, t, p)| e == w.0 && t == w.1 && p == w.2)
    };
    wait_until(&mut d, "the shell records", || {
        let r = records(&items(&lists_rec));
        want.iter().all(|w| has(&r, w))
    });
    let argv = items(&rec);
    assert!(
        argv.chunks(6)
            .skip(1)
            .all(|c| c[0] == "sync" && c[3] == "sync")
    );
    assert_not_pwned(&env);
    assert!(d.stop().success());
    assert!(
        !private.exists(),
        "the private lists dir is removed at exit"
    );
}

/// simple: one run per path, `EVENT /ABS/PATH`.
#[test]
fn simple_mode_runs_once_per_path() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    initial_tree(&src);
    let rec = env.p("argv.rec");
    let script = env.script(
        "simple.sh",
        &format!(
            r#"[ $# -eq 2 ] || exit 9
printf '%s\0' "$@" >> '{rec}'"#,
            rec = rec.display()
        ),
    );
    command_job(
        &env,
        &src,
        &dst,
        "simple",
        "",
        &format!("path = {}", toml_path(&script)),
    );
    let mut d = env.start(&["j"]);
    let pairs = |rec: &Path| -> Vec<(String, OsString)> {
        items(rec)
            .chunks(2)
            .map(|c| (c[0].to_string_lossy().into_owned(), c[1].clone()))
            .collect()
    };
    assert_eq!(
        pairs(&rec),
        [("initialsync".to_string(), src.clone().into_os_string())]
    );
    changes(&src);
    let want: Vec<(&str, PathBuf)> = vec![
        ("sync", src.join("a")),
        ("delete", src.join("b")),
        ("tree", src.join("d")),
        ("delete", src.join("c")),
        ("sync", src.join(PWNED)),
        ("sync", src.join(EVIL)),
        ("sync", src.join("keep.txt")),
    ];
    wait_until(&mut d, "the simple runs", || {
        let got = pairs(&rec);
        want.iter()
            .all(|(e, p)| got.iter().any(|(ge, gp)| ge == e && gp == p.as_os_str()))
    });
    assert_not_pwned(&env);
    assert!(d.stop().success());
}

/// A failing handler is retried (the command modes ignore no exit code by default).
#[test]
fn failing_command_is_retried() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "f");
    let (script, calls) = env.flaky_script(
        "flaky.sh",
        1,
        "exit 24",
        r#"rsync -a --delete -r --delete-missing-args --files-from="$1" --from0 --exclude-from="$2" ./ "$CLSYNC_DESTINATION"/"#,
    );
    command_job(
        &env,
        &src,
        &dst,
        "rsync-shell",
        "",
        &format!("path = {}", toml_path(&script)),
    );
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    assert!(count_lines(&calls) >= 2);
    assert!(d.log().contains("status 24"), "{}", d.log_tail());
    assert!(d.stop().success());
}

#[test]
fn check_reports_command_errors() {
    let env = Env::new();
    let src = env.dir("src");
    let head = format!(
        "source = {}\ndestination = {}\n",
        toml_path(&src),
        toml_path(&env.p("dst"))
    );
    let cases: &[(&str, &str, u32, u32, &str)] = &[
        (
            "typo",
            "mode = \"direct\"\n[command]\npath = \"h\"\nargs = [\"%INCLUDE-LIST%\", \"%destinaton%\"]\n",
            6,
            27,
            "unknown placeholder \"%destinaton%\"",
        ),
        (
            "rsync",
            "mode = \"rsync\"\n[command]\npath = \"h\"\n",
            4,
            2,
            "`[command]` is for the command modes",
        ),
        (
            "nopath",
            "mode = \"shell\"\n[command]\nkeep_lists = true\n",
            3,
            8,
            "needs `command.path`",
        ),
        (
            "event",
            "mode = \"direct\"\n[command]\npath = \"h\"\nargs = [\"%EVENT%\"]\n",
            6,
            9,
            "only valid in mode \"simple\"",
        ),
    ];
    for (name, text, ..) in cases {
        env.write_job(name, &format!("{head}{text}"));
    }
    env.write_job(
        "good",
        &format!(
            "{head}mode = \"rsync-shell\"\n[command]\npath = \"h\"\nargs = [\"x%job%y\", \"%RSYNC-ARGS%\", \"100%\"]\n"
        ),
    );
    let out = run_check(
        &env.root,
        &[OsStr::new("--config-dir"), env.conf.as_os_str()],
    );
    assert_eq!(out.code, Some(1), "{}", out.describe());
    for (name, _, line, column, msg) in cases {
        let errs = out.errors_in(&format!("{name}.toml"));
        assert!(
            errs.iter()
                .any(|e| e.line == *line && e.column == *column && e.message.contains(msg)),
            "{name}: want {line}:{column}: {msg}\n{}",
            out.describe()
        );
    }
    assert!(out.errors_in("good.toml").is_empty(), "{}", out.describe());
    // Run alone, the good file passes.
    let good = env.conf.join("jobs.d/good.toml");
    let out = run_check(
        &env.root,
        &[
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
            good.as_os_str(),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
}
