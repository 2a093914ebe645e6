//! Remote destinations over ssh, against a real `sshd` started on loopback with generated
//! keys: rsync over ssh with the job's `[ssh]` options, and renames replayed as one remote
//! `mv` instead of a delete and a new transfer.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use std::time::{Duration, Instant};

use super::harness::*;
use super::sshd::Sshd;

fn remote_job(env: &Env, sshd: &Sshd, src: &Path, dst: &Path, extra: &str) {
    env.write_job(
        "remote",
        &format!(
            "source = {}\ndestination = {}\ndelay = \"100ms\"\n{extra}\n{}",
            toml_path(src),
            toml_str(&format!("root@127.0.0.1:{}", dst.display())),
            sshd.job_extra()
        ),
    );
}

#[test]
fn syncs_over_ssh_with_names_as_data() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "r");
    remote_job(&env, &sshd, &src, &dst, "");
    let mut d = env.start(&["remote"]);
    d.assert_synced(&src, &dst, &[]);
    let pwned = env.p("pwned");
    for name in [
        format!("$(touch {})", pwned.display()),
        "--rsh=evil".to_string(),
        "-e sh".to_string(),
        "it's `x` ; y".to_string(),
        "line\nbreak".to_string(),
    ] {
        write(&src.join(&name), "data");
    }
    fs::remove_file(src.join("a.txt")).unwrap();
    append(&src.join("b/b1.txt"), "more");
    d.assert_synced(&src, &dst, &[]);
    assert!(!pwned.exists(), "a file name was executed");
    assert!(d.stop().success());
}

#[test]
fn rename_is_one_remote_move() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    for i in 0..1000 {
        write(&src.join(format!("big dir/f{i}")), "payload");
    }
    write(&src.join("odd 'name'/inner"), "x");
    remote_job(&env, &sshd, &src, &dst, "");
    let mut d = env.start(&["remote"]);
    d.assert_synced(&src, &dst, &[]);
    let ino = fs::metadata(dst.join("big dir/f500")).unwrap().ino();
    fs::rename(src.join("big dir"), src.join("renamed dir")).unwrap();
    fs::rename(src.join("odd 'name'"), src.join("moved 'odd'")).unwrap();
    d.assert_synced(&src, &dst, &[]);
    assert_eq!(
        fs::metadata(dst.join("renamed dir/f500")).unwrap().ino(),
        ino,
        "the directory was transferred again instead of moved"
    );
    assert!(d.stop().success());
}

/// Without a reachable host the job retries, and catches up once the host is back.
#[test]
fn unreachable_host_is_retried() {
    let env = Env::new();
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "u");
    let port = sshd.port;
    let key = sshd.key.clone();
    drop(sshd);
    env.write_job(
        "remote",
        &format!(
            "source = {}\ndestination = {}\ndelay = \"100ms\"\n[ssh]\nport = {port}\nidentity_file = {}\noptions = [\"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\", \"-o\", \"LogLevel=ERROR\"]\n",
            toml_path(&src),
            toml_str(&format!("root@127.0.0.1:{}", dst.display())),
            toml_path(&key)
        ),
    );
    let mut d = env.spawn();
    // Failing while the host is down.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("failed (attempt") {
        assert!(Instant::now() < deadline, "{}", d.log_tail());
        std::thread::sleep(POLL);
    }
    write(&src.join("while-down.txt"), "queued");
    // The same host comes back on the same port (sshd with the same keys).
    let sshd = Sshd::restart(&env.p("sshd"), port);
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(90));
    drop(sshd);
    assert!(d.stop().success());
}
