//! Where dclua keeps its files: the configuration file, the data folder, the
//! console history, downloads.
//!
//! Precedence: a command-line flag beats the configuration, which beats the
//! XDG default (`dirs::config_dir()/dclua/config.lua`,
//! `dirs::data_dir()/dclua`). This module only computes paths; it creates
//! nothing and reads nothing.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::model::Config;

/// The folder name under the XDG config and data folders.
pub const APP_DIR: &str = "dclua";

/// The configuration file's name.
pub const CONFIG_FILE_NAME: &str = "config.lua";

/// The console history file's name, in the data folder.
pub const HISTORY_FILE_NAME: &str = "history";

/// The download folder's name in the data folder, when `download_dir` is unset.
pub const DOWNLOADS_DIR_NAME: &str = "downloads";

/// `~/.config/dclua/config.lua` (or the platform's equivalent).
pub fn default_config_file() -> Result<PathBuf, ConfigError> {
    let base = dirs::config_dir()
        .ok_or(ConfigError::NoFolder { what: "configuration", flag: "--config FILE" })?;
    Ok(base.join(APP_DIR).join(CONFIG_FILE_NAME))
}

/// The configuration file: `--config FILE` if given, else the default.
pub fn config_file(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match flag {
        Some(path) => Ok(path.to_path_buf()),
        None => default_config_file(),
    }
}

/// `~/.local/share/dclua` (or the platform's equivalent).
pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    let base =
        dirs::data_dir().ok_or(ConfigError::NoFolder { what: "data", flag: "--data-dir DIR" })?;
    Ok(base.join(APP_DIR))
}

/// The data folder: `--data-dir` if given, else the configuration's
/// `data_dir`, else the default.
pub fn data_dir(flag: Option<&Path>, config: &Config) -> Result<PathBuf, ConfigError> {
    match (flag, &config.data_dir) {
        (Some(path), _) => Ok(path.to_path_buf()),
        (None, Some(path)) => Ok(path.clone()),
        (None, None) => default_data_dir(),
    }
}

/// The console's history file in `data_dir`.
pub fn history_file(data_dir: &Path) -> PathBuf {
    data_dir.join(HISTORY_FILE_NAME)
}

/// Where finished downloads go: `download_dir`, else `<data_dir>/downloads`.
pub fn download_dir(config: &Config, data_dir: &Path) -> PathBuf {
    match &config.download_dir {
        Some(path) => path.clone(),
        None => data_dir.join(DOWNLOADS_DIR_NAME),
    }
}

/// Every location at once, for the start-up code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The configuration script.
    pub config_file: PathBuf,
    /// The data folder (hash store, queue, logs).
    pub data_dir: PathBuf,
    /// The console history.
    pub history_file: PathBuf,
    /// Finished downloads.
    pub download_dir: PathBuf,
}

impl Paths {
    /// Resolves the locations for a loaded `config` read from `config_file`,
    /// with the `--data-dir` flag if given.
    pub fn resolve(
        config_file: PathBuf,
        data_dir_flag: Option<&Path>,
        config: &Config,
    ) -> Result<Paths, ConfigError> {
        let data = data_dir(data_dir_flag, config)?;
        Ok(Paths {
            config_file,
            history_file: history_file(&data),
            download_dir: download_dir(config, &data),
            data_dir: data,
        })
    }
}

/// A path from the configuration as the user meant it: `~` and `~/x` start at
/// the home folder; a relative path starts at `base` (the configuration
/// file's folder) when given. The validator has checked that `~` can expand.
pub(crate) fn expand_path(text: &str, base: Option<&Path>) -> PathBuf {
    let home_relative = if text == "~" { Some("") } else { text.strip_prefix("~/") };
    if let (Some(rest), Some(home)) = (home_relative, dirs::home_dir()) {
        return if rest.is_empty() { home } else { home.join(rest) };
    }
    let path = Path::new(text);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}

/// [`expand_path`] for a path already in a `PathBuf`.
pub(crate) fn resolve(path: &mut PathBuf, base: Option<&Path>) {
    if let Some(text) = path.to_str() {
        *path = expand_path(text, base);
    } else if let Some(base) = base {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_home_and_relative_paths() {
        let base = Path::new("/etc/dclua");
        assert_eq!(expand_path("/srv/music", Some(base)), PathBuf::from("/srv/music"));
        assert_eq!(
            expand_path("bots/greeter.lua", Some(base)),
            PathBuf::from("/etc/dclua/bots/greeter.lua")
        );
        assert_eq!(expand_path("bots/greeter.lua", None), PathBuf::from("bots/greeter.lua"));
        if let Some(home) = dirs::home_dir() {
            assert_eq!(expand_path("~", Some(base)), home);
            assert_eq!(expand_path("~/Music", Some(base)), home.join("Music"));
        }
        // "~user" is refused by the validator; here it is just a relative name.
        assert_eq!(expand_path("~user/x", Some(base)), PathBuf::from("/etc/dclua/~user/x"));
    }

    #[test]
    fn flags_beat_the_configuration_which_beats_the_default() {
        let mut config = Config::embedded_default();
        let flag = Path::new("/flag/data");
        assert_eq!(data_dir(Some(flag), &config).ok(), Some(flag.to_path_buf()));
        config.data_dir = Some(PathBuf::from("/config/data"));
        assert_eq!(data_dir(None, &config).ok(), Some(PathBuf::from("/config/data")));
        assert_eq!(data_dir(Some(flag), &config).ok(), Some(flag.to_path_buf()));
        let paths =
            Paths::resolve(PathBuf::from("/c/config.lua"), None, &config).expect("resolves");
        assert_eq!(paths.history_file, PathBuf::from("/config/data/history"));
        assert_eq!(paths.download_dir, PathBuf::from("/config/data/downloads"));
        config.download_dir = Some(PathBuf::from("/dl"));
        assert_eq!(download_dir(&config, Path::new("/d")), PathBuf::from("/dl"));
        assert_eq!(config_file(Some(Path::new("x.lua"))).ok(), Some(PathBuf::from("x.lua")));
        if let (Some(c), Some(d)) = (dirs::config_dir(), dirs::data_dir()) {
            assert_eq!(config_file(None).ok(), Some(c.join("dclua").join("config.lua")));
            config.data_dir = None;
            assert_eq!(data_dir(None, &config).ok(), Some(d.join("dclua")));
        }
    }
}
