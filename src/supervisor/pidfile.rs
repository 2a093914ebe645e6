//! The pid file (`[daemon] pid_file`): written when the daemon starts, removed when it
//! stops, so that a pid file on disk always names a running daemon.

use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomic;

/// The pid file: written at start, removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic(path, format!("{}\n", std::process::id()).as_bytes(), 0o644)?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
