//! Deletions as their own rsync pass, for receivers that reject `--delete-missing-args`.
//!
//! Debian 12's rsync security update (3.2.7-1+deb12u5) and upstream 3.4.3 made the receiver
//! refuse a `--files-from` entry that is missing at the source ("invalid file mode 00",
//! exit 2; RsyncProject/rsync issue 910). Such a receiver still deletes what `--delete`
//! finds extraneous in a directory it is sent recursively, so a deleted path is reached
//! through its parent: the pass lists each parent directory (`-r --files-from`), and
//! NUL-separated filter rules let rsync see only the deleted names there:
//!
//! ```text
//! +sr /a/b/gone    each deleted path (what is in it is not matched by any rule below)
//! +sr /a           each listed parent and its ancestors, so that no `- …/*` hides them
//! -sr /a/b/*       everything else in a listed parent or one of its ancestors
//! ```
//!
//! An excluded name is neither sent nor deleted, so the pass deletes exactly the deleted
//! paths (and anything the source has under those names again by then is sent, which is
//! also right). The rules apply on both sides (`s`, `r`) even when `[rsync] args` has
//! `--delete-excluded`, which would otherwise turn `-` rules into sender-only ones and
//! delete every sibling. rsync reads only the listings of the parents, not their subtrees
//! (unless `[rsync] args` include more). The job's own excludes come earlier on rsync's
//! command line and keep protecting what they match, as in every other run.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::relpath;
use crate::rules::Filter;

/// The `--files-from` list and the filter rules of one deletion pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionPass {
    /// NUL-separated `--files-from` entries: `./PARENT`, or `.` for the root.
    pub list: Vec<u8>,
    /// NUL-terminated filter rules, for `--from0 --filter=merge FILE`.
    pub rules: Vec<u8>,
    /// The same rules without the side modifiers, for an `--exclude-from` list (which takes
    /// only `+ ` and `- `; `--delete-excluded` then defeats them).
    pub plain_rules: Vec<u8>,
}

/// The pass that deletes `gone` (source-relative paths missing at the source) at the
/// destination; `None` when `gone` is empty.
pub fn plan(gone: &[PathBuf]) -> Option<DeletionPass> {
    // A path below another deleted one goes with it (and its parent is gone too).
    let gone: Vec<&PathBuf> = gone
        .iter()
        .filter(|g| {
            !relpath::ancestors(g).any(|a| !a.as_os_str().is_empty() && gone.iter().any(|o| o == a))
        })
        .collect();
    let parents: BTreeSet<&Path> = gone.iter().filter_map(|g| relpath::parent(g)).collect();
    if parents.is_empty() {
        return None;
    }
    // Every directory rsync lists: the parents and everything above them.
    let mut pruned: BTreeSet<&Path> = BTreeSet::new();
    for p in &parents {
        pruned.insert(p);
        pruned.extend(relpath::ancestors(p));
    }
    let (mut rules, mut plain_rules) = (Vec::new(), Vec::new());
    let mut rule = |include: bool, pattern: Vec<u8>| {
        rules.extend_from_slice(if include { b"+sr " } else { b"-sr " });
        plain_rules.extend_from_slice(if include { b"+ " } else { b"- " });
        for out in [&mut rules, &mut plain_rules] {
            out.extend_from_slice(&pattern);
            out.push(0);
        }
    };
    for g in &gone {
        rule(true, Filter::rsync_anchored(g, false));
    }
    for d in pruned.iter().filter(|d| !d.as_os_str().is_empty()) {
        rule(true, Filter::rsync_anchored(d, false));
    }
    for d in &pruned {
        rule(false, Filter::rsync_anchored_children(d));
    }
    let mut list = Vec::new();
    for p in &parents {
        if p.as_os_str().is_empty() {
            list.push(b'.');
        } else {
            list.extend_from_slice(b"./");
            list.extend_from_slice(p.as_os_str().as_bytes());
        }
        list.push(0);
    }
    Some(DeletionPass {
        list,
        rules,
        plain_rules,
    })
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
        assert_eq!(split(&pass.list), [".", "./a/b"]);
        assert_eq!(
            split(&pass.rules),
            [
                "+sr /a/b/gone",
                "+sr /top",
                "+sr /a/b/w\\*ld",
                "+sr /a",
                "+sr /a/b",
                "-sr /*",
                "-sr /a/*",
                "-sr /a/b/*",
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

    /// Against the real rsync: the pass leaves what `rsync -a --delete` would, and touches
    /// nothing in the parents' other entries or below them.
    #[test]
    fn the_pass_deletes_exactly_the_gone_paths_with_real_rsync() {
        let Some(prog) = rsync() else {
            eprintln!("skipped: no rsync");
            return;
        };
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        let odd: &[&[u8]] = &[b"w*ld", b"[ab]", b"a\\b", b"nl\nx", b"-dash", b"\xff"];
        for d in ["a/b/keep", "a/b/sub", "other"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::write(src.join("a/b/sub/x"), "x").unwrap();
        fs::write(src.join("top-keep"), "k").unwrap();
        let st = Command::new(&prog)
            .args(["-a", "--delete"])
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", dst.display()))
            .status()
            .unwrap();
        assert!(st.success());
        // At the destination only: what the source deleted, and content the pass must not
        // look at (changed below a parent, not in the batch).
        fs::create_dir_all(dst.join("a/b/gone-dir/deep")).unwrap();
        fs::write(dst.join("a/b/gone-dir/deep/f"), "f").unwrap();
        fs::write(dst.join("a/b/gone-dir/deep/x.tmp"), "excluded").unwrap();
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
        // A sibling whose name the wildcard names would match, not deleted.
        fs::write(dst.join("a/b/wXld"), "stays").unwrap();
        let pass = plan(&gone).unwrap();
        let rules = t.path().join("rules");
        fs::write(&rules, &pass.rules).unwrap();
        // As the job would run it, with `[rsync] args` that change what excludes and empty
        // directories mean: the pass must not depend on them.
        let mut child = Command::new(&prog)
            .args([
                "-a",
                "--delete",
                "--exclude=*.tmp",
                "--delete-excluded",
                "-m",
            ])
            .args(["-r", "--ignore-missing-args", "--no-prune-empty-dirs"])
            .args(["--files-from=-", "--from0"])
            .arg(format!("--filter=merge {}", rules.display()))
            .arg("--")
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", dst.display()))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&pass.list).unwrap();
        assert!(child.wait().unwrap().success());
        let mut want = tree(&src);
        want.extend([
            p(b"a/b/sub/not-in-batch"),
            p(b"other/not-in-batch"),
            p(b"a/b/wXld"),
        ]);
        want.sort();
        assert_eq!(tree(&dst), want);
    }
}
