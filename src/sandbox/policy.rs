//! What a job's handler runs may reach: [`Policy::for_job`] lists the paths a run reads,
//! executes and writes (the job's trees and programs, what executing rsync and ssh needs,
//! files named in its options), and [`Policy::key`] tells when rules made from it no longer
//! fit the files. No system call restricts anything here: the Landlock application is
//! `linux.rs`.

use std::path::{Path, PathBuf};

use crate::config::{Destination, JobConfig, Mode};

use super::ssh;

/// Programs and their libraries: read and execute.
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Read: what rsync and ssh (and the C library for them) open before and besides their
/// work, found with `strace -f` of rsync local and over ssh: the loader's cache, name
/// service, time zone, resolver, popt's and OpenSSL's configuration (Debian's and
/// Fedora's places), locale aliases. Only these files of `/etc`: a tricked sender must not
/// read `/etc/shadow` or host keys.
const SYSTEM_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.preload",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/popt",
    "/etc/popt.d",
    "/etc/ssl/openssl.cnf",
    "/etc/pki/tls/openssl.cnf",
    "/etc/crypto-policies/back-ends",
    "/etc/locale.alias",
    "/proc/filesystems",
    "/var/lib/sss/mc",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
];

/// Read: what ssh reads besides the user's own files (remote destinations over ssh only).
const SSH_READ: &[&str] = &[
    "/etc/ssh/ssh_config",
    "/etc/ssh/ssh_config.d",
    "/etc/ssh/ssh_known_hosts",
    "/etc/ssh/ssh_known_hosts2",
    "/etc/krb5.conf",
];

/// Read and write, as files: `Stdio::null()` and ssh's `UserKnownHostsFile=/dev/null`.
const SYSTEM_WRITE_FILES: &[&str] = &["/dev/null"];

/// rsync options whose (absolute) value it reads, or writes beneath.
const RSYNC_READ_OPTS: &[&str] = &[
    "--exclude-from",
    "--include-from",
    "--files-from",
    "--password-file",
    "--compare-dest",
    "--copy-dest",
    "--link-dest",
    "--read-batch",
];
const RSYNC_WRITE_OPTS: &[&str] = &[
    "--temp-dir",
    "--partial-dir",
    "--backup-dir",
    "--log-file",
    "--write-batch",
    "--only-write-batch",
];

/// What a job's handler runs may reach. A path that does not exist when the rules are made
/// gets no rule (nor can it be reached until it is made; rules are made again after a
/// failed run, see `job::confined`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The job's own paths (source, local destination, its programs): rules made for them
    /// are made again when one of them is not the same file any more ([`Policy::key`]).
    pub(super) roots: Vec<PathBuf>,
    /// Read files and list directories.
    pub(super) read: Vec<PathBuf>,
    /// Read and execute.
    pub(super) exec: Vec<PathBuf>,
    /// Read and write, beneath (no execute): create, remove, rename, truncate.
    pub(super) write: Vec<PathBuf>,
    /// Read and write these files (not what lies beside them).
    pub(super) write_files: Vec<PathBuf>,
}

impl Policy {
    /// The job's policy, or `None` when its sandbox is off.
    pub fn for_job(cfg: &JobConfig) -> Option<Policy> {
        if !cfg.sandbox.enabled {
            return None;
        }
        let mut p = Policy::system();
        p.read.push(cfg.source.clone());
        p.roots.push(cfg.source.clone());
        if let Destination::Local(d) = &cfg.destination {
            p.write.push(d.clone());
            p.roots.push(d.clone());
        }
        p.exec.extend(crate::program::locate(&cfg.rsync.path));
        if let Mode::Command(c) = &cfg.mode {
            p.exec.extend(crate::program::locate(&c.path));
            p.write.extend(c.lists_dir.clone());
        }
        if let Mode::Rclone(r) = &cfg.mode {
            p.exec.extend(crate::program::locate(&r.path));
            p.read.extend(r.config.clone());
        }
        // A program replaced by a new file (renamed over) needs a new rule.
        p.roots.extend(p.exec[SYSTEM_EXEC.len()..].iter().cloned());
        p.add_rsync_args(&cfg.rsync.args);
        let home = home_of(cfg.rsync.run_as.as_ref().map(|w| w.uid));
        if let Some(h) = &home {
            p.read.push(h.join(".popt"));
        }
        if let Destination::Remote(d) = &cfg.destination
            && crate::config::split_remote(d).is_some()
        {
            p.add_ssh(&cfg.rsync.ssh, home.as_deref());
        }
        p.read.extend(cfg.sandbox.read.iter().cloned());
        p.write.extend(cfg.sandbox.write.iter().cloned());
        Some(p)
    }

