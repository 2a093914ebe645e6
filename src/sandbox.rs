//! Defence in depth: Landlock confines each handler run of a job to the job's own trees.
//!
//! The file-system layer ([`crate::fs`]) keeps the daemon's own accesses beneath a job's
//! roots, but rsync's sender resolves `--files-from` entries by path and follows symlinks
//! in their leading components: a writer of the source who swaps a directory for a symlink
//! at the right moment makes it read elsewhere (another user's home, `/etc/shadow`). With
//! the sandbox, a run may read only beneath the source (plus the programs, libraries and the
//! few system files that executing rsync and ssh needs), and write only
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
//!
//! Files: `policy.rs` (what a job's runs may reach), `ssh.rs` (the files ssh options name),
//! `linux.rs` (Landlock: making the rules, entering them), `other.rs` (no Landlock).

mod policy;
mod ssh;

pub use policy::Policy;

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

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{Error, Rules, support};

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub use other::{Error, Rules, support};
