//! What only a trusted script or the console may do, written once and
//! checked here (issue 15, finding 4).
//!
//! An untrusted script (the default for `dc.scripts.load` and the
//! configuration's `scripts` unless `trusted = true`) may run its own
//! timers, handlers and coroutines, connect hubs (they belong to it), search,
//! read the share through `dc.share.find` and `dc.share.stats`, and end
//! itself. It may not act on the client as a whole or reach files outside
//! what it was given: the capabilities below. `dclua run SCRIPT`, the console
//! and scripts loaded with `trusted = true` hold all of them (and can hurt
//! the client: they have `io` and `os` too).

use super::host::{LuaHost, ScriptId};

/// A power an untrusted script does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Loading a script as trusted (`dc.scripts.load(p, {trusted = true})`):
    /// it would hand out every other capability.
    LoadTrusted,
    /// Unloading or reloading another script.
    ManageScripts,
    /// Sharing or unsharing a folder (`dc.share.add`, `dc.share.remove`).
    ShareFolders,
    /// Hashing any file of the machine (`dc.tth`).
    HashFiles,
    /// Ending the client (`dc.quit`).
    Quit,
    /// Reloading the configuration (`dc.reload_config`).
    ReloadConfig,
    /// Downloading into a folder outside the download folder
    /// (`dc.download` with an absolute `dir`).
    DownloadAnywhere,
    /// Knowing where the data folder is (`dc.data_dir`): its files are the
    /// client's keys, queue and stores.
    ReadDataFolder,
}

impl Capability {
    /// Every capability, as the guide lists them.
    pub const ALL: [Capability; 8] = [
        Capability::LoadTrusted,
        Capability::ManageScripts,
        Capability::ShareFolders,
        Capability::HashFiles,
        Capability::Quit,
        Capability::ReloadConfig,
        Capability::DownloadAnywhere,
        Capability::ReadDataFolder,
    ];

    /// What it allows, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::LoadTrusted => "loading a trusted script",
            Capability::ManageScripts => "unloading or reloading another script",
            Capability::ShareFolders => "changing the shared folders",
            Capability::HashFiles => "hashing files of the machine",
            Capability::Quit => "ending the client",
            Capability::ReloadConfig => "reloading the configuration",
            Capability::DownloadAnywhere => "downloading outside the download folder",
            Capability::ReadDataFolder => "knowing where the data folder is",
        }
    }
}

/// `Ok` when `script` holds `cap`; else the error `api` (the function
/// called, `dc.quit`) raises.
pub fn check(host: &LuaHost, script: ScriptId, cap: Capability, api: &str) -> Result<(), String> {
    match host.script(script) {
        Some(s) if s.trusted => Ok(()),
        Some(s) => Err(format!(
            "{api}: {} is for trusted scripts and the console; script {} is untrusted \
             (load it with {{trusted = true}} if you trust it)",
            cap.describe(),
            s.name
        )),
        None => Err(format!("{api}: the script is no longer loaded")),
    }
}
