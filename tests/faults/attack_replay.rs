//! Attacks through rename replay. `nobody` owns `SRC/u`, so (with `-a`) also `DST/u`. It
//! syncs a symlink `u/d -> VICTIM` (a root-only 0700 directory outside both trees), then
//! in one batch replaces it with a directory and renames files across it:
//! `rm d; mkdir d; mv payload d/NAME` (into the victim, if the replay followed `DST/u/d`)
//! and `mv d/secret stolen` (the victim's root-only file out into nobody's directory).
//! The replay must skip such a move (rsync then syncs both paths), and the destination
//! must still end up equal to the source.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::harness::*;
use crate::sshd::Sshd;
use crate::util::*;
use crate::{report, serial};

#[derive(Clone, Copy, Debug)]
enum Target {
    RsyncLocal,
    RsyncSsh,
    Mirror,
}

fn attack(target: Target) {
    if !is_root() {
        eprintln!("skipped: needs root (the attacker is nobody)");
        return;
    }
    let _s = serial();
    let env = Env::new();
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).unwrap();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let victim = env.dir("victim");
    fs::write(victim.join("secret"), "root only").unwrap();
    fs::set_permissions(victim.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    let u = env.dir("src/u");
    chown_r(&u, NOBODY);
    let mut sshd = None;
    match target {
        Target::RsyncLocal => {
            env.job("j", &src, &dst, Mode::Rsync, "");
        }
        Target::Mirror => {
            env.job("j", &src, &dst, Mode::Mirror, "");
        }
        Target::RsyncSsh => {
            let Some(s) = Sshd::start(&env.p("sshd")) else {
                return;
            };
            env.write_job(
                "j",
                &format!(
                    "source = {}\ndestination = {}\ndelay = \"100ms\"\n{}",
                    toml_path(&src),
                    toml_str(&format!("root@127.0.0.1:{}", dst.display())),
                    s.job_extra()
                ),
            );
            sshd = Some(s);
        }
    }
    let _keep = &sshd;
    let mut d = env.start(&["j"]);
    as_nobody(
        &u,
        &format!(
            "echo p > payload && echo x > secret && ln -s {} d",
            victim.display()
        ),
    );
    d.assert_synced(&src, &dst, &[]);
    assert!(
        fs::symlink_metadata(dst.join("u/d"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink is synced as a symlink"
    );
    // One batch: the renames cross the directory that replaced the symlink.
    as_nobody(
        &u,
        "rm d && mkdir d && mv payload d/NAME && mv secret d/secret && mv d/secret stolen",
    );
    let took = d.assert_synced_within(&src, &dst, &[], SYNC_DEADLINE);
    let mut names: Vec<_> = fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["secret"],
        "{target:?}: the victim directory changed"
    );
    let secret = victim.join("secret");
    assert_eq!(fs::read(&secret).unwrap(), b"root only");
    assert_eq!(fs::metadata(&secret).unwrap().uid(), 0);
    assert_eq!(fs::read(dst.join("u/stolen")).unwrap(), b"x\n");
    report("replay-through-planted-symlink", None, took);
    eprintln!("  ({target:?})");
    assert!(d.stop().success());
}

#[test]
fn replay_through_planted_symlink_rsync_local() {
    attack(Target::RsyncLocal);
}

#[test]
fn replay_through_planted_symlink_rsync_ssh() {
    attack(Target::RsyncSsh);
}

#[test]
fn replay_through_planted_symlink_mirror() {
    attack(Target::Mirror);
}
