//! lsyncd's globals as stand-ins that record: `settings` (called, assigned, read, and the
//! pre-2.1 `settings = {...}`), `sync{...}`, and the runtime functions.
//!
//! Each call is recorded with the line that made it, with copies of its Lua values
//! ([`super::copy`]), so the mapping never touches Lua. Unknown settings fail as in lsyncd;
//! functions that act while lsyncd runs (`spawn`, ...) fail, since importing runs nothing.

use mlua::{Lua, MultiValue, Table, Value};

use super::copy::Copier;
use super::{Loc, SETTINGS, Setting, Shared, SyncCall, caller, fail, lua_message};
use crate::import::lsyncd::value::LValue;

/// lsyncd's API as the configuration sees it while importing: `settings`, `sync`, and the
/// runtime functions (recorded, ignored, or refused).
pub(super) fn install_lsyncd_api(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    install_settings(lua, state)?;
    let g = lua.globals();
    {
        let state = state.clone();
        g.raw_set(
            "sync",
            lua.create_function(move |lua, arg: Value| record_sync(lua, &state, arg))?,
        )?;
    }
    install_runtime_functions(lua, state)
}

/// `settings`: callable, assignable, readable.
fn install_settings(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    let settings = lua.create_table()?;
    let meta = lua.create_table()?;
    {
        let state = state.clone();
        meta.raw_set(
            "__call",
            lua.create_function(move |lua, (_t, arg): (Table, Value)| {
                call_settings(lua, &state, arg)
            })?,
        )?;
    }
    {
        let state = state.clone();
        meta.raw_set(
            "__newindex",
            lua.create_function(move |lua, (_t, k, v): (Table, String, Value)| {
                let loc = caller(lua);
                record_setting(lua, &state, loc, k, v, true)
            })?,
        )?;
    }
    {
        let state = state.clone();
        meta.raw_set(
            "__index",
            lua.create_function(move |lua, (_t, k): (Table, String)| {
                state
                    .borrow()
                    .current
                    .get(&k)
                    .map(|v| plain(lua, v))
                    .transpose()
                    .map(|v| v.unwrap_or(Value::Nil))
            })?,
        )?;
    }
    settings.set_metatable(Some(meta))?;
    state.borrow_mut().settings_table = settings.to_pointer() as usize;
    lua.globals().raw_set("settings", settings)
}

/// `settings{...}` records each setting; `settings('key')` reads one.
fn call_settings(lua: &Lua, state: &Shared, arg: Value) -> mlua::Result<Value> {
    let loc = caller(lua);
    match arg {
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let (key, value) = match (k, v) {
                    (Value::String(k), v) => (k.to_str()?.to_string(), v),
                    (Value::Integer(_), Value::String(name)) => {
                        (name.to_str()?.to_string(), Value::Boolean(true))
                    }
                    (k, _) => {
                        return Err(fail(
                            lua,
                            format!("setting \"{}\" unknown.", k.to_string().unwrap_or_default()),
                        ));
                    }
                };
                record_setting(lua, state, loc.clone(), key, value, false)?;
            }
            Ok(Value::Nil)
        }
        Value::String(k) => Ok(state
            .borrow()
            .current
            .get(&*k.to_str()?)
            .map(|v| plain(lua, v))
            .transpose()?
            .unwrap_or(Value::Nil)),
        other => Err(fail(
            lua,
            format!("settings takes a table, not a {}", other.type_name()),
        )),
    }
}

/// `sync{...}`: records a copy of its table, of `default` and of the settings so far.
fn record_sync(lua: &Lua, state: &Shared, arg: Value) -> mlua::Result<Table> {
    let loc = caller(lua);
    let Value::Table(t) = arg else {
        return Err(fail(
            lua,
            format!(
                "sync takes a table (sync{{...}}), not a {}",
                arg.type_name()
            ),
        ));
    };
    let default: Table = lua.globals().get("default")?;
    let (arg, default) = {
        let st = state.borrow();
        let mut copy = Copier::new(&st);
        let mut take = |t: &Table| copy.table(t).map_err(|e| fail(lua, lua_message(&e)));
        (take(&t)?, take(&default)?)
    };
    let mut st = state.borrow_mut();
    let settings = st.current.clone();
    st.out.syncs.push(SyncCall {
        loc,
        arg,
        default,
        settings,
    });
    // What lsyncd returns is an object of its runtime; a table stands in.
    lua.create_table()
}

/// `alarm` and `observefd` are recorded, `spawn`, `spawnShell` and `terminate` refused
/// (they act while lsyncd runs), `log` and `now` harmless.
fn install_runtime_functions(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    let g = lua.globals();
    for name in ["alarm", "observefd"] {
        let state = state.clone();
        g.raw_set(
            name,
            lua.create_function(move |lua, _: MultiValue| {
                let loc = caller(lua);
                state.borrow_mut().out.hooks.push((loc, name.to_string()));
                Ok(())
            })?,
        )?;
    }
    for name in ["spawn", "spawnShell", "terminate"] {
        g.raw_set(
            name,
            lua.create_function(move |lua, _: MultiValue| -> mlua::Result<()> {
                Err(fail(
                    lua,
                    format!("{name}() runs while lsyncd runs; it cannot be called while importing"),
                ))
            })?,
        )?;
    }
    g.raw_set("log", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    g.raw_set("now", lua.create_function(|_, ()| Ok(0))?)?;
    Ok(())
}

fn record_setting(
    lua: &Lua,
    state: &Shared,
    loc: Loc,
    key: String,
    value: Value,
    old_syntax: bool,
) -> mlua::Result<()> {
    if !SETTINGS.contains(&key.as_str()) {
        return Err(fail(lua, format!("setting \"{key}\" unknown.")));
    }
    let value = {
        let st = state.borrow();
        Copier::new(&st).value(&value)?
    };
    let Some(value) = value else {
        return Ok(());
    };
    let mut st = state.borrow_mut();
    st.current.insert(key.clone(), value.clone());
    st.out.settings.push(Setting {
        loc,
        key,
        value,
        old_syntax,
    });
    Ok(())
}

/// A recorded scalar as a Lua value again (for `settings('key')`).
fn plain(lua: &Lua, v: &LValue) -> mlua::Result<Value> {
    Ok(match v {
        LValue::Bool(b) => Value::Boolean(*b),
        LValue::Int(i) => Value::Integer(*i),
        LValue::Num(n) => Value::Number(*n),
        LValue::Str(s) => Value::String(lua.create_string(s)?),
        _ => Value::Nil,
    })
}

/// lsyncd before 2.1 took `settings = {...}`; a configuration that replaced `settings`
/// with a table is read that way.
pub(super) fn legacy_settings(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    let v: Value = lua.globals().raw_get("settings")?;
    let Value::Table(t) = v else {
        return Ok(());
    };
    if t.to_pointer() as usize == state.borrow().settings_table {
        return Ok(());
    }
    let loc = Loc {
        file: String::new(),
        line: None,
    };
    for pair in t.pairs::<String, Value>() {
        let (k, v) = pair?;
        record_setting(lua, state, loc.clone(), k, v, true)?;
    }
    Ok(())
}
