//! Attacks on the command modes (`direct`, `shell`, `simple`, `rsync-shell`) by a user who
//! can write the source (`nobody`), against a daemon running as root.
//!
//! - Option-like names: a top-level file named like an option of the program a handler
//!   runs (`cp --parents`, `tar`, `rsync`) must reach it as a name (`./NAME`), never as an
//!   option. Each case has a root-only `0700` directory (`vault`) beside the source and the
//!   destination that a name-turned-option would write into; it must stay empty, nothing
//!   else outside the destination may change, and no setuid file may appear at the
//!   destination. The job syncs the names (and what the attacker writes after them) as
//!   plain files.
//! - `[command] lists_dir` owned by another user, writable by others, or a symlink: the
//!   job refuses it (status and log say so) and writes nothing there; once an admin fixes
//!   the directory, the job syncs.
//! - `user = "nobody"`: the program, run as nobody, can read its list files (private
//!   directory, or a `lists_dir` clsync creates), which belong to nobody.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;
use crate::serial;
use crate::util::*;

/// The world of one case: `src` (owned by nobody), `dst`, and `vault` (root, 0700, empty).
struct Scene {
    env: Env,
    src: PathBuf,
    dst: PathBuf,
    vault: PathBuf,
}

/// `None` (skipped) when not root.
fn scene(case: &str) -> Option<Scene> {
    if !is_root() {
        eprintln!("FAULT {case}: skipped (needs root to act as nobody)");
        return None;
    }
    let env = Env::new();
    // The temp root is 0700: let nobody through to the source.
    chmod(&env.root, 0o755);
    let src = env.dir("src");
    write(&src.join("a.txt"), "alpha");
    write(&src.join("sub/b.txt"), "beta");
    chown_r(&src, NOBODY);
    let dst = env.p("dst");
    let vault = env.dir("vault");
    chmod(&vault, 0o700);
    Some(Scene {
        env,
        src,
        dst,
        vault,
    })
}

/// A command-mode job `name` from `scene.src` to `scene.dst` (or the given ones).
fn command_job(env: &Env, name: &str, src: &Path, dst: &Path, mode: &str, command: &str) {
    command_job_with(env, name, src, dst, mode, "", command)
}

fn command_job_with(
    env: &Env,
    name: &str,
    src: &Path,
    dst: &Path,
    mode: &str,
    extra: &str,
    command: &str,
) {
    env.write_job(
        name,
        &format!(
            "source = {}\ndestination = {}\nmode = {}\ndelay = \"200ms\"\nretry_delay = \"200ms\"\nretry_max_delay = \"1s\"\n{extra}\n[command]\n{command}\n",
            toml_path(src),
            toml_path(dst),
            toml_str(mode)
        ),
    );
}

/// `tree_diff`, without the line of the root directory itself: `cp` and `tar` handlers do
/// not update the destination root's mtime when a name is added to it.
fn diff_but_root(src: &Path, dst: &Path) -> String {
    tree_diff(src, dst, &[])
        .lines()
        .filter(|l| !l.ends_with(" ./"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What the handler changed outside `src` and `dst` (the config dir and the log aside).
fn damage(s: &Scene, before: &std::collections::BTreeMap<PathBuf, Node>) -> Vec<String> {
    let skip = [
        s.src.clone(),
        s.dst.clone(),
        s.env.conf.clone(),
        s.env.p("daemon.log"),
    ];
    let skip: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
    let mut out = snapshot_diff(before, &snapshot(&s.env.root, &skip));
    let in_vault: Vec<_> = fs::read_dir(&s.vault)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if !in_vault.is_empty() {
        out.push(format!(
            "the root-only directory {} got {in_vault:?}",
            s.vault.display()
        ));
    }
    for p in setid_files(&s.dst) {
        out.push(format!("set-id file at the destination: {}", p.display()));
    }
    out
}

/// Files under `root` with the setuid or setgid bit (symlinks not followed).
fn setid_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && m.permissions().mode() & 0o6000 != 0 {
                found.push(e.path());
            }
        }
    }
    found
}

