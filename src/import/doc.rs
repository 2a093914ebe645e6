//! A TOML file as an import writes it: keys in tables, with comments beside and between
//! them.
//!
//! Values are rendered by the `toml` crate, so every string (a path with quotes,
//! backslashes, newlines or any other character) comes out correctly escaped. Comments are
//! made safe: a character TOML does not allow in a comment (a control character, such as
//! a newline from a file name) is written as an escape, so that no text from the original
//! can end a comment and become a key. Names of keys and tables are this crate's own.

use std::fmt::Write as _;

/// One file: a header comment, then the top-level keys, then tables.
#[derive(Debug, Default, Clone)]
pub struct Doc {
    header: Vec<String>,
    /// Sections in the order first used; `""` is the top level.
    sections: Vec<Section>,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    Key {
        key: String,
        value: toml::Value,
        note: Option<String>,
    },
    Comment(String),
}

impl Doc {
    pub fn new() -> Doc {
        Doc::default()
    }

    /// A line of the comment at the top of the file.
    pub fn header(&mut self, line: impl Into<String>) {
        self.header.push(line.into());
    }

    fn section(&mut self, table: &str) -> &mut Section {
        if let Some(i) = self.sections.iter().position(|s| s.name == table) {
            return &mut self.sections[i];
        }
        // The top level comes first whatever the order of use.
        let s = Section {
            name: table.to_string(),
            items: Vec::new(),
        };
        if table.is_empty() {
            self.sections.insert(0, s);
            &mut self.sections[0]
        } else {
            self.sections.push(s);
            self.sections.last_mut().expect("just pushed")
        }
    }

    /// Sets `key` in `table` (`""`: top level), replacing an earlier value.
    pub fn set(&mut self, table: &str, key: &str, value: impl Into<toml::Value>) {
        self.set_noted(table, key, value, None::<String>);
    }

    /// Sets `key` with a comment at the end of its line.
    pub fn set_noted(
        &mut self,
        table: &str,
        key: &str,
        value: impl Into<toml::Value>,
        note: Option<impl Into<String>>,
    ) {
        let value = value.into();
        let note = note.map(Into::into);
        let s = self.section(table);
        for item in &mut s.items {
            if let Item::Key {
                key: k,
                value: v,
                note: n,
            } = item
                && k == key
            {
                *v = value;
                *n = note;
                return;
            }
        }
        s.items.push(Item::Key {
            key: key.to_string(),
            value,
            note,
        });
    }

    /// The value of `key` in `table`, if set.
    pub fn get(&self, table: &str, key: &str) -> Option<&toml::Value> {
        self.sections
            .iter()
            .filter(|s| s.name == table)
            .flat_map(|s| s.items.iter())
            .find_map(|i| match i {
                Item::Key { key: k, value, .. } if k == key => Some(value),
                _ => None,
            })
    }

    /// Appends strings to the array `key` of `table` (created empty if missing).
    pub fn push_strings(&mut self, table: &str, key: &str, more: &[String]) {
        let mut list: Vec<toml::Value> = match self.get(table, key) {
            Some(toml::Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        list.extend(more.iter().cloned().map(toml::Value::String));
        self.set(table, key, toml::Value::Array(list));
    }

    /// A comment line in `table`, after what is there so far.
    pub fn comment(&mut self, table: &str, text: impl Into<String>) {
        let text = text.into();
        self.section(table).items.push(Item::Comment(text));
    }

    /// A key that is not set but shown, commented out, with why: `# key = value  # why`.
    pub fn commented_key(
        &mut self,
        table: &str,
        key: &str,
        value: impl Into<toml::Value>,
        why: &str,
    ) {
        let line = format!("{key} = {}", render_value(&value.into()));
        self.comment(table, format!("{line}  # {why}"));
    }

    /// True when the file would hold no key (comments alone do not count).
    pub fn has_keys(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.items.iter().any(|i| matches!(i, Item::Key { .. })))
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            comment_lines(&mut out, h);
        }
        for s in &self.sections {
            if s.items.is_empty() {
                continue;
            }
            let keys = s.items.iter().any(|i| matches!(i, Item::Key { .. }));
            if !s.name.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                if keys {
                    let _ = writeln!(out, "[{}]", s.name);
                } else {
                    let _ = writeln!(out, "# [{}]", s.name);
                }
            } else if !self.header.is_empty() {
                out.push('\n');
            }
            for item in &s.items {
                match item {
                    Item::Key { key, value, note } => {
                        let _ = write!(out, "{key} = {}", render_value(value));
                        if let Some(n) = note {
                            let _ = write!(out, "  # {}", comment_safe(n));
                        }
                        out.push('\n');
                    }
                    Item::Comment(c) => comment_lines(&mut out, c),
                }
            }
        }
        out
    }
}

/// `# text` lines: one per line of `text` (our own line breaks), each made safe.
fn comment_lines(out: &mut String, text: &str) {
    for line in text.split('\n') {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {}", comment_safe(line));
        }
    }
}

/// A value as TOML writes it (strings escaped as needed).
pub fn render_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(render_value).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// `s` with what TOML forbids in a comment (control characters but tab) escaped.
pub fn comment_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_control() && c != '\t') || c == '\u{7f}' {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes from the original as text for a comment or a message: UTF-8 as is, anything else
/// escaped (`\xff`).
pub fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_parse_back() {
        let nasty = "/srv/a \"b\"\\c\nd\te\u{1}f'g\u{7f}ü";
        let mut d = Doc::new();
        d.header("imported from x\nsecond line");
        d.set("", "source", nasty);
        d.set_noted("", "destination", "/dst", Some("a note\nwith a newline"));
        d.push_strings("", "exclude", &["*.tmp".into(), nasty.into()]);
        d.set("rsync", "args", toml::Value::Array(vec![nasty.into()]));
        d.comment("", format!("lsyncd's {} had no equivalent", nasty));
        d.commented_key("", "delete", false, "not yet");
        let text = d.render();
        let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed["source"].as_str(), Some(nasty));
        assert_eq!(parsed["destination"].as_str(), Some("/dst"));
        assert_eq!(parsed["exclude"][1].as_str(), Some(nasty));
        assert_eq!(parsed["rsync"]["args"][0].as_str(), Some(nasty));
        // Comments stay comments: no key came from them.
        assert_eq!(parsed.len(), 4, "{text}");
        assert!(text.contains("# delete = false  # not yet"), "{text}");
    }

    #[test]
    fn replacing_a_key_keeps_one() {
        let mut d = Doc::new();
        d.set("", "delay", "1s");
        d.set("", "delay", "15s");
        let text = d.render();
        assert_eq!(text.matches("delay").count(), 1, "{text}");
        assert_eq!(d.get("", "delay").and_then(|v| v.as_str()), Some("15s"));
    }

    #[test]
    fn tables_without_keys_are_comments() {
        let mut d = Doc::new();
        d.set("", "source", "/a");
        d.comment("ssh", "nothing here");
        let text = d.render();
        assert!(text.contains("# [ssh]\n# nothing here"), "{text}");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert!(parsed.get("ssh").is_none());
    }
}
