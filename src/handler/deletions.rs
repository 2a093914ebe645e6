//! Deletions as their own rsync pass, for receivers that reject `--delete-missing-args`.
//!
//! Debian 12's rsync security update (3.2.7-1+deb12u5) and upstream 3.4.3 made the receiver
//! refuse a `--files-from` entry that is missing at the source ("invalid file mode 00",
//! exit 2; RsyncProject/rsync issue 910). Such a receiver still deletes what `--delete`
//! finds extraneous in a directory whose contents it is sent, so a deleted path is reached
//! through its parent: the pass sends each parent's contents one level deep (`-d --no-r`,
//! `--files-from` entries `./PARENT/.`). rsync lists the parents on both sides, compares
//! their other entries (quick check: unchanged ones cost a `stat`), never descends into
//! their subdirectories, and deletes there what the batch saw deleted: receiver rules
//! expose each deleted path (`R`) and protect the rest of each parent (`P`), so that an
//! entry the destination holds and the source never had stays, as it would with
//! `--delete-missing-args` (which matters for `delete = "running"`); the job's excludes
//! keep protecting what they match.
//!
//! A script of the `rsync-shell` mode runs its own rsync with `-r`; for it the pass is the
//! parents (`./PARENT`) with NUL-separated rules for its exclude list that let rsync see
//! only the deleted names there ([`DeletionPass::rules`]):
//!
//! ```text
//! + /a/b/gone      each deleted path (what is in it is not matched by any rule below)
//! + /a             each listed parent and its ancestors, so that no `- …/*` hides them
//! - /a/b/*         everything else in a listed parent or one of its ancestors
//! ```

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fs::Lookup;
use crate::model::Batch;
use crate::relpath;
use crate::rules::Filter;

/// One deletion pass, in its two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionPass {
    /// The parents of the deleted paths (the root is empty).
    pub parents: Vec<PathBuf>,
    /// NUL-separated `--files-from` entries for `-d --no-r`: `./PARENT/.`, or `.`.
    pub contents: Vec<u8>,
    /// NUL-separated `--files-from` entries for a `-r` run with [`Self::rules`]:
    /// `./PARENT`, or `.` for the root.
    pub list: Vec<u8>,
    /// NUL-terminated `+ `/`- ` rules for an `--exclude-from` list (after the job's
    /// excludes), limiting a `-r` run over [`Self::list`] to the deleted names.
    pub rules: Vec<u8>,
    /// NUL-terminated receiver rules for the `-d --no-r` pass over [`Self::contents`]: `R`
    /// (may be deleted) for each deleted path, then `P` (protected) for everything else in
    /// a listed parent, so that the pass deletes what the batch saw deleted and nothing
    /// else, as `--delete-missing-args` would.
    pub protect: Vec<u8>,
}

/// The pass that deletes `gone` (source-relative paths missing at the source) at the
/// destination; `None` when `gone` is empty.
pub fn plan(gone: &[PathBuf]) -> Option<DeletionPass> {
    // A path below another deleted one goes with it (and its parent is gone too).
    let all: BTreeSet<&Path> = gone.iter().map(|g| g.as_path()).collect();
    let gone: Vec<&PathBuf> = gone
        .iter()
        .filter(|g| !relpath::ancestors(g).any(|a| !a.as_os_str().is_empty() && all.contains(a)))
        .collect();
    let parents: BTreeSet<&Path> = gone.iter().filter_map(|g| relpath::parent(g)).collect();
    if parents.is_empty() {
        return None;
    }
    // Every directory a `-r` run lists: the parents and everything above them.
    let mut pruned: BTreeSet<&Path> = BTreeSet::new();
    for p in &parents {
        pruned.insert(p);
        pruned.extend(relpath::ancestors(p));
    }
    let mut rules = Vec::new();
    let mut rule = |sign: &[u8], pattern: Vec<u8>| {
        rules.extend_from_slice(sign);
        rules.extend_from_slice(&pattern);
        rules.push(0);
    };
    for g in &gone {
        rule(b"+ ", Filter::rsync_anchored(g, false));
    }
    for d in pruned.iter().filter(|d| !d.as_os_str().is_empty()) {
        rule(b"+ ", Filter::rsync_anchored(d, false));
    }
    for d in &pruned {
        rule(b"- ", Filter::rsync_anchored_children(d));
    }
    let mut protect = Vec::new();
    for (sign, pattern) in gone
        .iter()
        .map(|g| (b"R ", Filter::rsync_anchored(g, false)))
        .chain(
            parents
                .iter()
                .map(|p| (b"P ", Filter::rsync_anchored_children(p))),
        )
    {
        protect.extend_from_slice(sign);
        protect.extend_from_slice(&pattern);
        protect.push(0);
    }
    let (mut contents, mut list) = (Vec::new(), Vec::new());
    for p in &parents {
        if p.as_os_str().is_empty() {
            contents.push(b'.');
            list.push(b'.');
        } else {
            for out in [&mut contents, &mut list] {
                out.extend_from_slice(b"./");
                out.extend_from_slice(p.as_os_str().as_bytes());
            }
            contents.extend_from_slice(b"/.");
        }
        contents.push(0);
        list.push(0);
    }
    Some(DeletionPass {
        parents: parents.iter().map(|p| p.to_path_buf()).collect(),
        contents,
        list,
        rules,
        protect,
    })
}

