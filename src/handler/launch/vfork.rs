//! A child that shares the daemon's memory until it executes its program: what glibc's
//! `posix_spawn` does (`clone(CLONE_VM | CLONE_VFORK)`), with the steps std's `Command` would
//! run in a forked child done here instead, before `execve`: signal handlers back to their
//! defaults, a process group of its own, the death signal, stdio, the directory.
//!
//! The child runs on a stack of its own in the daemon's address space while the thread that
//! started it waits (`CLONE_VFORK`), so everything it needs is made before (the program's path,
//! argument and environment vectors, pipes) and it calls nothing
//! but system-call wrappers: no allocation, no lock, no errno read by the daemon (the child's
//! errno is the waiting thread's, and is written only while that thread waits). Every signal,
//! the C library's own included, is blocked across the clone (with the raw system call:
//! `pthread_sigmask` leaves those two open), so no handler of the daemon runs on the child's
//! stack before the child has reset them. glibc's `clone` wrapper is safe with `CLONE_VM`
//! from 2.24 on (Debian 10 has 2.28).

use std::ffi::{CString, OsString, c_int, c_void};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Command;

use super::{Started, Waiter};

/// The child's stack: it makes only system calls, a few hundred bytes deep (it has no guard
/// page, as glibc's `posix_spawn` stack has none).
const STACK: usize = 64 * 1024;

/// What the child reads, all made before the clone, and the error it leaves.
struct Plan {
    path: CString,
    argv: Vec<*const libc::c_char>,
    /// `/bin/sh PATH ARGS...`, for a program the kernel cannot execute (a script without
    /// `#!`), as `execvp` would run it.
    sh_argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    dir: Option<CString>,
    /// The child's stdin, stdout and stderr.
    stdio: [RawFd; 3],
    /// The signal mask to restore before executing (the kernel's 64 bits).
    mask: u64,
    /// The daemon's pid: a child whose parent is another one was orphaned before its death
    /// signal was set, and does not run.
    parent: libc::pid_t,
    /// The error of the step that failed, 0 if none (the child then executed).
    errno: c_int,
}

/// Starts `program` (found for `cmd`) with `cmd`'s arguments, directory and environment
/// changes, `stdin` piped or `/dev/null`, stdout and stderr piped.
pub(super) fn start(cmd: &Command, program: &Path, stdin: bool) -> io::Result<Started> {
    let path = cstring(program.as_os_str().as_bytes().to_vec())?;
    let argv0 = std::iter::once(cmd.get_program());
    let args: Vec<CString> = argv0
        .chain(cmd.get_args())
        .map(|a| cstring(a.as_bytes().to_vec()))
        .collect::<io::Result<_>>()?;
    let sh = c"/bin/sh";
    let sh_argv: Vec<_> = [sh.as_ptr(), path.as_ptr()]
        .into_iter()
        .chain(vectors(&args[1..]))
        .collect();
    let env = environment(cmd)?;
    let dir = cmd
        .get_current_dir()
        .map(|d| cstring(d.as_os_str().as_bytes().to_vec()))
        .transpose()?;
    let (child_in, parent_in) = if stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (File::open("/dev/null")?.into(), None)
    };
    let (parent_out, child_out) = pipe()?;
    let (parent_err, child_err) = pipe()?;
    let mut plan = Plan {
        path,
        argv: vectors(&args),
        sh_argv,
        envp: vectors(&env),
        dir,
        stdio: [
            child_in.as_raw_fd(),
            child_out.as_raw_fd(),
            child_err.as_raw_fd(),
        ],
        mask: 0,
        parent: std::process::id() as libc::pid_t,
        errno: 0,
    };
    let pid = clone(&mut plan)?;
    drop((child_in, child_out, child_err));
    let mut started = Started {
        pid: pid as u32,
        stdin: parent_in.map(File::from),
        stdout: Some(parent_out.into()),
        stderr: Some(parent_err.into()),
        waiter: Waiter::Pid(None),
    };
    if plan.errno != 0 {
        let _ = started.wait();
        return Err(io::Error::from_raw_os_error(plan.errno));
    }
    Ok(started)
}

