//! What running a configuration script and checking its result share: a
//! table's entries in a stable order, the known name probably meant, and how
//! values appear in messages.
//!
//! A leaf of `config` (the sandbox in `load.rs` and the checks in `check.rs`
//! both use it); it runs no script code and does no I/O.

use mlua::{Table, Value};

/// Jaro-Winkler similarity from which a known name is suggested.
const SUGGESTION_THRESHOLD: f64 = 0.8;

/// The longest text quoted back in a message.
const QUOTE_MAX: usize = 60;

/// The known name most like `name`, if one is close enough.
pub(crate) fn suggestion<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, k)| *score >= SUGGESTION_THRESHOLD && *k != name)
        // On a tie the alphabetically first name wins, whatever the input order.
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, k)| k)
}

/// A table's entries, sorted by key: Lua's own order changes from run to run
/// (string hashes are seeded at random), and messages must not.
pub(crate) fn sorted_pairs(table: &Table) -> mlua::Result<Vec<(Value, Value)>> {
    let mut pairs = table.pairs::<Value, Value>().collect::<mlua::Result<Vec<_>>>()?;
    pairs.sort_by_key(|(key, _)| sort_key(key));
    Ok(pairs)
}

/// Numbers first, in order; then strings; then anything else by type name.
fn sort_key(key: &Value) -> (u8, i64, String) {
    match key {
        Value::Integer(n) => (0, *n, String::new()),
        Value::Number(f) => (0, *f as i64, f.to_string()),
        Value::String(s) => (1, 0, s.to_string_lossy()),
        other => (2, 0, other.type_name().to_string()),
    }
}

/// An integer, from a Lua integer or an integral float.
pub(super) fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        // The range check keeps the cast exact.
        Value::Number(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        _ => None,
    }
}

/// Text in double quotes with escapes, cut when long.
pub(super) fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(QUOTE_MAX).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

/// How a value is shown after "got": `string "three"`, `5000`, `a table`.
pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Nil => "nil".to_string(),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Integer(n) => n.to_string(),
        Value::Number(f) => format!("{f}"),
        Value::String(s) => format!("string {}", quote(&s.to_string_lossy())),
        Value::Table(_) => "a table".to_string(),
        Value::Function(_) => "a function".to_string(),
        Value::Thread(_) => "a coroutine".to_string(),
        other => format!("a {}", other.type_name()),
    }
}

/// How a table key is shown: `key "url"`, `key 2.5`.
pub(super) fn describe_key(key: &Value) -> String {
    match key {
        Value::String(s) => format!("key {}", quote(&s.to_string_lossy())),
        other => format!("key {}", describe_value(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    #[test]
    fn suggestions_need_similarity() {
        let names = ["nick", "slots", "password"];
        assert_eq!(suggestion("nikc", names.iter().copied()), Some("nick"));
        assert_eq!(suggestion("pasword", names.iter().copied()), Some("password"));
        assert_eq!(suggestion("zzz", names.iter().copied()), None);
    }

    #[test]
    fn values_are_described() {
        let lua = Lua::new();
        let long = "x".repeat(100);
        let cases = [
            (Value::Integer(5000), "5000".to_string()),
            (Value::Number(2.5), "2.5".to_string()),
            (Value::Boolean(true), "boolean true".to_string()),
            (
                Value::String(lua.create_string("th\"ree").expect("string")),
                r#"string "th\"ree""#.to_string(),
            ),
            (
                Value::String(lua.create_string(&long).expect("string")),
                format!("string \"{}...\"", "x".repeat(QUOTE_MAX)),
            ),
            (Value::Table(lua.create_table().expect("table")), "a table".to_string()),
        ];
        for (value, text) in cases {
            assert_eq!(describe_value(&value), text);
        }
    }

    #[test]
    fn integral_floats_are_integers() {
        assert_eq!(as_integer(&Value::Number(3.0)), Some(3));
        assert_eq!(as_integer(&Value::Number(3.5)), None);
        assert_eq!(as_integer(&Value::Number(f64::NAN)), None);
        assert_eq!(as_integer(&Value::Number(1e300)), None);
    }
}
