//! Unit tests of the command modes: placeholders, argument vectors, list files and runs of
//! real programs on temporary trees.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lists::lists_dir_problem;
use super::*;
use crate::config::RunAs;
use crate::handler::receiver::MissingArgs;
use crate::handler::rsync::files_from_list;

fn values<'a>(list: &'a [OsString], rsync: &'a [OsString]) -> Values<'a> {
    Values {
        include_list: list,
        include_list_path: Some(Path::new("/l/list")),
        exclude_list_path: Some(Path::new("/l/excl")),
        rsync_args: rsync,
        type_: "sync",
        event: "delete",
        path: Path::new("/src/a"),
        source: Path::new("/src"),
        destination: OsStr::new("host:/dst"),
        job: "www",
    }
}

fn strs(v: &[OsString]) -> Vec<String> {
    v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
}

#[test]
fn placeholders_are_whole_arguments_only() {
    let list = [OsString::from("a b"), OsString::from("--rsh=evil")];
    let rsync = [OsString::from("-a"), OsString::from("--delete")];
    let t: Vec<String> = [
        "%INCLUDE-LIST%",
        "%destination%",
        "x%job%y",
        "%job%",
        "--job=%job%",
        "%TYPE%",
        "%INCLUDE-LIST-PATH%",
        "%EXCLUDE-LIST-PATH%",
        "%RSYNC-ARGS%",
        "%source%",
        "%EVENT%",
        "%PATH%",
        "%",
        "%%",
        "100%",
        "%d%m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = expand(&t, &values(&list, &rsync));
    assert_eq!(
        strs(&got),
        [
            "a b",
            "--rsh=evil",
            "host:/dst",
            "x%job%y",
            "www",
            "--job=%job%",
            "sync",
            "/l/list",
            "/l/excl",
            "-a",
            "--delete",
            "/src",
            "delete",
            "/src/a",
            "%",
            "%%",
            "100%",
            "%d%m",
        ]
    );
    // An empty list expands to no argument at all, not to an empty one.
    let got = expand(&["%INCLUDE-LIST%".into(), "x".into()], &values(&[], &[]));
    assert_eq!(strs(&got), ["x"]);
}

#[test]
fn placeholder_parsing() {
    assert_eq!(
        Placeholder::parse("%INCLUDE-LIST%"),
        Some(Ok(Placeholder::IncludeList))
    );
    assert_eq!(Placeholder::parse("%job%"), Some(Ok(Placeholder::Job)));
    assert_eq!(Placeholder::parse("%INCLUDE_LIST%"), Some(Err(())));
    assert_eq!(Placeholder::parse("%Job%"), Some(Err(())));
    assert_eq!(Placeholder::parse("%label%"), Some(Err(())));
    assert_eq!(Placeholder::parse("%%"), None);
    assert_eq!(Placeholder::parse("%1x%"), None);
    assert_eq!(Placeholder::parse("%a b%"), None);
    assert_eq!(Placeholder::parse("x%job%"), None);
    assert!(Placeholder::Event.simple_only() && !Placeholder::Job.simple_only());
    // Every mode's default template uses known placeholders only.
    for k in CommandKind::ALL {
        for a in k.default_args() {
            let p = Placeholder::parse(a).unwrap().unwrap();
            assert!(!p.simple_only() || k == CommandKind::Simple);
        }
    }
}

#[test]
fn argv_splitting() {
    assert!(split_runs([], 10, 1000).is_empty());
    assert_eq!(split_runs([1, 1, 1], 10, 1000), vec![0..3]);
    assert_eq!(split_runs([1; 5], 2, 1000), vec![0..2, 2..4, 4..5]);
    // Each path costs len + NUL + pointer.
    let cost = 1 + 1 + std::mem::size_of::<usize>();
    assert_eq!(split_runs([1; 4], 100, 2 * cost), vec![0..2, 2..4]);
    // A path longer than the limit still gets a run of its own.
    assert_eq!(split_runs([5, 5000, 5], 100, 100), vec![0..1, 1..2, 2..3]);
    // The real limits: 250,000 short paths take three runs.
    let runs = split_runs(std::iter::repeat_n(3, 250_000), MAX_ARGS, MAX_ARG_BYTES);
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.len() <= MAX_ARGS));
    assert_eq!(runs.last().unwrap().end, 250_000);
}

