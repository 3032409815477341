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
//! ([`INSTRUCTION_LIMIT`]) stops endless loops, even ones wrapped in
//! `pcall` or coroutines, and memory is capped ([`MEMORY_LIMIT`]).
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
//!
//! # Layout
//!
//! This file only declares the modules and re-exports. `read` (the file,
//! [`init`]) runs `load` (the sandboxed script) and then `check` (the
//! settings table applied; paths resolved through `paths`); `validate` holds
//! what `load` and `check` share (sorted pairs, suggestions, values shown in
//! messages); `model` is the typed [`Config`], `error` the [`ConfigError`].
//! Imports run one way, from `read` down to `error`. `adapt` turns a
//! configuration into what the rest of the client takes (our identity, a
//! hub's parameters, the download options).

pub mod adapt;
mod check;
mod error;
mod load;
mod locate;
mod model;
pub mod paths;
mod read;
pub mod settings;
mod validate;

pub use error::{ConfigError, Problem, MAX_FILE_SIZE};
pub use load::{INSTRUCTION_LIMIT, MEMORY_LIMIT};
pub use model::{Config, HubConfig, HubProtocol, LogLevel, Mode, ScriptConfig, ShareConfig};
pub use read::{init, DEFAULT_CONFIG_LUA};
pub use settings::{help, help_topics};
pub(crate) use validate::suggestion;