/// Starts the daemon on the scene's job, waits for the initial sync, lets nobody run the
/// attack steps (each waits until it is synced, when `wait` says so), and checks that
/// nothing outside the destination changed while the job converges, and after.
fn attack(case: &str, s: &Scene, steps: &[(&str, bool)]) {
    fs::write(s.env.p("daemon.log"), "").unwrap();
    fs::create_dir_all(&s.dst).unwrap();
    let skip = [
        s.src.clone(),
        s.dst.clone(),
        s.env.conf.clone(),
        s.env.p("daemon.log"),
    ];
    let skip: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
    let before = snapshot(&s.env.root, &skip);
    let mut d = s.env.start(&["j"]);
    // Polls until the destination equals the source, failing at once on any damage.
    let converged = |d: &mut Daemon, what: &str| {
        let deadline = Instant::now() + SYNC_DEADLINE;
        loop {
            let harm = damage(s, &before);
            assert!(
                harm.is_empty(),
                "[{case}] an option-like name was obeyed by the handler:\n{}\n{}",
                harm.join("\n"),
                d.log_tail()
            );
            let diff = diff_but_root(&s.src, &s.dst);
            if diff.is_empty() {
                return;
            }
            d.assert_running();
            assert!(
                Instant::now() < deadline,
                "[{case}] {what}: not synced within {SYNC_DEADLINE:?}:\n{diff}\n{}",
                d.log_tail()
            );
            std::thread::sleep(POLL);
        }
    };
    converged(&mut d, "the initial sync");
    let start = Instant::now();
    for (step, wait) in steps {
        as_nobody(&s.src, step);
        if *wait {
            converged(&mut d, step);
        }
    }
    // The attacker stops: a plain change still arrives, and the names are plain files.
    as_nobody(&s.src, "echo after > after.txt");
    converged(&mut d, "the names and a later change");
    let took = start.elapsed();
    // Whatever was still queued has run by now (events arrive in order).
    as_nobody(&s.src, "echo barrier > barrier.txt");
    converged(&mut d, "the barrier");
    let harm = damage(s, &before);
    assert!(
        harm.is_empty(),
        "[{case}] {}\n{}",
        harm.join("\n"),
        d.log_tail()
    );
    assert!(
        find_named(&s.env.root, OsStr::new("pwned")).is_empty(),
        "[{case}] a name ran a command"
    );
    eprintln!(
        "FAULT option-like-names [{case}]: ok, nothing outside the destination changed, consistent {:.2}s after the attack",
        took.as_secs_f64()
    );
    assert!(d.stop().success());
}

/// The finding itself: an admin's `cp --parents` template, a symlink `zz` to a root-only
/// directory and a file `--target-directory=zz` (`cp` would copy the destination into
/// the root-only directory).
#[test]
fn option_like_names_cp_parents_template() {
    let _s = serial();
    let Some(s) = scene("cp-template") else {
        return;
    };
    command_job(
        &s.env,
        "j",
        &s.src,
        &s.dst,
        "direct",
        &format!(
            "path = \"cp\"\nargs = {}",
            toml_list(&["-a", "--parents", "%INCLUDE-LIST%", "%destination%"])
        ),
    );
    let link = format!("ln -s '{}' zz", s.vault.display());
    attack(
        "cp-template",
        &s,
        &[(&link, true), ("echo x > --target-directory=zz", false)],
    );
}