/// The daemon's environment with the command's changes, as `KEY=VALUE` strings.
fn environment(cmd: &Command) -> io::Result<Vec<CString>> {
    let mut env: std::collections::BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => env.insert(k.to_owned(), v.to_owned()),
            None => env.remove(k),
        };
    }
    env.into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            cstring(kv)
        })
        .collect()
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a program's argument, environment or directory",
        )
    })
}

/// A NULL-terminated vector of `strings` (which must outlive it).
fn vectors(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, owned from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clones a child that runs `plan`, with every signal blocked across the clone; returns once
/// the child has executed or exited.
fn clone(plan: &mut Plan) -> io::Result<libc::pid_t> {
    let mut stack = vec![0u8; STACK];
    // SAFETY: the stack is ours until the clone returns, which with CLONE_VFORK is after the
    // child executed or exited; it grows down from its (16-byte aligned) end. `plan` is only
    // read by the child, besides `errno`, which is read after it is done. The signal masks
    // are plain data.
    unsafe {
        let top = stack.as_mut_ptr().add(STACK);
        let top = top.sub(top as usize % 16) as *mut c_void;
        sigmask(&!0u64, &mut plan.mask);
        let pid = libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            plan as *mut Plan as *mut c_void,
        );
        let error = io::Error::last_os_error();
        sigmask(&plan.mask, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        Ok(pid)
    }
}

/// Sets the calling thread's signal mask to `mask` (all 64 signals, the C library's own
/// too), the previous one into `old` unless null.
///
/// # Safety
/// `old` is null or valid for a write.
unsafe fn sigmask(mask: &u64, old: *mut u64) -> c_int {
    // SAFETY: the kernel reads 8 bytes at `mask` and writes 8 at `old`.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, mask, old, 8) as c_int }
}

/// The child: only system calls from here to `execve`.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Plan` the waiting thread made; its pointers are valid until the
    // child executes or exits.
    unsafe {
        let plan = &mut *(arg as *mut Plan);
        let errno = prepare(plan).err().unwrap_or_else(|| {
            libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            if *libc::__errno_location() == libc::ENOEXEC {
                libc::execve(plan.sh_argv[0], plan.sh_argv.as_ptr(), plan.envp.as_ptr());
            }
            *libc::__errno_location()
        });
        plan.errno = if errno == 0 { libc::ECHILD } else { errno };
        libc::_exit(127)
    }
}

/// Everything before `execve`; the failing step's errno.
///
/// # Safety
/// Only in the child, with every signal blocked.
unsafe fn prepare(plan: &Plan) -> Result<(), c_int> {
    let check = |r: c_int| {
        if r < 0 {
            Err(unsafe { *libc::__errno_location() })
        } else {
            Ok(())
        }
    };
    unsafe {
        // Signals the daemon handles would run its handlers on this stack, and SIGPIPE,
        // which Rust's runtime ignores, is the default again for the program (as with std).
        // The C library's own two (32, 33) cannot be changed here; they stay blocked until
        // just before `execve`, and their handlers act only on signals sent to the daemon's
        // threads.
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if sig == libc::SIGKILL
                || sig == libc::SIGSTOP
                || libc::sigaction(sig, std::ptr::null(), &mut old) != 0
            {
                continue;
            }
            if old.sa_sigaction != libc::SIG_DFL
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                check(libc::sigaction(sig, &dfl, std::ptr::null_mut()))?;
            }
        }
        check(libc::setpgid(0, 0))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM))?;
        if libc::getppid() != plan.parent {
            return Err(libc::ESRCH);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            let target = target as RawFd;
            if fd == target {
                check(libc::fcntl(fd, libc::F_SETFD, 0))?;
            } else {
                check(libc::dup2(fd, target))?;
            }
        }
        if let Some(d) = &plan.dir {
            check(libc::chdir(d.as_ptr()))?;
        }
        check(sigmask(&plan.mask, std::ptr::null_mut()))
    }
}
