//! A job's compiled filter: its exclude globs and its rules, asked per path and kind.
//!
//! Globs and rules are independent: a path is synced when no exclude glob excludes it and
//! the rules allow the actions it needs. The root (the empty path) is always allowed.

use std::path::Path;

use regex::bytes::RegexSet;

use super::action::{Action, mask_of};
use super::glob::{Glob, GlobError};
use super::rule::Rule;
use super::{bytes_of, proper_ancestors};
use crate::model::Kind;

/// Which exclude pattern is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exclude pattern #{index} {pattern:?}: {source}")]
pub struct FilterError {
    /// 0-based position in the exclude list.
    pub index: usize,
    pub pattern: String,
    pub source: GlobError,
}

/// The compiled filter of one job.
#[derive(Debug, Default)]
pub struct Filter {
    /// The exclude patterns as written.
    pub(super) raw: Vec<String>,
    pub(super) globs: Vec<Glob>,
    /// All glob regexes, for a single pass per query; `None` when there are no globs (or
    /// too many to combine).
    set: Option<RegexSet>,
    pub(super) rules: Vec<Rule>,
}

/// Per-action outcome of a rule scan: `Some((permit, rule index))` or `None` (undecided).
pub(super) type Decisions = [Option<(bool, usize)>; 3];

impl Filter {
    /// A filter that lets everything through.
    pub fn allow_all() -> Filter {
        Filter::default()
    }

