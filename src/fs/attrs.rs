//! Owner, mode and times of an existing object, changed through a handle on it.
//!
//! A path is only a way to find the object: between an `lstat` and a `chmod` by path, the
//! owner of the directory may exchange the object for a symlink (`renameat2(RENAME_EXCHANGE)`)
//! or a hard link to a file of root's, and the change lands there. Here the object is opened
//! once (`O_PATH | O_NOFOLLOW`: a symlink is opened as itself), identified by `fstat`, and
//! every change goes to that descriptor. An object with other names (`nlink > 1`, not a
//! directory) is refused: its other name may be outside the tree.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Root;

/// What to change: `owner` (uid, gid; `None` keeps each), `mode` (permission bits; never
/// applied to a symlink), `times` (atime, mtime).
#[derive(Debug, Default, Clone, Copy)]
pub struct Attrs {
    pub owner: Option<(Option<u32>, Option<u32>)>,
    pub mode: Option<u32>,
    pub times: Option<(filetime::FileTime, filetime::FileTime)>,
}

/// Applies `attrs` to the object `rel` beneath `root` if it is still the one `expect`
/// describes (same device, inode and type); `ESTALE` when it is not, `EMLINK` when it has
/// other names, `ELOOP`/`ENOTDIR` when a symlink or a file is on the way. Owner first, then
/// times, then the mode (a chown clears set-id bits).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_attrs(root: &Root, rel: &Path, expect: &Metadata, attrs: Attrs) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::os::fd::AsRawFd;
    let fd = root.open_at(rel, OFlags::PATH, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    let fmt = st.st_mode & libc::S_IFMT;
    // (The type too: an inode number freed and reused at once names another object.)
    if st.st_dev != expect.dev() || st.st_ino != expect.ino() || fmt != expect.mode() & libc::S_IFMT
    {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    if fmt != libc::S_IFDIR && st.st_nlink > 1 {
        return Err(io::Error::from_raw_os_error(libc::EMLINK));
    }
    let is_link = fmt == libc::S_IFLNK;
    if let Some((uid, gid)) = attrs.owner {
        rustix::fs::chownat(
            &fd,
            "",
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
            AtFlags::EMPTY_PATH,
        )?;
    }
    if let Some((atime, mtime)) = attrs.times {
        let ts = |t: filetime::FileTime| rustix::fs::Timespec {
            tv_sec: t.unix_seconds(),
            tv_nsec: t.nanoseconds().into(),
        };
        let times = rustix::fs::Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        };
        if is_link {
            // A symlink's own times: by name in its parent's handle, not followed.
            let (parent, leaf) = root.parent(rel)?;
            rustix::fs::utimensat(&parent, leaf, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        } else {
            // The descriptor's name in /proc leads to exactly this object, and utimensat
            // by name never opens it (a fifo, a device).
            let own = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rustix::fs::utimensat(rustix::fs::CWD, &own, &times, AtFlags::empty())?;
        }
    }
    if let Some(mode) = attrs.mode
        && !is_link
    {
        use std::os::unix::fs::PermissionsExt;
        let own = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Without `O_PATH`: by path below the root, the leaf never followed (symlinks get no mode).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn set_attrs(root: &Root, rel: &Path, expect: &Metadata, attrs: Attrs) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::relpath::join(root.path(), rel);
    let m = std::fs::symlink_metadata(&path)?;
    if m.dev() != expect.dev() || m.ino() != expect.ino() || m.file_type() != expect.file_type() {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    if !m.is_dir() && m.nlink() > 1 {
        return Err(io::Error::from_raw_os_error(libc::EMLINK));
    }
    if let Some((uid, gid)) = attrs.owner {
        std::os::unix::fs::lchown(&path, uid, gid)?;
    }
    if let Some((atime, mtime)) = attrs.times {
        filetime::set_symlink_file_times(&path, atime, mtime)?;
    }
    if let Some(mode) = attrs.mode
        && !m.file_type().is_symlink()
    {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_swapped_or_linked_object_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path()).unwrap();
        let rel = Path::new("f");
        let (f, victim) = (t.path().join("f"), t.path().join("victim"));
        fs::write(&f, "x").unwrap();
        fs::write(&victim, "v").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let m = fs::symlink_metadata(&f).unwrap();
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
        let m = fs::symlink_metadata(&f).unwrap();
        let e = set_attrs(&root, rel, &m, chmod).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMLINK));
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // A symlink's own times change, its target's mode does not.
        fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&victim, &f).unwrap();
        let m = fs::symlink_metadata(&f).unwrap();
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
        let lm = fs::symlink_metadata(&f).unwrap();
        assert_eq!(lm.mtime(), 1_000_000_000);
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // A directory on the way swapped for a symlink to where the victim is: the lstat
        // by path describes the victim, the handle never gets there.
        fs::create_dir(t.path().join("out")).unwrap();
        fs::write(t.path().join("out/x"), "o").unwrap();
        fs::set_permissions(t.path().join("out/x"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), t.path().join("d")).unwrap();
        let m = fs::symlink_metadata(t.path().join("d/x")).unwrap();
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
        let m = fs::symlink_metadata(&g).unwrap();
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
