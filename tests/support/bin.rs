//! The `dclua` binary as the tests run it: its XDG folders and home inside a
//! test's temporary folder, no `RUST_LOG` from the outside.

use std::path::Path;
use std::process::Command;

/// `dclua` with `home` as its home, configuration and data folders under it.
pub fn dclua(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dclua"));
    c.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env_remove("RUST_LOG");
    c
}