fn odd_names() -> Vec<PathBuf> {
    vec![
        PathBuf::from(OsStr::from_bytes(b"new\nline")),
        PathBuf::from(OsStr::from_bytes(b"dir/\xff\xfe latin")),
        PathBuf::from("$(touch pwned)"),
        PathBuf::from("--rsh=evil"),
        PathBuf::from(OsStr::from_bytes(b"tab\tand\\back")),
    ]
}

#[test]
fn rsync_list_round_trips_odd_names() {
    let mut entries: Vec<Entry> = odd_names()
        .into_iter()
        .map(|rel| Entry {
            rel,
            ..Entry::default()
        })
        .collect();
    entries.push(Entry::default());
    let batch = Batch {
        renames: vec![],
        entries: entries.clone(),
        deletes: true,
    };
    let list = files_from_list(&batch);
    let back = read_nul_list(&list);
    let want: Vec<PathBuf> = entries
        .iter()
        .map(|e| {
            if e.rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                Path::new("./").join(&e.rel)
            }
        })
        .collect();
    assert_eq!(back, want);
}

#[test]
fn shell_records_round_trip_odd_names() {
    let t = tempfile::tempdir().unwrap();
    let names = odd_names();
    fs::create_dir(t.path().join("dir")).unwrap();
    fs::write(t.path().join(&names[0]), "x").unwrap();
    fs::write(t.path().join(&names[1]), "x").unwrap();
    std::os::unix::fs::symlink("nowhere", t.path().join(&names[2])).unwrap();
    // names[3] and [4] are missing: deleted.
    let mut entries: Vec<Entry> = names
        .iter()
        .map(|rel| Entry {
            rel: rel.clone(),
            ..Entry::default()
        })
        .collect();
    entries[1].attrs_only = true;
    entries.push(Entry {
        rel: PathBuf::from("dir"),
        recursive: true,
        attrs_only: false,
    });
    entries.push(Entry::default());
    let data = shell_records(t.path(), &entries, false);
    assert_eq!(data.last(), Some(&0), "every field is NUL-terminated");
    let fields: Vec<&[u8]> = data[..data.len() - 1].split(|&b| b == 0).collect();
    let records: Vec<(String, String, PathBuf)> = fields
        .chunks(3)
        .map(|c| {
            (
                String::from_utf8(c[0].to_vec()).unwrap(),
                String::from_utf8(c[1].to_vec()).unwrap(),
                PathBuf::from(OsStr::from_bytes(c[2])),
            )
        })
        .collect();
    let want = [
        ("sync", "file", names[0].clone()),
        ("attrib", "file", names[1].clone()),
        ("sync", "symlink", names[2].clone()),
        // An option-like name comes as `./NAME`.
        ("delete", "missing", PathBuf::from("./--rsh=evil")),
        ("delete", "missing", names[4].clone()),
        ("tree", "dir", PathBuf::from("dir")),
        ("sync", "dir", PathBuf::from(".")),
    ];
    let want: Vec<(String, String, PathBuf)> = want
        .into_iter()
        .map(|(e, k, p)| (e.to_string(), k.to_string(), p))
        .collect();
    assert_eq!(records, want);
    // A full batch is one record.
    let full = shell_records(t.path(), &Batch::full().entries, true);
    assert_eq!(full, b"initialsync\0dir\0.\0");
}

/// A stand-in for `[rsync] path`: a fake rsync whose receiver accepts missing
/// entries, or (`rejects`) one that answers them as Debian's 3.2.7-1+deb12u5 does.
fn fake_rsync(t: &Path, rejects: bool) -> PathBuf {
    let prog = t.join(if rejects { "rsync-rejects" } else { "rsync-ok" });
    let reject = if rejects {
        "case \"$*\" in *--delete-missing-args*) echo 'invalid file mode 00 for missing [Receiver]' >&2; echo 'rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.2.7]' >&2; exit 2;; esac"
    } else {
        ""
    };
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'rsync  version 3.2.7  protocol version 32'; exit 0; }}\n{reject}\nexit 0\n"
    );
    fs::write(&prog, script).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    prog
}

fn handler(t: &Path, kind: CommandKind, script: &str, args: &[&str]) -> CommandHandler {
    handler_with(t, kind, script, args, false)
}

fn handler_with(
    t: &Path,
    kind: CommandKind,
    script: &str,
    args: &[&str],
    rejects: bool,
) -> CommandHandler {
    handler_as(t, kind, script, args, rejects, None)
}

