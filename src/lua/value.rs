//! [`Value`]: plain data that crosses between Lua states and from Rust into
//! Lua — event payloads, `dc.emit` tables, results.
//!
//! Each script has its own Lua state, so a table cannot be shared: it is
//! converted to a [`Value`] and rebuilt in every state that receives it. Only
//! plain data crosses (nil, booleans, numbers, strings, tables of those) and
//! host objects ([`Value::Object`], e.g. a hub): those cross as a class name
//! and an id, and each state rebuilds them with the constructor its prelude
//! registered for the class (`native.class`), so `e.hub` in an event table is
//! a real `dc.Hub` with its methods. Records of a class ([`Value::Record`]:
//! users, search results) cross as their fields and get their class's
//! methods in each state (the prelude's `native.class` finisher sets the
//! metatable). Functions, coroutines and userdata are refused with a clear
//! error.

use std::rc::Rc;

use mlua::{IntoLua, Lua, Table};

/// Deepest nesting accepted when converting a Lua table (also stops cycles).
const MAX_DEPTH: usize = 32;

/// The classes of host objects that cross states as [`Value::Object`]: a
/// table whose metatable's `__name` is one of these and that has an integer
/// `id` converts to an object.
pub const OBJECT_CLASSES: &[&str] = &["dc.Hub"];

/// The classes of records ([`Value::Record`]): plain fields plus methods.
/// A table whose metatable's `__name` is one of these converts back to a
/// record of that class.
pub const RECORD_CLASSES: &[&str] = &["dc.User", "dc.SearchResult"];

/// The Lua registry key of a class's constructor.
pub fn class_key(class: &str) -> String {
    format!("dclua.class.{class}")
}

/// Plain data, independent of any Lua state.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `nil`.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Num(f64),
    /// A string (Lua strings are bytes; most are UTF-8 text).
    Str(Rc<[u8]>),
    /// A sequence `{a, b, c}`.
    List(Vec<Value>),
    /// A record `{k = v}` with string keys, in insertion order.
    Map(Vec<(Rc<str>, Value)>),
    /// A record of a class (one of [`RECORD_CLASSES`]): its fields, given
    /// their class's methods in each state by the class's finisher.
    Record {
        /// The class (`"dc.User"`).
        class: &'static str,
        /// The fields, as in [`Value::Map`].
        fields: Vec<(Rc<str>, Value)>,
    },
    /// A host object (one of [`OBJECT_CLASSES`]), rebuilt in each state by
    /// the class's constructor from its id.
    Object {
        /// The class (`"dc.Hub"`).
        class: &'static str,
        /// The object's id (a hub: its session job's id).
        id: u64,
    },
}

impl Value {
    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Rc::from(s.as_ref().as_bytes()))
    }

    /// A record from `(key, value)` pairs.
    pub fn map<K: Into<Rc<str>>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A record of `class` from `(key, value)` pairs.
    pub fn record<K: Into<Rc<str>>>(
        class: &'static str,
        pairs: impl IntoIterator<Item = (K, Value)>,
    ) -> Value {
        Value::Record { class, fields: pairs.into_iter().map(|(k, v)| (k.into(), v)).collect() }
    }

    /// The field `key` of a record (`Nil` when absent or not a record).
    pub fn get(&self, key: &str) -> &Value {
        match self {
            Value::Map(pairs) | Value::Record { fields: pairs, .. } => {
                pairs.iter().find(|(k, _)| &**k == key).map_or(&Value::Nil, |(_, v)| v)
            }
            _ => &Value::Nil,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Builds the Lua value in `lua`.
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<mlua::Value> {
        Ok(match self {
            Value::Nil => mlua::Value::Nil,
            Value::Bool(b) => mlua::Value::Boolean(*b),
            Value::Int(i) => mlua::Value::Integer(*i),
            Value::Num(n) => mlua::Value::Number(*n),
            Value::Str(s) => mlua::Value::String(lua.create_string(&**s)?),
            Value::List(items) => {
                let t = lua.create_table_with_capacity(items.len(), 0)?;
                for (i, v) in items.iter().enumerate() {
                    t.raw_set(i + 1, v.to_lua(lua)?)?;
                }
                mlua::Value::Table(t)
            }
            Value::Map(pairs) => {
                let t = lua.create_table_with_capacity(0, pairs.len())?;
                for (k, v) in pairs {
                    t.raw_set(&**k, v.to_lua(lua)?)?;
                }
                mlua::Value::Table(t)
            }
            Value::Record { class, fields } => {
                let t = lua.create_table_with_capacity(0, fields.len())?;
                for (k, v) in fields {
                    t.raw_set(&**k, v.to_lua(lua)?)?;
                }
                // A state without the class (a bare test state) gets the
                // plain table.
                match lua.named_registry_value::<Option<mlua::Function>>(&class_key(class))? {
                    Some(finish) => finish.call::<mlua::Value>(t)?,
                    None => mlua::Value::Table(t),
                }
            }
            Value::Object { class, id } => {
                let ctor: mlua::Function =
                    lua.named_registry_value(&class_key(class)).map_err(|_| {
                        mlua::Error::runtime(format!(
                            "no constructor for {class} objects in this Lua state"
                        ))
                    })?;
                // Ids are u64 bit patterns; Lua integers are i64.
                ctor.call::<mlua::Value>(*id as i64)?
            }
        })
    }

    /// Converts a Lua value; `what` names it in errors ("dc.emit's table").
    pub fn from_lua(v: &mlua::Value, what: &str) -> Result<Value, String> {
        convert(v, what, 0)
    }
}

impl IntoLua for &Value {
    fn into_lua(self, lua: &Lua) -> mlua::Result<mlua::Value> {
        self.to_lua(lua)
    }
}

fn convert(v: &mlua::Value, path: &str, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path}: nested deeper than {MAX_DEPTH} levels (a cycle?)"));
    }
    Ok(match v {
        mlua::Value::Nil => Value::Nil,
        mlua::Value::Boolean(b) => Value::Bool(*b),
        mlua::Value::Integer(i) => Value::Int(*i),
        mlua::Value::Number(n) => Value::Num(*n),
        mlua::Value::String(s) => Value::Str(Rc::from(&*s.as_bytes())),
        mlua::Value::Table(t) => table(t, path, depth)?,
        other => {
            return Err(format!(
                "{path}: a {} cannot be passed on (only plain data can)",
                other.type_name()
            ))
        }
    })
}

