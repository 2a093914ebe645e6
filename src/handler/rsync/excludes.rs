//! The regex rules as rsync excludes: rsync does not know the rules, so the directories it
//! will recurse into are walked, and every child the filter denies becomes an anchored
//! exclude (`Filter::rsync_anchored`). One walk serves the rsync runs, the command modes'
//! exclude lists and the shallow cut of a remote batch ([`shallow`](crate::handler::shallow)).

use std::path::{Path, PathBuf};

use crate::fs::Lookup;
use crate::handler::deletions::DeletionPass;
use crate::model::{Batch, Kind};
use crate::rules::Filter;

/// Walks the source directories `dirs` (below them only one level unless `recurse`), calling
/// `denied` for every child the filter denies (with whether it is a directory) and `enter`
/// for every allowed directory, which is walked further when `enter` returns true.
pub(crate) fn walk_denied(
    look: &mut Lookup,
    filter: &Filter,
    dirs: Vec<PathBuf>,
    mut denied: impl FnMut(PathBuf, bool),
    mut enter: impl FnMut(&Path) -> bool,
) {
    let mut stack = dirs;
    while let Some(rel) = stack.pop() {
        let Ok(children) = look.children(&rel) else {
            continue;
        };
        for (child, kind) in children {
            let is_dir = kind == Kind::Dir;
            if !filter.allows_child(&child, kind) {
                denied(child, is_dir);
            } else if is_dir && enter(&child) {
                stack.push(child);
            }
        }
    }
}

/// One anchored exclude, NUL-terminated, appended to `out`.
pub(crate) fn push_exclude(out: &mut Vec<u8>, rel: &Path, is_dir: bool) {
    out.extend_from_slice(&Filter::rsync_anchored(rel, is_dir));
    out.push(0);
}

/// Anchored excludes for everything the regex rules deny below the directories of `dirs`
/// (only one level below unless `recurse`).
fn rule_excludes(source: &Path, filter: &Filter, dirs: &[PathBuf], recurse: bool) -> Vec<u8> {
    let mut out = Vec::new();
    walk_denied(
        &mut Lookup::new(source),
        filter,
        dirs.to_vec(),
        |rel, is_dir| push_exclude(&mut out, &rel, is_dir),
        |_| recurse,
    );
    out
}

/// The NUL-separated anchored excludes for what the regex rules deny in the directories
/// rsync will recurse into for `batch` (empty without rules).
pub(crate) fn batch_rule_excludes(source: &Path, filter: &Filter, batch: &Batch) -> Vec<u8> {
    if !filter.has_rules() {
        return Vec::new();
    }
    let mut look = Lookup::new(source);
    let recursed: Vec<PathBuf> = if batch.is_full() {
        vec![PathBuf::new()]
    } else {
        batch
            .entries
            .iter()
            .filter(|e| look.lstat(&e.rel).is_ok_and(|m| m.is_dir()))
            .map(|e| e.rel.clone())
            .collect()
    };
    rule_excludes(source, filter, &recursed, true)
}

/// The anchored rule excludes for a deletion pass: the parents' entries, one level.
pub(crate) fn deletion_rule_excludes(
    source: &Path,
    filter: &Filter,
    pass: &DeletionPass,
) -> Vec<u8> {
    if !filter.has_rules() {
        return Vec::new();
    }
    rule_excludes(source, filter, &pass.parents, false)
}
