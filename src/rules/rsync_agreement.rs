//! Tests that compare the filter with the real rsync: rsync copies a tree of tricky names
//! with the same exclude patterns (or anchored lists), and the filter must agree path by
//! path. Skipped when rsync is not installed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::model::Kind;
use crate::rules::Filter;
use crate::rules::test_support::*;

/// A tree of tricky names for the rsync agreement tests: (relative path, kind).
/// Relative paths (bytes) and what each is.
type TestTree = Vec<(Vec<u8>, Kind)>;

fn rsync_tree() -> TestTree {
    let dirs: &[&[u8]] = &[
        b"a",
        b"a/b",
        b"tmp",
        b"x",
        b"x/tmp",
        b"c",
        b"c/d",
        b"c/d/tmp",
        b"foo",
        b"xfoo",
        b"xfoo/bar",
        b"q",
        b"q/r",
        b"cache",
        b"sub",
        b"sub/cache",
        b"sub/build",
        b"we\\ird",
        b"\xff",
        b"sp ace",
        b"\xc3\xa9",
        b"a.swp.d",
    ];
    let files: &[&[u8]] = &[
        b"a/b/c",
        b"tmp/x.o",
        b"x/tmp/y.o",
        b"c/d/tmp/z.o",
        b"foo/bar",
        b"xfoo/bar/f",
        b"q/r/s",
        b"qq",
        b"a.swp",
        b"sub/x.swp",
        b"build",
        b"sub/build/out.o",
        b"a\\b",
        b"a*b",
        b"a]b",
        b"a[b",
        b"\xff/\xfe.swp",
        b"9lives",
        b"\xc3\xa9/\xc3\xa9t\xc3\xa9",
        b"keep.o",
        b"other.o",
        b"cache/data",
        b"sub/cache/data",
        b"sub/cache2",
        b"trail ",
        b"nl\nx",
        b"we\\ird/f",
        b"a.swp.d/in",
    ];
    let mut out: Vec<(Vec<u8>, Kind)> = Vec::new();
    out.extend(dirs.iter().map(|d| (d.to_vec(), Kind::Dir)));
    out.extend(files.iter().map(|f| (f.to_vec(), Kind::File)));
    out.push((b"lnk".to_vec(), Kind::Other));
    out.push((b"sub/cache3".to_vec(), Kind::Other));
    out
}

fn build_tree(root: &Path, tree: &[(Vec<u8>, Kind)]) {
    for (rel, kind) in tree {
        let path = root.join(p(rel));
        match kind {
            Kind::Dir => std::fs::create_dir_all(&path).unwrap(),
            Kind::File => std::fs::write(&path, b"x").unwrap(),
            Kind::Other => std::os::unix::fs::symlink("a", &path).unwrap(),
        }
    }
}

fn rsync_copied(src: &Path, dst: &Path, args: &[Vec<u8>], tree: &[(Vec<u8>, Kind)]) -> Vec<bool> {
    let _ = std::fs::remove_dir_all(dst);
    let mut src_arg = src.as_os_str().to_owned();
    src_arg.push("/");
    let mut dst_arg = dst.as_os_str().to_owned();
    dst_arg.push("/");
    let status = std::process::Command::new("rsync")
        .arg("-a")
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .arg(src_arg)
        .arg(dst_arg)
        .status()
        .expect("run rsync");
    assert!(status.success(), "rsync failed for {args:?}");
    tree.iter()
        .map(|(rel, _)| std::fs::symlink_metadata(dst.join(p(rel))).is_ok())
        .collect()
}

