//! dclua's configuration: a Lua script (`config.lua`) validated into one typed
//! [`Config`].
//!
//! This module owns reading, running and checking the script, the settings
//! table, the default file and the standard locations. It does not apply a
//! configuration (the caller does) and does not watch the file.
//!
//! # The file
//!
//! `config.lua` lives in the XDG config folder (`~/.config/dclua/config.lua`,
//! see [`paths`]) unless `--config FILE` names another. `dclua --init-config`
//! (through [`init`]) writes the commented default, [`DEFAULT_CONFIG_LUA`].
//!
//! # Style: settings are globals
//!
//! The script assigns settings as globals:
//!
//! ```lua
//! nick = "me"
//! slots = 4
//! hubs = {
//!   { url = "adcs://hub.example.org:1511", password = "secret" },
//!   "dchub://old.example.org",           -- a plain address is a hub too
//! }
//! ```
//!
//! It is real Lua: locals, loops and functions are fine (`local music =
//! "/srv/music"`). Every global assignment is a setting, so helpers must be
//! `local`; reading an undefined name is an error (it catches `charset =
//! cp1251` without quotes). A script may instead `return { nick = "me", ... }`;
//! both styles may be mixed, but a setting given twice is an error. Assigning
//! `nil` unsets a setting (its default applies).
//!
//! Relative paths are relative to the configuration file's folder (with
//! [`Config::from_lua_source`], which has no file, they stay as written); `~`
//! is the home folder.
//!
//! # Checking
//!
//! Each setting has one entry in the declarative table [`settings::SETTINGS`]
//! (name, type, default, one-line doc), which drives validation, defaults,
//! the commented default file and [`help`]. An unknown name or a wrong value is
//! an error naming the file, the line, the setting path and, when a known name
//! is close, the one probably meant:
//!
//! ```text
//! config.lua:7: unknown setting "nikc" (did you mean "nick"?)
//! config.lua:12: hubs[2]: unknown field "pasword" (did you mean "password"?)
//! config.lua:3: slots: expected an integer from 1 to 1000, got string "three"
//! ```
//!
//! All problems are reported at once, one per line, in line order.
//!
//! # Sandbox
//!
//! The script runs in a fresh Lua 5.4 state with a safe library only: no
//! `io`, `package`/`require`, `debug`, `dofile`/`loadfile` or `string.dump`;
//! `os` keeps only `time`, `clock`, `date`, `difftime` and `getenv`; `load`
//! compiles text only; `print` goes to the log. An instruction budget
//! ([`load::INSTRUCTION_LIMIT`]) stops endless loops, even ones wrapped in
//! `pcall` or coroutines, and memory is capped ([`load::MEMORY_LIMIT`]).
//! Limit: the budget counts Lua instructions, so a single pathological
//! `string.find` pattern (which runs inside C) is not interrupted.
//!
//! # Reloading
//!
//! Loading is all-or-nothing: [`Config::load`] returns a whole new
//! configuration or an error, never a partial one. A caller that reloads
//! (the console's reload command, a signal) keeps the configuration it has
//! when loading fails, shows the error, and applies the new one only on
//! success. Nothing here holds state between loads.

pub mod adapt;
mod load;
mod locate;
pub mod paths;
pub mod settings;
mod validate;
pub(crate) use validate::suggestion;

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use load::{INSTRUCTION_LIMIT, MEMORY_LIMIT};
pub use settings::{help, help_topics};

/// The commented default `config.lua`, written by [`init`]. Every setting
/// appears in it with its default.
pub const DEFAULT_CONFIG_LUA: &str = include_str!("default_config.lua");