    /// The device and inode of each root and of `lists` (symlinks followed; `None` when
    /// missing): rules hold inodes, so rules made for one key do not fit another (a
    /// destination removed and made again, a program renamed over).
    pub fn key(&self, lists: &[PathBuf]) -> Vec<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        self.roots
            .iter()
            .chain(lists)
            .map(|p| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino())))
            .collect()
    }

    /// What every run needs: [`SYSTEM_EXEC`], [`SYSTEM_READ`], [`SYSTEM_WRITE_FILES`].
    pub(super) fn system() -> Policy {
        let paths = |l: &[&str]| l.iter().map(PathBuf::from).collect();
        Policy {
            roots: Vec::new(),
            read: paths(SYSTEM_READ),
            exec: paths(SYSTEM_EXEC),
            write: Vec::new(),
            write_files: paths(SYSTEM_WRITE_FILES),
        }
    }

    /// The absolute paths named by `[rsync] args` options that read or write files
    /// (`--exclude-from=F`, `--temp-dir D`, `-T D`, ...). Relative ones are beneath the
    /// destination (rsync's receiver works there) or the daemon's directory (not allowed).
    fn add_rsync_args(&mut self, args: &[String]) {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (name, value) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            let name = if name == "-T" { "--temp-dir" } else { name };
            let write = RSYNC_WRITE_OPTS.contains(&name);
            if !write && !RSYNC_READ_OPTS.contains(&name) {
                continue;
            }
            let Some(v) = value.or_else(|| it.next().cloned()) else {
                break;
            };
            let v = PathBuf::from(v);
            if v.is_absolute() {
                if write {
                    &mut self.write
                } else {
                    &mut self.read
                }
                .push(v);
            }
        }
    }

    /// What ssh reads (and the known-hosts files it updates) for a remote destination: its
    /// configuration, the identity files named in `[ssh]`, and of the user's `~/.ssh` the
    /// whole directory only when no identity is named.
    fn add_ssh(&mut self, ssh: &crate::config::SshOptions, home: Option<&Path>) {
        self.read.extend(SSH_READ.iter().map(PathBuf::from));
        let mut named = ssh::Named::default();
        if let Some(i) = &ssh.identity_file {
            named.identities.push(i.clone());
        }
        named.scan(&ssh.options, home);
        if let Some(c) = ssh.command.as_deref() {
            self.exec.extend(crate::program::locate(c));
        }
        let dot_ssh = home.map(|h| h.join(".ssh"));
        if let Some(d) = &dot_ssh {
            self.read.push(d.join("config"));
            for f in ["known_hosts", "known_hosts2"] {
                self.write_files.push(d.join(f));
            }
            if named.identities.is_empty() {
                self.read.push(d.clone());
            }
        }
        for i in named.identities {
            for suffix in ["", ".pub", "-cert.pub"] {
                let mut s = i.clone().into_os_string();
                s.push(suffix);
                self.read.push(s.into());
            }
        }
        self.read.extend(named.read);
        self.write_files.extend(named.known_hosts);
    }
}

/// The home directory of `uid` (the daemon's user when `None`), as ssh finds it.
fn home_of(uid: Option<u32>) -> Option<PathBuf> {
    let uid = uid.map_or_else(nix::unistd::geteuid, nix::unistd::Uid::from_raw);
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_args_that_name_files() {
        let mut p = Policy::default();
        let args = [
            "--exclude-from=/etc/clsync/x",
            "-T",
            "/var/tmp/t",
            "--backup-dir",
            "/srv/old",
            "--partial-dir=.partial",
            "-L",
            "--link-dest=/srv/prev",
        ]
        .map(String::from);
        p.add_rsync_args(&args);
        assert_eq!(p.read, [PathBuf::from("/etc/clsync/x"), "/srv/prev".into()]);
        assert_eq!(p.write, [PathBuf::from("/var/tmp/t"), "/srv/old".into()]);
    }
}
