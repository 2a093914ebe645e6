//! Starting a handler process: a [`Launch`] is a [`Command`] and the identity it runs as,
//! and [`Launch::start`] starts it in a process group of its own, to die with the thread that
//! started it, with its stdio piped.
//!
//! On Linux a process that keeps the daemon's identity is started without copying the
//! daemon's address space ([`vfork`]): std's `Command` forks as soon as a pre-exec hook is
//! needed (the death signal is one), and a fork copies the daemon's page tables, which every
//! handler run pays before rsync even starts: 0.4 ms with 8 MB resident, 1.2 ms with 30 MB
//! (a thousand jobs). A process that changes its identity (`user`) is forked as std does it.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::config::RunAs;

#[cfg(target_os = "linux")]
mod vfork;

/// A handler program to start: its command line, directory and environment, and the
/// identity it runs as.
pub(crate) struct Launch {
    cmd: Command,
    who: Option<RunAs>,
}

impl Launch {
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            cmd: Command::new(program),
            who: None,
        }
    }

    /// Runs as `who` (the job's `user`/`group`) when given. (std clears the supplementary
    /// groups when root changes the uid.)
    pub fn run_as(&mut self, who: Option<&RunAs>) -> &mut Launch {
        self.who = who.cloned();
        self
    }

    /// The [`Command`], with the identity set on it.
    pub fn into_command(self) -> Command {
        let mut cmd = self.cmd;
        if let Some(w) = &self.who {
            cmd.gid(w.gid).uid(w.uid);
        }
        cmd
    }

    /// Starts the program in a process group of its own, stdout and stderr piped, stdin piped
    /// when `stdin` (else `/dev/null`), sent SIGTERM when the thread that started it ends.
    /// (A handler must not outlive a daemon killed with SIGKILL: an orphaned rsync would keep
    /// writing into the destination while the restarted daemon syncs it; SIGTERM lets rsync
    /// remove its temporary files. Workers wait for their handlers, so the signal comes only
    /// with the daemon's death.)
    ///
    /// The program is found before either way starts it ([`crate::program::find`], with the
    /// command's `PATH` if it sets one), never relative to the directory it starts in.
    pub fn start(self, stdin: bool) -> io::Result<Started> {
        let program = self.program()?;
        #[cfg(target_os = "linux")]
        if self.who.is_none() {
            return vfork::start(&self.cmd, &program, stdin);
        }
        self.fork(&program, stdin)
    }

    /// The file that runs.
    fn program(&self) -> io::Result<PathBuf> {
        let set = self.cmd.get_envs().find(|(k, _)| *k == "PATH");
        let path = match set {
            Some((_, v)) => v.map(OsStr::to_owned),
            None => std::env::var_os("PATH"),
        };
        crate::program::find(self.cmd.get_program().as_ref(), path.as_deref())
    }

    /// std's way: fork, then the death signal set in the child before it executes; the
    /// command is made again around `program` (what [`Launch`] can be given is copied).
    fn fork(self, program: &Path, stdin: bool) -> io::Result<Started> {
        let mut cmd = Command::new(program);
        cmd.arg0(self.cmd.get_program()).args(self.cmd.get_args());
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = self.cmd.get_current_dir() {
            cmd.current_dir(d);
        }
        if let Some(w) = &self.who {
            cmd.gid(w.gid).uid(w.uid);
        }
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing is allocated between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let file = |fd: Option<std::os::fd::OwnedFd>| fd.map(File::from);
        Ok(Started {
            pid: child.id(),
            stdin: file(child.stdin.take().map(Into::into)),
            stdout: file(child.stdout.take().map(Into::into)),
            stderr: file(child.stderr.take().map(Into::into)),
            waiter: Waiter::Std(child),
        })
    }
}

/// What a handler's command line, directory and environment may be given: only what both
/// ways of starting it carry out (a [`Command`]'s other settings would be lost on one).
impl Launch {
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Launch {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Launch {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Launch {
        self.cmd.env(key, value);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<std::path::Path>) -> &mut Launch {
        self.cmd.current_dir(dir);
        self
    }

    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.cmd.get_args()
    }
}

/// A started handler process: its pipes, and its exit status once waited for.
pub(crate) struct Started {
    pid: u32,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    waiter: Waiter,
}

enum Waiter {
    Std(std::process::Child),
    /// A child of ours, waited for by its pid; `Some` once it was.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Pid(Option<ExitStatus>),
}

impl Started {
    /// The process id, which is also its process group's.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        match &mut self.waiter {
            Waiter::Std(c) => c.wait(),
            Waiter::Pid(Some(s)) => Ok(*s),
            Waiter::Pid(done) => {
                let pid = nix::unistd::Pid::from_raw(self.pid as i32);
                let mut status = 0;
                loop {
                    // SAFETY: waitpid writes only `status`.
                    let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, 0) };
                    if r >= 0 {
                        break;
                    }
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                let s = ExitStatus::from_raw(status);
                *done = Some(s);
                Ok(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn started(program: &str, args: &[&str], stdin: bool) -> Started {
        let mut l = Launch::new(program);
        l.args(args);
        l.start(stdin).unwrap()
    }

    /// stdin reaches the program, stdout and stderr come back apart, and the exit status is
    /// the program's.
    #[test]
    fn stdio_and_status() {
        let mut p = started("sh", &["-c", "cat; echo err >&2; exit 3"], true);
        p.stdin.take().unwrap().write_all(b"in\n").unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        p.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("in\n", "err\n"));
        assert_eq!(p.wait().unwrap().code(), Some(3));
        assert_eq!(p.wait().unwrap().code(), Some(3), "a second wait");
    }

