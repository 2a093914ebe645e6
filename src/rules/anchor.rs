//! rsync patterns that name exactly one path (or the entries of one directory), for the
//! `--exclude-from` / `--include-from` lists handlers write: rsync must read them back as
//! that path and nothing else.

use std::path::Path;

use super::bytes_of;
use super::filter::Filter;

impl Filter {
    /// The rsync filter pattern that matches exactly `rel`: `/` + `rel` (+ `/` for a
    /// directory), for an `--exclude-from` list.
    ///
    /// rsync compares a pattern without any of `*?[` literally, so the path is only escaped
    /// when it contains one of those: then each of `* ? [ ] \` gets a backslash. A newline or
    /// carriage return (which would end the list line) becomes `?`, which may also match a
    /// sibling that differs only in that character.
    pub fn rsync_anchored(rel: &Path, is_dir: bool) -> Vec<u8> {
        let b = bytes_of(rel);
        let mut out = Vec::with_capacity(b.len() + 2);
        out.push(b'/');
        let wild = b
            .iter()
            .any(|c| matches!(c, b'*' | b'?' | b'[' | b'\n' | b'\r'));
        for &c in b {
            match c {
                b'\n' | b'\r' => out.push(b'?'),
                b'*' | b'?' | b'[' | b']' | b'\\' if wild => out.extend_from_slice(&[b'\\', c]),
                _ => out.push(c),
            }
        }
        if is_dir && !b.is_empty() {
            out.push(b'/');
        }
        out
    }

    /// The rsync filter pattern that matches every entry directly inside the directory
    /// `rel` (`/rel/*`, or `/*` for the root), `rel` escaped as a wildcard pattern.
    pub fn rsync_anchored_children(rel: &Path) -> Vec<u8> {
        let b = bytes_of(rel);
        let mut out = Vec::with_capacity(b.len() + 3);
        out.push(b'/');
        for &c in b {
            match c {
                b'\n' | b'\r' => out.push(b'?'),
                b'*' | b'?' | b'[' | b']' | b'\\' => out.extend_from_slice(&[b'\\', c]),
                _ => out.push(c),
            }
        }
        if !b.is_empty() {
            out.push(b'/');
        }
        out.push(b'*');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Glob;
    use crate::rules::test_support::*;

    #[test]
    fn rsync_anchored_escaping() {
        let table: &[(&[u8], bool, &[u8])] = &[
            (b"a/b", false, b"/a/b"),
            (b"a/b", true, b"/a/b/"),
            (b"", true, b"/"),
            (b"a*b", false, b"/a\\*b"),
            (b"q?/[x]\\y", true, b"/q\\?/\\[x\\]\\\\y/"),
            // no wildcard: rsync compares literally, so no escaping
            (b"a\\b]", false, b"/a\\b]"),
            (b"\xff name", false, b"/\xff name"),
            (b"a\nb\\", false, b"/a?b\\\\"),
        ];
        for &(rel, dir, want) in table {
            let got = Filter::rsync_anchored(p(rel), dir);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(rel));
        }
        // The anchored pattern, read back as a glob, matches exactly that path.
        for &(rel, _, _) in &table[..7] {
            if rel.is_empty() || rel.contains(&b'\n') {
                continue;
            }
            let pat = Filter::rsync_anchored(p(rel), false);
            let g = Glob::new(std::str::from_utf8(&pat).unwrap_or("/x")).unwrap();
            if pat.is_ascii() {
                assert!(
                    g.matches(p(rel), false),
                    "{:?}",
                    String::from_utf8_lossy(&pat)
                );
            }
        }
    }
}
