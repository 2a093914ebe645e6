//! Evaluates an lsyncd configuration in a sandboxed Lua 5.3 and records what it asks for.
//!
//! The sandbox has Lua's `string`, `table`, `math`, `utf8` and `coroutine` libraries and the
//! base functions, and nothing that reaches outside: no `os`, `io`, `package`/`require`,
//! `debug` or `string.dump`; `load` takes text chunks only; `dofile` and `loadfile` read
//! only files in the configuration's directory or below it ([`beside`]). A run is limited to
//! 10 seconds of Lua and 256 MiB of memory.
//!
//! lsyncd's own globals are stand-ins: `settings` (as `settings{...}`, `settings.key = v`
//! and the pre-2.1 `settings = {...}`) and `sync{...}` record their arguments and the line
//! of the call; `default`, `default.rsync`, `default.rsyncssh` and `default.direct` are the
//! tables of `standins.lua`; `alarm` and `observefd` are recorded as runtime hooks that
//! cannot be carried over; `spawn`, `spawnShell` and `terminate` fail; `log` does nothing.
//! Unknown settings are an error, as in lsyncd 2.2.3.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::value::{LTable, LValue};

mod api;
mod copy;

use api::{install_lsyncd_api, legacy_settings};

const STANDINS: &str = include_str!("standins.lua");
#[cfg(not(test))]
const TIME_LIMIT: Duration = Duration::from_secs(10);
#[cfg(test)]
const TIME_LIMIT: Duration = Duration::from_secs(1);
const MEMORY_LIMIT: usize = 256 << 20;
/// The most values copied out of Lua for one call (a runaway table is an error).
const MAX_NODES: usize = 200_000;

/// The settings lsyncd 2.2.3 accepts, and 2.3's `onepass`.
pub const SETTINGS: &[&str] = &[
    "logfile",
    "pidfile",
    "nodaemon",
    "statusFile",
    "statusInterval",
    "logfacility",
    "logident",
    "insist",
    "inotifyMode",
    "maxProcesses",
    "maxDelays",
    "onepass",
];

/// A place in the configuration (or in a file it loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: String,
    pub line: Option<usize>,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// One `sync{...}` call.
#[derive(Debug)]
pub struct SyncCall {
    pub loc: Loc,
    /// The argument, copied when the call was made.
    pub arg: Rc<LTable>,
    /// `default` as it was then.
    pub default: Rc<LTable>,
    /// The settings made before the call (lsyncd applies some of them to each sync).
    pub settings: BTreeMap<String, LValue>,
}

/// One setting made by `settings{...}` or `settings.key = value`.
#[derive(Debug)]
pub struct Setting {
    pub loc: Loc,
    pub key: String,
    pub value: LValue,
    /// Made with an old syntax (`settings.key = v` or `settings = {...}`).
    pub old_syntax: bool,
}

/// What a configuration asked for.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub syncs: Vec<SyncCall>,
    pub settings: Vec<Setting>,
    /// Runtime hooks (`alarm`, `observefd`) set up at the top level.
    pub hooks: Vec<(Loc, String)>,
}

/// Why a configuration could not be evaluated: Lua's message, which names the line.
#[derive(Debug)]
pub struct EvalError {
    pub at: String,
    pub message: String,
}

#[derive(Default)]
struct State {
    dir: PathBuf,
    standins: HashMap<usize, &'static str>,
    builtins: HashMap<usize, String>,
    settings_table: usize,
    current: BTreeMap<String, LValue>,
    out: Evaluated,
}

type Shared = Rc<RefCell<State>>;

