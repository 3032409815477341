//! The declarative settings table: every setting of `config.lua` with its type,
//! default and one-line documentation.
//!
//! This table is the single source of truth. It drives validation (`validate.rs`
//! walks it), defaults (each default is a Lua literal evaluated when the script
//! leaves a setting unset), `help(name)` for the console, and the commented
//! default `config.lua` (a test checks that the embedded file mentions every
//! entry, with the same default). It holds data only: no Lua, no I/O.

/// What values a setting (or a field of a list item) accepts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// An integer in `min..=max` (a float with an integral value is accepted).
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// UTF-8 text of at most `max_len` characters; may be empty.
    Text {
        /// Longest accepted text, in characters.
        max_len: usize,
    },
    /// A nick: 1 to 64 characters, no whitespace, no control characters, and
    /// none of `$` and `|` (they frame NMDC messages).
    Nick,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// A file or folder. `~` expands to the home folder; a relative path is
    /// relative to the folder holding the configuration file.
    Path,
    /// A local IP address to listen on (`"0.0.0.0"`, `"::"`, `"127.0.0.1"`).
    IpAddr,
    /// A host name or IP address, as told to other users.
    Host,
    /// A hub address: `adc://`, `adcs://`, `dchub://`, `nmdc://` or `nmdcs://`
    /// then host and port (the port may be left out for NMDC: 411).
    HubUrl,
    /// A text encoding label known to `encoding_rs` (`"cp1251"`, `"utf-8"`).
    Charset,
    /// A list of items, each a table described by a [`Record`].
    List(&'static Record),
}

/// The shape of one item of a list setting (`hubs`, `shares`, `scripts`).
#[derive(Debug)]
pub struct Record {
    /// What one item is called in messages ("hub", "share").
    pub item: &'static str,
    /// The fields an item may have.
    pub fields: &'static [Setting],
    /// A field that a plain string item fills: `scripts = {"bot.lua"}` means
    /// `scripts = {{path = "bot.lua"}}`.
    pub shorthand: Option<&'static str>,
    /// A one-line example item, in Lua, used in messages and help.
    pub example: &'static str,
}

