//! The C clsync's `%option%` macros: in an option's value, `%name%` is the value of option
//! `name` (`%label%` defaults to `nolabel`), `%%` is `%`, and a name without a value is
//! empty.
//!
//! The C program expanded them once, at start, so the import expands them in the values it
//! writes.

use std::collections::BTreeMap;

use super::Options;
use crate::import::Findings;

/// Expands `%option%` in option values with the options' values (`%%` is `%`); handler
/// arguments are left to [`super::template`], which expands their lower-case macros.
pub(super) fn expand_options(opts: &mut Options, findings: &mut Findings) {
    let snapshot = opts.last_values();
    for values in opts.values.values_mut() {
        for v in values.iter_mut() {
            if let Some(text) = &v.value
                && text.contains('%')
            {
                let (out, unknown) = expand(text, &snapshot);
                for u in unknown {
                    findings.warn(
                        &v.at,
                        format!("%{u}% has no value here; the C clsync made it empty, and so does the import"),
                    );
                }
                v.value = Some(out);
            }
        }
    }
}

/// `text` with `%name%` replaced by `values[name]` (`label` defaults to `nolabel`) and `%%`
/// by `%`; returns the names that had no value.
pub(super) fn expand(text: &str, values: &BTreeMap<&'static str, String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('%') {
            out.push('%');
            rest = a;
            continue;
        }
        match after.find('%') {
            Some(j) => {
                let name = &after[..j];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None if name == "label" => out.push_str("nolabel"),
                    None => unknown.push(name.to_string()),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros() {
        let mut v = BTreeMap::new();
        v.insert("label", "www".to_string());
        assert_eq!(expand("/run/c-%label%.pid", &v).0, "/run/c-www.pid");
        assert_eq!(expand("100%%", &v).0, "100%");
        let (out, unknown) = expand("/x/%nothing%/y", &v);
        assert_eq!(
            (out.as_str(), unknown),
            ("/x//y", vec!["nothing".to_string()])
        );
        assert_eq!(expand("%label%", &BTreeMap::new()).0, "nolabel");
    }
}
