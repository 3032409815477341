//! `dc.store`: a small persistent store per script, and `dc.data_dir()`.
//!
//! A script saves plain values (tables, strings, numbers, booleans) under
//! names of its own with `dc.store.save(name, value)` and reads them back
//! with `dc.store.load(name)`, across restarts. Each script has its own
//! folder, `store/<script name>/` in the data folder, and one file per
//! name, `<name>.lua`: a Lua literal (`return {...}`), readable and
//! editable by hand. Writes are atomic (a temporary file, synced, renamed
//! over the old one, the folder synced): a crash leaves the old value or
//! the new one, never half of either.
//!
//! Reading never runs the file as code in a script's state: it is loaded in
//! a bare Lua state with no libraries, no globals and a memory limit, as
//! text only, and only plain data comes out of it.
//!
//! Untrusted scripts may use their store (it is theirs and bounded: names
//! of at most [`MAX_NAME`] characters, values of at most [`MAX_VALUE`]
//! bytes written, [`MAX_NAMES`] names); `dc.data_dir()` is for trusted ones
//! ([`Capability::ReadDataFolder`]).
//!
//! Must not: write outside its script's folder, or keep values in memory
//! (every load reads the file).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mlua::{Lua, Table};

use super::capability::{self, Capability};
use super::describe::ApiFn;
use super::host::{LuaHost, ScriptId};
use super::value::Value;

/// The longest name of a stored value.
pub const MAX_NAME: usize = 64;
/// The largest stored value, as written.
pub const MAX_VALUE: usize = 16 << 20;
/// The most names one script may store.
pub const MAX_NAMES: usize = 1000;
/// Reading a stored value may run this many times 100,000 instructions.
const READ_STEPS: u32 = 500;

pub const LUA: &str = r#"
local dc, native = ...
local type, error = type, error

local store = {}

function store.save(name, value)
  if type(name) ~= "string" then
    error("dc.store.save: expected a name, got " .. type(name), 2)
  end
  return native.store_save(name, value)
end

function store.load(name)
  if type(name) ~= "string" then
    error("dc.store.load: expected a name, got " .. type(name), 2)
  end
  return native.store_load(name)
end

function store.list() return native.store_list() end

dc.store = store

function dc.data_dir() return native.data_dir() end
"#;

/// The folder names are checked against: letters, digits, `_`, `-`, `.`,
/// not starting with a dot.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a store name (1 to {MAX_NAME} letters, digits, '_', '-', '.', not starting with '.')"
        ))
    }
}

/// A script's store folder: `store/<name>` with the name made safe.
fn folder(data_dir: &Path, script: &str) -> PathBuf {
    let safe: String = script
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') { c } else { '_' })
        .collect();
    data_dir.join("store").join(if safe.is_empty() { "_".to_string() } else { safe })
}

/// Writes `value` as a Lua literal.
fn write_literal(out: &mut String, v: &Value, indent: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Num(n) if n.is_nan() => out.push_str("0/0"),
        Value::Num(n) if n.is_infinite() => out.push_str(if *n > 0.0 { "1/0" } else { "-1/0" }),
        // `{:?}` keeps a float a float (`1.0`, `1e300`).
        Value::Num(n) => out.push_str(&format!("{n:?}")),
        Value::Str(s) => write_string(out, s),
        Value::List(items) => {
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, item, indent)?;
            }
            out.push('}');
        }
        Value::Map(fields) | Value::Record { fields, .. } => {
            if fields.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push_str("{\n");
            for (k, val) in fields {
                out.push_str(&"  ".repeat(indent + 1));
                out.push('[');
                write_string(out, k.as_bytes());
                out.push_str("] = ");
                write_literal(out, val, indent + 1)?;
                out.push_str(",\n");
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
        Value::Object { class, .. } => {
            return Err(format!("a {class} cannot be stored (plain data only)"))
        }
    }
    Ok(())
}

/// A Lua string literal: printable ASCII as is, every other byte escaped.
fn write_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
}

