//! `user` / `group`: handlers run with the job's identity, not the daemon's.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::harness::*;

/// A test directory that `nobody` can reach, with `src` and a not yet existing `out/dst`;
/// `None` (skipped) when not root.
fn env_for_nobody() -> Option<(Env, std::path::PathBuf, std::path::PathBuf)> {
    if !is_root() {
        eprintln!("skipped: needs root to change identity");
        return None;
    }
    let env = Env::new();
    // The temp root is 0700: let `nobody` through to the source.
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).unwrap();
    let (src, dst) = (env.dir("src"), env.p("out/dst"));
    fs::create_dir_all(env.p("out")).unwrap();
    Some((env, src, dst))
}

#[test]
fn handlers_run_as_the_jobs_user() {
    let Some((env, src, dst)) = env_for_nobody() else {
        return;
    };
    populate(&src, "p");
    env.job("j", &src, &dst, Mode::Rsync, "user = \"nobody\"\n");
    let mut d = env.start(&["j"]);
    write(&src.join("later.txt"), "x");
    // rsync as nobody cannot keep root's ownership: compare everything but owners.
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    loop {
        let out = std::process::Command::new("rsync")
            .args(["-anci", "--no-owner", "--no-group", "--delete"])
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", dst.display()))
            .output()
            .unwrap();
        if out.status.success() && out.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    let nobody = fs::metadata(dst.join("later.txt")).unwrap().uid();
    assert_eq!(
        nobody, 65534,
        "the file was written by uid {nobody}, not nobody"
    );
    assert_eq!(
        fs::metadata(&dst).unwrap().uid(),
        65534,
        "destination created for the user"
    );
    assert!(d.stop().success());
}

/// The list files clsync writes for rsync (rule excludes) are readable by the job's user:
/// with `rules`, rsync run as `nobody` still syncs, and leaves out what the rules deny.
#[test]
fn rule_excludes_reach_rsync_run_as_the_user() {
    let Some((env, src, dst)) = env_for_nobody() else {
        return;
    };
    write(&src.join("keep.txt"), "k");
    write(&src.join("x.secret"), "s");
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        &format!(
            "user = \"nobody\"\nrules = {}\n",
            toml_list(&["-f\\.secret$", "+*"])
        ),
    );
    let mut d = env.start(&["j"]);
    write(&src.join("sub/later.txt"), "l");
    write(&src.join("sub/y.secret"), "s");
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    while !(dst.join("keep.txt").exists() && dst.join("sub/later.txt").exists()) {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_tail());
        std::thread::sleep(POLL);
    }
    assert!(!dst.join("x.secret").exists(), "denied by the rules");
    assert!(!dst.join("sub/y.secret").exists(), "denied by the rules");
    assert!(!d.log().contains("failed (attempt"), "{}", d.log_tail());
    assert!(d.stop().success());
}

#[test]
fn unknown_user_and_mirror_with_user_are_refused() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    env.job(
        "ghost",
        &src,
        &dst,
        Mode::Rsync,
        "user = \"no-such-user-clsync\"\n",
    );
    env.job(
        "mirror",
        &src,
        &env.p("dst2"),
        Mode::Mirror,
        "user = \"root\"\n",
    );
    let out = run_check(
        &env.root,
        &[std::ffi::OsStr::new("--config-dir"), env.conf.as_os_str()],
    );
    assert_ne!(out.code, Some(0));
    let ghost = out.errors_in("ghost.toml");
    assert!(
        ghost
            .iter()
            .any(|d| d.line == 5 && d.column == 8 && d.message.contains("no such user")),
        "{}",
        out.describe()
    );
    let mirror = out.errors_in("mirror.toml");
    assert!(
        mirror.iter().any(|d| d.message.contains("mirror")),
        "{}",
        out.describe()
    );
}
