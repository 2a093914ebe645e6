//! A pipe that wakes a thread blocked in `poll`: the job loop sleeps on its monitor's
//! descriptor and on this one, so messages from workers and the supervisor are seen at once
//! and an idle job never wakes up on a timer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

#[derive(Debug)]
pub struct Waker {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        let (rx, tx) = nix::unistd::pipe().map_err(io::Error::from)?;
        for fd in [&rx, &tx] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
            fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
                .map_err(io::Error::from)?;
        }
        Ok(Waker { rx, tx })
    }

    /// Makes the read end readable. A full pipe already is, so errors are ignored.
    pub fn wake(&self) {
        let _ = nix::unistd::write(&self.tx, &[1u8]);
    }

    /// Empties the pipe after a wake-up.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.rx, &mut buf), Ok(n) if n > 0) {}
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}
