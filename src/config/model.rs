//! The typed configuration: [`Config`] and its parts (hubs, shares,
//! scripts, the mode, the log level), as checking leaves them.
//!
//! Data only: reading, checking and path resolution are elsewhere in
//! `config`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration, checked. Field names are the Lua setting names;
/// see [`help`](super::help) for each one's meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Nick on hubs (a hub entry may override it).
    pub nick: String,
    /// Description other users see.
    pub description: String,
    /// E-mail other users see; empty for none.
    pub email: String,
    /// Data folder; `None` for the XDG default (see [`paths::data_dir`](super::paths::data_dir)).
    pub data_dir: Option<PathBuf>,
    /// Download folder; `None` for `<data_dir>/downloads` (see [`paths::download_dir`](super::paths::download_dir)).
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

impl Config {
    /// The hubs to connect to at start.
    pub fn autoconnect_hubs(&self) -> impl Iterator<Item = &HubConfig> {
        self.hubs.iter().filter(|h| h.autoconnect)
    }
}
