//! Path filtering: rsync-style exclude globs and clsync-style regex rule lines.
//!
//! A job's [`Filter`] combines two independent mechanisms:
//!
//! * **Exclude globs** (`exclude = [...]` in the configuration). The same strings are handed
//!   to rsync as `--exclude=PAT`, so [`Glob`] reimplements rsync's filter-pattern matching
//!   (anchoring, directory-only patterns, `*` / `**` / `***`, character classes, the
//!   old-style `- ` / `+ ` prefixes). Matching is byte-wise, like rsync's `wildmatch`.
//! * **Rule lines** (`rules = [...]` or a legacy rules file), see [`Rule`]: an action
//!   (`+`/`-`), an object-type letter and an extended regular expression matched against the
//!   relative path. Rules are evaluated per action ([`Action`]); see [`Filter::rules_allow`].
//!
//! All paths are relative to the job's source root, without a leading `/`; the root itself is
//! the empty path and is always allowed. Paths are bytes and never assumed to be UTF-8.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use regex::bytes::{Regex, RegexBuilder, RegexSet};

use crate::model::Kind;

/// The things a rule can permit or deny for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Descend into a directory during tree walks.
    Walk,
    /// Place a watch on a directory.
    Monitor,
    /// Hand the object to the sync handler.
    Sync,
}

impl Action {
    /// All actions, in bit order.
    pub const ALL: [Action; 3] = [Action::Walk, Action::Monitor, Action::Sync];

    fn bit(self) -> u8 {
        match self {
            Action::Walk => 1,
            Action::Monitor => 2,
            Action::Sync => 4,
        }
    }

    fn index(self) -> usize {
        match self {
            Action::Walk => 0,
            Action::Monitor => 1,
            Action::Sync => 2,
        }
    }

    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::Walk => "walk",
            Action::Monitor => "monitor",
            Action::Sync => "sync",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const ALL_ACTIONS: u8 = 7;

fn mask_of(actions: &[Action]) -> u8 {
    actions.iter().fold(0, |m, a| m | a.bit())
}

fn bytes_of(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Proper ancestors of `rel` other than the root, outermost first (`a/b/c` -> `a`, `a/b`).
fn proper_ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i > 0)
        .map(move |(i, _)| &rel[..i])
}

/// 1-based character column of byte offset `off` in `text` (invalid UTF-8 counts one per byte
/// sequence replaced).
fn column_at(text: &[u8], off: usize) -> usize {
    String::from_utf8_lossy(&text[..off.min(text.len())])
        .chars()
        .count()
        + 1
}

