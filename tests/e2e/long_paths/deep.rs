//! Trees whose paths are longer than `PATH_MAX` (4,096 bytes): building them, and comparing
//! two of them. Plain `std::fs` calls, `rsync -a` and `diff -r` fail with `ENAMETOOLONG` on
//! such paths, so every access here goes through [`LongPath`], which opens the leading
//! directories one by one. Shared by the e2e tests (`long_paths.rs`) and the fault case
//! (`tests/faults/long_paths.rs`); it depends on nothing but std and the clsync library.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clsync::longpath::LongPath;

/// Bytes per component of a deep chain.
pub const NAME_LEN: usize = 200;
/// Components of the main deep chain: about 6,000 bytes below the root.
pub const DEPTH: usize = 30;
/// Linux `PATH_MAX`, including the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// `root/rel` as a usable path, whatever its length.
pub fn at(root: &Path, rel: &Path) -> LongPath {
    LongPath::new(root, rel)
}

/// Component `i` of a chain: `{tag}{i:03}` padded with `d` to [`NAME_LEN`] bytes.
pub fn component(tag: &str, i: usize) -> OsString {
    let head = format!("{tag}{i:03}");
    OsString::from(format!("{head}{}", "d".repeat(NAME_LEN - head.len())))
}

/// `depth` components of [`NAME_LEN`] bytes.
pub fn chain(tag: &str, depth: usize) -> PathBuf {
    (0..depth).map(|i| component(tag, i)).collect()
}

/// Creates `base/chain` below `root` one directory at a time (`base` must exist) and
/// returns `base/chain`.
pub fn mkdir_chain(root: &Path, base: &Path, chain: &Path) -> PathBuf {
    let mut rel = base.to_path_buf();
    for c in chain.components() {
        rel.push(c);
        mkdir(root, &rel);
    }
    rel
}

pub fn mkdir(root: &Path, rel: &Path) {
    fs::create_dir(at(root, rel)).unwrap_or_else(|e| panic!("mkdir {}: {e}", show(rel)));
}

pub fn write(root: &Path, rel: &Path, data: &[u8]) {
    fs::write(at(root, rel), data).unwrap_or_else(|e| panic!("write {}: {e}", show(rel)));
}

pub fn append(root: &Path, rel: &Path, data: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(at(root, rel))
        .unwrap_or_else(|e| panic!("open {}: {e}", show(rel)));
    f.write_all(data).unwrap();
}

pub fn read(root: &Path, rel: &Path) -> io::Result<Vec<u8>> {
    fs::read(at(root, rel))
}

pub fn remove_file(root: &Path, rel: &Path) {
    fs::remove_file(at(root, rel)).unwrap_or_else(|e| panic!("rm {}: {e}", show(rel)));
}

pub fn rename(root: &Path, from: &Path, to: &Path) {
    fs::rename(at(root, from), at(root, to))
        .unwrap_or_else(|e| panic!("mv {} {}: {e}", show(from), show(to)));
}

pub fn symlink(target: &Path, root: &Path, rel: &Path) {
    std::os::unix::fs::symlink(target, at(root, rel))
        .unwrap_or_else(|e| panic!("ln -s {}: {e}", show(rel)));
}

