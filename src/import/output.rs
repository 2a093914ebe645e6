//! Writes an import's files into a configuration directory.
//!
//! `DIR/jobs.d/NAME.toml` per job, and `DIR/clsync.toml` when it holds a key. DIR and
//! `jobs.d` are created when missing. Without `force`, nothing is written when any of the
//! files exists already (checked for all of them first, and each file is then created with
//! `O_EXCL`, so a file that appears meanwhile is not overwritten either).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Imported;

/// The files `imported` would write into `dir`, with their text.
pub fn plan(dir: &Path, imported: &Imported) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    if imported.main.has_keys() {
        files.push((dir.join("clsync.toml"), imported.main.render()));
    }
    for job in &imported.jobs {
        files.push((
            dir.join("jobs.d").join(format!("{}.toml", job.name)),
            job.doc.render(),
        ));
    }
    files
}

/// Writes the files; returns their paths, or why nothing (or not everything) was written.
pub fn write(dir: &Path, imported: &Imported, force: bool) -> Result<Vec<PathBuf>, String> {
    let files = plan(dir, imported);
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.symlink_metadata().is_ok())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "not writing anything: {} exist{} already (--force overwrites)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            ));
        }
    }
    let jobs_d = dir.join("jobs.d");
    std::fs::create_dir_all(&jobs_d).map_err(|e| format!("{}: {e}", jobs_d.display()))?;
    let mut written = Vec::new();
    for (path, text) in files {
        let mut open = OpenOptions::new();
        open.write(true);
        if force {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        open.open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{Doc, Job};

    fn one_job() -> Imported {
        let mut doc = Doc::new();
        doc.set("", "source", "/a");
        doc.set("", "destination", "/b");
        Imported {
            jobs: vec![Job {
                name: "www".into(),
                doc,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let t = tempfile::tempdir().unwrap();
        let imported = one_job();
        let files = write(t.path(), &imported, false).unwrap();
        assert_eq!(files, [t.path().join("jobs.d/www.toml")]);
        // No clsync.toml without daemon settings.
        assert!(!t.path().join("clsync.toml").exists());
        std::fs::write(&files[0], "edited").unwrap();
        let e = write(t.path(), &imported, false).unwrap_err();
        assert!(e.contains("www.toml") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "edited");
        write(t.path(), &imported, true).unwrap();
        assert!(
            std::fs::read_to_string(&files[0])
                .unwrap()
                .contains("source")
        );
    }
}
