//! [`list`]: the entries of a directory handle, with the type `readdir` gives for free.

use std::ffi::{CStr, OsString};
use std::io;
use std::os::fd::{AsFd, IntoRawFd};
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use rustix::fs::{Mode, OFlags};

/// The names in the directory `dir` (any handle on it, `O_PATH` included), without `.` and
/// `..`, each with its `d_type` (`DT_UNKNOWN` where the filesystem keeps none).
pub fn list(dir: impl AsFd) -> io::Result<Vec<(OsString, u8)>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, ".", flags, Mode::empty())?.into_raw_fd();
    // SAFETY: `fd` is an open directory descriptor that we own; on success fdopendir takes
    // it over (closed by closedir below), on failure we close it ourselves.
    let dirp = unsafe { libc::fdopendir(fd) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: see above, the descriptor is still ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    struct Closer(*mut libc::DIR);
    impl Drop for Closer {
        fn drop(&mut self) {
            // SAFETY: a valid DIR stream from fdopendir, closed exactly once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let stream = Closer(dirp);
    let mut out = Vec::new();
    loop {
        // readdir reports errors only through errno.
        Errno::clear();
        // SAFETY: a valid DIR stream, used from this thread only.
        let ent = unsafe { libc::readdir(stream.0) };
        if ent.is_null() {
            return match Errno::last_raw() {
                0 => Ok(out),
                n => Err(io::Error::from_raw_os_error(n)),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated; it stays
        // valid until the next readdir call, and we copy the name before that.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            // SAFETY: as above, the entry is valid until the next readdir call.
            let dtype = unsafe { (*ent).d_type };
            out.push((OsString::from_vec(name.to_vec()), dtype));
        }
    }
}