fn handler_as(
    t: &Path,
    kind: CommandKind,
    script: &str,
    args: &[&str],
    rejects: bool,
    run_as: Option<RunAs>,
) -> CommandHandler {
    let prog = t.join("handler.sh");
    fs::write(&prog, format!("#!/bin/sh\n{script}\n")).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(t.join("src")).unwrap();
    let rsync = HandlerOptions {
        path: fake_rsync(t, rejects),
        run_as,
        ..HandlerOptions::default()
    };
    CommandHandler::new(
        "j".into(),
        t.join("src"),
        Destination::Local(t.join("dst")),
        CommandOptions {
            kind,
            path: prog,
            args: args.iter().map(|s| s.to_string()).collect(),
            lists_dir: Some(t.join("lists")),
            keep_lists: false,
        },
        rsync,
        Arc::new(Filter::new(&["*.tmp".to_string()], vec![]).unwrap()),
    )
}

/// With a receiver that rejects missing entries, `%RSYNC-ARGS%` runs the program twice
/// for a batch with a deletion: the deletion pass (the parents' contents), then the
/// paths that exist (without `--delete-missing-args`).
#[test]
fn rsync_args_split_deletions_for_a_rejecting_receiver() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let h = handler_with(
        t.path(),
        CommandKind::RsyncShell,
        &format!(
            "{{ printf '%s\\0' \"$@\"; echo; cat \"$CLSYNC_LIST\"; echo; }} >> '{}'",
            out.display()
        ),
        &["%RSYNC-ARGS%"],
        true,
    );
    assert_eq!(h.rsync.missing_args(), MissingArgs::Rejected);
    let report = h.rsync_report().unwrap();
    assert_eq!(report.version.as_deref(), Some("3.2.7"));
    assert_eq!(report.deletions, "separate-pass");
    fs::create_dir_all(t.path().join("src/d")).unwrap();
    fs::write(t.path().join("src/d/new"), "x").unwrap();
    let e = |p: &str| Entry {
        rel: PathBuf::from(p),
        ..Entry::default()
    };
    let batch = Batch {
        renames: vec![],
        entries: vec![e("d/gone"), e("d/new")],
        deletes: true,
    };
    h.run(&batch).unwrap();
    let got = String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned();
    let runs: Vec<&str> = got.split("\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        runs.len(),
        4,
        "two runs, each its args and its list: {got:?}"
    );
    assert!(runs[0].contains("\0-d\0--no-r\0"), "{}", runs[0]);
    assert!(!runs[0].contains("--delete-missing-args"), "{}", runs[0]);
    assert_eq!(runs[1], "./d/.\0");
    assert!(!runs[2].contains("--delete-missing-args"), "{}", runs[2]);
    assert!(
        runs[2].contains("\0-r\0--ignore-missing-args\0"),
        "{}",
        runs[2]
    );
    assert_eq!(runs[3], "./d/new\0");
}

/// A batch that may not remove anything (`delete`): `%RSYNC-ARGS%` has neither
/// `--delete` nor `--delete-missing-args`, and a path gone from the source is not in the
/// list, for any receiver; a full sync has no `--delete` either.
#[test]
fn rsync_args_without_deletions() {
    for rejects in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let h = handler_with(
            t.path(),
            CommandKind::RsyncShell,
            &format!(
                "{{ printf '%s\\0' \"$@\"; echo; cat \"$CLSYNC_LIST\" 2>/dev/null; echo; }} >> '{}'",
                out.display()
            ),
            &["%RSYNC-ARGS%"],
            rejects,
        );
        fs::create_dir_all(t.path().join("src/d")).unwrap();
        fs::write(t.path().join("src/d/new"), "x").unwrap();
        let e = |p: &str| Entry {
            rel: PathBuf::from(p),
            ..Entry::default()
        };
        let batch = Batch {
            renames: vec![],
            entries: vec![e("d/gone"), e("d/new")],
            deletes: false,
        };
        h.run(&batch).unwrap();
        h.run(&Batch {
            deletes: false,
            ..Batch::full()
        })
        .unwrap();
        let got = String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned();
        let runs: Vec<&str> = got.split("\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            runs.len(),
            4,
            "a live run and a full run, each with its list: {got:?}"
        );
        for args in [runs[0], runs[2]] {
            assert!(
                args.starts_with("-a\0") && !args.contains("--delete"),
                "{args:?}"
            );
        }
        assert!(
            runs[0].contains("\0-r\0--ignore-missing-args\0"),
            "{}",
            runs[0]
        );
        assert_eq!(runs[1], "./d/new\0");
    }
}