pub fn chmod(root: &Path, rel: &Path, mode: u32) {
    fs::set_permissions(at(root, rel), fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", show(rel)));
}

/// Whether `root/rel` exists (not following a final symlink).
pub fn exists(root: &Path, rel: &Path) -> bool {
    fs::symlink_metadata(at(root, rel)).is_ok()
}

/// A path for messages: short ones whole, long ones as their length and their end.
pub fn show(p: &Path) -> String {
    let b = p.as_os_str().as_bytes();
    if b.len() <= 200 {
        return format!("{:?}", p);
    }
    let tail = String::from_utf8_lossy(&b[b.len() - 150..]);
    format!("<{} bytes>...{:?}", b.len(), tail)
}

/// The names in directory `root/rel`.
fn names(root: &Path, rel: &Path) -> io::Result<BTreeSet<OsString>> {
    fs::read_dir(at(root, rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    File,
    Dir,
    Symlink,
    Other,
}

fn type_of(m: &fs::Metadata) -> Type {
    let t = m.file_type();
    if t.is_symlink() {
        Type::Symlink
    } else if t.is_dir() {
        Type::Dir
    } else if t.is_file() {
        Type::File
    } else {
        Type::Other
    }
}

/// Compares one entry present on both sides; pushes the differences.
fn compare(src: &Path, dst: &Path, rel: &Path, out: &mut Vec<String>) -> Option<Type> {
    let (sp, dp) = (at(src, rel), at(dst, rel));
    let sm = match fs::symlink_metadata(&sp) {
        Ok(m) => m,
        Err(e) => {
            out.push(format!("source {}: {e}", show(rel)));
            return None;
        }
    };
    let dm = match fs::symlink_metadata(&dp) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.push(format!("missing at the destination: {}", show(rel)));
            return None;
        }
        Err(e) => {
            out.push(format!("destination {}: {e}", show(rel)));
            return None;
        }
    };
    let (st, dt) = (type_of(&sm), type_of(&dm));
    if st != dt {
        out.push(format!("type {st:?} != {dt:?}: {}", show(rel)));
        return None;
    }
    if st != Type::Symlink && sm.mode() & 0o7777 != dm.mode() & 0o7777 {
        out.push(format!(
            "mode {:o} != {:o}: {}",
            sm.mode() & 0o7777,
            dm.mode() & 0o7777,
            show(rel)
        ));
    }
    match st {
        Type::File => {
            match (fs::read(&sp), fs::read(&dp)) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(a), Ok(b)) => out.push(format!(
                    "content differs ({} vs {} bytes): {}",
                    a.len(),
                    b.len(),
                    show(rel)
                )),
                (a, b) => out.push(format!(
                    "cannot read {}: {:?} / {:?}",
                    show(rel),
                    a.err(),
                    b.err()
                )),
            }
            if (sm.mtime(), sm.mtime_nsec()) != (dm.mtime(), dm.mtime_nsec()) {
                out.push(format!(
                    "mtime {}.{:09} != {}.{:09}: {}",
                    sm.mtime(),
                    sm.mtime_nsec(),
                    dm.mtime(),
                    dm.mtime_nsec(),
                    show(rel)
                ));
            }
        }
        Type::Symlink => match (fs::read_link(&sp), fs::read_link(&dp)) {
            (Ok(a), Ok(b)) if a == b => {}
            (a, b) => out.push(format!(
                "symlink target {} != {}: {}",
                a.map_or_else(|e| e.to_string(), |p| show(&p)),
                b.map_or_else(|e| e.to_string(), |p| show(&p)),
                show(rel)
            )),
        },
        Type::Dir | Type::Other => {}
    }
    Some(st)
}

/// The differences between the trees `src` and `dst` (empty: equal): entries missing or
/// extra at the destination, and for entries on both sides their type, permission bits,
/// file content and mtime, and symlink target. Anything that cannot be read is a
/// difference, never skipped: an unreadable tree does not compare equal to anything.
pub fn diff(src: &Path, dst: &Path) -> Vec<String> {
    diff_within(src, dst, usize::MAX)
}

/// [`diff`] for a destination that only has to hold the source's entries whose relative
/// path is at most `reach` bytes long: deeper entries may be missing there, but one that is
/// there must equal the source's, and nothing may be there that the source lacks.
pub fn diff_within(src: &Path, dst: &Path, reach: usize) -> Vec<String> {
    let mut out = Vec::new();
    let root = PathBuf::new();
    if compare(src, dst, &root, &mut out) != Some(Type::Dir) {
        if out.is_empty() {
            out.push("the roots are not directories".into());
        }
        return out;
    }
    let mut stack = vec![root];
    while let Some(rel) = stack.pop() {
        let s = match names(src, &rel) {
            Ok(n) => n,
            Err(e) => {
                out.push(format!("cannot list source {}: {e}", show(&rel)));
                continue;
            }
        };
        let d = match names(dst, &rel) {
            Ok(n) => n,
            Err(e) => {
                out.push(format!("cannot list destination {}: {e}", show(&rel)));
                continue;
            }
        };
        for name in d.difference(&s) {
            out.push(format!(
                "extra at the destination: {}",
                show(&rel.join(name))
            ));
        }
        for name in &s {
            let child = rel.join(name);
            if child.as_os_str().len() > reach && !d.contains(name) {
                continue;
            }
            if compare(src, dst, &child, &mut out) == Some(Type::Dir) {
                stack.push(child);
            }
        }
    }
    out
}

/// Every entry below `root` (relative paths, not following symlinks); panics on errors.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let n = names(root, &rel).unwrap_or_else(|e| panic!("list {}: {e}", show(&rel)));
        for name in n {
            let child = rel.join(name);
            let m = fs::symlink_metadata(at(root, &child))
                .unwrap_or_else(|e| panic!("lstat {}: {e}", show(&child)));
            if m.is_dir() {
                stack.push(child.clone());
            }
            all.push(child);
        }
    }
    all
}

/// The entries below `root` named `name`, however deep (unreadable directories skipped).
pub fn find_named(root: &Path, name: &OsStr) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(n) = names(root, &rel) else { continue };
        for entry in n {
            let child = rel.join(&entry);
            if entry == name {
                found.push(child.clone());
            }
            if fs::symlink_metadata(at(root, &child)).is_ok_and(|m| m.is_dir()) {
                stack.push(child);
            }
        }
    }
    found
}

/// The length in bytes of the longest relative path below `root`.
pub fn longest(root: &Path) -> usize {
    walk(root)
        .iter()
        .map(|p| p.as_os_str().len())
        .max()
        .unwrap_or(0)
}
