//! rsync exclude patterns (`exclude = [...]`), compiled to byte regexes.
//!
//! The same strings are handed to rsync as `--exclude=PAT`, so [`Glob`] reimplements rsync's
//! filter-pattern matching (anchoring, directory-only patterns, `*` / `**` / `***`, character
//! classes, the old-style `- ` / `+ ` prefixes). Matching is byte-wise, like rsync's
//! `wildmatch`; the rsync agreement tests check it against the real program.

use std::path::Path;

use regex::bytes::Regex;

use super::{bytes_of, column_at};

/// Why an exclude pattern could not be compiled. Columns are 1-based, in characters of the
/// pattern as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty pattern")]
    Empty,
    #[error("a lone \"!\" (clear the exclude list) is not supported")]
    ClearList,
    #[error("unclosed character class '[' at column {column}")]
    UnclosedClass { column: usize },
    #[error("unknown character class [:{name}:] at column {column}")]
    UnknownClass { name: String, column: usize },
    #[error("reversed range in character class at column {column}")]
    BadRange { column: usize },
    #[error("trailing backslash at column {column}")]
    TrailingBackslash { column: usize },
    #[error("cannot compile pattern: {0}")]
    Regex(String),
}

/// One compiled rsync filter pattern (as given to `--exclude=`).
#[derive(Debug, Clone)]
pub struct Glob {
    pub(super) include: bool,
    pub(super) dir_only: bool,
    pub(super) regex: Regex,
}

const POSIX_CLASSES: [&str; 12] = [
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

/// Appends a regex atom matching exactly byte `b` (the regex is compiled without Unicode).
fn push_byte(re: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() || b == b'_' {
        re.push(b as char);
    } else {
        re.push_str(&format!("\\x{b:02X}"));
    }
}

impl Glob {
    /// Compiles an rsync exclude pattern.
    ///
    /// Supported: leading `/` (anchored at the root), trailing `/` (directories only),
    /// `*`, `?`, `**`, trailing `/***`, `[...]` classes with `!`/`^` negation, ranges and
    /// `[:name:]` classes, backslash escapes, and the `- ` / `+ ` prefixes rsync accepts on
    /// `--exclude` (`+ ` makes the pattern an include: the first matching pattern decides).
    /// Like rsync, a pattern without any of `*?[` is compared literally (a backslash in it is
    /// an ordinary character).
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let bytes = pattern.as_bytes();
        if bytes.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern == "!" {
            return Err(GlobError::ClearList);
        }
        let mut start = 0;
        let mut include = false;
        if bytes.starts_with(b"- ") {
            start = 2;
        } else if bytes.starts_with(b"+ ") {
            start = 2;
            include = true;
        }
        let mut end = bytes.len();
        let mut dir_only = false;
        if end - start > 1 && bytes[end - 1] == b'/' {
            end -= 1;
            dir_only = true;
        }
        let anchored = start < end && bytes[start] == b'/';
        if anchored {
            start += 1;
        }
        if start >= end {
            return Err(GlobError::Empty);
        }
        let body = &bytes[start..end];

        let mut re = String::from("(?s-u)");
        re.push_str(if anchored { "^" } else { "(?:^|/)" });
        if body.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            let (core, all_below) = match body.strip_suffix(b"/***") {
                Some(core) => (core, true),
                None => (body, false),
            };
            translate_wild(core, anchored, start, bytes, &mut re)?;
            if all_below {
                re.push_str("(?:/.*)?");
            }
        } else {
            for &b in body {
                push_byte(&mut re, b);
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| GlobError::Regex(e.to_string()))?;
        Ok(Glob {
            include,
            dir_only,
            regex,
        })
    }

    /// True when the pattern had a trailing `/` and so only matches directories.
    pub fn dir_only(&self) -> bool {
        self.dir_only
    }

    /// Does the pattern match `rel` itself (ancestors are not looked at)? The root never matches.
    pub fn matches(&self, rel: &Path, is_dir: bool) -> bool {
        let b = bytes_of(rel);
        !b.is_empty() && (is_dir || !self.dir_only) && self.regex.is_match(b)
    }
}

