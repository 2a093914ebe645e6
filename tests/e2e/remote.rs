//! Remote destinations over ssh, against a real `sshd` started on loopback with generated
//! keys: rsync over ssh with the job's `[ssh]` options, and renames replayed as one remote
//! `mv` instead of a delete and a new transfer.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

/// An sshd on 127.0.0.1 that accepts root with a generated key; killed (by PID) on drop.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    /// None (test skipped) without root or without sshd installed.
    fn start(dir: &Path) -> Option<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !is_root() || !sshd.exists() {
            eprintln!("skipped: needs root and /usr/sbin/sshd (apt-get install openssh-server)");
            return None;
        }
        fs::create_dir_all(dir).unwrap();
        let _ = fs::create_dir_all("/run/sshd");
        let keygen = |path: &Path| {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        };
        let host_key = dir.join("host_key");
        let key = dir.join("client_key");
        keygen(&host_key);
        keygen(&key);
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel ERROR\n",
                hk = host_key.display(),
                dir = dir.display()
            ),
        )
        .unwrap();
        Some(Sshd::restart(dir, port))
    }

    fn job_extra(&self) -> String {
        format!(
            "[ssh]\nport = {}\nidentity_file = {}\noptions = [\"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\", \"-o\", \"LogLevel=ERROR\"]\n",
            self.port,
            toml_path(&self.key)
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

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

impl Sshd {
    /// Starts sshd from its directory (config and keys made by `start`) on `port`, and
    /// waits until it accepts connections.
    fn restart(dir: &Path, port: u16) -> Sshd {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("sshd.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(POLL);
        }
        Sshd {
            child,
            port,
            key: dir.join("client_key"),
        }
    }
}
