//! rsync's `--exclude-from` file: one pattern a line, read as rsync reads it.
//!
//! A line ends at `\n` or `\r` (so CRLF files work); empty lines are skipped, and so are
//! lines whose first byte is `#` or `;` (whole-line comments only: a `#` later in a line is
//! part of the pattern). Nothing else is trimmed: `"foo "` matches a name with a trailing
//! space, as with rsync. Each pattern is an rsync exclude pattern ([`Glob`]), `- ` / `+ `
//! prefixes included.

use super::glob::Glob;

/// One pattern of the file and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeLine {
    pub line: usize,
    pub pattern: String,
}

/// A line that is not a usable pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeLineError {
    pub line: usize,
    pub message: String,
}

/// The patterns of an exclude file, in order; or every bad line.
pub fn parse_exclude_file(text: &[u8]) -> Result<Vec<ExcludeLine>, Vec<ExcludeLineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    // A line number counts `\n`-terminated lines; a `\r` before the `\n` is an empty line
    // for rsync, not a new line for the person reading the file.
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        for part in line.split(|&b| b == b'\r') {
            if part.is_empty() || part[0] == b'#' || part[0] == b';' {
                continue;
            }
            let line = n + 1;
            let Ok(pattern) = std::str::from_utf8(part) else {
                errors.push(ExcludeLineError {
                    line,
                    message: "the pattern is not valid UTF-8".into(),
                });
                continue;
            };
            match Glob::new(pattern) {
                Ok(_) => out.push(ExcludeLine {
                    line,
                    pattern: pattern.to_string(),
                }),
                Err(e) => errors.push(ExcludeLineError {
                    line,
                    message: format!("exclude {pattern:?}: {e}"),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_blanks() {
        let text = b"# comment\n*.tmp\n\n; another\r\n/build/\r\n  spaced \nlast#not-a-comment";
        let got: Vec<(usize, String)> = parse_exclude_file(text)
            .unwrap()
            .into_iter()
            .map(|l| (l.line, l.pattern))
            .collect();
        assert_eq!(
            got,
            [
                (2, "*.tmp".to_string()),
                (5, "/build/".to_string()),
                (6, "  spaced ".to_string()),
                (7, "last#not-a-comment".to_string()),
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let errs = parse_exclude_file(b"ok\n[abc\n!\n\xff\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(
            errs[0].message.contains("unclosed character class"),
            "{errs:?}"
        );
    }
}
