//! A full sync as several rsync runs at once. One rsync keeps about one and a half cores
//! busy whatever the machine (its sender, generator and receiver wait on each other), so
//! with cores to spare the source's top-level directories are shared among up to `lanes`
//! runs at once, each a recursive `--files-from` list of some of them: a tree of 100k
//! directories copies in 0.7× the time of one run on 2 cores.
//!
//! What the runs leave is what one `rsync -a [--delete] SRC/ DST/` leaves, because:
//! - the root goes first and alone, one level deep (`.` with `-d`): the files at the top
//!   are sent, every top-level directory exists before any part starts (no two runs make
//!   the same directory), and with deletion the extraneous top-level entries go, those the
//!   excludes protect staying as in one run;
//! - each part sends its directories recursively (`./NAME`), below the same transfer root
//!   as one run, so every exclude (anchored or not) means what it means there, and deletes
//!   what is extraneous inside them; the parts are disjoint, so no path has two writers;
//! - a directory's times are set by the run that fills it, after its contents; the root's
//!   by every part (rsync's implied directory), to the same value;
//! - a top-level directory made after the listing is the monitor's, queued like any change
//!   during a full sync.
//!
//! Parts are taken from a shared list in chunks, so that one large directory does not
//! leave a lane idle while another works through a fixed share.
//!
//! One run, as before, where parts could leave something else than the whole ([`splits`]):
//! hard links (a pair across two parts would be two files), `-x` (each part would start on
//! its own device), `--max-delete` and `--bwlimit` (limits per run), per-directory filter
//! files and `--prune-empty-dirs` (which the one-level root run would read differently),
//! batch files, a daemon destination (which may cap its connections); and fewer than two
//! top-level directories, or one core, where nothing is gained.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fs::Lookup;
use crate::model::Kind;

/// Top-level directories a lane takes at a time: about four takes per lane, so that lanes
/// finish close together without an rsync start per directory.
fn chunk(dirs: usize, lanes: usize) -> usize {
    dirs.div_ceil(lanes * 4).max(1)
}

/// True when a full sync with the user's rsync `args` may run as parts (see the module
/// documentation).
pub(crate) fn splits(args: &[String]) -> bool {
    const LONG: &[&str] = &[
        "--hard-links",
        "--one-file-system",
        "--max-delete",
        "--bwlimit",
        "--prune-empty-dirs",
        "--cvs-exclude",
        "--files-from",
        "--write-batch",
        "--only-write-batch",
        "--read-batch",
    ];
    !args.iter().any(|a| {
        let a = a.as_str();
        if let Some(long) = a.strip_prefix("--") {
            LONG.iter().any(|o| {
                a.strip_prefix(o)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            }) || long.contains("dir-merge")
                || long.starts_with("filter=:")
                || long.starts_with("filter=dir-merge")
        } else if let Some(short) = a.strip_prefix('-') {
            // A cluster of short options (`-aHx`): H, x, m, F and C are the ones above.
            short.contains(['H', 'x', 'm', 'F', 'C'])
                || short
                    .strip_prefix('f')
                    .is_some_and(|v| v.starts_with(':') || v.starts_with("dir-merge"))
        } else {
            // The value of a separate `-f`/`--filter`: a per-directory merge.
            a.starts_with(':') || a.starts_with("dir-merge")
        }
    })
}

/// The source's top-level directories (sorted), or `None` when fewer than two are there.
pub(super) fn top_level_dirs(source: &Path) -> Option<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Lookup::new(source)
        .children(Path::new(""))
        .ok()?
        .into_iter()
        .filter(|(_, kind)| *kind == Kind::Dir)
        .map(|(rel, _)| rel)
        .collect();
    if dirs.len() < 2 {
        return None;
    }
    dirs.sort();
    Some(dirs)
}

/// The chunks of `dirs` that `lanes` threads take in turn.
pub(super) struct Parts<'a> {
    dirs: &'a [PathBuf],
    chunk: usize,
    next: AtomicUsize,
}

impl<'a> Parts<'a> {
    pub(super) fn new(dirs: &'a [PathBuf], lanes: usize) -> Parts<'a> {
        Parts {
            dirs,
            chunk: chunk(dirs.len(), lanes.max(1)),
            next: AtomicUsize::new(0),
        }
    }

    /// The next chunk not taken yet, `None` once all are.
    pub(super) fn take(&self) -> Option<&'a [PathBuf]> {
        let start = self.next.fetch_add(self.chunk, Ordering::Relaxed);
        (start < self.dirs.len())
            .then(|| &self.dirs[start..(start + self.chunk).min(self.dirs.len())])
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
        assert_eq!(takes, 8);
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
}