/// Translates the wildcard body `body` (which starts at byte `base` of `full`) into `re`.
fn translate_wild(
    body: &[u8],
    anchored: bool,
    base: usize,
    full: &[u8],
    re: &mut String,
) -> Result<(), GlobError> {
    let col = |i: usize| column_at(full, base + i);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'*' => {
                let mut j = i;
                while j < body.len() && body[j] == b'*' {
                    j += 1;
                }
                if j - i >= 2 && i == 0 && !anchored && body.get(j) == Some(&b'/') {
                    // rsync matches an unanchored pattern as if the path had a leading `/`,
                    // so a leading `**/` may also match nothing (top-level names).
                    re.push_str("(?:.*/)?");
                    j += 1;
                } else {
                    re.push_str(if j - i >= 2 { ".*" } else { "[^/]*" });
                }
                i = j;
            }
            b'?' => {
                re.push_str("[^/]");
                i += 1;
            }
            b'\\' => {
                let Some(&next) = body.get(i + 1) else {
                    return Err(GlobError::TrailingBackslash { column: col(i) });
                };
                push_byte(re, next);
                i += 2;
            }
            b'[' => i = translate_class(body, i, &col, re)?,
            b => {
                push_byte(re, b);
                i += 1;
            }
        }
    }
    Ok(())
}

/// Reads one (possibly backslash-escaped) class member at `i`; returns it and the next index.
fn class_char(
    body: &[u8],
    i: usize,
    col: &dyn Fn(usize) -> usize,
) -> Result<(u8, usize), GlobError> {
    if body[i] == b'\\' {
        match body.get(i + 1) {
            Some(&b) => Ok((b, i + 2)),
            None => Err(GlobError::TrailingBackslash { column: col(i) }),
        }
    } else {
        Ok((body[i], i + 1))
    }
}

