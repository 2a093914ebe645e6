//! The job's rsync exclude patterns as rclone filter rules, and paths as rclone patterns
//! that match exactly that path.
//!
//! rclone's globs look like rsync's (`*`, `**`, `?`, `[...]`, `\` escapes, a leading `/`
//! anchors, otherwise the end of the path is matched) but differ in three ways this
//! translation covers: a pattern without a trailing `/` matches only files in rclone (rsync:
//! files and directories, so a second, directory rule `P/` is added), `{a,b}` is an
//! alternation in rclone (literal in rsync: escaped), and a class negates with `[^` only
//! (rsync's `[!` is rewritten). What has no rclone equivalent (`***` other than as a final
//! `/***`, `[:class:]` names) is refused, so that `clsync check` says so at the pattern.
//!
//! Filter files are read line by line, with leading and trailing white space trimmed: a
//! name holding a line break cannot be written at all ([`line_safe`]), and white space in a
//! name is written as a one-character class so that trimming cannot reach it.
//!
//! Names in lists and rules are rclone's *standard* names ([`standard`]): rclone writes
//! the control characters of a name as the symbols `␁`…`␟`, `␡` (U+2401–U+241F, U+2421),
//! and a name that holds one of those symbols itself with rclone's quote `‛` (U+201B)
//! before it. (A name holding `‛` itself is beyond rclone 1.60, whose local
//! backend then fails even a full sync.)

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// rclone filter lines for one entry of `exclude`, in order; or why it has no translation.
pub fn translate_exclude(pattern: &str) -> Result<Vec<String>, String> {
    let (sign, pat) = match pattern.strip_prefix("+ ") {
        Some(p) => ('+', p),
        None => ('-', pattern.strip_prefix("- ").unwrap_or(pattern)),
    };
    if pat.contains(['\n', '\r']) {
        return Err("a pattern with a line break cannot be given to rclone".into());
    }
    let (body, dir_only) = match pat.strip_suffix("/***") {
        Some(b) => (b, false),
        None => match pat.strip_suffix('/') {
            Some(b) => (b, true),
            None => (pat, false),
        },
    };
    if body.contains("***") {
        return Err("rclone has no `***` (except as a final `/***`); write `dir` for a directory and its contents".into());
    }
    if body.contains("[:") {
        return Err("rclone has no `[:class:]` names in its patterns; list the characters".into());
    }
    let body = glob_body(body);
    if body.is_empty() || body == "/" {
        return Err("an empty pattern has no rclone equivalent".into());
    }
    let mut out = Vec::new();
    if !dir_only {
        out.push(format!("{sign} {body}"));
    }
    out.push(format!("{sign} {body}/"));
    Ok(out)
}

/// `body` with rsync-only spellings made rclone's: literal braces, `[!` as `[^`, white
/// space as classes.
fn glob_body(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    let mut chars = body.chars().peekable();
    let mut prev_open = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '!' if prev_open => out.push('^'),
            c if c.is_whitespace() => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
        prev_open = c == '[';
    }
    out
}

/// True when rclone can read `rel` back from a list or filter file as it is: no line
/// break (`\n` ends a line, a final `\r` is dropped with it).
pub fn line_safe(rel: &Path) -> bool {
    !rel.as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b'\n' | b'\r'))
}

/// True for the symbols rclone uses for control characters, which need its quote.
fn is_stand_in(c: char) -> bool {
    matches!(c, '\u{2401}'..='\u{241f}' | '\u{2421}')
}

/// `rel` as rclone's standard name: control characters as rclone's symbols for them
/// (`\x01` as `␁`, DEL as `␡`), those symbols themselves quoted, other bytes as they are
/// (bytes that are not UTF-8 included: rclone's local backend reads them back so).
pub fn standard(rel: &Path) -> Vec<u8> {
    let bytes = rel.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut buf = [0u8; 4];
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let c = match c {
                '\x01'..='\x1f' => char::from_u32(0x2400 + c as u32).unwrap_or(c),
                '\x7f' => '\u{2421}',
                c if is_stand_in(c) => {
                    out.extend_from_slice("\u{201b}".as_bytes());
                    c
                }
                c => c,
            };
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// `rel` as an anchored rclone glob matching that path only: its [`standard`] name with
/// every glob character escaped and white space as a one-character class. `rel` must be
/// [`line_safe`] and non-empty.
pub fn exact(rel: &Path) -> Vec<u8> {
    let name = standard(rel);
    let mut out = Vec::with_capacity(name.len() + 8);
    out.push(b'/');
    let mut buf = [0u8; 4];
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' | '*' | '?' | '[' | ']' | '{' | '}' => {
                    out.push(b'\\');
                    out.push(c as u8);
                }
                c if c.is_whitespace() => {
                    out.push(b'[');
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    out.push(b']');
                }
                c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_patterns_become_rclone_rules() {
        let t = |p: &str| translate_exclude(p).unwrap();
        assert_eq!(t("*.tmp"), ["- *.tmp", "- *.tmp/"]);
        assert_eq!(t("/build/"), ["- /build/"]);
        assert_eq!(t("cache/***"), ["- cache", "- cache/"]);
        assert_eq!(t("+ keep.log"), ["+ keep.log", "+ keep.log/"]);
        assert_eq!(t("- a b"), ["- a[ ]b", "- a[ ]b/"]);
        assert_eq!(t("{x}[!a]"), ["- \\{x\\}[^a]", "- \\{x\\}[^a]/"]);
        assert_eq!(t("a\\*"), ["- a\\*", "- a\\*/"]);
        assert!(translate_exclude("a/***/b").is_err());
        assert!(translate_exclude("[[:digit:]]").is_err());
    }

    #[test]
    fn exact_paths_escape_every_glob_character() {
        let e = |p: &[u8]| exact(Path::new(std::ffi::OsStr::from_bytes(p)));
        assert_eq!(e(b"a*b/c d "), b"/a\\*b/c[ ]d[ ]");
        assert_eq!(e(b"{x}[1]?\\"), b"/\\{x\\}\\[1\\]\\?\\\\");
        assert_eq!(e(b"bad\xff"), b"/bad\xff");
        assert_eq!(e("a\u{2401}".as_bytes()), "/a\u{201b}\u{2401}".as_bytes());
        let s = |p: &[u8]| standard(Path::new(std::ffi::OsStr::from_bytes(p)));
        let mut name = "x \u{2421}\x01".as_bytes().to_vec();
        name.push(0xff);
        let mut want = "x \u{201b}\u{2421}\u{2401}".as_bytes().to_vec();
        want.push(0xff);
        assert_eq!(s(&name), want);
        assert!(!line_safe(Path::new("a\nb")));
        assert!(line_safe(Path::new("a b")));
    }
}
