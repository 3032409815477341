//! What the rest of the client takes from a configuration, in its own
//! types: our [`Identity`], each hub's [`HubParams`], the
//! [`DownloadOptions`].
//!
//! `hub` and `download` know nothing of the configuration (dependencies run
//! from here to them); the composition root and the Lua host apply what
//! these give.

use std::path::Path;
use std::time::Duration;

use super::{paths, Config, HubConfig, Mode};
use crate::download::{DownloadOptions, MAX_CONNECTIONS};
use crate::hub::{ConnectMode, HubParams, Identity, MAX_USERS};

impl Config {
    /// The identity this configuration describes; the share figures are 0
    /// (the share's own, see [`crate::hub::follow_share`], are kept by
    /// whoever applies a configuration to a running client).
    pub fn identity(&self) -> Identity {
        Identity {
            nick: self.nick.clone(),
            description: self.description.clone(),
            email: self.email.clone(),
            slots: self.slots,
            share_size: 0,
            shared_files: 0,
            mode: match self.mode {
                Mode::Active => ConnectMode::Active,
                Mode::Passive => ConnectMode::Passive,
            },
            listen_address: self.listen_address,
            udp_port: self.udp_port,
            tcp_port: self.tcp_port,
            tls_port: self.tls_port,
            upload_limit: u64::from(self.upload_limit) * 1024,
            mini_slots: self.mini_slots,
            tls_transfers: self.tls_transfers,
            max_users: usize::try_from(self.max_users).unwrap_or(MAX_USERS),
            external_address: self.external_address.clone(),
            away: false,
        }
    }
}

impl Config {
    /// The download options of this configuration, whose data folder is
    /// `data_dir`.
    pub fn download_options(&self, data_dir: &Path) -> DownloadOptions {
        DownloadOptions {
            dir: paths::download_dir(self, data_dir),
            max_connections: match self.download_slots {
                0 => MAX_CONNECTIONS,
                n => n as usize,
            },
            limit: u64::from(self.download_limit) * 1024,
            min_segment: u64::from(self.segment_size.max(1)) << 20,
        }
    }
}

impl HubConfig {
    /// The session parameters of this hub of `config`.
    pub fn params(&self, config: &Config) -> HubParams {
        HubParams {
            url: self.url.clone(),
            nick: self.nick_or(&config.nick).to_string(),
            password: self.password.clone(),
            charset: self.encoding(),
            follow_redirects: true,
            reconnect_delay: Duration::from_secs(u64::from(config.reconnect_delay)),
            description: self.description.clone(),
            email: self.email.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_cap_is_a_setting() {
        let mut config = Config::embedded_default();
        assert_eq!(config.identity().max_users, MAX_USERS);
        config.max_users = 5000;
        assert_eq!(config.identity().max_users, 5000);
    }
}
