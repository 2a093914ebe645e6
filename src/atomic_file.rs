//! Writing the files the daemon leaves for others to read (pid, status, metrics): whole or
//! not at all, and never through a path someone else planted.

use std::path::Path;

/// Writes `path` through a temporary file and a rename, so readers never see half of it.
///
/// Nothing is done through a path that could be a symlink: the temporary file is created in
/// `path`'s directory with `O_CREAT|O_EXCL` (a name planted there fails the create instead
/// of being followed), its mode is set on its descriptor, and the rename replaces whatever
/// is at `path` (a symlink included) instead of writing through it.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".clsync.")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
