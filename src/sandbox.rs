//! Defence in depth: Landlock confines each handler run of a job to the job's own trees.
//!
//! The file-system layer ([`crate::fs`]) keeps the daemon's own accesses beneath a job's
//! roots, but rsync's sender resolves `--files-from` entries by path and follows symlinks
//! in their leading components: a writer of the source who swaps a directory for a symlink
//! at the right moment makes it read elsewhere (another user's home, `/etc/shadow`). With
//! the sandbox, a run may read only beneath the source (plus the programs, libraries and the
//! few system files that executing rsync and ssh needs, [`SYSTEM_READ`]), and write only
//! beneath the destination and the job's lists directory; so what a tricked sender (or a
//! subverted handler) can reach is the source tree.
//!
//! Contract: [`Policy::for_job`] says what a job's runs may reach; [`Policy::rules`] makes
//! the rules of every path that exists now (a Landlock rule holds an inode, not a path:
//! [`Policy::key`] tells when they no longer fit); [`Rules::enter`] restricts the *calling
//! thread*, for good, and every process it starts afterwards inherits that. So runs happen
//! on threads made for them (`job::confined`). `PR_SET_NO_NEW_PRIVS` is set on such a
//! thread: set-id programs run there do not gain privileges (rsync and ssh need none).
//!
//! Where the kernel has no Landlock, or only ABI 1 (which refuses every rename across
//! directories, which rsync and the mirror need), jobs run unrestricted and the daemon
//! says so once; `clsync status --json` shows per job `"sandbox": "active" | "partial" |
//! "off" | "unsupported"` ([`State`]). Partial: ABI 2 to 4, which cannot also restrict
//! truncation (before 3) or device ioctls (before 5).
//!
//! Landlock does not restrict `stat`, `chmod`, `chown`, `utime`, extended attributes or the
//! network; those stay with [`crate::fs`] and the job's `user`.
//!
//! The [`landlock`] crate (by the kernel feature's maintainers; MIT/Apache-2.0) builds the
//! rulesets: it handles the ABI versions (best effort below what we ask) and the
//! per-thread `no_new_privs`, so no system call is written here by hand.

use std::path::{Path, PathBuf};

use crate::config::{Destination, JobConfig, Mode};

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

/// What `clsync status` says about a job's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Every run is confined with every right this daemon asks of Landlock.
    Active,
    /// Confined, but the kernel's Landlock ABI lacks some rights (see the module doc).
    Partial,
    /// The job's `sandbox` is false (or "auto" in a command mode).
    Off,
    /// The job asks for it, but the kernel cannot: it runs unrestricted.
    Unsupported,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Partial => "partial",
            State::Off => "off",
            State::Unsupported => "unsupported",
        }
    }
}

/// The state of a job whose `sandbox` resolved to `enabled`.
pub fn state(enabled: bool) -> State {
    if enabled { support() } else { State::Off }
}