/// Evaluates the configuration at `path`.
pub fn evaluate(path: &Path) -> Result<Evaluated, EvalError> {
    let shown = path.display().to_string();
    let fail = |message: String| EvalError {
        at: shown.clone(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| fail(format!("its directory: {e}")))?;
    let state: Shared = Rc::new(RefCell::new(State {
        dir,
        ..Default::default()
    }));
    let lua = sandbox(&state).map_err(|e| fail(format!("cannot set up Lua: {e}")))?;
    let result = lua
        .load(&text[..])
        .set_name(format!("@{shown}"))
        .set_mode(ChunkMode::Text)
        .exec();
    if let Err(e) = result {
        return Err(split_location(&shown, &lua_message(&e)));
    }
    legacy_settings(&lua, &state).map_err(|e| split_location(&shown, &lua_message(&e)))?;
    drop(lua);
    let state = Rc::try_unwrap(state)
        .map_err(|_| fail("internal error: Lua state still shared".into()))?
        .into_inner();
    Ok(state.out)
}

/// `path` when it is the configuration's directory or below it.
pub fn beside(dir: &Path, path: &Path) -> Result<PathBuf, String> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    };
    let real = joined
        .canonicalize()
        .map_err(|e| format!("{}: {e}", joined.display()))?;
    if real.starts_with(dir) {
        Ok(real)
    } else {
        Err(format!(
            "{} is outside {}: only files in the configuration's directory may be read while importing",
            joined.display(),
            dir.display()
        ))
    }
}

/// The Lua state with the sandbox's globals and the stand-ins.
fn sandbox(state: &Shared) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE,
        LuaOptions::new(),
    )?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    let start = Instant::now();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(10_000),
        move |lua, _| {
            if start.elapsed() > TIME_LIMIT {
                let loc = stack_loc(lua, 0);
                Err(mlua::Error::runtime(format!(
                    "{loc}: the configuration ran for more than {} s",
                    TIME_LIMIT.as_secs()
                )))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    let g = lua.globals();
    for name in ["dofile", "loadfile", "load", "require", "collectgarbage"] {
        g.raw_set(name, Value::Nil)?;
    }
    let string: Table = g.get("string")?;
    string.raw_set("dump", Value::Nil)?;
    for lib in ["os", "io", "package", "debug"] {
        g.raw_set(lib, missing_library(&lua, lib)?)?;
    }
    g.raw_set(
        "require",
        lua.create_function(|lua, name: String| -> mlua::Result<()> {
            Err(fail(
                lua,
                format!("require(\"{name}\"): Lua modules cannot be loaded while importing"),
            ))
        })?,
    )?;
    g.raw_set(
        "print",
        lua.create_function(|_, args: MultiValue| {
            let words: Vec<String> = args
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().into()))
                .collect();
            eprintln!("lua: {}", words.join("\t"));
            Ok(())
        })?,
    )?;
    install_loaders(&lua, state)?;
    install_lsyncd_api(&lua, state)?;
    lua.load(STANDINS)
        .set_name("=standins")
        .set_mode(ChunkMode::Text)
        .exec()?;
    register_standins(&lua, state)?;
    Ok(lua)
}

/// A table whose every field is an error naming the library.
fn missing_library(lua: &Lua, lib: &'static str) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set(
        "__index",
        lua.create_function(move |lua, (_t, key): (Table, Value)| -> mlua::Result<()> {
            let key = key.to_string().unwrap_or_default();
            Err(fail(
                lua,
                format!("{lib}.{key} is not available while importing (the sandbox has no {lib} library)"),
            ))
        })?,
    )?;
    t.set_metatable(Some(meta))?;
    Ok(t)
}