/// The largest configuration file read, in bytes.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// The whole configuration, checked. Field names are the Lua setting names;
/// see [`help`] for each one's meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Nick on hubs (a hub entry may override it).
    pub nick: String,
    /// Description other users see.
    pub description: String,
    /// E-mail other users see; empty for none.
    pub email: String,
    /// Data folder; `None` for the XDG default (see [`paths::data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// Download folder; `None` for `<data_dir>/downloads` (see [`paths::download_dir`]).
    pub download_dir: Option<PathBuf>,
    /// Shared folders.
    pub shares: Vec<ShareConfig>,
    /// Hubs to know about, and to connect to at start if `autoconnect`.
    pub hubs: Vec<HubConfig>,
    /// Seconds before reconnecting to a hub; 0 = never.
    pub reconnect_delay: u32,
    /// Users kept per hub at most.
    pub max_users: u32,
    /// Upload slots.
    pub slots: u32,
    /// Upload slots for small requests (lists, leaves, files up to 64 KiB).
    pub mini_slots: u32,
    /// Simultaneous downloads; 0 = no limit.
    pub download_slots: u32,
    /// Upload limit in KiB/s; 0 = none.
    pub upload_limit: u32,
    /// Download limit in KiB/s; 0 = none.
    pub download_limit: u32,
    /// The smallest download segment, in MiB.
    pub segment_size: u32,
    /// Active or passive connections.
    pub mode: Mode,
    /// Local address to listen on.
    pub listen_address: IpAddr,
    /// Address announced in active mode; `None` for the one the hub sees.
    pub external_address: Option<String>,
    /// TCP port for client connections; 0 = any free port.
    pub tcp_port: u16,
    /// UDP port for search results; 0 = any free port.
    pub udp_port: u16,
    /// TCP port for TLS client connections; 0 = any free port.
    pub tls_port: u16,
    /// TLS client connections allowed (offered and accepted).
    pub tls_transfers: bool,
    /// Scripts to load at start.
    pub scripts: Vec<ScriptConfig>,
    /// How much to log.
    pub log_level: LogLevel,
    /// A file to append the log to, besides standard error.
    pub log_file: Option<PathBuf>,
    /// Console history lines kept; 0 = none.
    pub history_size: u32,
}

/// One shared folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// The folder on disk (absolute when loaded from a file).
    pub path: PathBuf,
    /// The name other users see.
    pub name: String,
    /// Whether hidden files and folders are shared too.
    pub hidden: bool,
    /// Whether symbolic links in the folder are followed.
    pub follow_symlinks: bool,
}

/// One hub.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The address, as written (checked: known scheme, host, port).
    pub url: String,
    /// Nick on this hub instead of the global one.
    pub nick: Option<String>,
    /// Password for a registered nick.
    pub password: Option<String>,
    /// Canonical encoding name (`"windows-1251"`) of an NMDC hub, if set.
    pub charset: Option<String>,
    /// Description on this hub instead of the global one.
    #[serde(default)]
    pub description: Option<String>,
    /// E-mail on this hub instead of the global one.
    #[serde(default)]
    pub email: Option<String>,
    /// Connect at start.
    pub autoconnect: bool,
}

/// The two protocols of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubProtocol {
    /// NMDC (`dchub://`, `nmdc://`, `nmdcs://`).
    Nmdc,
    /// ADC (`adc://`, `adcs://`).
    Adc,
}

impl HubConfig {
    /// The protocol the address names.
    pub fn protocol(&self) -> HubProtocol {
        if self.url.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("adc")) {
            HubProtocol::Adc
        } else {
            HubProtocol::Nmdc
        }
    }

    /// Whether the connection uses TLS (`adcs://`, `nmdcs://`).
    pub fn uses_tls(&self) -> bool {
        let scheme = self.url.split("://").next().unwrap_or_default();
        scheme.eq_ignore_ascii_case("adcs") || scheme.eq_ignore_ascii_case("nmdcs")
    }

    /// The hub's text encoding: UTF-8 for ADC; for NMDC the `charset`, or
    /// UTF-8 when unset (what most NMDC hubs speak today; windows-1252, the
    /// protocol's historical default, garbles every non-Latin text).
    pub fn encoding(&self) -> &'static encoding_rs::Encoding {
        if self.protocol() == HubProtocol::Adc {
            return encoding_rs::UTF_8;
        }
        self.charset
            .as_deref()
            .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
            .unwrap_or(encoding_rs::UTF_8)
    }

    /// The nick to use on this hub.
    pub fn nick_or<'a>(&'a self, global: &'a str) -> &'a str {
        self.nick.as_deref().unwrap_or(global)
    }
}