fn have_rsync() -> bool {
    std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A temp dir whose `src` holds [`rsync_tree`]; `None` (skipped) without rsync.
fn rsync_fixture() -> Option<(tempfile::TempDir, TestTree)> {
    if !have_rsync() {
        eprintln!("rsync not installed; skipping");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = rsync_tree();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    build_tree(&tmp.path().join("src"), &tree);
    Some((tmp, tree))
}

#[test]
fn globs_agree_with_real_rsync() {
    let Some((tmp, tree)) = rsync_fixture() else {
        return;
    };
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));

    let lists: &[&[&str]] = &[
        &[],
        &["*.swp"],
        &["/cache/"],
        &["cache/"],
        &["cache"],
        &["build/"],
        &["build"],
        &["**/tmp/*.o"],
        &["/**/tmp/*.o"],
        &["**/foo"],
        &["**/a/b/c"],
        &["**tmp/*.o"],
        &["*/**/x.o"],
        &["tmp/*.o"],
        &["foo/bar"],
        &["b/c"],
        &["r/s"],
        &["/a/**/c"],
        &["a/**"],
        &["/q/***"],
        &["q/***"],
        &["**c"],
        &["[ab]*"],
        &["[!a-z]*"],
        &["[^a-z]?"],
        &["[[:digit:]]*"],
        &["a\\*b"],
        &["a\\b"],
        &["a]b"],
        &["a[[]b"],
        &["?"],
        &["*"],
        &["/*"],
        &["*/"],
        &["*/*/*"],
        &["**"],
        &["/sub/*/"],
        &["- tmp"],
        &["lnk/"],
        &["lnk"],
        &["cache*"],
        &["trail "],
        &["nl?x"],
        &["é*"],
        &["*.swp.d/"],
        &["[]a]*"],
        &["a/b/"],
        &["/a/b/***"],
        &["***"],
        &["/***"],
        &["*.swp/"],
        &["a.swp*"],
        &["\\*"],
        &["?*/*"],
        &["/sub/cache?"],
        &["x/**/y.o"],
        &["**/"],
        &["+ keep.o", "*.o"],
        &["+ sub/", "/*/"],
        &["/tmp/", "/c/d", "x/tmp/"],
    ];
    for &list in lists {
        let excludes: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let f = Filter::new(&excludes, vec![]).unwrap();
        let args: Vec<Vec<u8>> = list
            .iter()
            .map(|s| format!("--exclude={s}").into_bytes())
            .collect();
        let copied = rsync_copied(&src, &dst, &args, &tree);
        for ((rel, kind), copied) in tree.iter().zip(copied) {
            assert_eq!(
                f.allows_path(p(rel), *kind),
                copied,
                "excludes {list:?}, path {:?} ({kind:?}): rsync copied={copied}",
                String::from_utf8_lossy(rel)
            );
        }
    }
}

#[test]
fn rsync_anchored_agrees_with_real_rsync() {
    let Some((tmp, tree)) = rsync_fixture() else {
        return;
    };
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let denied: &[(&[u8], bool)] = &[
        (b"a\\b", false),
        (b"a*b", false),
        (b"a]b", false),
        (b"a[b", false),
        (b"we\\ird", true),
        (b"\xff", true),
        (b"trail ", false),
        (b"nl\nx", false),
        (b"sub/cache", true),
        (b"\xc3\xa9/\xc3\xa9t\xc3\xa9", false),
    ];
    let mut list = Vec::new();
    for &(rel, dir) in denied {
        list.extend(Filter::rsync_anchored(p(rel), dir));
        list.push(b'\n');
    }
    let list_path = tmp.path().join("exclude.list");
    std::fs::write(&list_path, &list).unwrap();
    let mut arg = b"--exclude-from=".to_vec();
    arg.extend(list_path.as_os_str().as_bytes());
    let copied = rsync_copied(&src, &dst, &[arg], &tree);
    for ((rel, _), copied) in tree.iter().zip(copied) {
        let gone = denied.iter().any(|&(d, _)| relpath_under(d, rel));
        assert_eq!(copied, !gone, "{:?}", String::from_utf8_lossy(rel));
    }
}

fn relpath_under(anc: &[u8], rel: &[u8]) -> bool {
    rel == anc || (rel.starts_with(anc) && rel.get(anc.len()) == Some(&b'/'))
}
