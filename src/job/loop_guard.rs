//! The loop guard for two-way setups (A→B by one job, B→A by another): a change that only
//! reflects what a sync in the other direction just wrote — same type, size, mtime, mode and
//! owner as this job last sent — is not sent back.
//!
//! Signatures are taken when a batch is *dispatched*, not when it finishes: a change made
//! while the batch runs then differs from the recorded signature and is synced, never lost.
//! (At worst a path is sent once more than needed.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::fs::Lookup;
use crate::model::Batch;

/// What identifies a path's state for the guard. The inode and ctime are left out: rsync
/// replaces files (new inode), and any write changes the ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Missing,
    Present {
        kind: u32,
        size: u64,
        mtime: i64,
        mtime_ns: i64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// `S_IFMT` is a u16 on the BSDs and a u32 on Linux.
#[allow(clippy::unnecessary_cast)]
const S_IFMT: u32 = libc::S_IFMT as u32;

fn sig(source: &mut Lookup, rel: &Path) -> Sig {
    match source.lstat(rel) {
        Err(_) => Sig::Missing,
        Ok(m) => Sig::Present {
            kind: m.mode() & S_IFMT,
            size: if m.is_dir() { 0 } else { m.len() },
            mtime: m.mtime().unix_seconds(),
            mtime_ns: m.mtime().nanoseconds().into(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        },
    }
}

/// Past this many remembered paths the guard starts afresh (memory stays bounded; the cost
/// is one extra round trip for paths changed later).
const MAX_REMEMBERED: usize = 1_000_000;

#[derive(Debug, Default)]
pub struct LoopGuard {
    sent: HashMap<PathBuf, Sig>,
    pending: HashMap<u64, Vec<(PathBuf, Sig)>>,
}

impl LoopGuard {
    /// True when `rel` is exactly as this job last sent it: the event is an echo.
    pub fn is_echo(&self, source: &Path, rel: &Path) -> bool {
        self.sent
            .get(rel)
            .is_some_and(|s| *s == sig(&mut Lookup::new(source), rel))
    }

    /// Records the state of the batch's paths as it is sent (run `id`).
    pub fn dispatched(&mut self, source: &Path, id: u64, batch: &Batch) {
        if batch.is_full() {
            self.sent.clear();
            return;
        }
        let mut look = Lookup::new(source);
        let sigs = batch
            .entries
            .iter()
            .filter(|e| !e.recursive)
            .map(|e| (e.rel.clone(), sig(&mut look, &e.rel)))
            .collect();
        self.pending.insert(id, sigs);
    }

    /// Run `id` ended: on success the signatures recorded when it was dispatched become
    /// what was sent; on failure they are dropped.
    pub fn commit(&mut self, id: u64, ok: bool) {
        if let Some(sigs) = self.pending.remove(&id)
            && ok
        {
            if self.sent.len() + sigs.len() > MAX_REMEMBERED {
                self.sent.clear();
            }
            self.sent.extend(sigs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    #[test]
    fn echoes_are_recognised_and_real_changes_are_not() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "v1").unwrap();
        let mut g = LoopGuard::default();
        let batch = Batch {
            renames: vec![],
            entries: vec![Entry {
                rel: PathBuf::from("f"),
                ..Entry::default()
            }],
            deletes: true,
        };
        g.dispatched(t.path(), 1, &batch);
        assert!(!g.is_echo(t.path(), Path::new("f")), "not sent yet");
        g.commit(1, true);
        assert!(g.is_echo(t.path(), Path::new("f")));
        // The other direction writes the same state back: rename over it, same mtime.
        let m = std::fs::metadata(&f).unwrap();
        let tmp = t.path().join(".tmp");
        std::fs::write(&tmp, "v1").unwrap();
        filetime::set_file_mtime(&tmp, filetime::FileTime::from_last_modification_time(&m))
            .unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert!(g.is_echo(t.path(), Path::new("f")), "same state, new inode");
        std::fs::write(&f, "v2").unwrap();
        assert!(!g.is_echo(t.path(), Path::new("f")), "a real change");
        // A failed run records nothing.
        g.dispatched(t.path(), 2, &batch);
        g.commit(2, false);
        assert!(!g.is_echo(t.path(), Path::new("f")));
    }
}
