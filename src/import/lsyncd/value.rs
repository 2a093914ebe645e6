//! Lua values as the import sees them, and lsyncd's inheritance of configuration tables.
//!
//! A `sync{}` argument is copied out of Lua when the call is made (lsyncd copies it then
//! too), into [`LValue`]s: strings stay bytes, functions keep where they were defined (or
//! which built-in stand-in they are), tables keep their identity and whether they are one
//! of the stand-ins for `default.rsync` and friends.
//!
//! [`Merged`] is the table lsyncd builds from a `sync{}` argument: the argument's own keys
//! first, then, depth first, those of the tables at its integer keys (its "parents"), then
//! those of `default` restricted to `default._merge`. A key already set is never replaced;
//! two tables under the same key are merged the same way, unless the inherited one says
//! `_merge = false`; a table with `_verbatim = true` (and `exitcodes`) keeps its integer keys
//! as keys instead of treating them as parents.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::import::doc::show_bytes;

#[derive(Debug, Clone)]
pub enum LValue {
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(Vec<u8>),
    Table(Rc<LTable>),
    Func(LFunc),
    /// Userdata, threads, a table met again inside itself: named only.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LKey {
    Int(i64),
    Str(Vec<u8>),
}

#[derive(Debug)]
pub struct LTable {
    /// `default.rsync`, `default.rsyncssh`, `default.direct`, `default`: the stand-in this is.
    pub standin: Option<&'static str>,
    /// In `pairs` order.
    pub entries: Vec<(LKey, LValue)>,
}

#[derive(Debug, Clone)]
pub struct LFunc {
    /// The stand-in function this is (`default.rsync.action`), or `None` for the user's own.
    pub builtin: Option<String>,
    /// Where a Lua function was defined.
    pub line: Option<usize>,
}

impl LKey {
    pub fn str(s: &str) -> LKey {
        LKey::Str(s.as_bytes().to_vec())
    }

    pub fn show(&self) -> String {
        match self {
            LKey::Int(i) => i.to_string(),
            LKey::Str(s) => show_bytes(s),
        }
    }
}

impl LValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            LValue::Bool(_) => "boolean",
            LValue::Int(_) | LValue::Num(_) => "number",
            LValue::Str(_) => "string",
            LValue::Table(_) => "table",
            LValue::Func(_) => "function",
            LValue::Other(t) => t,
        }
    }

    /// Lua's truth: everything but `false` (nil is never stored).
    pub fn truthy(&self) -> bool {
        !matches!(self, LValue::Bool(false))
    }

    /// A string or an integer as text: `Ok(None)` for any other value, `Err` with the bytes
    /// of a string that is not UTF-8 (a job file, TOML, holds only UTF-8).
    pub fn text(&self) -> Result<Option<String>, &[u8]> {
        match self {
            LValue::Str(b) => String::from_utf8(b.clone())
                .map(Some)
                .map_err(|_| b.as_slice()),
            LValue::Int(i) => Ok(Some(i.to_string())),
            _ => Ok(None),
        }
    }

    /// A short rendering for messages and comments.
    pub fn show(&self) -> String {
        match self {
            LValue::Bool(b) => b.to_string(),
            LValue::Int(i) => i.to_string(),
            LValue::Num(n) => n.to_string(),
            LValue::Str(s) => format!("{:?}", show_bytes(s)),
            LValue::Table(_) => "a table".into(),
            LValue::Func(f) => match (&f.builtin, f.line) {
                (Some(b), _) => b.clone(),
                (None, Some(l)) => format!("a Lua function (line {l})"),
                (None, None) => "a function".into(),
            },
            LValue::Other(t) => format!("a {t}"),
        }
    }
}

impl LTable {
    pub fn get(&self, key: &str) -> Option<&LValue> {
        let k = LKey::str(key);
        self.entries.iter().find(|(ek, _)| *ek == k).map(|(_, v)| v)
    }