/// Reads a stored literal back as plain data, in a bare state.
fn read_literal(text: &[u8]) -> Result<Value, String> {
    let lua = Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::default())
        .map_err(|e| e.to_string())?;
    let _ = lua.set_memory_limit(4 * MAX_VALUE + (1 << 20));
    // A literal runs a few instructions per value; a file edited into a
    // loop is stopped instead of freezing the client.
    let steps = std::cell::Cell::new(0u32);
    lua.set_hook(mlua::HookTriggers::new().every_nth_instruction(100_000), move |_, _| {
        steps.set(steps.get() + 1);
        if steps.get() > READ_STEPS {
            Err(mlua::Error::runtime("it runs like code, not data"))
        } else {
            Ok(mlua::VmState::Continue)
        }
    })
    .map_err(|e| e.to_string())?;
    let env = lua.create_table().map_err(|e| e.to_string())?;
    let v: mlua::Value = lua
        .load(text)
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .eval()
        .map_err(|e| e.to_string())?;
    Value::from_lua(&v, "the stored value")
}

/// Saves atomically: a temporary file, synced, renamed, the folder synced.
fn save_file(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(&tmp)?;
        f.write_all(text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(format!("{name}.lua")))?;
    File::open(dir)?.sync_all()
}

/// Adds the `native.store_*` primitives and `native.data_dir` to a new state
/// of `host` for `script`.
pub(crate) fn register(
    lua: &Lua,
    host: &LuaHost,
    script: ScriptId,
    native: &Table,
) -> mlua::Result<()> {
    let where_ = {
        let weak = host.downgrade();
        move |api: &str| -> mlua::Result<PathBuf> {
            let host = weak
                .upgrade()
                .map(LuaHost::from_inner)
                .ok_or_else(|| mlua::Error::runtime(format!("{api}: the client is stopping")))?;
            let data = super::hub_api::hubs(&host).data_dir().ok_or_else(|| {
                mlua::Error::runtime(format!("{api}: this client has no data folder"))
            })?;
            let name = host
                .script(script)
                .map(|s| s.name.clone())
                .ok_or_else(|| mlua::Error::runtime(format!("{api}: the script is gone")))?;
            Ok(folder(&data, &name))
        }
    };
    {
        let where_ = where_.clone();
        native.set(
            "store_save",
            lua.create_function(move |_, (name, value): (String, mlua::Value)| {
                let api = "dc.store.save";
                check_name(&name).map_err(|e| mlua::Error::runtime(format!("{api}: {e}")))?;
                let dir = where_(api)?;
                let file = dir.join(format!("{name}.lua"));
                if value.is_nil() {
                    return match std::fs::remove_file(&file) {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                        Err(e) => Err(mlua::Error::runtime(format!(
                            "{api}: removing {}: {e}",
                            file.display()
                        ))),
                    };
                }
                let v = Value::from_lua(&value, api).map_err(mlua::Error::runtime)?;
                let mut text = String::from("return ");
                write_literal(&mut text, &v, 0)
                    .map_err(|e| mlua::Error::runtime(format!("{api}: {name}: {e}")))?;
                text.push('\n');
                if text.len() > MAX_VALUE {
                    return Err(mlua::Error::runtime(format!(
                        "{api}: {name} is {} bytes written, more than the {MAX_VALUE} a value may take",
                        text.len()
                    )));
                }
                if !file.exists() && count(&dir) >= MAX_NAMES {
                    return Err(mlua::Error::runtime(format!(
                        "{api}: this script already stores {MAX_NAMES} names"
                    )));
                }
                save_file(&dir, &name, text.as_bytes()).map_err(|e| {
                    mlua::Error::runtime(format!("{api}: writing {}: {e}", file.display()))
                })?;
                Ok(true)
            })?,
        )?;
    }
    {
        let where_ = where_.clone();
        native.set(
            "store_load",
            lua.create_function(move |lua, name: String| {
                let api = "dc.store.load";
                check_name(&name).map_err(|e| mlua::Error::runtime(format!("{api}: {e}")))?;
                let file = where_(api)?.join(format!("{name}.lua"));
                let text = match std::fs::read(&file) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(mlua::Value::Nil)
                    }
                    Err(e) => {
                        return Err(mlua::Error::runtime(format!(
                            "{api}: reading {}: {e}",
                            file.display()
                        )))
                    }
                };
                let v = read_literal(&text).map_err(|e| {
                    mlua::Error::runtime(format!(
                        "{api}: {} is not a stored value: {e}",
                        file.display()
                    ))
                })?;
                v.to_lua(lua)
            })?,
        )?;
    }
    native.set(
        "store_list",
        lua.create_function(move |_, ()| {
            let dir = where_("dc.store.list")?;
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map(|it| {
                    it.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.strip_suffix(".lua")
                                .filter(|s| check_name(s).is_ok())
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            Ok(names)
        })?,
    )?;
    let weak = host.downgrade();
    native.set(
        "data_dir",
        lua.create_function(move |_, ()| {
            let host = weak
                .upgrade()
                .map(LuaHost::from_inner)
                .ok_or_else(|| mlua::Error::runtime("dc.data_dir: the client is stopping"))?;
            capability::check(&host, script, Capability::ReadDataFolder, "dc.data_dir")
                .map_err(mlua::Error::runtime)?;
            Ok(super::hub_api::hubs(&host).data_dir().map(|d| d.display().to_string()))
        })?,
    )?;
    Ok(())
}

/// Names stored in `dir`.
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".lua"))
                .count()
        })
        .unwrap_or(0)
}