    /// Without stdin the program reads end of file; a bare name is found on PATH; the
    /// directory and environment of the command are the program's; it leads a process group
    /// of its own.
    #[test]
    fn directory_environment_and_group() {
        let t = tempfile::tempdir().unwrap();
        let mut l = Launch::new("sh");
        l.args(["-c", "cat; pwd; echo \"$X\"; ps -o pgid= -p $$"])
            .current_dir(t.path())
            .env("X", "set here");
        let mut p = l.start(false).unwrap();
        let mut out = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(p.wait().unwrap().success());
        let lines: Vec<_> = out.lines().map(str::trim).collect();
        let dir = t.path().canonicalize().unwrap();
        assert_eq!(lines[..2], [dir.to_str().unwrap(), "set here"]);
        assert_eq!(lines[2], p.id().to_string(), "its own process group");
    }

    /// A program that cannot be executed is an error of `start`, as std reports it.
    #[test]
    fn missing_programs_are_errors() {
        for program in ["no-such-program-clsync", "/no/such/program"] {
            let e = Launch::new(program).start(false).err().expect("an error");
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{program}: {e}");
        }
        let t = tempfile::tempdir().unwrap();
        let e = Launch::new(t.path()).start(false).err().expect("an error");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "a directory: {e}");
    }

    /// The program is found as `execvp` finds it: on the command's PATH, past a file of that
    /// name that is not executable, and a script without `#!` is run by `/bin/sh`.
    #[test]
    fn programs_are_found_and_run_as_execvp_would() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        std::fs::write(a.join("clsync-t"), "echo not me\n").unwrap();
        mode(&a.join("clsync-t"), 0o644);
        std::fs::write(b.join("clsync-t"), "echo \"$0 $1\"\n").unwrap();
        mode(&b.join("clsync-t"), 0o755);
        let mut l = Launch::new("clsync-t");
        l.arg("arg")
            .env("PATH", std::env::join_paths([&a, &b]).unwrap());
        let mut p = l.start(false).unwrap();
        let mut out = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(p.wait().unwrap().success());
        assert_eq!(out, format!("{} arg\n", b.join("clsync-t").display()));
    }

    /// A relative PATH entry never finds a program in the directory the command starts in
    /// (a command handler starts in the source, which others write), whichever way starts
    /// it.
    #[test]
    fn a_program_planted_where_the_command_starts_is_not_run() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let planted = t.path().join("clsync-planted");
        std::fs::write(&planted, "#!/bin/sh\necho planted\n").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = crate::config::RunAs {
            user: "me".into(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        for who in [None, Some(&me)] {
            for path in [".", "", "/nonexistent-clsync:."] {
                let mut l = Launch::new("clsync-planted");
                l.current_dir(t.path()).env("PATH", path).run_as(who);
                let e = l.start(false).err().expect("not started");
                assert_eq!(e.kind(), io::ErrorKind::NotFound, "PATH={path:?}: {e}");
            }
        }
    }

    /// A signal the daemon ignores (SIGPIPE: Rust's runtime ignores it) is the default again
    /// in the program, as with std: `yes` into a closed pipe dies of SIGPIPE.
    #[test]
    fn sigpipe_is_the_default_again() {
        let mut p = started("yes", &[], false);
        drop(p.stdout.take());
        let s = p.wait().unwrap();
        assert_eq!(s.signal(), Some(libc::SIGPIPE), "{s:?}");
    }

    /// The program dies when the thread that started it ends (what keeps a handler from
    /// outliving a daemon killed with SIGKILL).
    #[test]
    fn the_program_dies_with_the_thread_that_started_it() {
        let mut p = std::thread::spawn(|| started("sleep", &["30"], false))
            .join()
            .unwrap();
        let t = std::time::Instant::now();
        let s = p.wait().unwrap();
        assert_eq!(s.signal(), Some(libc::SIGTERM), "{s:?}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