/// Translates the class opening at `open`; returns the index after its closing `]`.
fn translate_class(
    body: &[u8],
    open: usize,
    col: &dyn Fn(usize) -> usize,
    re: &mut String,
) -> Result<usize, GlobError> {
    let unclosed = || GlobError::UnclosedClass { column: col(open) };
    let mut i = open + 1;
    let negate = matches!(body.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut items = String::new();
    let mut first = true;
    loop {
        let Some(&b) = body.get(i) else {
            return Err(unclosed());
        };
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if b == b'['
            && body.get(i + 1) == Some(&b':')
            && let Some(len) = body[i + 2..].windows(2).position(|w| w == b":]")
        {
            let name = String::from_utf8_lossy(&body[i + 2..i + 2 + len]).into_owned();
            if !POSIX_CLASSES.contains(&name.as_str()) {
                return Err(GlobError::UnknownClass {
                    name,
                    column: col(i),
                });
            }
            items.push_str(&format!("[:{name}:]"));
            i += len + 4;
            continue;
        }
        let (lo, next) = class_char(body, i, col)?;
        if body.get(next) == Some(&b'-') && body.get(next + 1).is_some_and(|&c| c != b']') {
            let (hi, after) = class_char(body, next + 1, col)?;
            if hi < lo {
                return Err(GlobError::BadRange { column: col(i) });
            }
            items.push_str(&format!("\\x{lo:02X}-\\x{hi:02X}"));
            i = after;
        } else {
            items.push_str(&format!("\\x{lo:02X}"));
            i = next;
        }
    }
    if negate {
        re.push_str(&format!("[^/{items}]"));
    } else {
        re.push_str(&format!("[{items}&&[^/]]"));
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::rules::Filter;
    use crate::rules::test_support::*;

    #[test]
    fn glob_self_matching_table() {
        // (pattern, path, kind, expected match of the path itself)
        let table: &[(&str, &[u8], Kind, bool)] = &[
            // final-component patterns, any depth
            ("*.swp", b"a.swp", F, true),
            ("*.swp", b"x/y/a.swp", F, true),
            ("*.swp", b"a.swp/b", F, false),
            ("*.swp", b"a.swpx", F, false),
            ("core", b"core", F, true),
            ("core", b"src/core", D, true),
            ("core", b"src/xcore", F, false),
            ("core", b"core/x", F, false),
            // anchored
            ("/cache/", b"cache", D, true),
            ("/cache/", b"cache", F, false),
            ("/cache/", b"x/cache", D, false),
            ("/cache", b"cache", F, true),
            ("/a/b", b"a/b", F, true),
            ("/a/b", b"x/a/b", F, false),
            // unanchored with a slash: matched at the end, at a component boundary
            ("foo/bar", b"foo/bar", F, true),
            ("foo/bar", b"x/foo/bar", F, true),
            ("foo/bar", b"xfoo/bar", F, false),
            ("foo/bar", b"foo/bar/baz", F, false),
            ("tmp/*.o", b"tmp/x.o", F, true),
            ("tmp/*.o", b"a/tmp/x.o", F, true),
            ("tmp/*.o", b"a/xtmp/x.o", F, false),
            // dir-only
            ("build/", b"build", D, true),
            ("build/", b"build", F, false),
            ("build/", b"build", O, false),
            ("build/", b"a/build", D, true),
            // `*` does not cross `/`, `?` is one byte
            ("a*c", b"abc", F, true),
            ("a*c", b"a/c", F, false),
            ("/a*", b"a/b", F, false),
            ("/a*", b"abc", F, true),
            ("a?c", b"abc", F, true),
            ("a?c", b"ac", F, false),
            ("/a?c", b"a/c", F, false),
            // `**`
            ("**/tmp/*.o", b"x/tmp/y.o", F, true),
            ("**/tmp/*.o", b"c/d/tmp/z.o", F, true),
            ("**/tmp/*.o", b"tmp/x.o", F, true),
            ("**/tmp/*.o", b"xtmp/x.o", F, false),
            ("/**/tmp/*.o", b"tmp/x.o", F, false),
            ("/**/tmp/*.o", b"a/tmp/x.o", F, true),
            ("**/foo", b"foo", D, true),
            ("**/foo", b"xfoo", D, false),
            ("*/**/x.o", b"tmp/x.o", F, false),
            ("/a/**/c", b"a/b/c", F, true),
            ("/a/**/c", b"a/b/b/c", F, true),
            ("/a/**/c", b"a/c", F, false),
            ("/a/**", b"a/b/c", F, true),
            ("/a/**", b"a", D, false),
            ("**c", b"c", F, true),
            ("**c", b"a/b/c", F, true),
            ("x**", b"x/y/z", F, true),
            // `***`
            ("/q/***", b"q", D, true),
            ("/q/***", b"q/r/s", F, true),
            ("/q/***", b"qq", D, false),
            ("q/***", b"a/q/r", F, true),
            // classes
            ("[ab].txt", b"a.txt", F, true),
            ("[ab].txt", b"c.txt", F, false),
            ("[!ab].txt", b"c.txt", F, true),
            ("[^ab].txt", b"a.txt", F, false),
            ("[a-c]x", b"bx", F, true),
            ("[a-c]x", b"dx", F, false),
            ("[]a]", b"]", F, true),
            ("[a-]", b"-", F, true),
            ("[[:digit:]]*", b"9lives", F, true),
            ("[[:digit:]]*", b"lives", F, false),
            ("/x[!a]y", b"x/y", F, false),
            ("/x[/]y", b"x/y", F, false),
            // escapes (effective only in wildcard patterns, like rsync)
            ("a\\*b", b"a*b", F, true),
            ("a\\*b", b"axb", F, false),
            ("\\[x]*", b"[x]1", F, true),
            ("a\\b", b"a\\b", F, true),
            ("a\\b", b"ab", F, false),
            ("*\\?", b"what?", F, true),
            ("*\\?", b"whats", F, false),
            // literal metacharacters of the regex engine
            ("a.b", b"a.b", F, true),
            ("a.b", b"axb", F, false),
            ("(x)+", b"(x)+", F, true),
            // old-style prefixes accepted by `--exclude`
            ("- tmp", b"tmp", D, true),
            // non-UTF-8 names
            ("*.swp", b"\xff\xfe.swp", F, true),
            ("?", b"\xff", F, true),
            ("/é*", b"\xc3\xa9t\xe9", F, true),
            ("**", b"a/\xff/b", F, true),
        ];
        for &(pat, path, kind, want) in table {
            let g = Glob::new(pat).unwrap_or_else(|e| panic!("{pat:?}: {e}"));
            assert_eq!(
                g.matches(p(path), kind == D),
                want,
                "pattern {pat:?} path {:?} kind {kind:?}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn glob_errors_table() {
        let table: &[(&str, GlobError)] = &[
            ("", GlobError::Empty),
            ("/", GlobError::Empty),
            ("!", GlobError::ClearList),
            ("a[bc", GlobError::UnclosedClass { column: 2 }),
            ("/x/[", GlobError::UnclosedClass { column: 4 }),
            ("- é[", GlobError::UnclosedClass { column: 4 }),
            ("*\\", GlobError::TrailingBackslash { column: 2 }),
            ("[z-a]*", GlobError::BadRange { column: 2 }),
            (
                "[[:nope:]]*",
                GlobError::UnknownClass {
                    name: "nope".into(),
                    column: 2,
                },
            ),
        ];
        for (pat, want) in table {
            assert_eq!(Glob::new(pat).err().as_ref(), Some(want), "pattern {pat:?}");
        }
        let err = Filter::new(&["ok".into(), "bad[".into()], vec![]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.pattern, "bad[");
        assert!(err.to_string().contains("bad["), "{err}");
    }
}
