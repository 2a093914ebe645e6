//! clsync rule lines (`rules = [...]` or a legacy rules file): an action (`+`/`-`), an
//! object-type letter and an unanchored extended regular expression matched against the
//! relative path, as bytes.

use std::fmt;
use std::path::Path;

use regex::bytes::{Regex, RegexBuilder};

use super::action::{ALL_ACTIONS, Action};
use super::bytes_of;
use crate::model::Kind;

/// The object-type letter of a rule (second character, case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleType {
    /// `f`: regular files, all actions.
    File,
    /// `d`: directories, all actions.
    Dir,
    /// `w`: directories, walk only.
    Walk,
    /// `m`: directories, monitor only.
    Monitor,
    /// `s`: directories, sync only.
    Sync,
    /// `*`: any object, all actions.
    Any,
}

impl RuleType {
    fn from_char(c: char) -> Option<RuleType> {
        Some(match c.to_ascii_lowercase() {
            'f' => RuleType::File,
            'd' => RuleType::Dir,
            'w' => RuleType::Walk,
            'm' => RuleType::Monitor,
            's' => RuleType::Sync,
            '*' => RuleType::Any,
            _ => return None,
        })
    }

    pub(super) fn mask(self) -> u8 {
        match self {
            RuleType::Walk => Action::Walk.bit(),
            RuleType::Monitor => Action::Monitor.bit(),
            RuleType::Sync => Action::Sync.bit(),
            _ => ALL_ACTIONS,
        }
    }

    /// The actions a rule of this type decides.
    pub fn actions(self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.mask() & a.bit() != 0)
            .collect()
    }

    /// Does a rule of this type apply to objects of `kind`?
    pub fn applies_to(self, kind: Kind) -> bool {
        match self {
            RuleType::File => kind == Kind::File,
            RuleType::Any => true,
            _ => kind == Kind::Dir,
        }
    }
}

/// What is wrong with a rule line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleErrorKind {
    /// First character is not `+`, `-` or `#`.
    BadAction(char),
    /// The line has an action character but nothing after it.
    MissingType,
    /// Second character is not one of `f d w m s *`.
    BadType(char),
    /// The regular expression does not compile (message from the regex engine).
    BadRegex(String),
    /// The regular expression contains bytes that are not valid UTF-8 where they cannot be
    /// matched as raw bytes.
    InvalidUtf8,
}

impl fmt::Display for RuleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleErrorKind::BadAction(c) => {
                write!(
                    f,
                    "bad action {c:?} (expected '+', '-' or '#' for a comment)"
                )
            }
            RuleErrorKind::MissingType => {
                f.write_str("missing object type letter (expected one of f d w m s *)")
            }
            RuleErrorKind::BadType(c) => {
                write!(f, "bad object type {c:?} (expected one of f d w m s *)")
            }
            RuleErrorKind::BadRegex(m) => write!(f, "invalid regular expression: {m}"),
            RuleErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8 in regular expression"),
        }
    }
}

/// A rule that could not be parsed: where (line, 1-based character column) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// 1-based line in a rules file (or position in a rule list); `None` for a lone rule.
    pub line: Option<usize>,
    /// 1-based column, counted in characters of the rule line.
    pub column: usize,
    /// The rule line (lossily decoded if it was not UTF-8).
    pub text: String,
    pub kind: RuleErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}, ")?;
        }
        write!(
            f,
            "column {}: rule {:?}: {}",
            self.column, self.text, self.kind
        )
    }
}

/// One clsync rule line: `+`/`-`, a type letter, and an unanchored extended regex.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(super) permit: bool,
    pub(super) rtype: RuleType,
    pub(super) regex: Regex,
    pub(super) text: String,
}

/// Extracts (0-based char offset, message) from a regex syntax error's display text.
fn regex_error_position(msg: &str) -> (Option<usize>, String) {
    let lines: Vec<&str> = msg.lines().collect();
    let pos = lines.iter().find_map(|l| {
        let t = l.trim_start_matches(' ');
        if t.is_empty() || !t.chars().all(|c| c == '^') {
            return None;
        }
        // The engine indents the pattern and its caret line by 4 spaces.
        (l.len() - t.len()).checked_sub(4)
    });
    let text = lines
        .iter()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| msg.lines().last().unwrap_or(msg).trim().to_owned());
    (pos, text)
}

/// Rewrites a non-UTF-8 regex so that each invalid byte becomes a `\xNN` byte escape (the
/// regex is then compiled without Unicode, where such an escape matches that raw byte).
fn escape_invalid_bytes(mut rest: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let good = e.valid_up_to();
                let mut valid = std::str::from_utf8(&rest[..good]).unwrap_or_default();
                // An odd run of backslashes escapes the bad byte; `\xNN` is literal already.
                if (valid.len() - valid.trim_end_matches('\\').len()) % 2 == 1 {
                    valid = &valid[..valid.len() - 1];
                }
                out.push_str(valid);
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for &b in &rest[good..good + bad] {
                    out.push_str(&format!("\\x{b:02X}"));
                }
                rest = &rest[good + bad..];
            }
        }
    }
}