/// `load` (text only), `dofile` and `loadfile` (files beside the configuration only).
fn install_loaders(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set(
        "load",
        lua.create_function(
            |lua, (chunk, name, _mode, env): (Value, Option<String>, Option<String>, Option<Table>)| {
                let Value::String(code) = chunk else {
                    return Err(fail(
                        lua,
                        "load: only a string chunk can be loaded while importing",
                    ));
                };
                let mut c = lua
                    .load(code.as_bytes().to_vec())
                    .set_name(name.unwrap_or_else(|| "=(load)".into()))
                    .set_mode(ChunkMode::Text);
                if let Some(env) = env {
                    c = c.set_environment(env);
                }
                match c.into_function() {
                    Ok(f) => Ok((Value::Function(f), Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(lua_message(&e))?))),
                }
            },
        )?,
    )?;
    let load_file = {
        let state = state.clone();
        move |lua: &Lua, path: String| -> mlua::Result<mlua::Function> {
            let dir = state.borrow().dir.clone();
            let real = beside(&dir, Path::new(&path))
                .map_err(|e| fail(lua, format!("dofile(\"{path}\"): {e}")))?;
            let text =
                std::fs::read(&real).map_err(|e| fail(lua, format!("{}: {e}", real.display())))?;
            lua.load(text)
                .set_name(format!("@{}", real.display()))
                .set_mode(ChunkMode::Text)
                .into_function()
        }
    };
    let lf = load_file.clone();
    g.raw_set(
        "dofile",
        lua.create_function(move |lua, path: String| lf(lua, path)?.call::<MultiValue>(()))?,
    )?;
    g.raw_set(
        "loadfile",
        lua.create_function(move |lua, path: String| load_file(lua, path))?,
    )?;
    Ok(())
}

/// Where the Lua code that called the current Rust function is.
fn caller(lua: &Lua) -> Loc {
    stack_loc(lua, 1)
}

/// An error located at the Lua code that called the current Rust function, as Lua's
/// `error(msg, 2)` would be.
fn fail(lua: &Lua, msg: impl std::fmt::Display) -> mlua::Error {
    let loc = caller(lua);
    if loc.file.is_empty() {
        mlua::Error::runtime(msg.to_string())
    } else {
        mlua::Error::runtime(format!("{loc}: {msg}"))
    }
}

fn stack_loc(lua: &Lua, level: usize) -> Loc {
    lua.inspect_stack(level, |d| {
        let src = d.source();
        let file = src
            .source
            .as_deref()
            .map(|s| s.strip_prefix('@').unwrap_or(s).to_string())
            .unwrap_or_default();
        Loc {
            file,
            line: d.current_line(),
        }
    })
    .unwrap_or(Loc {
        file: String::new(),
        line: None,
    })
}

/// Remembers the stand-in tables and functions by identity.
fn register_standins(lua: &Lua, state: &Shared) -> mlua::Result<()> {
    let default: Table = lua.globals().get("default")?;
    let mut st = state.borrow_mut();
    let mut tables = vec![("default", default.clone())];
    for name in ["rsync", "rsyncssh", "direct"] {
        let t: Table = default.get(name)?;
        let full: &'static str = match name {
            "rsync" => "default.rsync",
            "rsyncssh" => "default.rsyncssh",
            _ => "default.direct",
        };
        tables.push((full, t));
    }
    for (name, t) in tables {
        st.standins.insert(t.to_pointer() as usize, name);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            if let (Value::String(k), Value::Function(f)) = (k, v) {
                st.builtins
                    .entry(f.to_pointer() as usize)
                    .or_insert_with(|| format!("{name}.{}", k.to_string_lossy()));
            }
        }
    }
    Ok(())
}

/// The first line of what Lua (or a callback) said, without mlua's wrapping.
fn lua_message(e: &mlua::Error) -> String {
    let mut e = e;
    loop {
        match e {
            mlua::Error::CallbackError { cause, .. } => e = cause,
            mlua::Error::WithContext { cause, .. } => e = cause,
            mlua::Error::SyntaxError { message, .. } => return first_paragraph(message),
            mlua::Error::RuntimeError(m) => return first_paragraph(m),
            mlua::Error::MemoryError(m) => return format!("out of memory: {m}"),
            other => return first_paragraph(&other.to_string()),
        }
    }
}

fn first_paragraph(s: &str) -> String {
    let s = s.split("\nstack traceback:").next().unwrap_or(s);
    s.trim_end().to_string()
}

