//! Checks what a configuration script set against the settings table and
//! builds the typed [`Config`].
//!
//! Every value is checked by the [`Kind`] its entry declares; unset settings
//! take the entry's default (a Lua literal, checked the same way). Problems
//! name the file, the line (see `locate.rs`) and the setting path
//! (`hubs[2].password`), and suggest the name probably meant. Nothing is
//! rejected silently and checking goes on after a problem, so one run reports
//! them all. The checked values go through serde (`LuaSerdeExt::from_value`)
//! into [`Config`]. This module runs no script code and does no I/O.

use crate::address::HubUrl;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::error::{ConfigError, Problem};
use super::load::{Assignment, Origin, Run};
use super::locate::{Seg, SourceIndex};
use super::model::Config;
use super::paths::{self, expand_path};
use super::settings::{self, DefaultValue, Kind, Record, Setting, HUB, SETTINGS, SHARE};
use super::validate::{as_integer, describe_key, describe_value, quote, sorted_pairs, suggestion};

/// Charset labels offered as suggestions for a misspelt `charset`.
const COMMON_CHARSETS: &[&str] = &[
    "utf-8",
    "cp1250",
    "cp1251",
    "cp1252",
    "cp1253",
    "cp1254",
    "cp1257",
    "iso-8859-1",
    "iso-8859-2",
    "iso-8859-5",
    "iso-8859-15",
    "koi8-r",
    "koi8-u",
    "gbk",
    "gb18030",
    "big5",
    "shift_jis",
    "euc-jp",
    "euc-kr",
];

/// Checks a finished run of the script named `file` (whose text is `text`)
/// and builds the configuration. Relative paths are resolved against
/// `base_dir` when given.
pub(crate) fn validate(
    run: Run,
    file: &str,
    text: &[u8],
    base_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let Run { lua, assignments, problems } = run;
    let mut checker =
        Checker { lua: &lua, file, index: SourceIndex::new(text), base_dir, problems };
    let out = checker.check_all(&assignments);
    let mut problems = checker.problems;
    if !problems.is_empty() {
        // In line order; problems without a line last, in the table's order.
        problems.sort_by_key(|p| (p.line.is_none(), p.line));
        return Err(ConfigError::Invalid(problems));
    }
    let out = out.ok_or_else(|| internal(file, "checking failed without a message"))?;
    let mut config: Config = lua.from_value(Value::Table(out)).map_err(|e| {
        internal(file, &format!("the checked settings do not fit the Config type: {e}"))
    })?;
    resolve_paths(&mut config, base_dir);
    Ok(config)
}

fn internal(file: &str, message: &str) -> ConfigError {
    ConfigError::Invalid(vec![Problem {
        file: file.to_string(),
        line: None,
        message: format!("internal error: {message}"),
    }])
}

/// Where a value sits: its top-level setting, how that was given (`None` for
/// a default), and the path below it.
#[derive(Debug, Clone)]
struct Place {
    key: String,
    origin: Option<Origin>,
    path: Vec<Seg>,
}

impl Place {
    fn child(&self, seg: Seg) -> Place {
        let mut path = self.path.clone();
        path.push(seg);
        Place { key: self.key.clone(), origin: self.origin, path }
    }

    /// `hubs[2].password`.
    fn label(&self) -> String {
        let mut label = self.key.clone();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    label.push('.');
                    label.push_str(name);
                }
                Seg::Index(i) => label.push_str(&format!("[{i}]")),
            }
        }
        label
    }
}