/// direct with its default template (`%INCLUDE-LIST% %destination%`) and a handler that
/// copies the paths with `tar`: a file named `--use-compress-program=sh x.sh` would make
/// root's tar run `x.sh`.
#[test]
fn option_like_names_direct() {
    let _s = serial();
    let Some(s) = scene("direct") else {
        return;
    };
    let script = s.env.script(
        "direct-tar.sh",
        r#"n=$#
i=0
for a; do i=$((i+1)); if [ $i -lt $n ]; then set -- "$@" "$a"; fi; done
shift $n
tar -cf - "$@" | tar -xpf - -C "$CLSYNC_DESTINATION""#,
    );
    command_job(
        &s.env,
        "j",
        &s.src,
        &s.dst,
        "direct",
        &format!("path = {}", toml_path(&script)),
    );
    let payload = format!(
        "printf 'touch {}/pwned\\nexec cat\\n' > x.sh",
        s.vault.display()
    );
    // The option and a plain file in one batch (tar refuses an archive of nothing).
    attack(
        "direct",
        &s,
        &[
            (&payload, true),
            (
                "echo x > '--use-compress-program=sh x.sh'; echo y > y.txt",
                false,
            ),
        ],
    );
}

/// shell with its default template: a handler that reads the records and copies each
/// path with `cp --parents PATH DEST`.
#[test]
fn option_like_names_shell() {
    let _s = serial();
    let Some(s) = scene("shell") else {
        return;
    };
    let script = s.env.script(
        "shell-cp.sh",
        r#"[ -r "$3" ] || exit 9
xargs -0 -n 3 sh -c 'case "$1" in delete) rm -rf -- "$CLSYNC_DESTINATION/$3";; *) cp -a --parents "$3" "$CLSYNC_DESTINATION";; esac' sh < "$3""#,
    );
    command_job(
        &s.env,
        "j",
        &s.src,
        &s.dst,
        "shell",
        &format!("path = {}", toml_path(&script)),
    );
    let link = format!("ln -s '{}' zz", s.vault.display());
    attack(
        "shell",
        &s,
        &[(&link, true), ("echo x > --target-directory=zz", false)],
    );
}

/// simple, one run per path, with the path relative (`%INCLUDE-LIST%` holds the run's one
/// path; the default `%PATH%` is absolute) and `cp --parents PATH DEST`.
#[test]
fn option_like_names_simple() {
    let _s = serial();
    let Some(s) = scene("simple") else {
        return;
    };
    let script = s.env.script(
        "simple-cp.sh",
        r#"case "$1" in delete) rm -rf -- "$CLSYNC_DESTINATION/$2";; *) exec cp -a --parents "$2" "$CLSYNC_DESTINATION";; esac"#,
    );
    command_job(
        &s.env,
        "j",
        &s.src,
        &s.dst,
        "simple",
        &format!(
            "path = {}\nargs = {}",
            toml_path(&script),
            toml_list(&["%EVENT%", "%INCLUDE-LIST%"])
        ),
    );
    let link = format!("ln -s '{}' zz", s.vault.display());
    attack(
        "simple",
        &s,
        &[(&link, true), ("echo x > --target-directory=zz", false)],
    );
}

/// rsync-shell with rsync itself as the program and the paths as arguments (`rsync -aR
/// %INCLUDE-LIST% %destination%`): files named `--chown=0:0` and `--chmod=4755` beside a
/// changed program of nobody's would make root's rsync install it setuid root at the
/// destination.
#[test]
fn option_like_names_rsync_shell() {
    let _s = serial();
    let Some(s) = scene("rsync-shell") else {
        return;
    };
    command_job(
        &s.env,
        "j",
        &s.src,
        &s.dst,
        "rsync-shell",
        &format!(
            "path = \"rsync\"\nargs = {}",
            toml_list(&["-aR", "%INCLUDE-LIST%", "%destination%"])
        ),
    );
    attack(
        "rsync-shell",
        &s,
        &[
            ("printf '#!/bin/sh\\nid\\n' > evil && chmod 755 evil", true),
            // The options and the changed program in one batch.
            (
                "echo x > --chown=0:0; echo x > --chmod=4755; echo '# again' >> evil",
                false,
            ),
        ],
    );
}