impl Rule {
    /// Parses one rule line. `Ok(None)` for comments (`#` first) and empty or whitespace-only
    /// lines. A trailing `\n` and/or `\r` is removed; nothing else is.
    pub fn parse(line: &str) -> Result<Option<Rule>, RuleError> {
        Rule::parse_bytes(line.as_bytes())
    }

    /// Like [`Rule::parse`], for a raw line. A regex that is not valid UTF-8 matches the same
    /// raw bytes in paths.
    pub fn parse_bytes(line: &[u8]) -> Result<Option<Rule>, RuleError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line[0] == b'#' {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(line).into_owned();
        let err = |column: usize, kind: RuleErrorKind| RuleError {
            line: None,
            column,
            text: text.clone(),
            kind,
        };
        let permit = match line[0] {
            b'+' => true,
            b'-' => false,
            _ => {
                let c = text.chars().next().unwrap_or('\u{FFFD}');
                return Err(err(1, RuleErrorKind::BadAction(c)));
            }
        };
        let Some(&type_byte) = line.get(1) else {
            return Err(err(2, RuleErrorKind::MissingType));
        };
        let rtype = RuleType::from_char(type_byte as char)
            .filter(|_| type_byte.is_ascii())
            .ok_or_else(|| {
                let c = text.chars().nth(1).unwrap_or('\u{FFFD}');
                err(2, RuleErrorKind::BadType(c))
            })?;
        let re_bytes = &line[2..];
        let regex = match std::str::from_utf8(re_bytes) {
            Ok(re) => {
                // Byte-oriented like POSIX regexec in the C locale: `.` matches any byte
                // (including newline), so non-UTF-8 names are not silently skipped. Fall back
                // to Unicode mode for patterns that need it (e.g. non-ASCII in a class).
                let build = |unicode: bool| {
                    RegexBuilder::new(re)
                        .unicode(unicode)
                        .dot_matches_new_line(true)
                        .build()
                };
                build(false).or_else(|_| build(true)).map_err(|e| {
                    let (pos, msg) = regex_error_position(&e.to_string());
                    err(3 + pos.unwrap_or(0), RuleErrorKind::BadRegex(msg))
                })?
            }
            Err(_) => {
                let escaped = escape_invalid_bytes(re_bytes);
                RegexBuilder::new(&escaped)
                    .unicode(false)
                    .dot_matches_new_line(true)
                    .build()
                    .map_err(|e| {
                        let (_, msg) = regex_error_position(&e.to_string());
                        err(3, RuleErrorKind::BadRegex(msg))
                    })?
            }
        };
        Ok(Some(Rule {
            permit,
            rtype,
            regex,
            text,
        }))
    }

    /// `+` (true) or `-` (false).
    pub fn permit(&self) -> bool {
        self.permit
    }

    pub fn rule_type(&self) -> RuleType {
        self.rtype
    }

    /// The rule line as written (without line terminator).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Does this rule apply to `rel` of `kind` (type and regex; actions not considered)?
    pub fn matches(&self, rel: &Path, kind: Kind) -> bool {
        self.rtype.applies_to(kind) && self.regex.is_match(bytes_of(rel))
    }
}

/// Parses a legacy rules file. Lines are separated by `\n`; a trailing `\r` is stripped; a
/// last line without newline is complete. All bad lines are reported, with 1-based line
/// numbers.
pub fn parse_rules_file(text: &[u8]) -> Result<Vec<Rule>, Vec<RuleError>> {
    collect_rules(text.split(|&b| b == b'\n'), Rule::parse_bytes)
}

/// Parses inline rule entries (`rules = [...]`); errors carry the 1-based entry number as
/// `line`.
pub fn parse_rule_list<S: AsRef<str>>(entries: &[S]) -> Result<Vec<Rule>, Vec<RuleError>> {
    collect_rules(
        entries.iter().map(|s| s.as_ref().as_bytes()),
        Rule::parse_bytes,
    )
}