    /// Compiles the exclude patterns (rsync syntax) and takes the parsed rules.
    pub fn new(excludes: &[String], rules: Vec<Rule>) -> Result<Filter, FilterError> {
        let globs = excludes
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                Glob::new(pattern).map_err(|source| FilterError {
                    index,
                    pattern: pattern.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One pass over all globs per query; if the combined set is too big for the engine,
        // fall back to trying the globs one by one.
        let set = if globs.is_empty() {
            None
        } else {
            RegexSet::new(globs.iter().map(|g| g.regex.as_str())).ok()
        };
        Ok(Filter {
            raw: excludes.to_vec(),
            globs,
            set,
            rules,
        })
    }

    /// True when there are regex rules (exclude globs alone don't count).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The raw exclude patterns, to pass to rsync as `--exclude=`.
    pub fn excludes(&self) -> &[String] {
        &self.raw
    }

    /// Index of the first glob that decides `rel` itself (exclude or include), if any.
    pub(super) fn glob_decider(&self, rel: &[u8], is_dir: bool) -> Option<usize> {
        if rel.is_empty() {
            return None;
        }
        let applies = |i: &usize| is_dir || !self.globs[*i].dir_only;
        match &self.set {
            Some(set) if !set.is_match(rel) => None,
            Some(set) => set.matches(rel).iter().find(applies),
            None => (0..self.globs.len())
                .filter(applies)
                .find(|&i| self.globs[i].regex.is_match(rel)),
        }
    }

    fn excluded_bytes(&self, rel: &[u8], is_dir: bool) -> bool {
        self.glob_decider(rel, is_dir)
            .is_some_and(|i| !self.globs[i].include)
    }

    /// Is `rel` itself excluded by the exclude patterns (ancestors not consulted)?
    pub fn is_excluded(&self, rel: &Path, kind: Kind) -> bool {
        self.excluded_bytes(bytes_of(rel), kind == Kind::Dir)
    }

    /// Is `rel` excluded by the exclude patterns, itself or through an excluded ancestor
    /// directory (rsync does not descend into excluded directories)?
    pub fn is_excluded_with_ancestors(&self, rel: &Path, kind: Kind) -> bool {
        let b = bytes_of(rel);
        proper_ancestors(b).any(|a| self.excluded_bytes(a, true))
            || self.excluded_bytes(b, kind == Kind::Dir)
    }

    pub(super) fn decide(&self, rel: &[u8], kind: Kind, wanted: u8) -> Decisions {
        let mut out: Decisions = [None; 3];
        let mut open = wanted;
        for (index, rule) in self.rules.iter().enumerate() {
            if open == 0 {
                break;
            }
            let hit = rule.rtype.mask() & open;
            if hit == 0 || !rule.rtype.applies_to(kind) || !rule.regex.is_match(rel) {
                continue;
            }
            for a in Action::ALL {
                if hit & a.bit() != 0 {
                    out[a.index()] = Some((rule.permit, index));
                }
            }
            open &= !hit;
        }
        out
    }

    fn rules_allow_mask(&self, rel: &[u8], kind: Kind, wanted: u8) -> bool {
        rel.is_empty()
            || self
                .decide(rel, kind, wanted)
                .iter()
                .all(|d| d.is_none_or(|(permit, _)| permit))
    }

    /// Do the rules allow all of `actions` for `rel` of `kind`? Rules are scanned in order;
    /// the first rule that applies to an action still undecided decides it; actions nobody
    /// decides are allowed. Exclude patterns are not consulted. The root is always allowed.
    pub fn rules_allow(&self, rel: &Path, kind: Kind, actions: &[Action]) -> bool {
        self.rules_allow_mask(bytes_of(rel), kind, mask_of(actions))
    }

    pub(super) fn sync_mask(kind: Kind) -> u8 {
        match kind {
            Kind::Dir => Action::Walk.bit() | Action::Sync.bit(),
            _ => Action::Sync.bit(),
        }
    }

    fn allows_bytes(&self, rel: &[u8], kind: Kind) -> bool {
        rel.is_empty()
            || (!self.excluded_bytes(rel, kind == Kind::Dir)
                && self.rules_allow_mask(rel, kind, Self::sync_mask(kind)))
    }

    fn allows_dir_walk_bytes(&self, rel: &[u8]) -> bool {
        rel.is_empty()
            || (!self.excluded_bytes(rel, true)
                && self.rules_allow_mask(
                    rel,
                    Kind::Dir,
                    Action::Walk.bit() | Action::Monitor.bit(),
                ))
    }

    /// True when `rel` itself (not looking at its ancestors) is to be synced: no exclude
    /// pattern matches it and the rules allow Sync (for a directory: Walk and Sync).
    pub fn allows(&self, rel: &Path, kind: Kind) -> bool {
        self.allows_bytes(bytes_of(rel), kind)
    }

    /// True when the directory `rel` is to be descended into and watched: no exclude pattern
    /// matches it as a directory and the rules allow Walk and Monitor (ancestors not consulted).
    pub fn allows_dir_walk(&self, rel: &Path) -> bool {
        self.allows_dir_walk_bytes(bytes_of(rel))
    }

    /// What a walk asks of each child it meets: `rel` is synced and, if a directory, also
    /// descended into ([`Filter::allows`] and, for a directory, [`Filter::allows_dir_walk`]).
    pub fn allows_child(&self, rel: &Path, kind: Kind) -> bool {
        self.allows(rel, kind) && (kind != Kind::Dir || self.allows_dir_walk(rel))
    }

    /// Like [`Filter::allows`], but every proper ancestor directory must also pass
    /// [`Filter::allows_dir_walk`] and `allows(.., Kind::Dir)`.
    pub fn allows_path(&self, rel: &Path, kind: Kind) -> bool {
        let b = bytes_of(rel);
        proper_ancestors(b)
            .all(|a| self.allows_dir_walk_bytes(a) && self.allows_bytes(a, Kind::Dir))
            && self.allows_bytes(b, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;
    use std::fmt;

    #[test]
    fn ancestor_exclusion() {
        let f = filter(&["/cache/", "*.tmp", "build/", "+ keep.o", "*.o"], &[]);
        // (path, kind, self-only excluded, with-ancestors excluded)
        let table: &[(&[u8], Kind, bool, bool)] = &[
            (b"", D, false, false),
            (b"cache", D, true, true),
            (b"cache", F, false, false),
            (b"cache/a/b", F, false, true),
            (b"x/cache/a", F, false, false),
            (b"a.tmp", D, true, true),
            (b"a.tmp/inner", F, false, true),
            (b"src/build/x.c", F, false, true),
            (b"src/build", F, false, false),
            (b"keep.o", F, false, false),
            (b"other.o", F, true, true),
        ];
        for &(path, kind, self_ex, anc_ex) in table {
            let rel = p(path);
            assert_eq!(f.is_excluded(rel, kind), self_ex, "self {rel:?}");
            assert_eq!(
                f.is_excluded_with_ancestors(rel, kind),
                anc_ex,
                "anc {rel:?}"
            );
            assert_eq!(f.allows(rel, kind), !self_ex, "allows {rel:?}");
            assert_eq!(f.allows_path(rel, kind), !anc_ex, "allows_path {rel:?}");
        }
        // The one-by-one fallback (used when the combined set cannot be built) agrees.
        let mut single = filter(&["/cache/", "*.tmp", "build/", "+ keep.o", "*.o"], &[]);
        single.set = None;
        for &(path, kind, self_ex, anc_ex) in table {
            assert_eq!(single.is_excluded(p(path), kind), self_ex, "{:?}", p(path));
            assert_eq!(single.is_excluded_with_ancestors(p(path), kind), anc_ex);
        }
        assert!(f.allows_dir_walk(p(b"")));
        assert!(!f.allows_dir_walk(p(b"cache")));
        assert!(!f.allows_dir_walk(p(b"a/build")));
        assert!(f.allows_dir_walk(p(b"a")));
        assert!(!f.has_rules());
        assert_eq!(f.excludes().len(), 5);
    }

    #[test]
    fn first_match_wins_per_action() {
        let f = filter(&[], &["+w^a$", "-d^a$"]);
        let a = p(b"a");
        assert!(f.rules_allow(a, D, &[Action::Walk]));
        assert!(!f.rules_allow(a, D, &[Action::Sync]));
        assert!(!f.rules_allow(a, D, &[Action::Monitor]));
        assert!(!f.allows(a, D));
        assert!(!f.allows_dir_walk(a));

        // (rules, path, kind, walk, monitor, sync)
        type Row = (
            &'static [&'static str],
            &'static [u8],
            Kind,
            bool,
            bool,
            bool,
        );
        let table: &[Row] = &[
            (&["+w^a$", "-d^a$"], b"a", D, true, false, false),
            (&["-s^a$", "+*"], b"a", D, true, true, false),
            (&["-m", "+d"], b"a", D, true, false, true),
            (&["-f"], b"a", D, true, true, true),
            (&["-f"], b"a", F, false, false, false),
            (&["-d"], b"a", O, true, true, true),
            (&["-*"], b"a", O, false, false, false),
            (&["+f^a", "-*"], b"ab", F, true, true, true),
            (&["+f^a$", "-*"], b"ab", F, false, false, false),
            (&[], b"a", D, true, true, true),
            (&["-*"], b"", D, true, true, true),
        ];
        for &(rules, path, kind, walk, monitor, sync) in table {
            let f = filter(&[], rules);
            let rel = p(path);
            let got = (
                f.rules_allow(rel, kind, &[Action::Walk]),
                f.rules_allow(rel, kind, &[Action::Monitor]),
                f.rules_allow(rel, kind, &[Action::Sync]),
            );
            assert_eq!(got, (walk, monitor, sync), "{rules:?} {rel:?} {kind:?}");
        }
    }

    #[test]
    fn sync_only_these_files() {
        let f = filter(
            &[],
            &["+f^passwd$", "+d^$", "+d^ssh$", "+f^ssh/sshd_config$", "-*"],
        );
        assert!(f.has_rules());
        let table: &[(&[u8], Kind, bool)] = &[
            (b"", D, true),
            (b"passwd", F, true),
            (b"passwd", D, false),
            (b"shadow", F, false),
            (b"ssh", D, true),
            (b"ssh/sshd_config", F, true),
            (b"ssh/ssh_config", F, false),
            (b"ssh/sshd_config.d", D, false),
            (b"ssh/sshd_config.d/x", F, false),
            (b"sshx/sshd_config", F, false),
            (b"passwd-", F, false),
            (b"lnk", O, false),
        ];
        for &(path, kind, want) in table {
            assert_eq!(f.allows_path(p(path), kind), want, "{:?}", p(path));
            assert_eq!(f.explain(p(path), kind).allowed, want, "{:?}", p(path));
        }
        assert!(f.allows_dir_walk(p(b"ssh")));
        assert!(!f.allows_dir_walk(p(b"etc")));
    }

    #[test]
    fn allows_path_needs_walkable_ancestors() {
        // `-w` on a directory: it is synced itself but nothing below it.
        let f = filter(&[], &["-w^a$"]);
        assert!(f.allows(p(b"a"), F));
        assert!(!f.allows(p(b"a"), D)); // a dir needs Walk as well as Sync
        assert!(!f.allows_path(p(b"a/x"), F));
        assert!(f.allows(p(b"a/x"), F));
        // `-m`: not watched, so nothing below counts either.
        let f = filter(&[], &["-m^a$"]);
        assert!(f.allows(p(b"a"), D));
        assert!(!f.allows_dir_walk(p(b"a")));
        assert!(!f.allows_path(p(b"a/x"), F));
        assert!(f.allows_path(p(b"b/x"), F));
    }

    #[test]
    fn filter_is_send_sync_and_allow_all() {
        fn assert_send_sync<T: Send + Sync + fmt::Debug>() {}
        assert_send_sync::<Filter>();
        let f = Filter::allow_all();
        assert!(f.allows(p(b"x"), F) && f.allows_dir_walk(p(b"x")) && f.allows_path(p(b"a/b"), O));
        assert!(!f.has_rules() && f.excludes().is_empty());
    }
}