/// A receiver not known to reject learns it from the program's own failure, and the
/// same batch is sent again as two runs at once.
#[test]
fn rsync_args_learn_a_rejection_from_the_first_failure() {
    let t = tempfile::tempdir().unwrap();
    let calls = t.path().join("calls");
    let h = handler_with(
        t.path(),
        CommandKind::RsyncShell,
        &format!(
            "echo x >> '{}'\ncase \"$*\" in *--delete-missing-args*) echo 'invalid file mode 00 for d/gone [Receiver]' >&2; echo 'rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.4.3]' >&2; exit 2;; esac",
            calls.display()
        ),
        &["%RSYNC-ARGS%"],
        false,
    );
    assert_eq!(h.rsync.missing_args(), MissingArgs::Accepted);
    let batch = Batch {
        renames: vec![],
        entries: vec![Entry {
            rel: PathBuf::from("gone"),
            ..Entry::default()
        }],
        deletes: true,
    };
    h.run(&batch).unwrap();
    assert_eq!(fs::read_to_string(&calls).unwrap().lines().count(), 2);
    assert_eq!(h.rsync.missing_args(), MissingArgs::Rejected);
    let r = h.rsync_report().unwrap();
    assert_eq!(r.receiver_version.as_deref(), Some("3.4.3"));
}

#[test]
fn runs_with_argv_env_and_list_files() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let h = handler(
        t.path(),
        CommandKind::RsyncShell,
        &format!(
            "{{ printf '%s\\0' \"$@\" \"$PWD\" \"$CLSYNC_JOB\" \"$CLSYNC_TYPE\" \"$CLSYNC_LIST\"; cat \"$CLSYNC_LIST\"; stat -c %a \"$1\" \"$(dirname \"$1\")\"; }} > '{}'",
            out.display()
        ),
        &["%INCLUDE-LIST-PATH%", "%RSYNC-ARGS%"],
    );
    let batch = Batch {
        renames: vec![],
        entries: vec![Entry {
            rel: PathBuf::from("--rsh=evil"),
            ..Entry::default()
        }],
        deletes: true,
    };
    h.run(&batch).unwrap();
    let got = fs::read(&out).unwrap();
    let s = String::from_utf8_lossy(&got);
    let parts: Vec<&str> = s.split('\0').collect();
    let list = parts[0];
    assert!(list.starts_with(&format!(
        "{}/.clsync-list.",
        t.path().join("lists").display()
    )));
    assert_eq!(
        &parts[1..8],
        [
            "-a",
            "--delete",
            "--exclude=*.tmp",
            "-r",
            "--delete-missing-args",
            &format!("--files-from={list}"),
            "--from0"
        ]
    );
    assert_eq!(parts[8], "--ignore-times");
    let src = t.path().join("src");
    assert_eq!(parts[9], src.to_str().unwrap());
    assert_eq!(&parts[10..13], ["j", "sync", list]);
    assert_eq!(parts[13], "./--rsh=evil");
    assert_eq!(parts[14], "600\n700\n", "list file 0600, lists dir 0700");
    // Removed after the run.
    assert!(!Path::new(list).exists());
    assert!(t.path().join("dst").is_dir());
}

#[test]
fn failures_and_private_lists_dir() {
    let t = tempfile::tempdir().unwrap();
    let mut h = handler(
        t.path(),
        CommandKind::Shell,
        "echo oops >&2; exit 3",
        &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
    );
    h.options.lists_dir = None;
    let err = h.run(&Batch::full()).unwrap_err();
    assert!(
        matches!(&err, HandlerError::Exit { code: 3, stderr, .. } if stderr.contains("oops")),
        "{err}"
    );
    let private = h.lists_dir().unwrap().path.clone();
    assert!(private.is_dir());
    let mode = fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(fs::read_dir(&private).unwrap().count(), 0);
    h.ignore_exit_codes = vec![3];
    let ok = h.run(&Batch::full()).unwrap();
    assert_eq!(ok.warnings.len(), 1);
    drop(h);
    assert!(
        !private.exists(),
        "the private lists dir is removed with the handler"
    );
}

