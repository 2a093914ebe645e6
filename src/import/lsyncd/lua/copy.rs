//! Lua values copied out of the interpreter as [`LValue`]s.
//!
//! Shared tables stay shared and a table that contains itself is cut, so the mapping sees
//! the structure the configuration built; stand-in tables and built-in functions are named
//! by identity. At most `MAX_NODES` values are copied, so a huge table cannot exhaust memory.

use std::collections::HashMap;
use std::rc::Rc;

use mlua::{Table, Value};

use super::{MAX_NODES, State};
use crate::import::lsyncd::value::{LFunc, LKey, LTable, LValue};

/// Copies Lua values out, keeping shared tables shared and cutting cycles.
pub(super) struct Copier<'a> {
    st: &'a State,
    seen: HashMap<usize, Option<Rc<LTable>>>,
    nodes: usize,
}

impl<'a> Copier<'a> {
    pub(super) fn new(st: &'a State) -> Copier<'a> {
        Copier {
            st,
            seen: HashMap::new(),
            nodes: 0,
        }
    }

    pub(super) fn table(&mut self, t: &Table) -> mlua::Result<Rc<LTable>> {
        let ptr = t.to_pointer() as usize;
        if let Some(Some(done)) = self.seen.get(&ptr) {
            return Ok(done.clone());
        }
        self.seen.insert(ptr, None);
        let mut entries = Vec::new();
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            let key = match k {
                Value::Integer(i) => LKey::Int(i),
                Value::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => LKey::Int(n as i64),
                Value::String(s) => LKey::Str(s.as_bytes().to_vec()),
                _ => continue,
            };
            if let Some(v) = self.value(&v)? {
                entries.push((key, v));
            }
        }
        let table = Rc::new(LTable {
            standin: self.st.standins.get(&ptr).copied(),
            entries,
        });
        self.seen.insert(ptr, Some(table.clone()));
        Ok(table)
    }

    pub(super) fn value(&mut self, v: &Value) -> mlua::Result<Option<LValue>> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(mlua::Error::runtime(format!(
                "the table passed holds more than {MAX_NODES} values"
            )));
        }
        Ok(Some(match v {
            Value::Nil => return Ok(None),
            Value::Boolean(b) => LValue::Bool(*b),
            Value::Integer(i) => LValue::Int(*i),
            Value::Number(n) => LValue::Num(*n),
            Value::String(s) => LValue::Str(s.as_bytes().to_vec()),
            Value::Table(t) => {
                let ptr = t.to_pointer() as usize;
                if matches!(self.seen.get(&ptr), Some(None)) {
                    LValue::Other("table that contains itself")
                } else {
                    LValue::Table(self.table(t)?)
                }
            }
            Value::Function(f) => LValue::Func(LFunc {
                builtin: self.st.builtins.get(&(f.to_pointer() as usize)).cloned(),
                line: f.info().line_defined,
            }),
            other => LValue::Other(other.type_name()),
        }))
    }
}
