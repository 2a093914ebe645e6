//! [`Meta`]: what `lstat` says about an object, taken through a handle.
//!
//! `std::fs::Metadata` can only come from a path or an open file; an `lstat` of a name in a
//! directory handle (`fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`) is one system call and
//! follows nothing, so the file-system layer describes objects with this small copy of
//! `struct stat` instead.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;

use filetime::FileTime;
use rustix::fs::AtFlags;

use crate::model::Kind;

/// `S_IFMT` is a u16 on the BSDs and a u32 on Linux.
#[allow(clippy::unnecessary_cast)]
const S_IFMT: u32 = libc::S_IFMT as u32;

/// One object's `struct stat`, as `lstat` gives it (a symlink described, not followed).
#[derive(Debug, Clone, Copy)]
pub struct Meta(rustix::fs::Stat);

// The field types differ between targets; the casts are no-ops on some of them.
#[allow(clippy::unnecessary_cast)]
impl Meta {
    /// `fstat` of an open descriptor (`O_PATH` included).
    pub fn of(fd: impl AsFd) -> io::Result<Meta> {
        Ok(Meta(rustix::fs::fstat(fd)?))
    }

    /// `lstat` of `name` (one component, or `.` for `dir` itself) in the directory `dir`.
    pub fn at(dir: impl AsFd, name: &OsStr) -> io::Result<Meta> {
        Ok(Meta(rustix::fs::statat(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?))
    }

    /// Type and permission bits (`st_mode`).
    pub fn mode(&self) -> u32 {
        self.0.st_mode as u32
    }

    /// The type bits alone (`st_mode & S_IFMT`).
    pub fn format(&self) -> u32 {
        self.mode() & S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.format() == libc::S_IFDIR as u32
    }

    pub fn is_file(&self) -> bool {
        self.format() == libc::S_IFREG as u32
    }

    pub fn is_symlink(&self) -> bool {
        self.format() == libc::S_IFLNK as u32
    }

    /// A block or character device.
    pub fn is_device(&self) -> bool {
        let f = self.format();
        f == libc::S_IFBLK as u32 || f == libc::S_IFCHR as u32
    }

    /// The size in bytes (`st_size`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.0.st_size as u64
    }

    pub fn uid(&self) -> u32 {
        self.0.st_uid as u32
    }

    pub fn gid(&self) -> u32 {
        self.0.st_gid as u32
    }

    pub fn dev(&self) -> u64 {
        self.0.st_dev as u64
    }

    pub fn ino(&self) -> u64 {
        self.0.st_ino as u64
    }

    pub fn nlink(&self) -> u64 {
        self.0.st_nlink as u64
    }

    pub fn rdev(&self) -> u64 {
        self.0.st_rdev as u64
    }

    pub fn mtime(&self) -> FileTime {
        FileTime::from_unix_time(self.0.st_mtime as i64, self.0.st_mtime_nsec as u32)
    }

    pub fn atime(&self) -> FileTime {
        FileTime::from_unix_time(self.0.st_atime as i64, self.0.st_atime_nsec as u32)
    }

    /// What the filter calls this object.
    pub fn kind(&self) -> Kind {
        if self.is_dir() {
            Kind::Dir
        } else if self.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }

    /// Same device, inode and type: the same object (an inode number freed and reused at
    /// once names another object, of another type more often than not).
    pub fn same_object(&self, other: &Meta) -> bool {
        self.dev() == other.dev() && self.ino() == other.ino() && self.format() == other.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn agrees_with_std() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "abc").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let dir = fs::File::open(t.path()).unwrap();
        for name in ["f", "l", "."] {
            let m = Meta::at(&dir, OsStr::new(name)).unwrap();
            let s = fs::symlink_metadata(t.path().join(name)).unwrap();
            assert_eq!(m.mode(), s.mode());
            assert_eq!(m.len(), s.len());
            assert_eq!(m.ino(), s.ino());
            assert_eq!(m.mtime(), FileTime::from_last_modification_time(&s));
            assert_eq!(m.is_symlink(), s.file_type().is_symlink());
            assert_eq!(m.is_dir(), s.is_dir());
        }
        assert!(Meta::of(&dir).unwrap().is_dir());
    }
}
