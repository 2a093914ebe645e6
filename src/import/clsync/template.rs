//! The C handler's argument template as clsync's `[command] args`.
//!
//! Lower-case macros (`%watch-dir%`, `%label%`: option values) are expanded now, as the C
//! program did at start; whole-word per-sync macros (`%INCLUDE-LIST%`, `%TYPE%`) become
//! clsync's placeholders where there is one, and what has none is left out with a warning,
//! as it was empty in the C clsync.

use std::collections::BTreeMap;

use super::macros::expand;
use crate::import::Findings;

/// The C clsync's default handler arguments of a command mode.
pub(super) fn default(mode: &str, label: &str, prefer_include: bool) -> Vec<String> {
    let v: Vec<&str> = match mode {
        "simple" => vec!["sync", label, "%EVENT-MASK%", "%INCLUDE-LIST%"],
        "direct" => vec!["%INCLUDE-LIST%", "%destination-dir%/"],
        "shell" => vec!["synclist", label, "%INCLUDE-LIST-PATH%"],
        _ if prefer_include => vec!["rsynclist", label, "%INCLUDE-LIST-PATH%"],
        _ => vec![
            "rsynclist",
            label,
            "%INCLUDE-LIST-PATH%",
            "%EXCLUDE-LIST-PATH%",
        ],
    };
    v.into_iter().map(String::from).collect()
}

/// The C template's words as clsync's `[command] args`: lower-case macros (option values)
/// are expanded now, as the C program did at start; per-sync macros become clsync's
/// placeholders where there is one.
pub(super) fn translate(
    template: &[String],
    mode: &str,
    values: &BTreeMap<&'static str, String>,
    at: &str,
    findings: &mut Findings,
) -> Vec<String> {
    let mut out = Vec::new();
    for word in template {
        if let Some(p) = placeholder(word, mode) {
            match p {
                Ok(p) => out.push(p.to_string()),
                Err(why) => findings.warn(at, format!("{word}: {why}")),
            }
            continue;
        }
        // --option=%MACRO%: two words, which programs that parse options take alike.
        if let Some((opt, rest)) = word.split_once('=')
            && opt.starts_with("--")
            && let Some(Ok(p)) = placeholder(rest, mode)
        {
            findings.note(
                at,
                format!(
                    "{word} became two arguments, {opt} {p}: clsync replaces only whole arguments"
                ),
            );
            out.push(opt.to_string());
            out.push(p.to_string());
            continue;
        }
        let (expanded, unknown) = expand(&lower_only(word), values);
        let expanded = expanded.replace('\u{0}', "%");
        for u in unknown {
            findings.warn(
                at,
                format!("{word}: %{u}% has no value; it was left out as the C clsync did"),
            );
        }
        if expanded.contains('%') && looks_like_placeholder(&expanded) {
            findings.warn(at, format!("{word}: a per-sync macro inside a longer argument has no equivalent; it is passed literally"));
        }
        out.push(expanded);
    }
    out
}

/// Protects upper-case macros from [`expand`] (as NUL-marked text).
fn lower_only(word: &str) -> String {
    let re = regex::Regex::new(r"%([A-Z][A-Z-]*)%").expect("valid regex");
    re.replace_all(word, "\u{0}$1\u{0}").into_owned()
}

fn looks_like_placeholder(s: &str) -> bool {
    regex::Regex::new(r"%[A-Za-z0-9_-]+%")
        .expect("valid regex")
        .is_match(s)
}

/// A whole-word C macro as clsync's placeholder; `None` when `word` is not one.
fn placeholder(word: &str, mode: &str) -> Option<Result<&'static str, &'static str>> {
    Some(match word {
        "%INCLUDE-LIST%" if mode == "simple" => Ok("%PATH%"),
        "%INCLUDE-LIST%" => Ok("%INCLUDE-LIST%"),
        "%INCLUDE-LIST-PATH%" => Ok("%INCLUDE-LIST-PATH%"),
        "%EXCLUDE-LIST-PATH%" => Ok("%EXCLUDE-LIST-PATH%"),
        "%RSYNC-ARGS%" => Ok("%RSYNC-ARGS%"),
        "%TYPE%" => Ok("%TYPE%"),
        "%EVENT-MASK%" if mode == "simple" => Ok("%EVENT%"),
        "%EVENT-MASK%" => Err("there is no event mask outside mode simple; left out"),
        "%PID%" => Err("clsync passes no process id; left out"),
        w if w.starts_with('%')
            && w.ends_with('%')
            && w.len() > 2
            && w[1..2].chars().all(|c| c.is_ascii_uppercase()) =>
        {
            Err("an unknown per-sync macro, empty in the C clsync; left out")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        v.insert("label", "www".into());
        v.insert("watch-dir", "/src".into());
        v.insert("destination-dir", "/dst".into());
        v
    }

    #[test]
    fn templates() {
        let mut f = Findings::default();
        let t: Vec<String> = ["sync", "%label%", "%EVENT-MASK%", "%INCLUDE-LIST%"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            translate(&t, "simple", &values(), "x", &mut f),
            ["sync", "www", "%EVENT%", "%PATH%"]
        );
        let t: Vec<String> = [
            "-a",
            "--include-from=%INCLUDE-LIST-PATH%",
            "%watch-dir%/",
            "%PID%",
            "x%TYPE%",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            translate(&t, "direct", &values(), "x", &mut f),
            [
                "-a",
                "--include-from",
                "%INCLUDE-LIST-PATH%",
                "/src/",
                "x%TYPE%"
            ]
        );
        assert!(f.lost_something());
    }
}