/// The job's `last_error` message in the daemon's status ("" when none, or while the
/// control socket is not up yet).
fn last_error(env: &Env, job: &str) -> String {
    let out = clsync_status(&socket(env), None);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
        return String::new();
    };
    job_status(&v, job)["last_error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `[command] lists_dir` that someone else owns (nobody), that anyone may write (0777), or
/// that is a symlink (to a directory nobody owns) is refused: each job reports it and no
/// list file is written there (nor does the program run). Once the admin fixes the
/// directories, the jobs sync.
#[test]
fn unsafe_lists_dir_is_refused() {
    let _s = serial();
    let Some(s) = scene("unsafe-lists-dir") else {
        return;
    };
    let env = &s.env;
    env.write_main_config(DAEMON_TOML);
    let script = env.script(
        "rsync-shell.sh",
        r#"rsync -a --delete -r --delete-missing-args --files-from="$1" --from0 --exclude-from="$2" ./ "$CLSYNC_DESTINATION"/"#,
    );
    // owned: nobody's 0700 directory; open: root's 0777; link: a symlink to nobody's.
    let owned = env.dir("lists-owned");
    chown_r(&owned, NOBODY);
    chmod(&owned, 0o700);
    let open = env.dir("lists-open");
    chmod(&open, 0o777);
    let target = env.dir("lists-target");
    chown_r(&target, NOBODY);
    let link = env.p("lists-link");
    symlink(&target, &link).unwrap();
    let cases = [
        ("owned", owned.clone(), owned.clone(), "is owned by nobody"),
        ("open", open.clone(), open.clone(), "has mode 0777"),
        ("link", link.clone(), target.clone(), "is a symlink"),
    ];
    for (job, dir, _, _) in &cases {
        command_job(
            env,
            job,
            &s.src,
            &env.p(&format!("dst-{job}")),
            "rsync-shell",
            &format!(
                "path = {}\nlists_dir = {}\nkeep_lists = true",
                toml_path(&script),
                toml_path(dir)
            ),
        );
    }
    let mut d = env.spawn();
    d.release_start_guard();
    // No list file in any of the unsafe directories, ever (all three are looked at, so
    // that a failure names every job that wrote one).
    let nothing_written = || {
        let written: Vec<String> = cases
            .iter()
            .filter_map(|(job, _, real, _)| {
                let files: Vec<_> = fs::read_dir(real)
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                (!files.is_empty()).then(|| format!("[{job}] {}: {files:?}", real.display()))
            })
            .collect();
        assert!(
            written.is_empty(),
            "list files written into an unsafe lists_dir:\n{}",
            written.join("\n")
        );
    };
    for (job, _, _, why) in &cases {
        wait_for(
            &mut d,
            &format!("job {job} to report its lists_dir"),
            SYNC_DEADLINE,
            || {
                nothing_written();
                let e = last_error(env, job);
                e.contains("lists_dir") && e.contains(why) && e.contains("refusing")
            },
        );
    }
    // Still nothing there, and the programs never ran.
    for (job, _, real, _) in &cases {
        assert_eq!(fs::read_dir(real).unwrap().count(), 0, "[{job}]");
        let dst = env.p(&format!("dst-{job}"));
        assert!(
            !dst.exists() || fs::read_dir(&dst).unwrap().count() == 0,
            "[{job}] the program ran"
        );
    }
    let refused = d.log();
    assert!(
        count_in(
            &refused,
            &["lists_dir", "refusing to write list files there"]
        ) >= 3,
        "{}",
        d.log_tail()
    );
    // The admin fixes them: the jobs go on without a restart.
    let cleared = Instant::now();
    chown_r(&owned, 0);
    chmod(&open, 0o700);
    fs::remove_file(&link).unwrap();
    fs::create_dir(&link).unwrap();
    chmod(&link, 0o700);
    for (job, _, _, _) in &cases {
        d.assert_synced(&s.src, &env.p(&format!("dst-{job}")), &[]);
    }
    // Their lists are in the fixed directories now.
    for (job, dir, _, _) in &cases {
        assert!(fs::read_dir(dir).unwrap().count() > 0, "[{job}]");
    }
    eprintln!(
        "FAULT unsafe-lists-dir: ok, three jobs refused their lists_dir, synced {:.2}s after the fix",
        cleared.elapsed().as_secs_f64()
    );
    assert!(d.stop().success());
}

/// `user = "nobody"`: the command modes' programs run as nobody and read their lists, from
/// the private directory (rsync-shell) and from a `lists_dir` clsync creates (shell); the
/// lists and the directory belong to nobody, 0600 / 0700.
#[test]
fn command_modes_run_as_a_user_read_their_lists() {
    let _s = serial();
    let Some(s) = scene("run-as-user") else {
        return;
    };
    let env = &s.env;
    let rsync_shell = env.script(
        "rsync-shell.sh",
        r#"rsync -a --delete -r --delete-missing-args --files-from="$1" --from0 --exclude-from="$2" ./ "$CLSYNC_DESTINATION"/"#,
    );
    // shell: the paths of the records (every third field), as rsync's list (`./PATH`,
    // so that rsync also updates the root's attributes).
    let shell = env.script(
        "shell.sh",
        r#"[ -r "$3" ] || { echo "cannot read $3" >&2; exit 9; }
xargs -0 -n 3 sh -c 'printf "./%s\0" "$3"' sh < "$3" | rsync -a -r --files-from=- --from0 ./ "$CLSYNC_DESTINATION"/"#,
    );
    let lists = env.p("lists.d/shell");
    let (dst1, dst2) = (env.p("out/dst-rs"), env.p("out/dst-sh"));
    fs::create_dir_all(env.p("out")).unwrap();
    command_job_with(
        env,
        "rs",
        &s.src,
        &dst1,
        "rsync-shell",
        "user = \"nobody\"",
        &format!("path = {}", toml_path(&rsync_shell)),
    );
    command_job_with(
        env,
        "sh",
        &s.src,
        &dst2,
        "shell",
        "user = \"nobody\"",
        &format!(
            "path = {}\nlists_dir = {}\nkeep_lists = true",
            toml_path(&shell),
            toml_path(&lists)
        ),
    );
    let mut d = env.spawn();
    d.release_start_guard();
    let log_path = d.log_path.clone();
    // A run that fails (a list it cannot read) fails the case at once.
    let no_failure = || {
        let log = strip_ansi(&String::from_utf8_lossy(
            &fs::read(&log_path).unwrap_or_default(),
        ));
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("failed (attempt"))
            .collect();
        assert!(
            failed.is_empty(),
            "a run as nobody failed:\n{}",
            failed.join("\n")
        );
    };
    let synced = |d: &mut Daemon, what: &str| {
        let deadline = Instant::now() + SYNC_DEADLINE;
        loop {
            no_failure();
            let diff = [&dst1, &dst2]
                .map(|dst| tree_diff(&s.src, dst, &[]))
                .join("");
            if diff.is_empty() {
                return;
            }
            d.assert_running();
            assert!(
                Instant::now() < deadline,
                "{what}: not within {SYNC_DEADLINE:?}:\n{diff}\n{}",
                d.log_tail()
            );
            std::thread::sleep(POLL);
        }
    };
    let start = Instant::now();
    synced(&mut d, "the initial syncs as nobody");
    as_nobody(
        &s.src,
        "echo later > later.txt && mkdir -p new && echo n > new/n.txt",
    );
    synced(&mut d, "a live batch as nobody");
    no_failure();
    // Written by nobody, and the lists clsync kept belong to nobody.
    assert_eq!(fs::metadata(dst1.join("later.txt")).unwrap().uid(), NOBODY);
    let m = fs::symlink_metadata(&lists).unwrap();
    assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (NOBODY, 0o700));
    let kept: Vec<_> = fs::read_dir(&lists).unwrap().flatten().collect();
    assert!(kept.len() >= 2, "{kept:?}");
    for f in &kept {
        let m = f.metadata().unwrap();
        assert_eq!(
            (m.uid(), m.permissions().mode() & 0o7777),
            (NOBODY, 0o600),
            "{:?}",
            f.path()
        );
    }
    eprintln!(
        "FAULT run-as-user [rsync-shell, shell]: ok, synced as nobody in {:.2}s",
        start.elapsed().as_secs_f64()
    );
    assert!(d.stop().success());
}