#[test]
fn option_like_names_are_given_as_dot_slash() {
    let arg = |p: &str| rel_arg(Path::new(p)).into_string().unwrap();
    assert_eq!(arg(""), ".");
    assert_eq!(arg("-"), "./-");
    assert_eq!(arg("--target-directory=zz"), "./--target-directory=zz");
    assert_eq!(arg("-e sh"), "./-e sh");
    assert_eq!(arg("a-b"), "a-b");
    // Below the root a name cannot be taken for an option: left as it is.
    assert_eq!(arg("dir/-x"), "dir/-x");
    assert_eq!(arg(".-x"), ".-x");
}

/// `%INCLUDE-LIST%` (direct) and the shell records give a top-level name that starts
/// with `-` as `./NAME`, the root as `.`; rsync lists have `./` on every path anyway.
#[test]
fn include_list_and_records_never_start_with_a_dash() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let e = |p: &str| Entry {
        rel: PathBuf::from(p),
        ..Entry::default()
    };
    let batch = Batch {
        renames: vec![],
        entries: vec![e("--target-directory=zz"), e("-"), e("d/-x"), e("zz")],
        deletes: true,
    };
    let record = format!("printf '%s\\0' \"$@\" > '{}'", out.display());
    let h = handler(
        t.path(),
        CommandKind::Direct,
        &record,
        &["-a", "%INCLUDE-LIST%", "%destination%"],
    );
    h.run(&batch).unwrap();
    let dst = t.path().join("dst");
    let want = [
        "-a",
        "./--target-directory=zz",
        "./-",
        "d/-x",
        "zz",
        dst.to_str().unwrap(),
    ];
    assert_eq!(
        read_nul_list(&fs::read(&out).unwrap()),
        want.map(PathBuf::from)
    );
    let h = handler(
        t.path(),
        CommandKind::Shell,
        &format!("cat \"$3\" > '{}'", out.display()),
        &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
    );
    h.run(&batch).unwrap();
    let paths: Vec<PathBuf> = read_nul_list(&fs::read(&out).unwrap())
        .into_iter()
        .skip(2)
        .step_by(3)
        .collect();
    assert_eq!(
        paths,
        ["./--target-directory=zz", "./-", "d/-x", "zz"].map(PathBuf::from)
    );
    // simple: one run per path; `%INCLUDE-LIST%` is the one path.
    let h = handler(
        t.path(),
        CommandKind::Simple,
        &format!("printf '%s\\0' \"$@\" >> '{}'", out.display()),
        &["%EVENT%", "%INCLUDE-LIST%", "%PATH%"],
    );
    fs::remove_file(&out).unwrap();
    h.run(&batch).unwrap();
    let got = read_nul_list(&fs::read(&out).unwrap());
    assert_eq!(got[1], Path::new("./--target-directory=zz"));
    assert_eq!(got[2], t.path().join("src/--target-directory=zz"));
    assert_eq!(got[4], Path::new("./-"));
}

fn run_as(uid: u32) -> RunAs {
    RunAs {
        user: "u".into(),
        uid,
        gid: uid,
    }
}

#[test]
fn lists_dir_ownership_and_mode_rules() {
    let ok = |uid, gid, mode, who: Option<&RunAs>| lists_dir_problem(uid, gid, mode, 0, who);
    assert_eq!(ok(0, 0, 0o40700, None), None);
    assert_eq!(ok(0, 0, 0o755, None), None);
    let other = ok(65534, 65534, 0o700, None).unwrap();
    assert!(
        other.contains("owned by") && other.contains("65534"),
        "{other}"
    );
    for mode in [0o777, 0o1777, 0o720, 0o702, 0o770] {
        let why = ok(0, 0, mode, None).unwrap();
        assert!(
            why.contains("writable by group or others"),
            "{mode:o}: {why}"
        );
    }
    // The job's user may own it; the daemon's own directory must let the user in.
    let nobody = run_as(65534);
    assert_eq!(ok(65534, 65534, 0o700, Some(&nobody)), None);
    assert_eq!(ok(0, 0, 0o711, Some(&nobody)), None);
    assert_eq!(ok(0, 65534, 0o750, Some(&nobody)), None);
    let shut = ok(0, 0, 0o700, Some(&nobody)).unwrap();
    assert!(shut.contains("cannot reach"), "{shut}");
    let stranger = ok(1000, 1000, 0o700, Some(&nobody)).unwrap();
    assert!(stranger.contains("the job's user"), "{stranger}");
    assert!(ok(65534, 65534, 0o770, Some(&nobody)).is_some());
}