    /// The values at 1, 2, 3, ... up to the first gap (Lua's `ipairs`).
    pub fn ipairs(&self) -> Vec<&LValue> {
        let mut out = Vec::new();
        let mut i = 1;
        while let Some(v) = self
            .entries
            .iter()
            .find(|(k, _)| *k == LKey::Int(i))
            .map(|(_, v)| v)
        {
            out.push(v);
            i += 1;
        }
        out
    }
}

/// A table after inheritance.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub entries: BTreeMap<LKey, MValue>,
    /// Positional values that were not tables (lsyncd appends them).
    pub array: Vec<LValue>,
    /// The stand-ins inherited, most specific first.
    pub bases: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub enum MValue {
    Leaf(LValue),
    Table(Merged),
}

impl MValue {
    pub fn leaf(&self) -> Option<&LValue> {
        match self {
            MValue::Leaf(v) => Some(v),
            MValue::Table(_) => None,
        }
    }

    pub fn table(&self) -> Option<&Merged> {
        match self {
            MValue::Table(t) => Some(t),
            MValue::Leaf(_) => None,
        }
    }
}

impl Merged {
    /// lsyncd's configuration of one `sync{}`: `arg` and its parents, then `default`.
    pub fn sync_config(arg: &LTable, default: &LTable) -> Merged {
        let mut m = Merged::default();
        inherit(&mut m, arg, false);
        inherit(&mut m, default, false);
        m
    }

    pub fn get(&self, key: &str) -> Option<&MValue> {
        self.entries.get(&LKey::str(key))
    }

    pub fn leaf(&self, key: &str) -> Option<&LValue> {
        self.get(key).and_then(MValue::leaf)
    }

    pub fn table(&self, key: &str) -> Option<&Merged> {
        self.get(key).and_then(MValue::table)
    }

    pub fn set(&mut self, key: &str, v: LValue) {
        self.entries.insert(LKey::str(key), MValue::Leaf(v));
    }

    /// The string keys, for iteration in a stable order.
    pub fn keys(&self) -> impl Iterator<Item = (&LKey, &MValue)> {
        self.entries.iter()
    }

    /// The values at integer keys 1.. up to the first gap, then the positional leftovers.
    pub fn list(&self) -> Vec<&LValue> {
        let mut out = Vec::new();
        let mut i = 1;
        while let Some(MValue::Leaf(v)) = self.entries.get(&LKey::Int(i)) {
            out.push(v);
            i += 1;
        }
        out.extend(self.array.iter());
        out
    }
}

fn is_true(t: &LTable, key: &str) -> bool {
    matches!(t.get(key), Some(LValue::Bool(true)))
}

/// Copies `cs` into `cd` as lsyncd's inheritance does (see the module documentation).
pub fn inherit(cd: &mut Merged, cs: &LTable, verbatim: bool) {
    if let Some(name) = cs.standin {
        cd.bases.push(name);
    }
    let cs_verbatim = is_true(cs, "_verbatim");
    let filter = match cs.get("_merge") {
        Some(LValue::Table(t)) => Some(t.clone()),
        _ => None,
    };
    for (k, v) in &cs.entries {
        let keyed = !matches!(k, LKey::Int(_)) || verbatim || cs_verbatim;
        let allowed = match &filter {
            None => true,
            Some(f) => f
                .entries
                .iter()
                .any(|(fk, fv)| fk == k && matches!(fv, LValue::Bool(true))),
        };
        if keyed && allowed {
            inherit_kv(cd, k, v);
        }
    }
    if !cs_verbatim {
        for v in cs.ipairs() {
            match v {
                LValue::Table(t) => inherit(cd, t, false),
                other => cd.array.push(other.clone()),
            }
        }
    }
}

fn inherit_kv(cd: &mut Merged, k: &LKey, v: &LValue) {
    if *k == LKey::str("_merge") || *k == LKey::str("_verbatim") {
        return;
    }
    let exitcodes = *k == LKey::str("exitcodes");
    match (v, cd.entries.get_mut(k)) {
        (LValue::Table(t), None) => {
            let mut m = Merged::default();
            inherit(&mut m, t, exitcodes);
            cd.entries.insert(k.clone(), MValue::Table(m));
        }
        (LValue::Table(t), Some(MValue::Table(m)))
            if !matches!(t.get("_merge"), Some(LValue::Bool(false))) =>
        {
            inherit(m, t, exitcodes);
        }
        (_, None) => {
            cd.entries.insert(k.clone(), MValue::Leaf(v.clone()));
        }
        _ => {}
    }
}

