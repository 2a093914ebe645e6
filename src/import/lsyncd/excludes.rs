//! lsyncd's exclude files (`excludeFrom`), read as lsyncd reads them at its start.
//!
//! One pattern a line; blank lines and lines starting with `#` are skipped; lines starting
//! with `+` (include rules, which lsyncd does not support) are skipped too; a leading `-`
//! (an rsync exclude rule) and the whitespace around it are removed. The patterns keep
//! their bytes: a pattern that is not UTF-8 cannot be written into a job file and is
//! returned as an error.

/// The patterns of an exclude file's contents, and the lines that were skipped as includes.
pub fn parse(text: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut patterns = Vec::new();
    let mut includes = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = line.trim_ascii_start();
        if trimmed.is_empty()
            || trimmed.starts_with(b"#")
            || trimmed.iter().all(u8::is_ascii_whitespace)
        {
            continue;
        }
        let to_text = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| format!("line {}: the pattern is not UTF-8", n + 1))
        };
        if trimmed.starts_with(b"+") {
            includes.push(to_text(trimmed)?);
            continue;
        }
        let p = trimmed
            .strip_prefix(b"-")
            .unwrap_or(trimmed)
            .trim_ascii_start();
        if !p.is_empty() {
            patterns.push(to_text(p)?);
        }
    }
    Ok((patterns, includes))
}

/// True when rsync's `--exclude-from` rules, which `exclude_from` follows, read `text` as
/// the same `patterns` lsyncd reads (and lsyncd skipped no include line): the job can then
/// name the file itself, and a change in it reaches the daemon at a reload.
pub fn same_for_rsync(text: &[u8], patterns: &[String], includes: &[String]) -> bool {
    includes.is_empty()
        && crate::rules::parse_exclude_file(text).is_ok_and(|lines| {
            lines.len() == patterns.len()
                && lines.iter().zip(patterns).all(|(l, p)| &l.pattern == p)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsyncd_rules() {
        let (p, inc) =
            parse(b"# comment\n\n*.tmp\n- /cache/\n  -  .git/\n+ keep\nlogs/*.log\r\n").unwrap();
        assert_eq!(p, ["*.tmp", "/cache/", ".git/", "logs/*.log"]);
        assert_eq!(inc, ["+ keep"]);
        assert!(parse(b"a\xff\n").is_err());
    }

    #[test]
    fn rsync_reads_plain_files_alike() {
        let same = |text: &[u8]| {
            let (p, inc) = parse(text).unwrap();
            same_for_rsync(text, &p, &inc)
        };
        assert!(same(b"# c\n*.o\n\n/cache/\r\n"));
        assert!(!same(b"-*.o\n"), "lsyncd strips the dash");
        assert!(!same(b"  *.o\n"), "lsyncd strips leading blanks");
        assert!(!same(b"+ keep\n*.o\n"), "lsyncd skips includes");
        assert!(!same(b"; c\n"), "a comment for rsync only");
    }
}