// ----- description ---------------------------------------------------------------

/// The functions and methods of this namespace (`dc.store` and `dc.data_dir`), for [`api`](super::api)'s description.
pub const FUNCTIONS: &[ApiFn] = &[
    ApiFn {
        path: "dc.store.save",
        params: &[("name", "string", "1 to 64 letters, digits, `_`, `-`, `.`"), ("value", "table|string|number|boolean|nil", "plain data; nil removes the name")],
        returns: &[("true", "saved (an error says why not)")],
        doc: "Saves a value of this script under `name`, atomically, in the data folder (`store/<script>/<name>.lua`); it survives restarts.",
        waits: false,
    },
    ApiFn {
        path: "dc.store.load",
        params: &[("name", "string", "the name saved under")],
        returns: &[("any", "the value saved, or nil when there is none")],
        doc: "Reads back a value this script saved.",
        waits: false,
    },
    ApiFn {
        path: "dc.store.list",
        params: &[],
        returns: &[("string[]", "the names this script has saved, sorted")],
        doc: "The names in this script's store.",
        waits: false,
    },
    ApiFn {
        path: "dc.data_dir",
        params: &[],
        returns: &[("string?", "the data folder, nil when the client has none")],
        doc: "The client's data folder (trusted scripts and the console).",
        waits: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let mut text = String::from("return ");
        write_literal(&mut text, v, 0).unwrap();
        read_literal(text.as_bytes()).unwrap()
    }

    #[test]
    fn plain_values_come_back_as_they_went() {
        let v = Value::map([
            ("nick", Value::str("alice")),
            ("bytes", Value::Str(vec![0u8, 1, 200, b'"', b'\\', b'\n'].into())),
            ("seen", Value::Int(1_733_000_000)),
            ("ratio", Value::Num(0.5)),
            ("whole", Value::Num(2.0)),
            ("far", Value::Num(f64::INFINITY)),
            ("ok", Value::Bool(true)),
            ("list", Value::List(vec![Value::Int(1), Value::str("two")])),
            ("nested", Value::map([("deep", Value::map([("x", Value::Int(-3))]))])),
            ("empty", Value::map(std::iter::empty::<(&str, Value)>())),
        ]);
        let back = round_trip(&v);
        for key in ["nick", "bytes", "seen", "ratio", "whole", "far", "ok", "list", "nested"] {
            assert_eq!(back.get(key), v.get(key), "{key}");
        }
    }

    #[test]
    fn a_stored_file_is_data_not_code() {
        // No library, no global: calling anything fails.
        assert!(read_literal(b"return os.exit()").is_err());
        assert!(read_literal(b"return print('x')").is_err());
        // A loop is stopped.
        let e = read_literal(b"while true do end").unwrap_err();
        assert!(e.contains("runs like code"), "{e}");
        assert!(read_literal(b"return {").is_err());
        // Functions are not data.
        assert!(read_literal(b"return function() end").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("seen").is_ok());
        assert!(check_name("seen-2.v1").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(folder(Path::new("/d"), "my bot/../x"), Path::new("/d/store/my_bot____x"));
    }
}