/// Debug output never shows the password (configurations end up in logs).
impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("url", &self.url)
            .field("nick", &self.nick)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("charset", &self.charset)
            .field("autoconnect", &self.autoconnect)
            .finish()
    }
}

/// One script to load at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// The script file (absolute when loaded from a file).
    pub path: PathBuf,
    /// Whether the script gets the full standard library (`io`, `os`).
    pub trusted: bool,
}

/// Whether others can connect to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Our ports are reachable: we accept connections.
    Active,
    /// We are behind a NAT or firewall: we ask others to accept ours.
    Passive,
}

/// How much to log (the `log_level` setting and the `--log-level` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation.
    Info,
    /// Details for debugging.
    Debug,
    /// Everything, including protocol traffic.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> log::LevelFilter {
        l.to_level_filter()
    }
}

impl LogLevel {
    /// The matching `log` filter.
    pub fn to_level_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// One problem in a configuration, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as named to the loader.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong (with the setting path, as in `slots: expected ...`).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a configuration could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_SIZE`].
    #[error("the configuration file {} is {size} bytes; the limit is {MAX_FILE_SIZE}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The script did not compile or stopped with an error (including the
    /// instruction and memory limits).
    #[error("{0}")]
    Script(Problem),
    /// The script ran but what it set is wrong; one or more problems, in line order.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),
    /// The Lua state could not be prepared (out of memory, most likely).
    #[error("{file}: cannot prepare Lua for the configuration: {message}")]
    Setup {
        /// The file being loaded.
        file: String,
        /// The cause.
        message: String,
    },
    /// [`init`] found a file already there.
    #[error("{} already exists; not overwriting it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// [`init`] could not write.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// No home folder to find the standard folders in.
    #[error("cannot find the {what} folder (is $HOME set?); use {flag}")]
    NoFolder {
        /// Which folder.
        what: &'static str,
        /// The flag that names it instead.
        flag: &'static str,
    },
}

impl ConfigError {
    /// The located problems, for callers that show them one by one; empty
    /// for I/O errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Script(problem) => std::slice::from_ref(problem),
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn join_lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

impl Config {
    /// Reads, runs and checks the configuration script at `path`. Messages
    /// name the file as `path` is written; relative paths in it are relative
    /// to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_FILE_SIZE {
            return Err(ConfigError::TooLarge { path: path.to_path_buf(), size });
        }
        let text = std::fs::read(path).map_err(read_error)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Config::from_bytes(&path.display().to_string(), &text, Some(base))
    }

    /// Runs and checks `text` as a configuration script called `name` in
    /// messages. Relative paths stay as written (there is no file to be
    /// relative to).
    pub fn from_lua_source(name: &str, text: &str) -> Result<Config, ConfigError> {
        Config::from_bytes(name, text.as_bytes(), None)
    }

    fn from_bytes(name: &str, text: &[u8], base: Option<&Path>) -> Result<Config, ConfigError> {
        let run = load::run(name, text)?;
        validate::validate(run, name, text, base)
    }

    /// The configuration of the embedded default file: every setting at its
    /// default.
    pub fn embedded_default() -> Config {
        // The embedded text is part of the program, not user input; a test
        // loads it, so this cannot fail in a build that passed its tests.
        Config::from_lua_source("default config.lua", DEFAULT_CONFIG_LUA)
            .unwrap_or_else(|e| panic!("the embedded default configuration is invalid: {e}"))
    }

    /// The hubs to connect to at start.
    pub fn autoconnect_hubs(&self) -> impl Iterator<Item = &HubConfig> {
        self.hubs.iter().filter(|h| h.autoconnect)
    }

    /// Expands `~` and resolves relative paths against `base`.
    fn resolve_paths(&mut self, base: Option<&Path>) {
        let optional = [&mut self.data_dir, &mut self.download_dir, &mut self.log_file];
        for path in optional.into_iter().flatten() {
            paths::resolve(path, base);
        }
        for share in &mut self.shares {
            paths::resolve(&mut share.path, base);
        }
        for script in &mut self.scripts {
            paths::resolve(&mut script.path, base);
        }
    }
}

