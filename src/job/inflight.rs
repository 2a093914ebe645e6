//! The paths of batches being synced, so that two runs never touch the same path at once
//! and a later change never overtakes an earlier one.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::model::Batch;
use crate::relpath;

#[derive(Debug, Default)]
pub struct InFlight {
    batches: Vec<(u64, bool, Vec<PathBuf>)>,
}

fn paths(batch: &Batch) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = batch.entries.iter().map(|e| e.rel.clone()).collect();
    for r in &batch.renames {
        v.push(r.from.clone());
        v.push(r.to.clone());
    }
    v
}

impl InFlight {
    pub fn add(&mut self, id: u64, batch: &Batch) {
        self.batches.push((id, batch.is_full(), paths(batch)));
    }

    pub fn remove(&mut self, id: u64) {
        self.batches.retain(|(i, _, _)| *i != id);
    }

    /// True when `batch` shares a path with a batch in flight: the same path, or one path
    /// inside the other (a directory synced recursively covers its subtree).
    pub fn conflicts(&self, batch: &Batch) -> bool {
        if self.batches.is_empty() {
            return false;
        }
        if batch.is_full() || self.batches.iter().any(|(_, full, _)| *full) {
            return true;
        }
        let busy: HashSet<&std::path::Path> = self
            .batches
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|p| p.as_path()))
            .collect();
        let busy_ancestors: HashSet<&std::path::Path> =
            busy.iter().flat_map(|p| relpath::ancestors(p)).collect();
        paths(batch).iter().any(|p| {
            busy.contains(p.as_path())
                || busy_ancestors.contains(p.as_path())
                || relpath::ancestors(p).any(|a| busy.contains(a))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn batch(paths: &[&str]) -> Batch {
        Batch {
            renames: vec![],
            entries: paths
                .iter()
                .map(|p| Entry {
                    rel: PathBuf::from(p),
                    ..Entry::default()
                })
                .collect(),
            deletes: true,
        }
    }

    #[test]
    fn overlap_by_path_or_ancestry() {
        let mut f = InFlight::default();
        assert!(!f.conflicts(&batch(&["a"])));
        f.add(1, &batch(&["a/b", "big.img"]));
        assert!(f.conflicts(&batch(&["a/b"])));
        assert!(f.conflicts(&batch(&["a"])), "a directory above a busy path");
        assert!(f.conflicts(&batch(&["a/b/c"])), "a path below a busy path");
        assert!(!f.conflicts(&batch(&["a/c", "x"])));
        assert!(f.conflicts(&Batch::full()));
        f.remove(1);
        assert!(!f.conflicts(&Batch::full()));
        f.add(2, &Batch::full());
        assert!(f.conflicts(&batch(&["zzz"])));
    }
}