/// `[command] lists_dir` is checked on every run: a symlink, a file, a directory
/// writable by others (or, as root, owned by someone else) is refused before anything
/// is written or run, and a fixed one is used again.
#[test]
fn unsafe_lists_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let ran = t.path().join("ran");
    let h = handler(
        t.path(),
        CommandKind::Shell,
        &format!("echo x >> '{}'", ran.display()),
        &["%TYPE%", "%job%", "%INCLUDE-LIST-PATH%"],
    );
    let lists = t.path().join("lists");
    let real = t.path().join("real");
    fs::create_dir(&real).unwrap();
    let refused = |h: &CommandHandler, what: &str| {
        let err = h.run(&Batch::full()).unwrap_err().to_string();
        assert!(
            err.contains("lists_dir") && err.contains(what) && err.contains("refusing"),
            "{err}"
        );
        assert!(!ran.exists(), "the program ran");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    };
    std::os::unix::fs::symlink(&real, &lists).unwrap();
    refused(&h, "is a symlink");
    fs::remove_file(&lists).unwrap();
    fs::write(&lists, "").unwrap();
    refused(&h, "not a directory");
    fs::remove_file(&lists).unwrap();
    fs::rename(&real, &lists).unwrap();
    fs::set_permissions(&lists, fs::Permissions::from_mode(0o777)).unwrap();
    let real = lists.clone();
    let err = h.run(&Batch::full()).unwrap_err().to_string();
    assert!(
        err.contains("0777") && err.contains("group or others"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    if nix::unistd::geteuid().is_root() {
        fs::set_permissions(&lists, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&lists, Some(65534), Some(65534)).unwrap();
        let err = h.run(&Batch::full()).unwrap_err().to_string();
        assert!(err.contains("owned by") && err.contains("65534"), "{err}");
        std::os::unix::fs::chown(&lists, Some(0), Some(0)).unwrap();
    }
    fs::set_permissions(&lists, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!ran.exists());
    h.run(&Batch::full()).unwrap();
    assert!(ran.exists(), "a fixed lists_dir is used");
}

/// With the job's `user`, the lists directory it creates (configured or private) and
/// the list files belong to that user, still 0700 / 0600.
#[test]
fn lists_belong_to_the_jobs_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to change owners");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // The program runs as nobody: it must reach its script and a place to write.
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let outdir = t.path().join("out.d");
    fs::create_dir(&outdir).unwrap();
    fs::set_permissions(&outdir, fs::Permissions::from_mode(0o777)).unwrap();
    let out = outdir.join("out");
    let mut h = handler_as(
        t.path(),
        CommandKind::RsyncShell,
        &format!(
            "cat \"$1\" \"$2\" > /dev/null || exit 7\nstat -c '%u %a' \"$1\" \"$2\" \"$(dirname \"$1\")\" > '{}'",
            out.display()
        ),
        &["%INCLUDE-LIST-PATH%", "%EXCLUDE-LIST-PATH%"],
        false,
        Some(run_as(65534)),
    );
    h.options.lists_dir = Some(t.path().join("deep/er/lists"));
    h.options.keep_lists = true;
    h.run(&Batch::full()).unwrap();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "65534 600\n65534 600\n65534 700\n"
    );
    let kept = fs::read_dir(t.path().join("deep/er/lists"))
        .unwrap()
        .count();
    assert_eq!(kept, 2, "keep_lists keeps the list and the exclude list");
    let parent = fs::metadata(t.path().join("deep/er")).unwrap();
    assert_eq!(parent.permissions().mode() & 0o777, 0o755);
    assert_eq!(parent.uid(), 0);
    // An existing directory keeps its owner.
    let mine = t.path().join("mine");
    fs::DirBuilder::new().mode(0o711).create(&mine).unwrap();
    h.options.lists_dir = Some(mine.clone());
    h.run(&Batch::full()).unwrap();
    assert_eq!(fs::metadata(&mine).unwrap().uid(), 0);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "65534 600\n65534 600\n0 711\n"
    );
    // The private directory.
    h.options.lists_dir = None;
    h.run(&Batch::full()).unwrap();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "65534 600\n65534 600\n65534 700\n"
    );
}
