//! Why a path is allowed or denied: the exclude pattern or rule that decided, and where
//! (the path itself or a blocking ancestor directory). Answers `clsync explain`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::action::{ALL_ACTIONS, Action};
use super::filter::Filter;
use super::{bytes_of, path_of, proper_ancestors};
use crate::model::Kind;

/// What decided an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The root is always allowed.
    Root,
    /// An exclude pattern matched (0-based index into the exclude list).
    Excluded { index: usize, pattern: String },
    /// A `+ ` include pattern matched first.
    Included { index: usize, pattern: String },
    /// A rule decided `action` (0-based index into the rule list).
    Rule {
        index: usize,
        text: String,
        action: Action,
        permit: bool,
    },
    /// Nothing matched: allowed by default.
    Default,
}

/// The answer of [`Filter::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The verdict of [`Filter::allows_path`].
    pub allowed: bool,
    /// The path whose check decided: the queried path, or the ancestor directory that blocks it.
    pub decided_at: PathBuf,
    /// True when `decided_at` is a proper ancestor of the queried path.
    pub by_ancestor: bool,
    pub reason: Reason,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verdict}")?;
        if self.by_ancestor {
            write!(f, " (ancestor directory {:?})", self.decided_at.display())?;
        }
        match &self.reason {
            Reason::Root => f.write_str(": the root is always included"),
            Reason::Excluded { index, pattern } => {
                write!(f, ": exclude pattern #{index} {pattern:?} matches")
            }
            Reason::Included { index, pattern } => {
                write!(f, ": include pattern #{index} {pattern:?} matches")
            }
            Reason::Rule {
                index,
                text,
                action,
                permit,
            } => {
                let what = if *permit { "permits" } else { "denies" };
                write!(f, ": rule #{index} {text:?} {what} {action}")
            }
            Reason::Default => f.write_str(": no exclude pattern or rule matches"),
        }
    }
}

impl Filter {
    /// Explains the verdict of [`Filter::allows_path`]: which exclude pattern or rule decided.
    pub fn explain(&self, rel: &Path, kind: Kind) -> Explanation {
        let b = bytes_of(rel);
        if b.is_empty() {
            return Explanation {
                allowed: true,
                decided_at: PathBuf::new(),
                by_ancestor: false,
                reason: Reason::Root,
            };
        }
        for anc in proper_ancestors(b) {
            let wanted = ALL_ACTIONS;
            if let Some(reason) = self.denial(anc, Kind::Dir, wanted) {
                return Explanation {
                    allowed: false,
                    decided_at: path_of(anc).to_path_buf(),
                    by_ancestor: true,
                    reason,
                };
            }
        }
        let wanted = Self::sync_mask(kind);
        if let Some(reason) = self.denial(b, kind, wanted) {
            return Explanation {
                allowed: false,
                decided_at: rel.to_path_buf(),
                by_ancestor: false,
                reason,
            };
        }
        let decisions = self.decide(b, kind, wanted);
        let reason = [Action::Sync, Action::Walk]
            .into_iter()
            .find_map(|a| {
                decisions[a.index()].map(|(permit, index)| Reason::Rule {
                    index,
                    text: self.rules[index].text.clone(),
                    action: a,
                    permit,
                })
            })
            .or_else(|| {
                self.glob_decider(b, kind == Kind::Dir)
                    .map(|index| Reason::Included {
                        index,
                        pattern: self.raw[index].clone(),
                    })
            })
            .unwrap_or(Reason::Default);
        Explanation {
            allowed: true,
            decided_at: rel.to_path_buf(),
            by_ancestor: false,
            reason,
        }
    }

    /// Why `rel` of `kind` fails the checks for `wanted` actions, if it does.
    fn denial(&self, rel: &[u8], kind: Kind, wanted: u8) -> Option<Reason> {
        if let Some(index) = self.glob_decider(rel, kind == Kind::Dir)
            && !self.globs[index].include
        {
            return Some(Reason::Excluded {
                index,
                pattern: self.raw[index].clone(),
            });
        }
        let decisions = self.decide(rel, kind, wanted);
        Action::ALL
            .into_iter()
            .find_map(|a| match decisions[a.index()] {
                Some((false, index)) => Some(Reason::Rule {
                    index,
                    text: self.rules[index].text.clone(),
                    action: a,
                    permit: false,
                }),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::*;

    #[test]
    fn explain_reports_decider() {
        let f = filter(
            &["*.swp", "/cache/", "+ keep.o", "*.o"],
            &["-f\\.log$", "+d^ssh$", "-s^nosync$"],
        );
        // (path, kind, allowed, decided_at, reason)
        let table: Vec<(&[u8], Kind, bool, &str, Reason)> = vec![
            (b"", D, true, "", Reason::Root),
            (
                b"a.swp",
                F,
                false,
                "a.swp",
                Reason::Excluded {
                    index: 0,
                    pattern: "*.swp".into(),
                },
            ),
            (
                b"cache/x",
                F,
                false,
                "cache",
                Reason::Excluded {
                    index: 1,
                    pattern: "/cache/".into(),
                },
            ),
            (
                b"keep.o",
                F,
                true,
                "keep.o",
                Reason::Included {
                    index: 2,
                    pattern: "+ keep.o".into(),
                },
            ),
            (
                b"d/x.log",
                F,
                false,
                "d/x.log",
                Reason::Rule {
                    index: 0,
                    text: "-f\\.log$".into(),
                    action: Action::Sync,
                    permit: false,
                },
            ),
            (
                b"ssh",
                D,
                true,
                "ssh",
                Reason::Rule {
                    index: 1,
                    text: "+d^ssh$".into(),
                    action: Action::Sync,
                    permit: true,
                },
            ),
            (
                b"nosync/a",
                F,
                false,
                "nosync",
                Reason::Rule {
                    index: 2,
                    text: "-s^nosync$".into(),
                    action: Action::Sync,
                    permit: false,
                },
            ),
            (b"plain", F, true, "plain", Reason::Default),
        ];
        for (path, kind, allowed, at, reason) in table {
            let e = f.explain(p(path), kind);
            assert_eq!(e.allowed, allowed, "{:?}", p(path));
            assert_eq!(e.allowed, f.allows_path(p(path), kind), "{:?}", p(path));
            assert_eq!(e.decided_at, Path::new(at), "{:?}", p(path));
            assert_eq!(
                e.by_ancestor,
                at != String::from_utf8_lossy(path),
                "{:?}",
                p(path)
            );
            assert_eq!(e.reason, reason, "{:?}", p(path));
            assert!(!e.to_string().is_empty());
        }
    }
}