/// What a job's handler runs may reach. A path that does not exist when the rules are made
/// gets no rule (nor can it be reached until it is made; rules are made again after a
/// failed run, see `job::confined`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The job's own paths (source, local destination, its programs): rules made for them
    /// are made again when one of them is not the same file any more ([`Policy::key`]).
    pub roots: Vec<PathBuf>,
    /// Read files and list directories.
    pub read: Vec<PathBuf>,
    /// Read and execute.
    pub exec: Vec<PathBuf>,
    /// Read and write, beneath (no execute): create, remove, rename, truncate.
    pub write: Vec<PathBuf>,
    /// Read and write these files (not what lies beside them).
    pub write_files: Vec<PathBuf>,
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
        p.exec.extend(program(&cfg.rsync.path));
        if let Mode::Command(c) = &cfg.mode {
            p.exec.extend(program(&c.path));
            p.write.extend(c.lists_dir.clone());
        }
        if let Mode::Rclone(r) = &cfg.mode {
            p.exec.extend(program(&r.path));
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
            && crate::handler::remote::split_remote(d).is_some()
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
    fn system() -> Policy {
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
            self.exec.extend(program(c));
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

/// The options of `[ssh] options` that name files ssh reads or writes.
mod ssh {
    use std::path::{Path, PathBuf};

    #[derive(Default)]
    pub(super) struct Named {
        pub identities: Vec<PathBuf>,
        pub read: Vec<PathBuf>,
        pub known_hosts: Vec<PathBuf>,
    }

    impl Named {
        /// `-i F`, `-F F`, `-o Key=V` / `-oKey=V` / `-o "Key V"` with Key IdentityFile,
        /// CertificateFile, UserKnownHostsFile, GlobalKnownHostsFile.
        pub fn scan(&mut self, args: &[String], home: Option<&Path>) {
            let mut it = args.iter();
            while let Some(a) = it.next() {
                let (flag, inline) = match a.get(..2) {
                    Some(f @ ("-i" | "-F" | "-o")) => (f, &a[2..]),
                    _ => continue,
                };
                let value = if inline.is_empty() {
                    match it.next() {
                        Some(v) => v.as_str(),
                        None => break,
                    }
                } else {
                    inline
                };
                match flag {
                    "-i" => self.identities.extend(expand(value, home)),
                    "-F" => self.read.extend(expand(value, home)),
                    _ => self.option(value, home),
                }
            }
        }

        fn option(&mut self, kv: &str, home: Option<&Path>) {
            let Some((k, v)) = kv
                .split_once('=')
                .or_else(|| kv.split_once(char::is_whitespace))
            else {
                return;
            };
            let files = v.split_whitespace().filter_map(|f| expand(f, home));
            match k.trim().to_ascii_lowercase().as_str() {
                "identityfile" => self.identities.extend(files),
                "certificatefile" | "globalknownhostsfile" => self.read.extend(files),
                "userknownhostsfile" => self.known_hosts.extend(files),
                _ => {}
            }
        }
    }

    /// `~/x` in the user's home; only absolute results count (`none` does not).
    fn expand(f: &str, home: Option<&Path>) -> Option<PathBuf> {
        let p = match (f.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(f),
        };
        p.is_absolute().then_some(p)
    }
}

/// `program` as it will be executed: through `PATH` when it has no `/`.
fn program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The home directory of `uid` (the daemon's user when `None`), as ssh finds it.
fn home_of(uid: Option<u32>) -> Option<PathBuf> {
    let uid = uid.map_or_else(nix::unistd::geteuid, nix::unistd::Uid::from_raw);
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{Error, Rules, support};

#[cfg(not(target_os = "linux"))]
mod other {
    use std::path::PathBuf;

    /// No Landlock here.
    pub fn support() -> super::State {
        super::State::Unsupported
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no Landlock on this system")]
    pub struct Error;

    pub struct Rules;

    impl super::Policy {
        /// Nothing to make without Landlock (jobs are told so by [`support`]).
        pub fn rules(&self, _: &[PathBuf]) -> Result<Rules, Error> {
            Ok(Rules)
        }
    }

    impl Rules {
        pub fn enter(self) -> Result<(), Error> {
            Ok(())
        }
    }
}
#[cfg(not(target_os = "linux"))]
pub use other::{Error, Rules, support};

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

    #[test]
    fn ssh_options_that_name_files() {
        let mut n = ssh::Named::default();
        let args = [
            "-i",
            "/k/id",
            "-oUserKnownHostsFile=~/kh /k/kh2",
            "-o",
            "IdentityFile /k/id2",
            "-F",
            "/k/cfg",
            "-o",
            "ConnectTimeout=5",
            "-oGlobalKnownHostsFile=none",
        ]
        .map(String::from);
        n.scan(&args, Some(Path::new("/home/u")));
        assert_eq!(n.identities, [PathBuf::from("/k/id"), "/k/id2".into()]);
        assert_eq!(
            n.known_hosts,
            [PathBuf::from("/home/u/kh"), "/k/kh2".into()]
        );
        assert_eq!(n.read, [PathBuf::from("/k/cfg")]);
    }
}
