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

/// What kind of filesystem object a path is (from `lstat`, or guessed from an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, fifos, sockets, devices.
    Other,
}

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
            translate_wild(core, start, bytes, &mut re)?;
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
fn translate_wild(body: &[u8], base: usize, full: &[u8], re: &mut String) -> Result<(), GlobError> {
    let col = |i: usize| column_at(full, base + i);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'*' => {
                let mut j = i;
                while j < body.len() && body[j] == b'*' {
                    j += 1;
                }
                re.push_str(if j - i >= 2 { ".*" } else { "[^/]*" });
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
        if b == b'[' && body.get(i + 1) == Some(&b':') {
            if let Some(len) = body[i + 2..].windows(2).position(|w| w == b":]") {
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
        (!t.is_empty() && t.chars().all(|c| c == '^') && l.len() >= 4)
            .then(|| l.chars().take_while(|&c| c == ' ').count() - 4)
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
    /// All glob regexes, for a single pass per query; `None` when there are no globs.
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
        let set = if globs.is_empty() {
            None
        } else {
            let set =
                RegexSet::new(globs.iter().map(|g| g.regex.as_str())).map_err(|e| FilterError {
                    index: 0,
                    pattern: excludes[0].clone(),
                    source: GlobError::Regex(e.to_string()),
                })?;
            Some(set)
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
        let set = self.set.as_ref()?;
        if !set.is_match(rel) {
            return None;
        }
        set.matches(rel)
            .iter()
            .find(|&i| is_dir || !self.globs[i].dir_only)
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
        if let Some(index) = self.glob_decider(rel, kind == Kind::Dir) {
            if !self.globs[index].include {
                return Some(Reason::Excluded {
                    index,
                    pattern: self.raw[index].clone(),
                });
            }
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
}