/// `batch`'s entries that exist at the source, and the paths of those that do not.
pub(crate) fn split_missing(source: &Path, batch: &Batch) -> (Batch, Vec<PathBuf>) {
    let mut present = Batch {
        deletes: batch.deletes,
        ..Batch::default()
    };
    let mut gone = Vec::new();
    let mut look = Lookup::new(source);
    for e in &batch.entries {
        match look.lstat(&e.rel) {
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                gone.push(e.rel.clone())
            }
            _ => present.entries.push(e.clone()),
        }
    }
    (present, gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::fs;
    use std::process::{Command, Stdio};

    fn p(b: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(b))
    }

    fn split(bytes: &[u8]) -> Vec<String> {
        bytes
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn nothing_gone_is_no_pass() {
        assert_eq!(plan(&[]), None);
    }

    #[test]
    fn rules_include_the_gone_names_and_prune_their_parents() {
        let pass = plan(&[
            p(b"a/b/gone"),
            p(b"top"),
            p(b"a/b/w*ld"),
            p(b"top/inner"),
            p(b"a/b/gone/deeper"),
        ])
        .unwrap();
        assert_eq!(split(&pass.contents), [".", "./a/b/."]);
        assert_eq!(split(&pass.list), [".", "./a/b"]);
        assert_eq!(
            split(&pass.rules),
            [
                "+ /a/b/gone",
                "+ /top",
                "+ /a/b/w\\*ld",
                "+ /a",
                "+ /a/b",
                "- /*",
                "- /a/*",
                "- /a/b/*",
            ]
        );
    }

    /// The rsync the tests run (`CLSYNC_TEST_RSYNC`, else `rsync` from PATH), if any.
    fn rsync() -> Option<String> {
        let prog = std::env::var("CLSYNC_TEST_RSYNC").unwrap_or_else(|_| "rsync".into());
        Command::new(&prog)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .ok()?
            .success()
            .then_some(prog)
    }

    fn tree(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(relpath::join(root, &rel)).unwrap().flatten() {
                let child = rel.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    stack.push(child.clone());
                }
                out.push(child);
            }
        }
        out.sort();
        out
    }

    /// One run of the real rsync from `src` to `dst`, `list` on stdin.
    fn run(prog: &str, args: &[String], list: &[u8], src: &Path, dst: &Path) {
        use std::io::Write;
        let mut child = Command::new(prog)
            .args(args)
            .arg("--")
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", dst.display()))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(list).unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// Against the real rsync, both forms: the pass leaves what `rsync -a --delete` would
    /// in the parents, and nothing changes below their other subdirectories.
    #[test]
    fn the_pass_deletes_exactly_the_gone_paths_with_real_rsync() {
        let Some(prog) = rsync() else {
            eprintln!("skipped: no rsync");
            return;
        };
        for contents in [true, false] {
            let t = tempfile::tempdir().unwrap();
            let (src, dst) = (t.path().join("src"), t.path().join("dst"));
            let odd: &[&[u8]] = &[b"w*ld", b"[ab]", b"a\\b", b"nl\nx", b"-dash", b"\xff"];
            for d in ["a/b/keep", "a/b/sub", "other"] {
                fs::create_dir_all(src.join(d)).unwrap();
            }
            fs::write(src.join("a/b/sub/x"), "x").unwrap();
            fs::write(src.join("top-keep"), "k").unwrap();
            run(&prog, &["-a".into()], b"", &src, &dst);
            // At the destination only: what the source deleted, and content the pass must
            // not look at (below a parent's subdirectory, or elsewhere).
            fs::create_dir_all(dst.join("a/b/gone-dir/deep")).unwrap();
            fs::write(dst.join("a/b/gone-dir/deep/f"), "f").unwrap();
            fs::write(dst.join("a/b/gone-file"), "g").unwrap();
            fs::write(dst.join("top-gone"), "g").unwrap();
            fs::write(dst.join("a/b/sub/not-in-batch"), "stays").unwrap();
            fs::write(dst.join("other/not-in-batch"), "stays").unwrap();
            let mut gone = vec![p(b"a/b/gone-dir"), p(b"a/b/gone-file"), p(b"top-gone")];
            for name in odd {
                let rel = p(&[b"a/b/".as_slice(), name].concat());
                fs::write(dst.join(&rel), "odd").unwrap();
                gone.push(rel);
            }
            let pass = plan(&gone).unwrap();
            // As the job runs it, with `[rsync] args` that change what excludes and empty
            // directories mean.
            let mut args: Vec<String> = ["-a", "--delete", "--exclude=*.tmp", "-m"]
                .map(String::from)
                .to_vec();
            let list = if contents {
                args.extend(
                    [
                        "-d",
                        "--no-r",
                        "--ignore-missing-args",
                        "--no-prune-empty-dirs",
                    ]
                    .map(String::from),
                );
                args.extend(["--files-from=-", "--from0"].map(String::from));
                &pass.contents
            } else {
                let rules = t.path().join("rules");
                fs::write(&rules, &pass.rules).unwrap();
                args.extend(
                    ["-r", "--ignore-missing-args", "--no-prune-empty-dirs"].map(String::from),
                );
                args.extend(["--files-from=-", "--from0"].map(String::from));
                args.push(format!("--exclude-from={}", rules.display()));
                &pass.list
            };
            run(&prog, &args, list, &src, &dst);
            let mut want = tree(&src);
            want.extend([p(b"a/b/sub/not-in-batch"), p(b"other/not-in-batch")]);
            want.sort();
            assert_eq!(tree(&dst), want, "contents form: {contents}");
        }
    }
}