fn collect_rules<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    parse: impl Fn(&[u8]) -> Result<Option<Rule>, RuleError>,
) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in lines.enumerate() {
        match parse(line) {
            Ok(Some(rule)) => rules.push(rule),
            Ok(None) => {}
            Err(mut e) => {
                e.line = Some(n + 1);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Filter;
    use crate::rules::test_support::*;

    #[test]
    fn rule_parsing_table() {
        // (line, Some((permit, type, text)) or None for skipped lines)
        type Row = (&'static str, Option<(bool, RuleType, &'static str)>);
        let table: &[Row] = &[
            ("", None),
            ("   \t", None),
            ("# comment", None),
            ("#", None),
            ("\r\n", None),
            ("-*", Some((false, RuleType::Any, "-*"))),
            ("+f\\.conf$", Some((true, RuleType::File, "+f\\.conf$"))),
            ("-D^proc$\r", Some((false, RuleType::Dir, "-D^proc$"))),
            ("+W^$\n", Some((true, RuleType::Walk, "+W^$"))),
            ("+m^a$", Some((true, RuleType::Monitor, "+m^a$"))),
            ("-S^a$\r\n", Some((false, RuleType::Sync, "-S^a$"))),
            ("+F", Some((true, RuleType::File, "+F"))),
        ];
        for &(line, want) in table {
            let got = Rule::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let got = got.map(|r| (r.permit(), r.rule_type(), r.text().to_owned()));
            let want = want.map(|(a, t, s)| (a, t, s.to_owned()));
            assert_eq!(got, want, "line {line:?}");
        }
        // The last character of a line without newline is kept: `-*` is a complete rule.
        let r = Rule::parse("-f^a.c").unwrap().unwrap();
        assert!(r.matches(p(b"a.c"), F));
        assert!(!r.matches(p(b"a.c"), D));
        // CR is not part of the regex.
        let r = Rule::parse("+f^x$\r").unwrap().unwrap();
        assert!(r.matches(p(b"x"), F));
        // Empty regex matches everything, including the root.
        let r = Rule::parse("-d").unwrap().unwrap();
        assert!(r.matches(p(b""), D) && r.matches(p(b"a/b"), D));
    }

    #[test]
    fn rule_errors_table() {
        // (line, column, kind discriminant check)
        type Row = (&'static str, usize, fn(&RuleErrorKind) -> bool);
        let table: &[Row] = &[
            ("x*", 1, |k| matches!(k, RuleErrorKind::BadAction('x'))),
            (" +f", 1, |k| matches!(k, RuleErrorKind::BadAction(' '))),
            ("é*", 1, |k| matches!(k, RuleErrorKind::BadAction('é'))),
            ("+", 2, |k| matches!(k, RuleErrorKind::MissingType)),
            ("+x^a$", 2, |k| matches!(k, RuleErrorKind::BadType('x'))),
            ("-é^a$", 2, |k| matches!(k, RuleErrorKind::BadType('é'))),
            ("+f(", 3, |k| matches!(k, RuleErrorKind::BadRegex(_))),
            ("+f[a", 3, |k| matches!(k, RuleErrorKind::BadRegex(_))),
            ("-d*a", 3, |k| matches!(k, RuleErrorKind::BadRegex(_))),
            ("-dabc)", 6, |k| matches!(k, RuleErrorKind::BadRegex(_))),
            ("-déf(", 5, |k| matches!(k, RuleErrorKind::BadRegex(_))),
        ];
        for &(line, column, check) in table {
            let e = Rule::parse(line)
                .err()
                .unwrap_or_else(|| panic!("{line:?} parsed"));
            assert_eq!(e.column, column, "column for {line:?}: {e}");
            assert!(check(&e.kind), "kind for {line:?}: {e:?}");
            assert_eq!(e.line, None);
            assert!(e.to_string().contains(&format!("column {column}")), "{e}");
            assert!(!e.to_string().contains('\n'), "one-line message: {e}");
        }
    }

    #[test]
    fn rules_file_collects_all_errors_with_lines() {
        let text = b"# header\n+f^ok$\nxbad\n\n+q^a$\r\n-f(\n-*";
        let errs = parse_rules_file(text).unwrap_err();
        let got: Vec<(Option<usize>, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, vec![(Some(3), 1), (Some(5), 2), (Some(6), 3)]);
        assert!(
            errs[1].to_string().starts_with("line 5, column 2"),
            "{}",
            errs[1]
        );
        assert!(!errs[1].text.ends_with('\r'));

        // A good file; the last line has no newline and is still complete.
        let rules = parse_rules_file(b"+f^a$\r\n# c\n\n-*").unwrap();
        let texts: Vec<&str> = rules.iter().map(Rule::text).collect();
        assert_eq!(texts, ["+f^a$", "-*"]);

        // Inline lists number their entries the same way.
        let errs = parse_rule_list(&["+f^a$", "?", "-z"]).unwrap_err();
        let got: Vec<(Option<usize>, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(got, vec![(Some(2), 1), (Some(3), 2)]);
    }

    #[test]
    fn non_utf8_rules_and_paths() {
        // A rules file with a raw byte in a regex matches that byte in paths.
        let rules = parse_rules_file(b"-f^caf\xe9$\n-f^x\\\xff$\n-f^tmp/.*\n").unwrap();
        let f = Filter::new(&[], rules).unwrap();
        assert!(!f.allows(p(b"caf\xe9"), F));
        assert!(f.allows(p(b"cafe"), F));
        assert!(!f.allows(p(b"x\xff"), F));
        // `.` matches any byte, including invalid UTF-8 and newline.
        assert!(!f.allows(p(b"tmp/\xff\xfe"), F));
        assert!(!f.allows(p(b"tmp/a\nb"), F));
        // A bad regex in a non-UTF-8 line is reported at its line.
        let errs = parse_rules_file(b"+f^ok$\n-f(\xff\n").unwrap_err();
        assert_eq!((errs[0].line, errs[0].column), (Some(2), 3));
        // UTF-8 regexes still work with non-ASCII classes.
        let r = Rule::parse("-f^[éè]t$").unwrap().unwrap();
        assert!(r.matches(p("ét".as_bytes()), F));
    }
}