/// The value a setting has when the script does not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A Lua literal, evaluated and validated like a value from the script.
    Value(&'static str),
    /// No value (`nil`); the text says what happens then.
    Unset(&'static str),
    /// A field of a list item that must be given.
    Required,
    /// Computed from other fields; the text says how.
    Derived(&'static str),
}

/// One setting, or one field of a list item.
#[derive(Debug)]
pub struct Setting {
    /// The Lua name (`nick`, `hubs`, `password`).
    pub name: &'static str,
    /// What it accepts.
    pub kind: Kind,
    /// What it is when not set.
    pub default: DefaultValue,
    /// One line of documentation.
    pub doc: &'static str,
}

const fn setting(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    doc: &'static str,
) -> Setting {
    Setting { name, kind, default, doc }
}

use DefaultValue::{Derived, Required, Unset, Value};

/// Largest port number.
const PORT_MAX: i64 = 65_535;

/// The fields of one hub in `hubs`.
pub static HUB: Record = Record {
    item: "hub",
    fields: &[
        setting(
            "url",
            Kind::HubUrl,
            Required,
            "Hub address: adc://, adcs:// (ADC over TLS), dchub:// or nmdc://, nmdcs://; host and port.",
        ),
        setting(
            "nick",
            Kind::Nick,
            Unset("the global nick"),
            "Nick on this hub, instead of the global one.",
        ),
        setting(
            "password",
            Kind::Text { max_len: 256 },
            Unset("no password"),
            "Password for a registered nick on this hub.",
        ),
        setting(
            "charset",
            Kind::Charset,
            Unset("utf-8 (ADC is always UTF-8)"),
            "Text encoding of an NMDC hub (utf-8, cp1251, cp1252, ...); text the hub sends that is not valid in it is flagged once in the log.",
        ),
        setting(
            "description",
            Kind::Text { max_len: 256 },
            Unset("the global description"),
            "Description on this hub, instead of the global one.",
        ),
        setting(
            "email",
            Kind::Text { max_len: 256 },
            Unset("the global e-mail"),
            "E-mail address on this hub, instead of the global one.",
        ),
        setting(
            "autoconnect",
            Kind::Bool,
            Value("true"),
            "Connect to this hub when dclua starts.",
        ),
    ],
    shorthand: Some("url"),
    example: r#"{ url = "adcs://hub.example.org:1511", password = "secret" }"#,
};

/// The fields of one shared folder in `shares`.
pub static SHARE: Record = Record {
    item: "share",
    fields: &[
        setting("path", Kind::Path, Required, "The folder to share."),
        setting(
            "name",
            Kind::Text { max_len: 255 },
            Derived("the folder's own name"),
            "The name other users see for this folder.",
        ),
        setting(
            "hidden",
            Kind::Bool,
            Value("false"),
            "Also share hidden files and folders (names starting with a dot).",
        ),
        setting(
            "follow_symlinks",
            Kind::Bool,
            Value("false"),
            "Follow symbolic links in this folder, even to places outside it (never into the data folder).",
        ),
    ],
    shorthand: Some("path"),
    example: r#"{ path = "~/Music", name = "Music" }"#,
};

/// The fields of one script in `scripts`.
pub static SCRIPT: Record = Record {
    item: "script",
    fields: &[
        setting("path", Kind::Path, Required, "The Lua script to load at start."),
        setting(
            "trusted",
            Kind::Bool,
            Value("false"),
            "Give the script the full standard library (io, os): only for scripts you wrote or read.",
        ),
    ],
    shorthand: Some("path"),
    example: r#"{ path = "~/dclua/greeter.lua", trusted = false }"#,
};

/// Every top-level setting of `config.lua`, in the order of the default file.
pub static SETTINGS: &[Setting] = &[
    // Identity.
    setting(
        "nick",
        Kind::Nick,
        Value(r#""dclua-user""#),
        "Your nick on hubs (a hub entry may set its own).",
    ),
    setting(
        "description",
        Kind::Text { max_len: 256 },
        Value(r#""""#),
        "A short description other users see.",
    ),
    setting(
        "email",
        Kind::Text { max_len: 256 },
        Value(r#""""#),
        "An e-mail address other users see (leave empty to show none).",
    ),
    // Folders.
    setting(
        "data_dir",
        Kind::Path,
        Unset("the XDG data folder, ~/.local/share/dclua"),
        "Folder for the hash store, the queue, the console history and logs (--data-dir overrides).",
    ),
    setting(
        "download_dir",
        Kind::Path,
        Unset("<data_dir>/downloads"),
        "Folder where finished downloads are put.",
    ),
    // Sharing.
    setting(
        "shares",
        Kind::List(&SHARE),
        Value("{}"),
        "Shared folders: a list of paths or of tables {path = ..., name = ..., hidden = ..., follow_symlinks = ...}.",
    ),
    // Hubs.
    setting(
        "hubs",
        Kind::List(&HUB),
        Value("{}"),
        "Hubs: a list of addresses or of tables {url = ..., nick = ..., password = ..., charset = ..., autoconnect = ...}.",
    ),
    setting(
        "reconnect_delay",
        Kind::Int { min: 0, max: 86_400 },
        Value("30"),
        "Seconds to wait before reconnecting to a hub that dropped us; 0 = never reconnect.",
    ),
    setting(
        "max_users",
        Kind::Int { min: 1000, max: 100_000_000 },
        Value("2000000"),
        "Users kept per hub at most; past it a hub's further users are not kept (the log says so once).",
    ),
    // Transfers.
    setting(
        "slots",
        Kind::Int { min: 1, max: 1000 },
        Value("3"),
        "Upload slots: how many users may download from you at the same time.",
    ),
    setting(
        "mini_slots",
        Kind::Int { min: 0, max: 100 },
        Value("3"),
        "Extra upload slots for file lists, TTH leaves and files up to 64 KiB, so that browsing never waits for a full slot.",
    ),
    setting(
        "download_slots",
        Kind::Int { min: 0, max: 1000 },
        Value("0"),
        "How many files may download at the same time; 0 = no limit.",
    ),
    setting(
        "upload_limit",
        Kind::Int {
            min: 0,
            max: 10_000_000,
        },
        Value("0"),
        "Upload speed limit in KiB/s; 0 = no limit.",
    ),
    setting(
        "download_limit",
        Kind::Int {
            min: 0,
            max: 10_000_000,
        },
        Value("0"),
        "Download speed limit in KiB/s; 0 = no limit.",
    ),
    setting(
        "segment_size",
        Kind::Int { min: 1, max: 256 },
        Value("1"),
        "Smallest piece of a file asked of one source, in MiB; pieces grow to about 20 s of a source's speed (up to 256 MiB).",
    ),
    // Network.
    setting(
        "mode",
        Kind::Choice(&["active", "passive"]),
        Value(r#""passive""#),
        "\"active\" if other users can connect to your ports, \"passive\" behind a NAT or firewall.",
    ),
    setting(
        "listen_address",
        Kind::IpAddr,
        Value(r#""0.0.0.0""#),
        "Local IP address to listen on for other users (\"::\" for IPv6 too).",
    ),
    setting(
        "external_address",
        Kind::Host,
        Unset("the address the hub sees"),
        "Address announced to others in active mode, when behind a forwarded NAT port.",
    ),
    setting(
        "tcp_port",
        Kind::Int {
            min: 0,
            max: PORT_MAX,
        },
        Value("0"),
        "TCP port for client connections in active mode; 0 = any free port.",
    ),
    setting(
        "udp_port",
        Kind::Int {
            min: 0,
            max: PORT_MAX,
        },
        Value("0"),
        "UDP port for search results in active mode; 0 = any free port.",
    ),
    setting(
        "tls_port",
        Kind::Int {
            min: 0,
            max: PORT_MAX,
        },
        Value("0"),
        "TCP port for encrypted (TLS) client connections in active mode; 0 = any free port.",
    ),
    setting(
        "tls_transfers",
        Kind::Bool,
        Value("true"),
        "Encrypted (TLS) client connections: the TLS port in active mode, and TLS when a user asks for it; false: plain connections only.",
    ),
    // Scripts.
    setting(
        "scripts",
        Kind::List(&SCRIPT),
        Value("{}"),
        "Lua scripts to load at start: a list of paths or of tables {path = ..., trusted = ...}.",
    ),
    // Logging and console.
    setting(
        "log_level",
        Kind::Choice(&["off", "error", "warn", "info", "debug", "trace"]),
        Value(r#""info""#),
        "How much to log: off, error, warn, info, debug or trace.",
    ),
    setting(
        "log_file",
        Kind::Path,
        Unset("log to standard error only"),
        "Also append the log to this file (its folder is created); past 10 MiB it becomes FILE.1, keeping three old ones.",
    ),
    setting(
        "history_size",
        Kind::Int {
            min: 0,
            max: 100_000,
        },
        Value("1000"),
        "How many console lines to keep in the history file; 0 = keep no history.",
    ),
];

/// Finds a top-level setting by name.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

impl Record {
    /// Finds a field of this record by name.
    pub fn field(&self, name: &str) -> Option<&'static Setting> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Kind {
    /// Describes the accepted values, as used after "expected" in messages:
    /// "an integer from 1 to 1000".
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "a boolean (true or false)".to_string(),
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::Text { max_len } => format!("a string of at most {max_len} characters"),
            Kind::Nick => "a nick (1 to 64 characters, no spaces, no $ or |)".to_string(),
            Kind::Choice(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Kind::Path => "a path (a string)".to_string(),
            Kind::IpAddr => "an IP address such as \"0.0.0.0\" or \"::\"".to_string(),
            Kind::Host => "a host name or IP address".to_string(),
            Kind::HubUrl => {
                "a hub address such as \"adcs://hub.example.org:1511\" or \"dchub://hub.example.org\""
                    .to_string()
            }
            Kind::Charset => "a charset name such as \"cp1251\" or \"utf-8\"".to_string(),
            Kind::List(record) => match record.shorthand {
                Some(field) => format!(
                    "a list of {item} tables or {field} strings, such as {{ {example} }}",
                    item = record.item,
                    example = record.example
                ),
                None => format!(
                    "a list of {item} tables, such as {{ {example} }}",
                    item = record.item,
                    example = record.example
                ),
            },
        }
    }

    /// A short type name for help headers: "integer 1..1000", "boolean".
    fn short(&self) -> String {
        match self {
            Kind::Bool => "boolean".to_string(),
            Kind::Int { min, max } => format!("integer {min}..{max}"),
            Kind::Text { .. } => "string".to_string(),
            Kind::Nick => "nick".to_string(),
            Kind::Choice(words) => words.join(" | "),
            Kind::Path => "path".to_string(),
            Kind::IpAddr => "IP address".to_string(),
            Kind::Host => "host".to_string(),
            Kind::HubUrl => "hub address".to_string(),
            Kind::Charset => "charset".to_string(),
            Kind::List(record) => format!("list of {}s", record.item),
        }
    }
}

impl Setting {
    /// The default as help shows it: `default 3`, `default nil: no password`,
    /// `required`, `default: the folder's own name`.
    pub fn default_text(&self) -> String {
        match self.default {
            Value(lit) => format!("default {lit}"),
            Unset(what) => format!("default nil: {what}"),
            Required => "required".to_string(),
            Derived(how) => format!("default: {how}"),
        }
    }
}

/// Help text for a setting, for the console's `help`: `help("slots")`, or a
/// field of a list item with a dot: `help("hubs.charset")`. `None` if there is
/// no such setting.
pub fn help(name: &str) -> Option<String> {
    let (top, field) = match name.split_once('.') {
        Some((top, field)) => (top, Some(field)),
        None => (name, None),
    };
    let setting = find(top)?;
    match (field, setting.kind) {
        (None, Kind::List(record)) => {
            let mut text = header(setting.name, setting);
            text.push_str("\n  Each item:");
            for f in record.fields {
                text.push_str(&format!(
                    "\n    {} ({}; {}): {}",
                    f.name,
                    f.kind.short(),
                    f.default_text(),
                    f.doc
                ));
            }
            text.push_str(&format!("\n  Example: {} = {{ {} }}", setting.name, record.example));
            Some(text)
        }
        (None, _) => Some(header(setting.name, setting)),
        (Some(field), Kind::List(record)) => {
            let f = record.field(field)?;
            Some(header(&format!("{}[i].{}", setting.name, f.name), f))
        }
        (Some(_), _) => None,
    }
}

fn header(title: &str, s: &Setting) -> String {
    format!("{title} ({}; {})\n  {}", s.kind.short(), s.default_text(), s.doc)
}

/// The names `help` accepts, for completion: every setting, and
/// `list.field` for every field of list items.
pub fn help_topics() -> Vec<String> {
    let mut topics = Vec::new();
    for s in SETTINGS {
        topics.push(s.name.to_string());
        if let Kind::List(record) = s.kind {
            for f in record.fields {
                topics.push(format!("{}.{}", s.name, f.name));
            }
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lua_identifiers() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name), "duplicate setting {}", s.name);
            assert!(
                s.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{} is not a plain Lua name",
                s.name
            );
            assert!(!s.doc.is_empty(), "{} has no doc", s.name);
            assert!(!matches!(s.default, Required), "top-level {} cannot be required", s.name);
        }
    }

    #[test]
    fn records_have_their_shorthand_field_required() {
        for record in [&HUB, &SHARE, &SCRIPT] {
            let field = record.shorthand.and_then(|name| record.field(name));
            assert!(field.is_some_and(|f| f.default == Required), "{}", record.item);
        }
    }

    #[test]
    fn help_describes_settings_and_fields() {
        let slots = help("slots").expect("slots has help");
        assert_eq!(
            slots,
            "slots (integer 1..1000; default 3)\n  Upload slots: how many users may download from you at the same time."
        );
        let hubs = help("hubs").expect("hubs has help");
        assert!(hubs.contains("\n    charset (charset; default nil: utf-8"), "{hubs}");
        assert!(hubs.contains("\n    url (hub address; required): Hub address"), "{hubs}");
        let charset = help("hubs.charset").expect("field help");
        assert!(charset.starts_with("hubs[i].charset (charset; default nil: utf-8"), "{charset}");
        let name = help("shares.name").expect("field help");
        assert!(
            name.starts_with("shares[i].name (string; default: the folder's own name)"),
            "{name}"
        );
        assert_eq!(help("nikc"), None);
        assert_eq!(help("hubs.pasword"), None);
        assert_eq!(help("slots.x"), None);
        assert!(help_topics().iter().all(|t| help(t).is_some()));
    }
}
