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

/// `rel` as an anchored rclone glob matching that path only: every glob character escaped,
/// white space as a one-character class. `rel` must be [`line_safe`] and non-empty.
pub fn exact(rel: &Path) -> Vec<u8> {
    let bytes = rel.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.push(b'/');
    // Bytes that are not UTF-8 are kept: rclone's local backend reads such names the same way.
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' | '*' | '?' | '[' | ']' | '{' | '}' => {
                    out.push(b'\\');
                    out.push(c as u8);
                }
                c if c.is_whitespace() => {
                    out.push(b'[');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    out.push(b']');
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
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
        assert!(!line_safe(Path::new("a\nb")));
        assert!(line_safe(Path::new("a b")));
    }
}
