//! [`list`]: the entries of a directory handle, with the type `readdir` gives for free;
//! [`open_dir_read`] and [`read_entries`]: the same for walks, with one handle per directory.

use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
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

/// Opens the directory `name` (one component, never a symlink) in `dir` for reading: with
/// [`read_entries`], one `openat` and the `getdents64` calls, no second handle (what a
/// walk over a large tree wants).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn open_dir_read(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// The entries of the freshly opened, readable directory handle `fd`, as [`list`] gives
/// them.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn read_entries(fd: &OwnedFd) -> io::Result<Vec<(OsString, u8)>> {
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut raw = rustix::fs::RawDir::new(fd, buf.spare_capacity_mut());
    let mut out = Vec::new();
    while let Some(ent) = raw.next() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((OsString::from_vec(name.to_vec()), d_type(ent.file_type())));
        }
    }
    Ok(out)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn d_type(t: rustix::fs::FileType) -> u8 {
    use rustix::fs::FileType;
    match t {
        FileType::RegularFile => libc::DT_REG,
        FileType::Directory => libc::DT_DIR,
        FileType::Symlink => libc::DT_LNK,
        FileType::Fifo => libc::DT_FIFO,
        FileType::Socket => libc::DT_SOCK,
        FileType::CharacterDevice => libc::DT_CHR,
        FileType::BlockDevice => libc::DT_BLK,
        FileType::Unknown => libc::DT_UNKNOWN,
    }
}
