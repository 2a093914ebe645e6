//! Landlock on Linux: a [`Policy`]'s rules, and restricting the calling thread to them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus,
};

use super::{Policy, State};

/// The file-system rights handled: all of ABI 5's (tested on a kernel with ABI 7). Network
/// and scopes (ABI 4, 6) are not restricted: rsync and ssh connect, and the watchdog
/// signals its handler's process group.
fn handled() -> BitFlags<AccessFs> {
    AccessFs::from_all(ABI::V5)
}

fn read() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

fn exec() -> BitFlags<AccessFs> {
    read() | AccessFs::Execute
}

/// Everything but executing and device ioctls.
fn write() -> BitFlags<AccessFs> {
    handled() & !(AccessFs::Execute | AccessFs::IoctlDev)
}

fn write_file() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate
}

/// The rights that apply to a file that is not a directory.
fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::from_file(ABI::V5)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Landlock: {0}")]
    Ruleset(#[from] RulesetError),
    #[error("Landlock did not restrict the thread")]
    NotEnforced,
}

/// What this kernel's Landlock can do for a job (probed once; said once in the log).
pub fn support() -> State {
    static SUPPORT: OnceLock<State> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        let s = probe();
        match s {
            State::Active => tracing::debug!("Landlock available: handler runs are sandboxed"),
            State::Partial => tracing::info!(
                "this kernel's Landlock lacks some rights (ABI below 5): handler runs are \
                 sandboxed, but may truncate or ioctl what they can open"
            ),
            _ => tracing::warn!(
                "this kernel has no usable Landlock (needs ABI 2, Linux 5.19): jobs run \
                 without their sandbox"
            ),
        }
        s
    })
}

fn probe() -> State {
    let has = |abi| {
        Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .and_then(|r| r.create())
            .is_ok()
    };
    if has(ABI::V5) {
        State::Active
    } else if has(ABI::V2) {
        State::Partial
    } else {
        State::Unsupported
    }
}

/// A run's rules, to enter on the thread that runs it.
pub struct Rules(RulesetCreated);

impl Policy {
    /// The rules of runs with `lists` writable too: every path of the policy that exists
    /// now (rules hold inodes: see [`Policy::key`]).
    pub fn rules(&self, lists: &[PathBuf]) -> Result<Rules, Error> {
        self.build(lists).map(Rules)
    }

    /// A ruleset of every path of the policy that exists now, `extra_write` writable.
    fn build(&self, extra_write: &[PathBuf]) -> Result<RulesetCreated, Error> {
        let mut r = Ruleset::default().handle_access(handled())?.create()?;
        let lists: [(&[PathBuf], BitFlags<AccessFs>); 5] = [
            (&self.read, read()),
            (&self.exec, exec()),
            (&self.write, write()),
            (extra_write, write()),
            (&self.write_files, write_file()),
        ];
        for (paths, access) in lists {
            for p in paths {
                if let Some(rule) = rule(p, access) {
                    r = r.add_rule(rule)?;
                }
            }
        }
        Ok(r)
    }
}

impl Rules {
    /// Restricts the calling thread, and every process it starts from now on, for good:
    /// call it on a thread made for the run.
    pub fn enter(self) -> Result<(), Error> {
        match self.0.restrict_self()?.ruleset {
            RulesetStatus::NotEnforced => Err(Error::NotEnforced),
            _ => Ok(()),
        }
    }
}