struct Checker<'a> {
    lua: &'a Lua,
    file: &'a str,
    index: SourceIndex,
    base_dir: Option<&'a Path>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, place: &Place) -> Option<usize> {
        match place.origin? {
            Origin::Global(Some(end)) => {
                self.index.line_of(&place.key, Some(end), &place.path).or(Some(end))
            }
            Origin::Global(None) => None,
            Origin::Returned => self.index.line_of(&place.key, None, &place.path),
        }
    }

    /// Records `message` about `place`, prefixed by its label.
    fn problem(&mut self, place: &Place, message: &str) {
        let message = format!("{}: {message}", place.label());
        self.problem_at(place, message);
    }

    fn problem_at(&mut self, place: &Place, message: String) {
        let line = self.line(place);
        self.problems.push(Problem { file: self.file.to_string(), line, message });
    }

    fn mismatch(&mut self, kind: Kind, value: &Value, place: &Place) {
        let message = format!("expected {}, got {}", kind.describe(), describe_value(value));
        self.problem(place, &message);
    }

    fn lua_error(&mut self, place: &Place, err: &mlua::Error) {
        let message = format!("internal error while checking: {err}");
        self.problem(place, &message);
    }

    /// Checks every assignment and fills defaults; returns the table for serde.
    fn check_all(&mut self, assignments: &[Assignment]) -> Option<Table> {
        let out = match self.lua.create_table() {
            Ok(out) => out,
            Err(e) => {
                let place = top_place("config", None);
                self.lua_error(&place, &e);
                return None;
            }
        };
        let given: HashMap<&str, &Assignment> =
            assignments.iter().map(|a| (a.name.as_str(), a)).collect();
        for assignment in assignments {
            if settings::find(&assignment.name).is_none() {
                self.unknown_setting(assignment);
            }
        }
        let mut places: HashMap<&'static str, Place> = HashMap::new();
        for setting in SETTINGS {
            let (value, place) = match given.get(setting.name) {
                Some(a) => (Some(a.value.clone()), top_place(setting.name, Some(a.origin))),
                None => (None, top_place(setting.name, None)),
            };
            let checked = match value {
                Some(value) => self.check(setting.kind, &value, &place),
                None => self.default_of(setting, &place),
            };
            if let Some(value) = checked {
                if let Err(e) = out.raw_set(setting.name, value) {
                    self.lua_error(&place, &e);
                }
            }
            places.insert(setting.name, place);
        }
        self.check_ports(&out, &places);
        Some(out)
    }

    fn unknown_setting(&mut self, assignment: &Assignment) {
        let name = &assignment.name;
        let hint = if let Value::Function(_) = assignment.value {
            format!(": helper functions must be local (local function {name}(...))")
        } else if let Some(similar) = suggestion(name, SETTINGS.iter().map(|s| s.name)) {
            format!(" (did you mean \"{similar}\"?)")
        } else if let Some((list, record)) = owning_list(name) {
            format!(
                " ({name} is a field of each {item}: {list} = {{ {example} }})",
                item = record.item,
                example = record.example
            )
        } else {
            " (use local for helper variables)".to_string()
        };
        let place = top_place(name, Some(assignment.origin));
        self.problem_at(&place, format!("unknown setting {}{hint}", quote(name)));
    }

    /// The default of `setting`, checked; `None` when it has none.
    fn default_of(&mut self, setting: &Setting, place: &Place) -> Option<Value> {
        match setting.default {
            DefaultValue::Value(literal) => {
                let value = self
                    .lua
                    .load(literal)
                    .set_name("=default")
                    .eval::<Value>()
                    .map_err(|e| self.lua_error(place, &e))
                    .ok()?;
                self.check(setting.kind, &value, place)
            }
            DefaultValue::Unset(_) | DefaultValue::Derived(_) | DefaultValue::Required => None,
        }
    }

    /// Checks one value; returns its normalized form.
    fn check(&mut self, kind: Kind, value: &Value, place: &Place) -> Option<Value> {
        match kind {
            Kind::Bool => match value {
                Value::Boolean(_) => Some(value.clone()),
                _ => self.fail(kind, value, place),
            },
            Kind::Int { min, max } => match as_integer(value) {
                Some(n) if (min..=max).contains(&n) => Some(Value::Integer(n)),
                _ => self.fail(kind, value, place),
            },
            Kind::Text { max_len } => {
                let text = self.text(kind, value, place)?;
                if text.chars().count() > max_len {
                    let message = format!("is longer than {max_len} characters");
                    self.problem(place, &message);
                    return None;
                }
                if text.chars().any(char::is_control) {
                    self.problem(place, "must not contain control characters (line breaks, tabs)");
                    return None;
                }
                Some(value.clone())
            }
            Kind::Nick => {
                let text = self.text(kind, value, place)?;
                let length = text.chars().count();
                let bad = text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '$' || c == '|');
                if length == 0 || length > 64 || bad {
                    return self.fail(kind, value, place);
                }
                Some(value.clone())
            }
            Kind::Choice(words) => {
                let text = self.text(kind, value, place)?;
                if words.contains(&text.as_str()) {
                    return Some(value.clone());
                }
                let hint = suggestion(&text, words.iter().copied())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                let message =
                    format!("expected {}, got {}{hint}", kind.describe(), describe_value(value));
                self.problem(place, &message);
                None
            }
            Kind::Path => {
                let text = self.text(kind, value, place)?;
                if text.is_empty() || text.contains('\0') {
                    return self.fail(kind, value, place);
                }
                if text.starts_with('~') && text != "~" && !text.starts_with("~/") {
                    self.problem(place, "\"~user\" paths are not supported; write the full path");
                    return None;
                }
                if text.starts_with('~') && dirs::home_dir().is_none() {
                    self.problem(
                        place,
                        "cannot expand \"~\": the home folder is unknown; write the full path",
                    );
                    return None;
                }
                Some(value.clone())
            }
            Kind::IpAddr => {
                let text = self.text(kind, value, place)?;
                match text.parse::<IpAddr>() {
                    Ok(_) => Some(value.clone()),
                    Err(_) => self.fail(kind, value, place),
                }
            }
            Kind::Host => {
                let text = self.text(kind, value, place)?;
                if is_host(&text) {
                    Some(value.clone())
                } else {
                    self.fail(kind, value, place)
                }
            }
            Kind::HubUrl => {
                let text = self.text(kind, value, place)?;
                match HubUrl::parse(&text) {
                    Ok(_) => Some(value.clone()),
                    Err(e) => {
                        let message =
                            format!("{} is not a hub address: {}", quote(&text), e.reason);
                        self.problem(place, &message);
                        None
                    }
                }
            }
            Kind::Charset => {
                let text = self.text(kind, value, place)?;
                match encoding_rs::Encoding::for_label(text.trim().as_bytes()) {
                    Some(encoding) => self
                        .lua
                        .create_string(encoding.name())
                        .map(Value::String)
                        .map_err(|e| self.lua_error(place, &e))
                        .ok(),
                    None => {
                        let hint =
                            suggestion(&text.to_ascii_lowercase(), COMMON_CHARSETS.iter().copied())
                                .map(|s| format!(" (did you mean \"{s}\"?)"))
                                .unwrap_or_default();
                        let message = format!("unknown charset {}{hint}", quote(&text));
                        self.problem(place, &message);
                        None
                    }
                }
            }
            Kind::List(record) => self.check_list(kind, record, value, place),
        }
    }

    fn fail(&mut self, kind: Kind, value: &Value, place: &Place) -> Option<Value> {
        self.mismatch(kind, value, place);
        None
    }

    /// The value as UTF-8 text, or a problem.
    fn text(&mut self, kind: Kind, value: &Value, place: &Place) -> Option<String> {
        match value {
            Value::String(s) => match s.to_str() {
                Ok(text) => Some(text.to_string()),
                Err(_) => {
                    let message = format!(
                        "expected {}, got a string that is not valid UTF-8",
                        kind.describe()
                    );
                    self.problem(place, &message);
                    None
                }
            },
            _ => {
                self.mismatch(kind, value, place);
                None
            }
        }
    }

    fn check_list(
        &mut self,
        kind: Kind,
        record: &'static Record,
        value: &Value,
        place: &Place,
    ) -> Option<Value> {
        let Value::Table(table) = value else {
            return self.fail(kind, value, place);
        };
        let pairs = match sorted_pairs(table) {
            Ok(pairs) => pairs,
            Err(e) => {
                self.lua_error(place, &e);
                return None;
            }
        };
        let mut items = BTreeMap::new();
        let mut stray = Vec::new();
        for (key, item) in pairs {
            match as_integer(&key) {
                Some(i) if i >= 1 => {
                    items.insert(i, item);
                }
                _ => stray.push(key),
            }
        }
        if !stray.is_empty() {
            let looks_like_one_item = items.is_empty()
                && stray
                    .iter()
                    .any(|k| matches!(k, Value::String(s) if record.field(&s.to_string_lossy()).is_some()));
            if looks_like_one_item {
                let message = format!(
                    "expected a list of {item}s, got a single {item} table; put it in a list: {key} = {{ {example} }}",
                    item = record.item,
                    key = place.label(),
                    example = record.example
                );
                self.problem(place, &message);
            } else {
                for key in stray {
                    let message = format!(
                        "unexpected {} in a list of {}s (write items one after another, without keys)",
                        describe_key(&key),
                        record.item
                    );
                    self.problem(place, &message);
                }
            }
            return None;
        }
        // Lua lists have no holes: `{a, nil, c}` is a mistake, not two items.
        for (expected, &i) in (1..).zip(items.keys()) {
            if i != expected {
                let message = format!("is nil, but the list goes on to [{i}]; remove the hole");
                self.problem(&place.child(Seg::Index(expected)), &message);
                return None;
            }
        }

        let mut checked = Vec::new();
        let mut ok = true;
        for (i, item) in items {
            let item_place = place.child(Seg::Index(i));
            match self.check_record(record, &item, &item_place) {
                Some(table) => checked.push((item_place, table)),
                None => ok = false,
            }
        }
        if std::ptr::eq(record, &HUB) {
            self.check_hubs(&checked);
        } else if std::ptr::eq(record, &SHARE) {
            self.check_shares(&checked);
        }
        if !ok {
            return None;
        }
        let out = self.lua.create_table().map_err(|e| self.lua_error(place, &e)).ok()?;
        for (i, (item_place, table)) in checked.into_iter().enumerate() {
            if let Err(e) = out.raw_set(i + 1, table) {
                self.lua_error(&item_place, &e);
                return None;
            }
        }
        Some(Value::Table(out))
    }

    fn check_record(
        &mut self,
        record: &'static Record,
        value: &Value,
        place: &Place,
    ) -> Option<Table> {
        let given = match (value, record.shorthand) {
            (Value::Table(table), _) => table.clone(),
            (Value::String(_), Some(field)) => {
                let table = self.lua.create_table().map_err(|e| self.lua_error(place, &e)).ok()?;
                table.raw_set(field, value.clone()).map_err(|e| self.lua_error(place, &e)).ok()?;
                table
            }
            _ => {
                let expected = match record.shorthand {
                    Some(field) => format!("a {} table or a {field} string", record.item),
                    None => format!("a {} table", record.item),
                };
                let message = format!("expected {expected}, got {}", describe_value(value));
                self.problem(place, &message);
                return None;
            }
        };
        let pairs = match sorted_pairs(&given) {
            Ok(pairs) => pairs,
            Err(e) => {
                self.lua_error(place, &e);
                return None;
            }
        };
        let mut ok = true;
        for (key, _) in &pairs {
            let name = match key {
                Value::String(s) => s.to_string_lossy(),
                other => {
                    let message = format!(
                        "unexpected {} in a {} table (fields are named, as in {})",
                        describe_key(other),
                        record.item,
                        record.example
                    );
                    self.problem(place, &message);
                    ok = false;
                    continue;
                }
            };
            if record.field(&name).is_none() {
                let hint = suggestion(&name, record.fields.iter().map(|f| f.name))
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                let field_place = place.child(Seg::Field(name.clone()));
                let message = format!("{}: unknown field {}{hint}", place.label(), quote(&name));
                self.problem_at(&field_place, message);
                ok = false;
            }
        }

        let out = self.lua.create_table().map_err(|e| self.lua_error(place, &e)).ok()?;
        for field in record.fields {
            let field_place = place.child(Seg::Field(field.name.to_string()));
            let value: Value = given.raw_get(field.name).unwrap_or(Value::Nil);
            let checked = if value.is_nil() {
                match field.default {
                    DefaultValue::Required => {
                        let message = format!(
                            "missing field \"{}\" (an item looks like {})",
                            field.name, record.example
                        );
                        self.problem(place, &message);
                        ok = false;
                        continue;
                    }
                    DefaultValue::Derived(_) => self.derive(record, field, &out, &field_place),
                    _ => self.default_of(field, &field_place),
                }
            } else {
                let checked = self.check(field.kind, &value, &field_place);
                ok &= checked.is_some();
                checked
            };
            if let Some(checked) = checked {
                if let Err(e) = out.raw_set(field.name, checked) {
                    self.lua_error(&field_place, &e);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Computes a derived field. The only one is a share's name: the last
    /// part of its path.
    fn derive(
        &mut self,
        record: &Record,
        field: &Setting,
        out: &Table,
        place: &Place,
    ) -> Option<Value> {
        if !(std::ptr::eq(record, &SHARE) && field.name == "name") {
            let message = format!("internal error: no rule derives {}", field.name);
            self.problem(place, &message);
            return None;
        }
        // The path was checked before (fields are in order); if it failed, so be it.
        let path: String = out.raw_get::<Option<String>>("path").ok().flatten()?;
        let resolved = expand_path(&path, self.base_dir);
        match resolved.file_name().and_then(|n| n.to_str()) {
            Some(name) => self.lua.create_string(name).map(Value::String).ok(),
            None => {
                let message = format!(
                    "cannot take a name from the path {}; set name = \"...\"",
                    quote(&path)
                );
                self.problem(place, &message);
                None
            }
        }
    }

    /// Across hubs: no address twice; no charset on ADC hubs other than UTF-8.
    fn check_hubs(&mut self, hubs: &[(Place, Table)]) {
        let mut seen: HashMap<String, String> = HashMap::new();
        for (place, hub) in hubs {
            let Ok(Some(url)) = hub.raw_get::<Option<String>>("url") else {
                continue;
            };
            let Ok(address) = HubUrl::parse(&url) else { continue };
            let key = address.identity();
            if let Some(first) = seen.get(&key) {
                let message = format!("{} is already listed as {first}", quote(&url));
                self.problem(&place.child(Seg::Field("url".into())), &message);
            } else {
                seen.insert(key, place.label());
            }
            let charset = hub.raw_get::<Option<String>>("charset").ok().flatten();
            if let Some(charset) = charset {
                if address.is_adc() && charset != "UTF-8" {
                    let message =
                        "ADC hubs always use UTF-8; remove charset or set it to \"utf-8\"";
                    self.problem(&place.child(Seg::Field("charset".into())), message);
                }
            }
        }
    }

    /// Across shares: names other users see must be usable and distinct.
    fn check_shares(&mut self, shares: &[(Place, Table)]) {
        let mut seen: HashMap<String, String> = HashMap::new();
        for (place, share) in shares {
            let Ok(Some(name)) = share.raw_get::<Option<String>>("name") else {
                continue;
            };
            let name_place = place.child(Seg::Field("name".into()));
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
                let message =
                    format!("{} cannot name a shared folder (no slashes, not empty)", quote(&name));
                self.problem(&name_place, &message);
                continue;
            }
            let key = name.to_lowercase();
            if let Some(first) = seen.get(&key) {
                let message = format!(
                    "the name {} is already used by {first}; set a different name = \"...\"",
                    quote(&name)
                );
                self.problem(&name_place, &message);
            } else {
                seen.insert(key, place.label());
            }
        }
    }

    /// The TLS listener needs its own TCP port.
    fn check_ports(&mut self, out: &Table, places: &HashMap<&'static str, Place>) {
        let port = |name: &str| out.raw_get::<Option<i64>>(name).ok().flatten().unwrap_or(0);
        let (tcp, tls) = (port("tcp_port"), port("tls_port"));
        if tcp != 0 && tcp == tls {
            if let Some(place) = places.get("tls_port") {
                let message =
                    format!("{tls} is also tcp_port; the TLS listener needs its own port");
                self.problem(place, &message);
            }
        }
    }
}

fn top_place(key: &str, origin: Option<Origin>) -> Place {
    Place { key: key.to_string(), origin, path: Vec::new() }
}

/// The list setting whose items have a field called `name`, if any.
fn owning_list(name: &str) -> Option<(&'static str, &'static Record)> {
    SETTINGS.iter().find_map(|s| match s.kind {
        Kind::List(record) if record.field(name).is_some() => Some((s.name, record)),
        _ => None,
    })
}

/// Expands `~` and resolves relative paths against `base`.
fn resolve_paths(config: &mut Config, base: Option<&Path>) {
    let optional = [&mut config.data_dir, &mut config.download_dir, &mut config.log_file];
    for path in optional.into_iter().flatten() {
        paths::resolve(path, base);
    }
    for share in &mut config.shares {
        paths::resolve(&mut share.path, base);
    }
    for script in &mut config.scripts {
        paths::resolve(&mut script.path, base);
    }
}

/// A host name (letters, digits, `-`, `.`, `_`) or an IP address.
fn is_host(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
