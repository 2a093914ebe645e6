//! Splits one line of shell-like text into words, without expanding anything.
//!
//! For `clsync import clsync` given a whole line: a systemd `ExecStart=` line, a
//! `CLSYNC_ARGS='...'` line of `/etc/default/clsync`, or the options alone. Quoting is the
//! POSIX shell's (single quotes literal; in double quotes a backslash escapes `$`, `` ` ``,
//! `"`, `\` and a newline; elsewhere a backslash escapes the next character), which is also
//! what systemd accepts in practice. Nothing is expanded: a word with `$` is returned as it
//! is, and the caller says that a variable was not expanded.
//!
//! [`WordBuilder`] is the accumulation every such splitter of the import shares (this one,
//! the C clsync's handler arguments, rsync's remote-shell command): characters into the
//! current word, a quote opening a word that may stay empty, a separator closing it.

/// Words being split out of a text: the current word and those closed before it.
#[derive(Debug, Default)]
pub(crate) struct WordBuilder {
    words: Vec<String>,
    current: String,
    in_word: bool,
}

impl WordBuilder {
    /// Adds `c` to the current word (opening one if needed).
    pub(crate) fn push(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    /// Opens a word without adding to it: an opening quote makes a word even if it stays
    /// empty (`''`).
    pub(crate) fn open(&mut self) {
        self.in_word = true;
    }

    /// Closes the current word, if one is open (at a separator).
    pub(crate) fn close(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.current));
            self.in_word = false;
        }
    }

    /// The words, the last one closed.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.close();
        self.words
    }
}

/// The words of `line`, or why it cannot be split (an unterminated quote).
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = WordBuilder::default();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => words.close(),
            '\'' => {
                words.open();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => words.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                words.open();
                double_quoted(&mut chars, &mut words)?;
            }
            '\\' => {
                words.open();
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => words.push(c),
                    None => words.push('\\'),
                }
            }
            c => words.push(c),
        }
    }
    Ok(words.finish())
}

/// The rest of a double-quoted string, after its opening quote, into the current word.
fn double_quoted(
    chars: &mut impl Iterator<Item = char>,
    words: &mut WordBuilder,
) -> Result<(), String> {
    loop {
        match chars.next() {
            Some('"') => return Ok(()),
            Some('\\') => match chars.next() {
                Some(c @ ('$' | '`' | '"' | '\\')) => words.push(c),
                Some('\n') => {}
                Some(c) => {
                    words.push('\\');
                    words.push(c);
                }
                None => return Err("a double quote is not closed".into()),
            },
            Some(c) => words.push(c),
            None => return Err("a double quote is not closed".into()),
        }
    }
}

/// The C clsync's arguments in `words`: without a leading `ExecStart=` (and its `-@+!`
/// flags), `NAME=` of a shell assignment (`CLSYNC_ARGS=...`), and the program itself (a word
/// whose file name is `clsync`).
pub fn strip_invocation(mut words: Vec<String>) -> Vec<String> {
    if let Some(first) = words.first_mut() {
        if let Some(rest) = first.strip_prefix("ExecStart=") {
            *first = rest
                .trim_start_matches(['-', '@', '+', '!', ':'])
                .to_string();
        } else if let Some(eq) = first.find('=')
            && !first.starts_with('-')
            && first[..eq]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            // `CLSYNC_ARGS='-M ...'`: the value is the whole command line.
            let value = first[eq + 1..].to_string();
            let rest = words.split_off(1);
            let mut inner = split(&value).unwrap_or_else(|_| vec![value]);
            inner.extend(rest);
            words = inner;
        }
    }
    if words.first().is_some_and(|w| {
        !w.starts_with('-') && std::path::Path::new(w).file_name() == Some("clsync".as_ref())
    }) {
        words.remove(0);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(
            split(r#"-W '/a b' -D "/c \"d\" \$x" e\ f"#).unwrap(),
            s(&["-W", "/a b", "-D", "/c \"d\" $x", "e f"])
        );
        assert!(split("-W '/a").is_err());
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("a ''").unwrap(), s(&["a", ""]));
    }

    #[test]
    fn invocations() {
        let w = |line: &str| strip_invocation(split(line).unwrap());
        assert_eq!(
            w("ExecStart=/usr/bin/clsync -K %i $CLSYNC_ARGS_SYSTEMD"),
            s(&["-K", "%i", "$CLSYNC_ARGS_SYSTEMD"])
        );
        assert_eq!(w("ExecStart=-/usr/bin/clsync -K www"), s(&["-K", "www"]));
        assert_eq!(
            w("CLSYNC_ARGS='-M rsyncdirect --output=syslog -W /var/www -D /mnt/backup'"),
            s(&[
                "-M",
                "rsyncdirect",
                "--output=syslog",
                "-W",
                "/var/www",
                "-D",
                "/mnt/backup"
            ])
        );
        assert_eq!(w("clsync -M simple"), s(&["-M", "simple"]));
        assert_eq!(w("-M simple -W /x"), s(&["-M", "simple", "-W", "/x"]));
    }
}