/// Writes the commented default configuration to `path`, creating its folder.
/// Refuses to overwrite an existing file. Returns the path written.
pub fn init(path: &Path) -> Result<PathBuf, ConfigError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Write { path, source }
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(write_error(folder))?;
    }
    // create_new: an existing file, even one created a moment ago, is never replaced.
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ConfigError::Exists { path: path.to_path_buf() })
        }
        Err(e) => return Err(write_error(path)(e)),
    };
    let written = file.write_all(DEFAULT_CONFIG_LUA.as_bytes()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Do not leave half a file that would then block the next attempt.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(write_error(path)(e));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings::{DefaultValue, Kind, SETTINGS};

    #[test]
    fn the_struct_and_the_table_name_the_same_settings() {
        let json = serde_json::to_value(Config::embedded_default()).expect("serializes");
        let mut keys: Vec<&str> =
            json.as_object().expect("an object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        assert_eq!(keys, names);
    }

    #[test]
    fn every_record_field_reaches_the_struct() {
        // One item of each list with every field set; serde's
        // deny_unknown_fields and the comparison below catch any drift.
        let config = Config::from_lua_source(
            "t.lua",
            r#"
            hubs = { { url = "dchub://h", nick = "n", password = "p", charset = "cp1251",
                       description = "d", email = "e@x", autoconnect = false } }
            shares = { { path = "/s", name = "S", hidden = true } }
            scripts = { { path = "/b.lua", trusted = true } }
            "#,
        )
        .expect("valid");
        assert_eq!(config.hubs[0].description.as_deref(), Some("d"));
        assert_eq!(config.hubs[0].email.as_deref(), Some("e@x"));
        let json = serde_json::to_value(&config).expect("serializes");
        for setting in SETTINGS {
            if let Kind::List(record) = setting.kind {
                let item = &json[setting.name][0];
                let mut keys: Vec<&str> =
                    item.as_object().expect("object").keys().map(String::as_str).collect();
                keys.sort_unstable();
                let mut fields: Vec<&str> = record.fields.iter().map(|f| f.name).collect();
                fields.sort_unstable();
                assert_eq!(keys, fields, "{}", setting.name);
            }
        }
    }

    #[test]
    fn every_default_is_valid_and_in_the_default_file() {
        for setting in SETTINGS {
            if let DefaultValue::Value(literal) = setting.default {
                let line = format!("-- {} = {literal}\n", setting.name);
                assert!(DEFAULT_CONFIG_LUA.contains(&line), "default file lacks {line:?}");
            }
        }
    }

    #[test]
    fn configurations_cross_threads() {
        // The console and the worker share one loaded configuration.
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Config>();
        send_sync::<ConfigError>();
    }

    #[test]
    fn hub_helpers() {
        let hub = |url: &str, charset: Option<&str>| HubConfig {
            description: None,
            email: None,
            url: url.to_string(),
            nick: None,
            password: Some("secret".into()),
            charset: charset.map(str::to_string),
            autoconnect: true,
        };
        assert_eq!(hub("adcs://h:1", None).protocol(), HubProtocol::Adc);
        assert!(hub("adcs://h:1", None).uses_tls());
        assert!(!hub("adc://h:1", None).uses_tls());
        assert!(hub("NMDCS://h", None).uses_tls());
        assert!(!hub("dchub://h", None).uses_tls());
        assert_eq!(hub("dchub://h", None).protocol(), HubProtocol::Nmdc);
        assert_eq!(hub("dchub://h", None).encoding(), encoding_rs::UTF_8);
        assert_eq!(hub("dchub://h", Some("windows-1251")).encoding(), encoding_rs::WINDOWS_1251);
        assert_eq!(hub("adc://h:1", Some("windows-1251")).encoding(), encoding_rs::UTF_8);
        assert_eq!(hub("dchub://h", None).nick_or("me"), "me");
        assert!(!format!("{:?}", hub("dchub://h", None)).contains("secret"));
    }
}