// ---------------------------------------------------------------------------------------------
// Exclude globs
// ---------------------------------------------------------------------------------------------

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
    pattern: String,
    include: bool,
    dir_only: bool,
    regex: Regex,
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
            pattern: pattern.to_owned(),
            include,
            dir_only,
            regex,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True for a `+ `-prefixed (include) pattern.
    pub fn is_include(&self) -> bool {
        self.include
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

/// Which exclude pattern is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exclude pattern #{index} {pattern:?}: {source}")]
pub struct FilterError {
    /// 0-based position in the exclude list.
    pub index: usize,
    pub pattern: String,
    pub source: GlobError,
}

// ---------------------------------------------------------------------------------------------
// Rule lines
// ---------------------------------------------------------------------------------------------

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

    /// The canonical (lower-case) letter.
    pub fn letter(self) -> char {
        match self {
            RuleType::File => 'f',
            RuleType::Dir => 'd',
            RuleType::Walk => 'w',
            RuleType::Monitor => 'm',
            RuleType::Sync => 's',
            RuleType::Any => '*',
        }
    }

    fn mask(self) -> u8 {
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
    permit: bool,
    rtype: RuleType,
    regex: Regex,
    text: String,
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

// ---------------------------------------------------------------------------------------------
// Filter
// ---------------------------------------------------------------------------------------------

/// The compiled filter of one job.
#[derive(Debug, Default)]
pub struct Filter {
    raw: Vec<String>,
    globs: Vec<Glob>,
    /// All glob regexes, for a single pass per query; `None` when there are no globs (or
    /// too many to combine).
    set: Option<RegexSet>,
    rules: Vec<Rule>,
}

/// Per-action outcome of a rule scan: `Some((permit, rule index))` or `None` (undecided).
type Decisions = [Option<(bool, usize)>; 3];

/// What decided an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The root is always allowed.
    Root,
    /// An exclude pattern matched (0-based index into the exclude list).
    Excluded { index: usize, pattern: String },
    /// A `+ ` include pattern matched first.
    Included { index: usize, pattern: String },
    /// A rule decided `action` (0-based index into the rule list).
    Rule {
        index: usize,
        text: String,
        action: Action,
        permit: bool,
    },
    /// Nothing matched: allowed by default.
    Default,
}

/// The answer of [`Filter::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The verdict of [`Filter::allows_path`].
    pub allowed: bool,
    /// The path whose check decided: the queried path, or the ancestor directory that blocks it.
    pub decided_at: PathBuf,
    /// True when `decided_at` is a proper ancestor of the queried path.
    pub by_ancestor: bool,
    pub reason: Reason,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verdict}")?;
        if self.by_ancestor {
            write!(f, " (ancestor directory {:?})", self.decided_at.display())?;
        }
        match &self.reason {
            Reason::Root => f.write_str(": the root is always included"),
            Reason::Excluded { index, pattern } => {
                write!(f, ": exclude pattern #{index} {pattern:?} matches")
            }
            Reason::Included { index, pattern } => {
                write!(f, ": include pattern #{index} {pattern:?} matches")
            }
            Reason::Rule {
                index,
                text,
                action,
                permit,
            } => {
                let what = if *permit { "permits" } else { "denies" };
                write!(f, ": rule #{index} {text:?} {what} {action}")
            }
            Reason::Default => f.write_str(": no exclude pattern or rule matches"),
        }
    }
}

impl Filter {
    /// A filter that lets everything through.
    pub fn allow_all() -> Filter {
        Filter::default()
    }

