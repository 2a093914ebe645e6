//! A full sync as several rsync runs at once. One rsync keeps about one and a half cores
//! busy whatever the machine (its sender, generator and receiver wait on each other), so
//! with cores to spare the source's top-level directories are shared among up to `lanes`
//! runs at once, each a recursive `--files-from` list of some of them. On 2 cores, two
//! rsyncs copy a tree of 100k directories in 0.73× the time of one (4.0 s against 5.5 s,
//! sandboxed).
//!
//! What the runs leave is what one `rsync -a [--delete] SRC/ DST/` leaves, because:
//! - a first run, alone, sends the root one level deep (`.` with `-d`): the files at the
//!   top are sent, every top-level directory exists before any part starts (no two runs
//!   make one directory), and with deletion what is extraneous at the top goes, what the
//!   excludes protect staying as in one run;
//! - each part sends its directories recursively (`./DIR`), below the same transfer root as
//!   one run, so that every exclude (anchored or not) means what it means there, and
//!   deletes what is extraneous inside them; the parts are disjoint, so no path has two
//!   writers;
//! - a directory's times are set by the run that fills it, after its contents; the root's
//!   by every run (rsync's implied directory), to the same value;
//! - a directory made after the plan is the monitor's, queued like any change during a full
//!   sync; one swapped for a symlink meanwhile is sent as the symlink (a one-component
//!   entry: rsync follows no link in it), as one run would.
//!
//! Only top-level directories are parts: rsync follows a symlink in the leading components
//! of a `--files-from` entry, so a part `./html/a` would read wherever a writer of the
//! source pointed `html` after the plan.
//!
//! Parts are taken from a shared list in chunks, so that one large directory does not
//! leave a lane idle while another works through a fixed share; after a failure no lane
//! takes more (the full sync is retried whole).
//!
//! One run, as before, where parts could leave something else than the whole ([`splits`]):
//! hard links (a pair across two parts would be two files), `-x` (each part would start on
//! its own device), `-L`/`-k`/`--copy-unsafe-links` (a link to a directory at the top is
//! no part, and the first run sends it without its contents), `--no-relative` (parts would
//! lose their directory), `--max-delete` and `--bwlimit` (limits per run), per-directory
//! filter files and merge files that may hold them, `--prune-empty-dirs` (which the
//! one-level run would read differently), batch files, a daemon destination (which may cap
//! its connections); and fewer than two top-level directories, or one core.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::fs::Lookup;
use crate::model::Kind;

/// Takes per lane: lanes finish close together when the parts differ in size, at an rsync
/// start (about 20 ms) per take.
const TAKES_PER_LANE: usize = 2;

/// Parts a lane takes at a time.
fn chunk(dirs: usize, lanes: usize) -> usize {
    dirs.div_ceil(lanes * TAKES_PER_LANE).max(1)
}

/// True when a full sync with the user's rsync `args` may run as parts (see the module
/// documentation).
pub(crate) fn splits(args: &[String]) -> bool {
    const LONG: &[&str] = &[
        "--hard-links",
        "--one-file-system",
        "--copy-links",
        "--copy-dirlinks",
        "--copy-unsafe-links",
        "--no-relative",
        "--no-R",
        "--max-delete",
        "--bwlimit",
        "--prune-empty-dirs",
        "--cvs-exclude",
        "--files-from",
        "--write-batch",
        "--only-write-batch",
        "--read-batch",
    ];
    // A filter rule that is, or may bring in, a per-directory one.
    let per_dir = |rule: &str| {
        [":", "dir-merge", ".", "merge"]
            .iter()
            .any(|p| rule.starts_with(p))
    };
    let mut previous = "";
    !args.iter().any(|a| {
        let a = a.as_str();
        let rule_of_previous = ["-f", "--filter"].contains(&previous);
        previous = a;
        if rule_of_previous {
            per_dir(a)
        } else if let Some(long) = a.strip_prefix("--") {
            LONG.iter().any(|o| {
                a.strip_prefix(o)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            }) || long.strip_prefix("filter=").is_some_and(per_dir)
        } else if let Some(short) = a.strip_prefix('-') {
            // A cluster of short options (`-aHx`): H, x, L, k, m, F and C are the ones
            // above; an `f` with its rule attached.
            short.contains(['H', 'x', 'L', 'k', 'm', 'F', 'C'])
                || short.split_once('f').is_some_and(|(_, rule)| per_dir(rule))
        } else {
            false
        }
    })
}

