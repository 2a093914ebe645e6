//! Owner, mode and times of an existing object, changed through a handle on it.
//!
//! A path is only a way to find the object: between an `lstat` and a `chmod` by path, the
//! owner of the directory may exchange the object for a symlink (`renameat2(RENAME_EXCHANGE)`)
//! or a hard link to a file of root's, and the change lands there. Here the object is opened
//! once (`O_PATH | O_NOFOLLOW`: a symlink is opened as itself), identified by `fstat`, and
//! every change goes to that descriptor. An object with other names (`nlink > 1`, not a
//! directory) is refused: its other name may be outside the tree.

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;

use super::Meta;

/// What to change: `owner` (uid, gid; `None` keeps each), `mode` (permission bits; never
/// applied to a symlink), `times` (atime, mtime).
#[derive(Debug, Default, Clone, Copy)]
pub struct Attrs {
    pub owner: Option<(Option<u32>, Option<u32>)>,
    pub mode: Option<u32>,
    pub times: Option<(filetime::FileTime, filetime::FileTime)>,
}

/// Applies `attrs` to the object `name` (one component; `.` for `dir` itself) in the
/// directory handle `dir` if it is still the one `expect` describes (same device, inode and
/// type); `ESTALE` when it is not, `EMLINK` when it has other names. Owner first, then
/// times, then the mode (a chown clears set-id bits).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_attrs_at(dir: BorrowedFd, name: &OsStr, expect: &Meta, attrs: Attrs) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    use std::os::fd::AsFd;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let st = Meta::of(&fd)?;
    check(&st, expect)?;
    if !st.is_symlink() {
        return set_attrs_fd(fd.as_fd(), attrs);
    }
    if let Some((uid, gid)) = attrs.owner {
        rustix::fs::chownat(
            &fd,
            "",
            uid.map(uid_of),
            gid.map(gid_of),
            AtFlags::EMPTY_PATH,
        )?;
    }
    if let Some(times) = attrs.times {
        // A symlink's own times: by name in its directory's handle, not followed.
        rustix::fs::utimensat(dir, name, &timestamps(times), AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

/// Without `O_PATH`: `*at` calls on the name in `dir`, never following it.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn set_attrs_at(dir: BorrowedFd, name: &OsStr, expect: &Meta, attrs: Attrs) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode};
    let st = Meta::at(dir, name)?;
    check(&st, expect)?;
    if let Some((uid, gid)) = attrs.owner {
        let (u, g) = (uid.map(uid_of), gid.map(gid_of));
        rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if let Some(times) = attrs.times {
        rustix::fs::utimensat(dir, name, &timestamps(times), AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if let Some(mode) = attrs.mode
        && !st.is_symlink()
    {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode((mode & 0o7777) as _),
            AtFlags::empty(),
        )?;
    }
    Ok(())
}

/// The object `expect` describes, and no other name for it (directories have many).
fn check(st: &Meta, expect: &Meta) -> io::Result<()> {
    if !st.same_object(expect) {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    if !st.is_dir() && st.nlink() > 1 {
        return Err(io::Error::from_raw_os_error(libc::EMLINK));
    }
    Ok(())
}

/// Applies `attrs` to the open object `fd` (`O_PATH` included), which is not a symlink.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_attrs_fd(fd: BorrowedFd, attrs: Attrs) -> io::Result<()> {
    use rustix::fs::AtFlags;
    use std::os::fd::AsRawFd;
    if let Some((uid, gid)) = attrs.owner {
        rustix::fs::chownat(
            fd,
            "",
            uid.map(uid_of),
            gid.map(gid_of),
            AtFlags::EMPTY_PATH,
        )?;
    }
    // The descriptor's name in /proc leads to exactly this object; utimensat and chmod by
    // name never open it (a fifo, a device), and work on an `O_PATH` handle.
    let own = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if let Some(times) = attrs.times {
        rustix::fs::utimensat(rustix::fs::CWD, &own, &timestamps(times), AtFlags::empty())?;
    }
    if let Some(mode) = attrs.mode {
        let mode = rustix::fs::Mode::from_raw_mode(mode & 0o7777);
        rustix::fs::chmod(&own, mode)?;
    }
    Ok(())
}

/// Applies `attrs` to the open object `fd`, which is not a symlink.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn set_attrs_fd(fd: BorrowedFd, attrs: Attrs) -> io::Result<()> {
    if let Some((uid, gid)) = attrs.owner {
        rustix::fs::fchown(fd, uid.map(uid_of), gid.map(gid_of))?;
    }
    if let Some(times) = attrs.times {
        rustix::fs::futimens(fd, &timestamps(times))?;
    }
    if let Some(mode) = attrs.mode {
        rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode((mode & 0o7777) as _))?;
    }
    Ok(())
}

fn uid_of(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u)
}

