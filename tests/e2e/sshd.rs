//! A real sshd on loopback for the remote-destination tests (ssh, and sftp for rclone).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

/// An sshd on 127.0.0.1 that accepts root with a generated key; killed (by PID) on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub key: PathBuf,
}

impl Sshd {
    /// None (test skipped) without root or without sshd installed.
    pub fn start(dir: &Path) -> Option<Sshd> {
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
                 StrictModes no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
                hk = host_key.display(),
                dir = dir.display()
            ),
        )
        .unwrap();
        Some(Sshd::restart(dir, port))
    }

    /// The `[ssh]` table of a job that reaches this sshd.
    pub fn job_extra(&self) -> String {
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

impl Sshd {
    /// Starts sshd from its directory (config and keys made by `start`) on `port`, and
    /// waits until it accepts connections.
    pub fn restart(dir: &Path, port: u16) -> Sshd {
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