/// The source's top-level directories (sorted), or `None` when fewer than two are there.
pub(super) fn top_level_dirs(source: &Path) -> Option<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = (Lookup::new(source).children(Path::new("")).ok()?)
        .into_iter()
        .filter(|(_, kind)| *kind == Kind::Dir)
        .map(|(rel, _)| rel)
        .collect();
    dirs.sort();
    (dirs.len() >= 2).then_some(dirs)
}

/// The chunks of `dirs` that `lanes` threads take in turn.
pub(super) struct Parts<'a> {
    dirs: &'a [PathBuf],
    chunk: usize,
    next: AtomicUsize,
    failed: AtomicBool,
}

impl<'a> Parts<'a> {
    pub(super) fn new(dirs: &'a [PathBuf], lanes: usize) -> Parts<'a> {
        Parts {
            dirs,
            chunk: chunk(dirs.len(), lanes.max(1)),
            next: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// The next chunk not taken yet; `None` once all are, or after a [`fail`](Self::fail).
    pub(super) fn take(&self) -> Option<&'a [PathBuf]> {
        if self.failed.load(Ordering::Relaxed) {
            return None;
        }
        let start = self.next.fetch_add(self.chunk, Ordering::Relaxed);
        (start < self.dirs.len())
            .then(|| &self.dirs[start..(start + self.chunk).min(self.dirs.len())])
    }

    /// A run failed: the full sync is retried whole, no lane takes more.
    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_that_change_the_whole_keep_one_run() {
        for ok in [
            &[][..],
            &["--numeric-ids", "-AX", "--exclude=*.tmp", "-z"],
            &["--filter=- *.o", "-e", "ssh -x"],
            &["--exclude", ".git", "-f", "- *.tmp"],
        ] {
            assert!(splits(&args(ok)), "{ok:?}");
        }
        for no in [
            &["-aH"][..],
            &["--hard-links"],
            &["-x"],
            &["--one-file-system"],
            &["--max-delete=10"],
            &["--bwlimit", "1m"],
            &["-m"],
            &["-F"],
            &["--cvs-exclude"],
            &["--filter=dir-merge .rules"],
            &["--filter=: .rules"],
            &["-f", ": .rules"],
            &["-f:.rules"],
            &["--write-batch=x"],
            &["-L"],
            &["-avk"],
            &["--copy-links"],
            &["--copy-dirlinks"],
            &["--copy-unsafe-links"],
            &["--no-relative"],
            &["--no-R"],
            &["--filter=merge /etc/rules"],
            &["--filter", ". /etc/rules"],
            &["-f. /etc/rules"],
        ] {
            assert!(!splits(&args(no)), "{no:?}");
        }
    }

    #[test]
    fn lanes_take_every_directory_once() {
        let dirs: Vec<PathBuf> = (0..23).map(|i| PathBuf::from(format!("d{i:02}"))).collect();
        let parts = Parts::new(&dirs, 2);
        let mut seen = Vec::new();
        let mut takes = 0;
        while let Some(c) = parts.take() {
            seen.extend_from_slice(c);
            takes += 1;
        }
        assert_eq!(seen, dirs);
        assert_eq!(takes, 4);
        assert!(parts.take().is_none());
    }

    #[test]
    fn only_directories_are_parts() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("file"), "x").unwrap();
        std::fs::create_dir(src.path().join("b")).unwrap();
        std::os::unix::fs::symlink("b", src.path().join("link")).unwrap();
        assert_eq!(top_level_dirs(src.path()), None);
        std::fs::create_dir(src.path().join("a")).unwrap();
        assert_eq!(
            top_level_dirs(src.path()),
            Some(vec![PathBuf::from("a"), PathBuf::from("b")])
        );
    }

    #[test]
    fn no_lane_takes_more_after_a_failure() {
        let dirs: Vec<PathBuf> = (0..8).map(|i| PathBuf::from(format!("d{i}"))).collect();
        let parts = Parts::new(&dirs, 2);
        assert!(parts.take().is_some());
        parts.fail();
        assert!(parts.take().is_none());
    }
}
