//! The C clsync's configuration file: a GLib key file of blocks (`[NAME]`) whose keys are
//! long option names.
//!
//! As the C program reads it: `#` starts a comment line, whitespace around a key and before
//! a value is dropped, a value's trailing whitespace is kept, the last assignment of a key
//! in a block wins. A block is chosen with `-K` (default `default`, which is otherwise
//! never read); after it, the block named by its `config-block-inherits`, and so on. A
//! value set on the command line, or by a block read earlier, is not replaced.

use std::collections::BTreeMap;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// The blocks of a file, each with its entries in file order.
#[derive(Debug, Default)]
pub struct KeyFile {
    pub blocks: BTreeMap<String, Vec<Entry>>,
}

impl KeyFile {
    pub fn parse(text: &str) -> Result<KeyFile, String> {
        let mut kf = KeyFile::default();
        let mut current: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if let Some(rest) = t.strip_prefix('[') {
                let name = rest
                    .trim_end()
                    .strip_suffix(']')
                    .ok_or(format!("line {line}: a group header must end with ]"))?;
                current = Some(name.to_string());
                kf.blocks.entry(name.to_string()).or_default();
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                return Err(format!(
                    "line {line}: expected KEY = VALUE, [BLOCK] or a # comment"
                ));
            };
            let Some(block) = &current else {
                return Err(format!("line {line}: a key before the first [BLOCK]"));
            };
            let entries = kf.blocks.get_mut(block).expect("block made above");
            let key = k.trim().to_string();
            let value = v.trim_start().to_string();
            entries.retain(|e| e.key != key);
            entries.push(Entry { key, value, line });
        }
        Ok(kf)
    }

    /// The chain of blocks read for `start`: itself, then its parents. An unknown block is
    /// empty (as in the C program); a loop ends the chain.
    pub fn chain(&self, start: &str) -> Vec<(&str, &[Entry])> {
        let mut out: Vec<(&str, &[Entry])> = Vec::new();
        let mut name = start.to_string();
        loop {
            if out.iter().any(|(n, _)| *n == name) {
                break;
            }
            let Some((key, entries)) = self.blocks.get_key_value(&name) else {
                break;
            };
            out.push((key.as_str(), entries.as_slice()));
            match entries.iter().find(|e| e.key == "config-block-inherits") {
                Some(e) => name = e.value.trim_end().to_string(),
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_inheritance() {
        let kf = KeyFile::parse(
            "# c\n[base]\nwatch-dir = /src \ndelay-sync=1\n\n[child]\n config-block-inherits = base\ndelay-sync = 15\n[loop]\nconfig-block-inherits = loop\n",
        )
        .unwrap();
        let chain = kf.chain("child");
        let names: Vec<&str> = chain.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["child", "base"]);
        assert_eq!(chain[1].1[0].value, "/src ", "trailing space kept");
        assert_eq!(chain[0].1[1].line, 8);
        assert_eq!(kf.chain("loop").len(), 1);
        assert!(kf.chain("nothing").is_empty());
        assert!(KeyFile::parse("x = 1\n").is_err());
    }
}