/// lsyncd's "checkgauge": every key of `config` must be allowed (`true` or a table) in
/// `gauge`, and a key whose gauge is a table must hold a table checked against it. The
/// message is lsyncd's.
pub fn check_gauge(config: &Merged, gauge: &Merged, prefix: &str) -> Result<(), String> {
    for (k, v) in config.keys() {
        let LKey::Str(name) = k else { continue };
        let name = show_bytes(name);
        let unknown = || {
            format!(
                "Parameter \"{prefix}{name}\" unknown. (if this is not a typo add it to checkgauge)"
            )
        };
        match gauge.entries.get(k) {
            None | Some(MValue::Leaf(LValue::Bool(false))) => return Err(unknown()),
            Some(MValue::Table(g)) => match v {
                MValue::Table(sub) => check_gauge(sub, g, &format!("{prefix}{name}."))?,
                MValue::Leaf(_) => {
                    return Err(format!("Parameter \"{prefix}{name}\" must be a table."));
                }
            },
            Some(MValue::Leaf(_)) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> LValue {
        LValue::Str(x.as_bytes().to_vec())
    }

    fn table(standin: Option<&'static str>, entries: Vec<(LKey, LValue)>) -> Rc<LTable> {
        Rc::new(LTable { standin, entries })
    }

    #[test]
    fn own_keys_win_and_tables_merge() {
        let base_rsync = table(
            None,
            vec![
                (LKey::str("binary"), s("/usr/bin/rsync")),
                (LKey::str("links"), LValue::Bool(true)),
            ],
        );
        let base = table(
            Some("default.rsync"),
            vec![
                (LKey::str("delay"), LValue::Int(15)),
                (LKey::str("rsync"), LValue::Table(base_rsync)),
            ],
        );
        let own_rsync = table(None, vec![(LKey::str("links"), LValue::Bool(false))]);
        let arg = table(
            None,
            vec![
                (LKey::Int(1), LValue::Table(base)),
                (LKey::str("delay"), LValue::Int(3)),
                (LKey::str("rsync"), LValue::Table(own_rsync)),
            ],
        );
        let default = table(
            Some("default"),
            vec![
                (
                    LKey::str("_merge"),
                    LValue::Table(table(
                        None,
                        vec![(LKey::str("maxDelays"), LValue::Bool(true))],
                    )),
                ),
                (LKey::str("maxDelays"), LValue::Int(1000)),
                (LKey::str("statusInterval"), LValue::Int(10)),
            ],
        );
        let m = Merged::sync_config(&arg, &default);
        assert!(matches!(m.leaf("delay"), Some(LValue::Int(3))));
        assert!(matches!(m.leaf("maxDelays"), Some(LValue::Int(1000))));
        assert!(m.get("statusInterval").is_none(), "filtered by _merge");
        let r = m.table("rsync").unwrap();
        assert!(matches!(r.leaf("links"), Some(LValue::Bool(false))));
        assert!(matches!(r.leaf("binary"), Some(LValue::Str(_))));
        assert_eq!(m.bases, ["default.rsync", "default"]);
    }

    #[test]
    fn gauge_rejects_unknown_and_false() {
        let mut gauge = Merged::default();
        gauge.set("source", LValue::Bool(true));
        gauge.set("onCreate", LValue::Bool(false));
        let mut config = Merged::default();
        config.set("source", s("/a"));
        assert!(check_gauge(&config, &gauge, "").is_ok());
        config.set("delai", LValue::Int(1));
        let e = check_gauge(&config, &gauge, "").unwrap_err();
        assert!(e.contains("\"delai\" unknown"), "{e}");
        let mut config = Merged::default();
        config.set("onCreate", s("cp"));
        assert!(check_gauge(&config, &gauge, "").is_err());
    }
}
