//! Reading a configuration: the file (bounded), the script run in its
//! sandbox (`load.rs`), the check into a typed [`Config`] (`check.rs`); and
//! writing the commented default file ([`init`]).
//!
//! Loading is all-or-nothing; nothing here holds state between loads.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::check;
use super::error::{ConfigError, MAX_FILE_SIZE};
use super::load;
use super::model::Config;

/// The commented default `config.lua`, written by [`init`]. Every setting
/// appears in it with its default.
pub const DEFAULT_CONFIG_LUA: &str = include_str!("default_config.lua");

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
        check::validate(run, name, text, base)
    }

    /// The configuration of the embedded default file: every setting at its
    /// default.
    pub fn embedded_default() -> Config {
        // The embedded text is part of the program, not user input; a test
        // loads it, so this cannot fail in a build that passed its tests.
        Config::from_lua_source("default config.lua", DEFAULT_CONFIG_LUA)
            .unwrap_or_else(|e| panic!("the embedded default configuration is invalid: {e}"))
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
    use crate::config::model::{HubConfig, HubProtocol};
    use crate::config::settings::{DefaultValue, Kind, SETTINGS};
    use crate::config::ConfigError;

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