fn gid_of(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g)
}

fn timestamps((atime, mtime): (filetime::FileTime, filetime::FileTime)) -> rustix::fs::Timestamps {
    let ts = |t: filetime::FileTime| rustix::fs::Timespec {
        tv_sec: t.unix_seconds(),
        tv_nsec: t.nanoseconds().into(),
    };
    rustix::fs::Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Root;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    /// `set_attrs_at` on `rel`'s parent, resolved beneath `root`.
    fn set_attrs(root: &Root, rel: &Path, expect: &Meta, attrs: Attrs) -> io::Result<()> {
        let (parent, leaf) = root.parent(rel)?;
        set_attrs_at(parent.as_fd(), leaf, expect, attrs)
    }

    /// `lstat` of `path` (its directories followed, as a path-based check would).
    fn lstat(path: &Path) -> Meta {
        let dir = fs::File::open(path.parent().unwrap()).unwrap();
        Meta::at(&dir, path.file_name().unwrap()).unwrap()
    }

    #[test]
    fn a_swapped_or_linked_object_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let rel = Path::new("f");
        let (f, victim) = (t.path().join("f"), t.path().join("victim"));
        fs::write(&f, "x").unwrap();
        fs::write(&victim, "v").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let m = lstat(&f);
        let chmod = Attrs {
            mode: Some(0o4777),
            ..Attrs::default()
        };
        // Swapped for a symlink to the victim after the lstat (the file lives on).
        fs::rename(&f, t.path().join("f.old")).unwrap();
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        let e = set_attrs(&root, rel, &m, chmod).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE));
        // A hard link to the victim, described by its own lstat.
        fs::remove_file(&f).unwrap();
        fs::hard_link(&victim, &f).unwrap();
        let m = lstat(&f);
        let e = set_attrs(&root, rel, &m, chmod).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMLINK));
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // A symlink's own times change, its target's mode does not.
        fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        let m = lstat(&f);
        let when = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        set_attrs(
            &root,
            rel,
            &m,
            Attrs {
                mode: Some(0o777),
                times: Some((when, when)),
                ..Attrs::default()
            },
        )
        .unwrap();
        let lm = lstat(&f);
        assert_eq!(lm.mtime().unix_seconds(), 1_000_000_000);
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // A directory on the way swapped for a symlink to where the victim is: the lstat
        // by path describes the victim, the handle never gets there.
        fs::create_dir(t.path().join("out")).unwrap();
        fs::write(t.path().join("out/x"), "o").unwrap();
        fs::set_permissions(t.path().join("out/x"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), t.path().join("d")).unwrap();
        let m = lstat(&t.path().join("d/x"));
        let e = set_attrs(&root, Path::new("d/x"), &m, chmod).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
            "{e}"
        );
        let mode = fs::metadata(t.path().join("out/x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o600);
        // The object itself.
        let g = t.path().join("g");
        fs::write(&g, "y").unwrap();
        let m = lstat(&g);
        set_attrs(
            &root,
            Path::new("g"),
            &m,
            Attrs {
                mode: Some(0o640),
                times: Some((when, when)),
                ..Attrs::default()
            },
        )
        .unwrap();
        let gm = fs::metadata(&g).unwrap();
        assert_eq!(gm.permissions().mode() & 0o7777, 0o640);
        assert_eq!(gm.mtime(), 1_000_000_000);
    }
}