fn table(t: &Table, path: &str, depth: usize) -> Result<Value, String> {
    if let Some(object) = object(t) {
        return Ok(object);
    }
    let record = record_class(t);
    let len = t.raw_len();
    let mut count = 0usize;
    for pair in t.pairs::<mlua::Value, mlua::Value>() {
        pair.map_err(|e| format!("{path}: {e}"))?;
        count += 1;
    }
    if count == len && len > 0 {
        let mut items = Vec::with_capacity(len);
        for i in 1..=len {
            let v: mlua::Value = t.raw_get(i).map_err(|e| format!("{path}: {e}"))?;
            items.push(convert(&v, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::List(items));
    }
    let mut pairs = Vec::with_capacity(count);
    for pair in t.pairs::<mlua::Value, mlua::Value>() {
        let (k, v) = pair.map_err(|e| format!("{path}: {e}"))?;
        let key: Rc<str> = match &k {
            mlua::Value::String(s) => {
                Rc::from(s.to_str().map_err(|e| format!("{path}: {e}"))?.as_ref())
            }
            mlua::Value::Integer(i) => Rc::from(i.to_string().as_str()),
            other => {
                return Err(format!(
                    "{path}: a table key of type {} cannot be passed on",
                    other.type_name()
                ))
            }
        };
        let child = convert(&v, &format!("{path}.{key}"), depth + 1)?;
        pairs.push((key, child));
    }
    Ok(match record {
        Some(class) => Value::Record { class, fields: pairs },
        None => Value::Map(pairs),
    })
}

/// The record class a table's metatable names (`__name`), if any.
fn record_class(t: &Table) -> Option<&'static str> {
    let mt = t.metatable()?;
    let name = match mt.raw_get::<mlua::Value>("__name").ok()? {
        mlua::Value::String(s) => s,
        _ => return None,
    };
    RECORD_CLASSES.iter().find(|c| name.as_bytes().as_ref() == c.as_bytes()).copied()
}

/// A host object table: its metatable names a class of [`OBJECT_CLASSES`]
/// and it has an integer `id`.
fn object(t: &Table) -> Option<Value> {
    let mt = t.metatable()?;
    let name = match mt.raw_get::<mlua::Value>("__name").ok()? {
        mlua::Value::String(s) => s,
        _ => return None,
    };
    let class = OBJECT_CLASSES.iter().find(|c| name.as_bytes().as_ref() == c.as_bytes())?;
    match t.raw_get::<mlua::Value>("id").ok()? {
        mlua::Value::Integer(id) => Some(Value::Object { class, id: id as u64 }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_lua() {
        let lua = Lua::new();
        let v = Value::map([
            ("nick", Value::str("bob")),
            ("n", Value::Int(3)),
            ("x", Value::Num(1.5)),
            ("ok", Value::Bool(true)),
            ("list", Value::List(vec![Value::Int(1), Value::str("two")])),
        ]);
        let lv = v.to_lua(&lua).unwrap();
        let back = Value::from_lua(&lv, "t").unwrap();
        assert_eq!(back.get("nick").as_str(), Some("bob"));
        assert_eq!(back.get("n"), &Value::Int(3));
        assert_eq!(back.get("list"), &Value::List(vec![Value::Int(1), Value::str("two")]));
    }

    #[test]
    fn objects_cross_states_through_their_constructor() {
        let ctor = |lua: &Lua| {
            let f: mlua::Function = lua
                .load("return function(id) return setmetatable({id = id}, {__name = 'dc.Hub'}) end")
                .eval()
                .unwrap();
            lua.set_named_registry_value(&class_key("dc.Hub"), f).unwrap();
        };
        let (a, b) = (Lua::new(), Lua::new());
        ctor(&a);
        ctor(&b);
        let obj = Value::Object { class: "dc.Hub", id: u64::MAX - 5 };
        let v = Value::map([("hub", obj.clone())]);
        let in_a = v.to_lua(&a).unwrap();
        let back = Value::from_lua(&in_a, "t").unwrap();
        assert_eq!(back.get("hub"), &obj);
        let in_b = back.to_lua(&b).unwrap();
        let mlua::Value::Table(t) = in_b else { panic!() };
        let hub: Table = t.get("hub").unwrap();
        assert_eq!(hub.get::<i64>("id").unwrap() as u64, u64::MAX - 5);
        // A state without the constructor says so.
        let err = obj.to_lua(&Lua::new()).unwrap_err().to_string();
        assert!(err.contains("no constructor for dc.Hub"), "{err}");
    }

    #[test]
    fn refuses_functions_and_cycles() {
        let lua = Lua::new();
        let f: mlua::Value = lua.load("return {f = function() end}").eval().unwrap();
        let err = Value::from_lua(&f, "dc.emit's table").unwrap_err();
        assert!(err.contains("dc.emit's table.f: a function cannot be passed on"), "{err}");
        let c: mlua::Value = lua.load("local t = {} t.self = t return t").eval().unwrap();
        assert!(Value::from_lua(&c, "t").unwrap_err().contains("nested deeper"));
    }
}