/// `FILE:LINE: message` from Lua becomes the location and the message.
fn split_location(default_at: &str, message: &str) -> EvalError {
    let re = regex::Regex::new(r"^(.+?:\d+): (.*)$").expect("valid regex");
    let first = message.lines().next().unwrap_or("");
    if let Some(c) = re.captures(first) {
        let rest: Vec<&str> = std::iter::once(&c[2])
            .chain(message.lines().skip(1))
            .collect();
        return EvalError {
            at: c[1].to_string(),
            message: rest.join("\n"),
        };
    }
    EvalError {
        at: default_at.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> (tempfile::TempDir, Result<Evaluated, EvalError>) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("lsyncd.conf.lua");
        std::fs::write(&p, code).unwrap();
        let r = evaluate(&p);
        (t, r)
    }

    #[test]
    fn records_syncs_and_settings_with_lines() {
        let (_t, r) = eval(
            "settings {\n  logfile = '/var/log/l.log',\n}\nfor _, h in ipairs{'a', 'b'} do\n  sync{default.rsync, source='/s', target=h..':/d'}\nend\nsettings.insist = true\n",
        );
        let ev = r.unwrap();
        assert_eq!(ev.syncs.len(), 2);
        assert_eq!(ev.syncs[0].loc.line, Some(5));
        assert_eq!(ev.syncs[0].arg.ipairs().len(), 1);
        let LValue::Table(base) = ev.syncs[0].arg.ipairs()[0] else {
            panic!()
        };
        assert_eq!(base.standin, Some("default.rsync"));
        assert!(matches!(ev.syncs[1].arg.get("target"), Some(LValue::Str(s)) if s == b"b:/d"));
        assert_eq!(ev.settings.len(), 2);
        assert_eq!(ev.settings[0].loc.line, Some(1));
        assert!(ev.settings[1].old_syntax);
        assert!(ev.syncs[0].settings.contains_key("logfile"));
    }

    #[test]
    fn no_way_out() {
        for (code, says) in [
            ("os.execute('touch /tmp/x')", "os.execute is not available"),
            ("io.open('/etc/passwd')", "io.open is not available"),
            ("require('socket')", "require(\"socket\")"),
            ("dofile('/etc/passwd')", "outside"),
            ("load(string.dump(print))", "attempt to call a nil value"),
            ("spawn(nil, '/bin/true')", "spawn() runs while lsyncd runs"),
            ("settings{ delai = 1 }", "setting \"delai\" unknown."),
            ("while true do end", "ran for more than"),
        ] {
            let (_t, r) = eval(code);
            let e = r.expect_err(code);
            assert!(e.message.contains(says), "{code}: {e:?}");
            assert!(e.at.ends_with(":1"), "{code}: {e:?}");
        }
    }

    #[test]
    fn dofile_beside_the_configuration() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("hosts.lua"), "hosts = { 'h1', 'h2' }\n").unwrap();
        let p = t.path().join("main.lua");
        std::fs::write(
            &p,
            "dofile('hosts.lua')\nfor _, h in ipairs(hosts) do sync{default.rsyncssh, source='/s', host=h, targetdir='/d'} end\n",
        )
        .unwrap();
        let ev = evaluate(&p).unwrap();
        assert_eq!(ev.syncs.len(), 2);
    }

    #[test]
    fn functions_keep_their_line_and_builtins_their_name() {
        let (_t, r) = eval(
            "local t = {\n  default.rsync,\n  action = function(inlet)\n  end,\n  init = default.rsync.init,\n}\nsync(t)\n",
        );
        let ev = r.unwrap();
        let arg = &ev.syncs[0].arg;
        let Some(LValue::Func(a)) = arg.get("action") else {
            panic!()
        };
        assert_eq!((a.builtin.as_deref(), a.line), (None, Some(3)));
        let Some(LValue::Func(i)) = arg.get("init") else {
            panic!()
        };
        assert_eq!(i.builtin.as_deref(), Some("default.rsync.init"));
    }
}