    /// Compiles the exclude patterns (rsync syntax) and takes the parsed rules.
    pub fn new(excludes: &[String], rules: Vec<Rule>) -> Result<Filter, FilterError> {
        let globs = excludes
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                Glob::new(pattern).map_err(|source| FilterError {
                    index,
                    pattern: pattern.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One pass over all globs per query; if the combined set is too big for the engine,
        // fall back to trying the globs one by one.
        let set = if globs.is_empty() {
            None
        } else {
            RegexSet::new(globs.iter().map(|g| g.regex.as_str())).ok()
        };
        Ok(Filter {
            raw: excludes.to_vec(),
            globs,
            set,
            rules,
        })
    }

    /// True when there are regex rules (exclude globs alone don't count).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The raw exclude patterns, to pass to rsync as `--exclude=`.
    pub fn excludes(&self) -> &[String] {
        &self.raw
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of the first glob that decides `rel` itself (exclude or include), if any.
    fn glob_decider(&self, rel: &[u8], is_dir: bool) -> Option<usize> {
        if rel.is_empty() {
            return None;
        }
        let applies = |i: &usize| is_dir || !self.globs[*i].dir_only;
        match &self.set {
            Some(set) if !set.is_match(rel) => None,
            Some(set) => set.matches(rel).iter().find(applies),
            None => (0..self.globs.len())
                .filter(applies)
                .find(|&i| self.globs[i].regex.is_match(rel)),
        }
    }

    fn excluded_bytes(&self, rel: &[u8], is_dir: bool) -> bool {
        self.glob_decider(rel, is_dir)
            .is_some_and(|i| !self.globs[i].include)
    }

    /// Is `rel` itself excluded by the exclude patterns (ancestors not consulted)?
    pub fn is_excluded(&self, rel: &Path, kind: Kind) -> bool {
        self.excluded_bytes(bytes_of(rel), kind == Kind::Dir)
    }

    /// Is `rel` excluded by the exclude patterns, itself or through an excluded ancestor
    /// directory (rsync does not descend into excluded directories)?
    pub fn is_excluded_with_ancestors(&self, rel: &Path, kind: Kind) -> bool {
        let b = bytes_of(rel);
        proper_ancestors(b).any(|a| self.excluded_bytes(a, true))
            || self.excluded_bytes(b, kind == Kind::Dir)
    }

    fn decide(&self, rel: &[u8], kind: Kind, wanted: u8) -> Decisions {
        let mut out: Decisions = [None; 3];
        let mut open = wanted;
        for (index, rule) in self.rules.iter().enumerate() {
            if open == 0 {
                break;
            }
            let hit = rule.rtype.mask() & open;
            if hit == 0 || !rule.rtype.applies_to(kind) || !rule.regex.is_match(rel) {
                continue;
            }
            for a in Action::ALL {
                if hit & a.bit() != 0 {
                    out[a.index()] = Some((rule.permit, index));
                }
            }
            open &= !hit;
        }
        out
    }

    fn rules_allow_mask(&self, rel: &[u8], kind: Kind, wanted: u8) -> bool {
        rel.is_empty()
            || self
                .decide(rel, kind, wanted)
                .iter()
                .all(|d| d.is_none_or(|(permit, _)| permit))
    }

    /// Do the rules allow all of `actions` for `rel` of `kind`? Rules are scanned in order;
    /// the first rule that applies to an action still undecided decides it; actions nobody
    /// decides are allowed. Exclude patterns are not consulted. The root is always allowed.
    pub fn rules_allow(&self, rel: &Path, kind: Kind, actions: &[Action]) -> bool {
        self.rules_allow_mask(bytes_of(rel), kind, mask_of(actions))
    }

    fn sync_mask(kind: Kind) -> u8 {
        match kind {
            Kind::Dir => Action::Walk.bit() | Action::Sync.bit(),
            _ => Action::Sync.bit(),
        }
    }

    fn allows_bytes(&self, rel: &[u8], kind: Kind) -> bool {
        rel.is_empty()
            || (!self.excluded_bytes(rel, kind == Kind::Dir)
                && self.rules_allow_mask(rel, kind, Self::sync_mask(kind)))
    }

    fn allows_dir_walk_bytes(&self, rel: &[u8]) -> bool {
        rel.is_empty()
            || (!self.excluded_bytes(rel, true)
                && self.rules_allow_mask(
                    rel,
                    Kind::Dir,
                    Action::Walk.bit() | Action::Monitor.bit(),
                ))
    }

    /// True when `rel` itself (not looking at its ancestors) is to be synced: no exclude
    /// pattern matches it and the rules allow Sync (for a directory: Walk and Sync).
    pub fn allows(&self, rel: &Path, kind: Kind) -> bool {
        self.allows_bytes(bytes_of(rel), kind)
    }

    /// True when the directory `rel` is to be descended into and watched: no exclude pattern
    /// matches it as a directory and the rules allow Walk and Monitor (ancestors not consulted).
    pub fn allows_dir_walk(&self, rel: &Path) -> bool {
        self.allows_dir_walk_bytes(bytes_of(rel))
    }

    /// What a walk asks of each child it meets: `rel` is synced and, if a directory, also
    /// descended into ([`Filter::allows`] and, for a directory, [`Filter::allows_dir_walk`]).
    pub fn allows_child(&self, rel: &Path, kind: Kind) -> bool {
        self.allows(rel, kind) && (kind != Kind::Dir || self.allows_dir_walk(rel))
    }

    /// Like [`Filter::allows`], but every proper ancestor directory must also pass
    /// [`Filter::allows_dir_walk`] and `allows(.., Kind::Dir)`.
    pub fn allows_path(&self, rel: &Path, kind: Kind) -> bool {
        let b = bytes_of(rel);
        proper_ancestors(b)
            .all(|a| self.allows_dir_walk_bytes(a) && self.allows_bytes(a, Kind::Dir))
            && self.allows_bytes(b, kind)
    }

    /// Explains the verdict of [`Filter::allows_path`]: which exclude pattern or rule decided.
    pub fn explain(&self, rel: &Path, kind: Kind) -> Explanation {
        let b = bytes_of(rel);
        if b.is_empty() {
            return Explanation {
                allowed: true,
                decided_at: PathBuf::new(),
                by_ancestor: false,
                reason: Reason::Root,
            };
        }
        for anc in proper_ancestors(b) {
            let wanted = ALL_ACTIONS;
            if let Some(reason) = self.denial(anc, Kind::Dir, wanted) {
                return Explanation {
                    allowed: false,
                    decided_at: path_of(anc).to_path_buf(),
                    by_ancestor: true,
                    reason,
                };
            }
        }
        let wanted = Self::sync_mask(kind);
        if let Some(reason) = self.denial(b, kind, wanted) {
            return Explanation {
                allowed: false,
                decided_at: rel.to_path_buf(),
                by_ancestor: false,
                reason,
            };
        }
        let decisions = self.decide(b, kind, wanted);
        let reason = [Action::Sync, Action::Walk]
            .into_iter()
            .find_map(|a| {
                decisions[a.index()].map(|(permit, index)| Reason::Rule {
                    index,
                    text: self.rules[index].text.clone(),
                    action: a,
                    permit,
                })
            })
            .or_else(|| {
                self.glob_decider(b, kind == Kind::Dir)
                    .map(|index| Reason::Included {
                        index,
                        pattern: self.raw[index].clone(),
                    })
            })
            .unwrap_or(Reason::Default);
        Explanation {
            allowed: true,
            decided_at: rel.to_path_buf(),
            by_ancestor: false,
            reason,
        }
    }

    /// Why `rel` of `kind` fails the checks for `wanted` actions, if it does.
    fn denial(&self, rel: &[u8], kind: Kind, wanted: u8) -> Option<Reason> {
        if let Some(index) = self.glob_decider(rel, kind == Kind::Dir)
            && !self.globs[index].include
        {
            return Some(Reason::Excluded {
                index,
                pattern: self.raw[index].clone(),
            });
        }
        let decisions = self.decide(rel, kind, wanted);
        Action::ALL
            .into_iter()
            .find_map(|a| match decisions[a.index()] {
                Some((false, index)) => Some(Reason::Rule {
                    index,
                    text: self.rules[index].text.clone(),
                    action: a,
                    permit: false,
                }),
                _ => None,
            })
    }

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
    use std::os::unix::ffi::OsStrExt;

    fn p(b: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(b))
    }

    fn filter(excludes: &[&str], rules: &[&str]) -> Filter {
        let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        let rules = parse_rule_list(rules).expect("rules parse");
        Filter::new(&excludes, rules).expect("filter builds")
    }

    const F: Kind = Kind::File;
    const D: Kind = Kind::Dir;
    const O: Kind = Kind::Other;

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

    #[test]
    fn ancestor_exclusion() {
        let f = filter(&["/cache/", "*.tmp", "build/", "+ keep.o", "*.o"], &[]);
        // (path, kind, self-only excluded, with-ancestors excluded)
        let table: &[(&[u8], Kind, bool, bool)] = &[
            (b"", D, false, false),
            (b"cache", D, true, true),
            (b"cache", F, false, false),
            (b"cache/a/b", F, false, true),
            (b"x/cache/a", F, false, false),
            (b"a.tmp", D, true, true),
            (b"a.tmp/inner", F, false, true),
            (b"src/build/x.c", F, false, true),
            (b"src/build", F, false, false),
            (b"keep.o", F, false, false),
            (b"other.o", F, true, true),
        ];
        for &(path, kind, self_ex, anc_ex) in table {
            let rel = p(path);
            assert_eq!(f.is_excluded(rel, kind), self_ex, "self {rel:?}");
            assert_eq!(
                f.is_excluded_with_ancestors(rel, kind),
                anc_ex,
                "anc {rel:?}"
            );
            assert_eq!(f.allows(rel, kind), !self_ex, "allows {rel:?}");
            assert_eq!(f.allows_path(rel, kind), !anc_ex, "allows_path {rel:?}");
        }
        // The one-by-one fallback (used when the combined set cannot be built) agrees.
        let mut single = filter(&["/cache/", "*.tmp", "build/", "+ keep.o", "*.o"], &[]);
        single.set = None;
        for &(path, kind, self_ex, anc_ex) in table {
            assert_eq!(single.is_excluded(p(path), kind), self_ex, "{:?}", p(path));
            assert_eq!(single.is_excluded_with_ancestors(p(path), kind), anc_ex);
        }
        assert!(f.allows_dir_walk(p(b"")));
        assert!(!f.allows_dir_walk(p(b"cache")));
        assert!(!f.allows_dir_walk(p(b"a/build")));
        assert!(f.allows_dir_walk(p(b"a")));
        assert!(!f.has_rules());
        assert_eq!(f.excludes().len(), 5);
    }

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

    #[test]
    fn first_match_wins_per_action() {
        let f = filter(&[], &["+w^a$", "-d^a$"]);
        let a = p(b"a");
        assert!(f.rules_allow(a, D, &[Action::Walk]));
        assert!(!f.rules_allow(a, D, &[Action::Sync]));
        assert!(!f.rules_allow(a, D, &[Action::Monitor]));
        assert!(!f.allows(a, D));
        assert!(!f.allows_dir_walk(a));

        // (rules, path, kind, walk, monitor, sync)
        type Row = (
            &'static [&'static str],
            &'static [u8],
            Kind,
            bool,
            bool,
            bool,
        );
        let table: &[Row] = &[
            (&["+w^a$", "-d^a$"], b"a", D, true, false, false),
            (&["-s^a$", "+*"], b"a", D, true, true, false),
            (&["-m", "+d"], b"a", D, true, false, true),
            (&["-f"], b"a", D, true, true, true),
            (&["-f"], b"a", F, false, false, false),
            (&["-d"], b"a", O, true, true, true),
            (&["-*"], b"a", O, false, false, false),
            (&["+f^a", "-*"], b"ab", F, true, true, true),
            (&["+f^a$", "-*"], b"ab", F, false, false, false),
            (&[], b"a", D, true, true, true),
            (&["-*"], b"", D, true, true, true),
        ];
        for &(rules, path, kind, walk, monitor, sync) in table {
            let f = filter(&[], rules);
            let rel = p(path);
            let got = (
                f.rules_allow(rel, kind, &[Action::Walk]),
                f.rules_allow(rel, kind, &[Action::Monitor]),
                f.rules_allow(rel, kind, &[Action::Sync]),
            );
            assert_eq!(got, (walk, monitor, sync), "{rules:?} {rel:?} {kind:?}");
        }
    }

    #[test]
    fn sync_only_these_files() {
        let f = filter(
            &[],
            &["+f^passwd$", "+d^$", "+d^ssh$", "+f^ssh/sshd_config$", "-*"],
        );
        assert!(f.has_rules());
        let table: &[(&[u8], Kind, bool)] = &[
            (b"", D, true),
            (b"passwd", F, true),
            (b"passwd", D, false),
            (b"shadow", F, false),
            (b"ssh", D, true),
            (b"ssh/sshd_config", F, true),
            (b"ssh/ssh_config", F, false),
            (b"ssh/sshd_config.d", D, false),
            (b"ssh/sshd_config.d/x", F, false),
            (b"sshx/sshd_config", F, false),
            (b"passwd-", F, false),
            (b"lnk", O, false),
        ];
        for &(path, kind, want) in table {
            assert_eq!(f.allows_path(p(path), kind), want, "{:?}", p(path));
            assert_eq!(f.explain(p(path), kind).allowed, want, "{:?}", p(path));
        }
        assert!(f.allows_dir_walk(p(b"ssh")));
        assert!(!f.allows_dir_walk(p(b"etc")));
    }

    #[test]
    fn allows_path_needs_walkable_ancestors() {
        // `-w` on a directory: it is synced itself but nothing below it.
        let f = filter(&[], &["-w^a$"]);
        assert!(f.allows(p(b"a"), F));
        assert!(!f.allows(p(b"a"), D)); // a dir needs Walk as well as Sync
        assert!(!f.allows_path(p(b"a/x"), F));
        assert!(f.allows(p(b"a/x"), F));
        // `-m`: not watched, so nothing below counts either.
        let f = filter(&[], &["-m^a$"]);
        assert!(f.allows(p(b"a"), D));
        assert!(!f.allows_dir_walk(p(b"a")));
        assert!(!f.allows_path(p(b"a/x"), F));
        assert!(f.allows_path(p(b"b/x"), F));
    }

    #[test]
    fn explain_reports_decider() {
        let f = filter(
            &["*.swp", "/cache/", "+ keep.o", "*.o"],
            &["-f\\.log$", "+d^ssh$", "-s^nosync$"],
        );
        // (path, kind, allowed, decided_at, reason)
        let table: Vec<(&[u8], Kind, bool, &str, Reason)> = vec![
            (b"", D, true, "", Reason::Root),
            (
                b"a.swp",
                F,
                false,
                "a.swp",
                Reason::Excluded {
                    index: 0,
                    pattern: "*.swp".into(),
                },
            ),
            (
                b"cache/x",
                F,
                false,
                "cache",
                Reason::Excluded {
                    index: 1,
                    pattern: "/cache/".into(),
                },
            ),
            (
                b"keep.o",
                F,
                true,
                "keep.o",
                Reason::Included {
                    index: 2,
                    pattern: "+ keep.o".into(),
                },
            ),
            (
                b"d/x.log",
                F,
                false,
                "d/x.log",
                Reason::Rule {
                    index: 0,
                    text: "-f\\.log$".into(),
                    action: Action::Sync,
                    permit: false,
                },
            ),
            (
                b"ssh",
                D,
                true,
                "ssh",
                Reason::Rule {
                    index: 1,
                    text: "+d^ssh$".into(),
                    action: Action::Sync,
                    permit: true,
                },
            ),
            (
                b"nosync/a",
                F,
                false,
                "nosync",
                Reason::Rule {
                    index: 2,
                    text: "-s^nosync$".into(),
                    action: Action::Sync,
                    permit: false,
                },
            ),
            (b"plain", F, true, "plain", Reason::Default),
        ];
        for (path, kind, allowed, at, reason) in table {
            let e = f.explain(p(path), kind);
            assert_eq!(e.allowed, allowed, "{:?}", p(path));
            assert_eq!(e.allowed, f.allows_path(p(path), kind), "{:?}", p(path));
            assert_eq!(e.decided_at, Path::new(at), "{:?}", p(path));
            assert_eq!(
                e.by_ancestor,
                at != String::from_utf8_lossy(path),
                "{:?}",
                p(path)
            );
            assert_eq!(e.reason, reason, "{:?}", p(path));
            assert!(!e.to_string().is_empty());
        }
    }

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

    #[test]
    fn filter_is_send_sync_and_allow_all() {
        fn assert_send_sync<T: Send + Sync + fmt::Debug>() {}
        assert_send_sync::<Filter>();
        let f = Filter::allow_all();
        assert!(f.allows(p(b"x"), F) && f.allows_dir_walk(p(b"x")) && f.allows_path(p(b"a/b"), O));
        assert!(!f.has_rules() && f.excludes().is_empty());
    }

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

    fn rsync_copied(
        src: &Path,
        dst: &Path,
        args: &[Vec<u8>],
        tree: &[(Vec<u8>, Kind)],
    ) -> Vec<bool> {
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
}