/// `access` beneath `path` (only the rights of files when it is not a directory); `None`
/// when it cannot be opened (missing).
fn rule(path: &Path, access: BitFlags<AccessFs>) -> Option<PathBeneath<PathFd>> {
    let fd = PathFd::new(path).ok()?;
    let dir = rustix::fs::fstat(&fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .unwrap_or(false);
    let access = if dir { access } else { access & file_rights() };
    Some(PathBeneath::new(fd, access))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread restricted to read `src` and write `dst` runs rsync between them, and
    /// neither it nor a program it starts can read a file beside them.
    #[test]
    fn rsync_runs_inside_and_nothing_outside_is_read() {
        if support() == State::Unsupported {
            eprintln!("skipped: no Landlock");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("a/f"), "in").unwrap();
        std::fs::write(t.path().join("secret"), "out").unwrap();
        let mut p = Policy::system();
        p.read.push(src.clone());
        p.write.push(dst.clone());
        // The rsync a job would run (the daemon finds it before making the rules): in CI,
        // Debian's second build comes first in PATH, outside the system directories.
        let rsync = crate::program::locate(Path::new("rsync")).unwrap();
        p.exec.push(rsync.clone());
        let secret = t.path().join("secret");
        let (status, leaked) = std::thread::scope(|s| {
            s.spawn(|| {
                let rules = p.rules(&[]).unwrap();
                rules.enter().unwrap();
                // Started as handlers are (a child sharing the thread's memory until it
                // executes: it must be as confined as a forked one).
                let run = |program: &str, args: &[&std::ffi::OsStr]| {
                    let mut l = crate::handler::Launch::new(program);
                    l.args(args);
                    l.start(false).unwrap().wait().unwrap()
                };
                let status = run(
                    rsync.to_str().unwrap(),
                    &["-a".as_ref(), src.join("").as_ref(), dst.join("").as_ref()],
                );
                let cat = run("cat", &[secret.as_ref()]);
                (status, std::fs::read(&secret).is_ok() || cat.success())
            })
            .join()
            .unwrap()
        });
        assert!(status.success());
        assert!(!leaked, "read outside the policy");
        assert_eq!(std::fs::read(dst.join("a/f")).unwrap(), b"in");
        // The test thread itself was never restricted.
        assert!(std::fs::read(&secret).is_ok());
    }

    /// Threads started by a restricted thread are restricted too (Landlock's domain is part
    /// of the credentials every new thread copies): what the mirror's helper threads rely
    /// on. A mirror walking with 4 threads inside the sandbox syncs its tree, and a thread
    /// started there can neither read nor write beside the job's directories.
    #[test]
    fn threads_started_in_the_sandbox_are_confined() {
        use crate::handler::Handler;
        if support() == State::Unsupported {
            eprintln!("skipped: no Landlock");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        for d in 0..8 {
            let dir = src.join(format!("d{d}/e"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("f"), format!("{d}")).unwrap();
        }
        std::fs::create_dir(&dst).unwrap();
        let (secret, planted) = (t.path().join("secret"), t.path().join("planted"));
        std::fs::write(&secret, "out").unwrap();
        let mut p = Policy::system();
        p.read.push(src.clone());
        p.write.push(dst.clone());
        let filter = std::sync::Arc::new(crate::rules::Filter::allow_all());
        let h = crate::handler::mirror::MirrorHandler::new(src.clone(), dst.clone(), filter)
            .with_workers(4);
        let (synced, leaked, wrote) = std::thread::scope(|s| {
            s.spawn(|| {
                p.rules(&[]).unwrap().enter().unwrap();
                let synced = h.run(&crate::model::Batch::full());
                let (leaked, wrote) = std::thread::scope(|s| {
                    s.spawn(|| {
                        let leaked = std::fs::read(&secret).is_ok();
                        (leaked, std::fs::write(&planted, "x").is_ok())
                    })
                    .join()
                    .unwrap()
                });
                (synced, leaked, wrote)
            })
            .join()
            .unwrap()
        });
        synced.unwrap();
        assert!(
            !leaked && !wrote,
            "a thread started in the sandbox escaped it"
        );
        for d in 0..8 {
            let f = dst.join(format!("d{d}/e/f"));
            assert_eq!(std::fs::read(f).unwrap(), format!("{d}").as_bytes());
        }
        assert!(std::fs::read(&secret).is_ok() && !planted.exists());
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// `cargo test --release --lib sandbox_cost -- --ignored --nocapture`: what making the
    /// rules and entering them costs, over a plain thread.
    #[test]
    #[ignore]
    fn sandbox_cost() {
        let mut p = Policy::system();
        p.read.push("/tmp".into());
        p.write.push("/var/tmp".into());
        let n = 500;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let r = p.rules(&[]).unwrap();
            std::thread::scope(|s| s.spawn(|| r.enter().unwrap()).join().unwrap());
        }
        let sandboxed = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::thread::scope(|s| s.spawn(|| ()).join().unwrap());
        }
        let plain = t.elapsed() / n;
        eprintln!("rules made and entered on a thread {sandboxed:?}, plain thread {plain:?}");
    }
}

#[cfg(test)]
mod mirror_cost {
    use super::*;
    use crate::handler::Handler;

    /// `cargo test --release --lib sandbox_mirror_cost -- --ignored --nocapture`: a mirror
    /// initial sync of 20,000 files with and without the sandbox.
    #[test]
    #[ignore]
    fn sandbox_mirror_cost() {
        let t = tempfile::tempdir_in("/dev/shm").unwrap();
        let src = t.path().join("src");
        for d in 0..1000 {
            let dir = src.join(format!("d{d:04}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..20 {
                std::fs::write(dir.join(format!("f{f}")), [b'x'; 100]).unwrap();
            }
        }
        let filter = std::sync::Arc::new(crate::rules::Filter::new(&[], vec![]).unwrap());
        for round in 0..6 {
            let sandboxed = round % 2 == 1;
            let dst = t.path().join(format!("dst{round}"));
            let h = crate::handler::mirror::MirrorHandler::new(
                src.clone(),
                dst.clone(),
                filter.clone(),
            );
            let mut p = Policy::system();
            p.read.push(src.clone());
            std::fs::create_dir(&dst).unwrap();
            p.write.push(dst.clone());
            let rules = p.rules(&[]).unwrap();
            let took = std::thread::scope(|s| {
                s.spawn(|| {
                    if sandboxed {
                        rules.enter().unwrap();
                    }
                    let t0 = std::time::Instant::now();
                    h.run(&crate::model::Batch::full()).unwrap();
                    t0.elapsed()
                })
                .join()
                .unwrap()
            });
            eprintln!("sandboxed {sandboxed}: {took:?}");
        }
    }
}
