//! Downloads against real peers: dclua browses eiskaltdcpp's file list from
//! Lua and downloads from it by TTH on uhub (ADC) and on the Verlihub core
//! (NMDC), active and passive, and from another dclua; every file is
//! checked byte for byte.
//!
//! Everything talks to 127.0.0.1 only; every wait is bounded.
//! `tests/setup-peers.sh` must have run.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use support::client::Client;
use support::{Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, Uhub, UhubOptions};

/// Bytes of the large test file: several TTH blocks, several reads.
const BIG: usize = 5 * 1024 * 1024 + 4321;

fn dclua(nick: &str, active: bool) -> Client {
    Client::new(Identity {
        nick: nick.into(),
        description: "dclua downloading".into(),
        slots: 2,
        mode: if active { ConnectMode::Active } else { ConnectMode::Passive },
        listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Identity::default()
    })
}

/// A folder with a large pseudo-random file, a small one and one in a
/// subfolder; returns the large file's bytes.
fn make_share(dir: &Path) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir.join("sub"))?;
    let mut big = vec![0u8; BIG];
    let mut x: u32 = 0x9e37_79b9;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(dir.join("big.bin"), &big)?;
    std::fs::write(dir.join("small.txt"), b"hello from eiskaltdcpp\n")?;
    std::fs::write(dir.join("sub").join("inner.dat"), vec![7u8; 70_000])?;
    Ok(big)
}

fn download_log() -> String {
    let lines = support::client::log_lines();
    let v = lines.lock().map(|v| v.clone()).unwrap_or_default();
    let wanted: Vec<String> = v
        .into_iter()
        .filter(|l| l.contains("peer") || l.contains("download") || l.contains("client connection"))
        .collect();
    format!("dclua's download log:\n{}", wanted.join("\n"))
}

/// dclua browses eiskaltdcpp's list, downloads the big file from it through
/// the list entry and the small one by TTH, and checks the bytes.
fn browse_and_download(url: &str, dclua_active: bool, eisk_active: bool) -> Result<()> {
    let files = support::component_dir("download-share")?;
    let share = files.path().join("share");
    let big = make_share(&share)?;
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.to_string()],
        passive: !eisk_active,
        ..EiskaltOptions::default()
    })?;
    let me = dclua("getter", dclua_active);
    me.connect(url, "{}")?;
    me.run(
        r#"started, finished = 0, 0
           dc.on("download_started", function() started = started + 1 end)
           dc.on("download_finished", function(e) finished = finished + 1; last = e end)"#,
    )?;
    eisk.wait_user(url, "getter")?;
    me.run(r#"eventually("eisk on the hub", function() return hub:user("eisk") ~= nil end)"#)?;
    let out = me.run(
        r#"local list = dc.browse({hub = hub, nick = "eisk"})
           local top = {}
           for d in list:dirs() do top[#top + 1] = d.name end
           local share = list:dir(top[1])
           local names = {}
           for f in share:files() do names[#names + 1] = f.path .. "=" .. f.size end
           table.sort(names)
           local hits = list:find("big")
           big = hits[1]
           return top[1], table.concat(names, ","), #hits, big.size"#,
    )?;
    ensure!(
        out == [
            "share".to_string(),
            format!("/share/big.bin={BIG},/share/small.txt=23,/share/sub/inner.dat=70000"),
            "1".into(),
            BIG.to_string()
        ],
        "the list as dclua reads it: {out:?}"
    );
    let path = me.value(
        r#"local d = big:download()
           local path, err = d:wait()
           assert(path, err)
           return path"#,
    )?;
    ensure!(std::fs::read(&path)? == big, "the downloaded bytes differ");
    ensure!(path.ends_with("big.bin"), "downloaded to {path}");
    // By TTH from a search result.
    let small = me.value(
        r#"local rs = dc.search({text = "small", timeout = 3, max_results = 1})
           local r = rs[1]
           assert(r, "no search result")
           local d = dc.download(r, {dir = "from-search"})
           local path, err = d:wait()
           assert(path, err)
           return path"#,
    )?;
    ensure!(std::fs::read(&small)? == b"hello from eiskaltdcpp\n", "small.txt differs");
    ensure!(small.contains("from-search"), "downloaded to {small}");
    let counts = me.run(
        r#"eventually("events", function() return finished >= 2 end)
           local left = 0
           for _, it in ipairs(dc.queue()) do if it.state ~= "done" then left = left + 1 end end
           return started >= 2, left"#,
    )?;
    ensure!(counts == ["true", "0"], "events and queue: {counts:?}");
    Ok(())
}

#[test]
fn adc_dclua_active() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    browse_and_download(&hub.url(), true, true).with_context(download_log)
}

#[test]
fn adc_dclua_passive() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    browse_and_download(&hub.url(), false, true).with_context(download_log)
}

#[test]
fn nmdc_dclua_active_eiskaltdcpp_passive() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    browse_and_download(&hub.url(), true, false).with_context(download_log)
}

#[test]
fn nmdc_dclua_passive() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    browse_and_download(&hub.url(), false, true).with_context(download_log)
}

/// The guide's downloads example runs as written (loaded as a chunk), on
/// uhub against eiskaltdcpp.
#[test]
fn the_guide_downloads_example_runs() -> Result<()> {
    let example = support::guide_example("Downloads")?;
    let example = example.as_str();
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("guide-download")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let _eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let me = dclua("getter", true);
    me.connect(&url, "{}")?;
    me.run(example)?;
    me.run(r#"eventually("eisk on the hub", function() return hub:user("eisk") ~= nil end)"#)?;
    let got = me.value(r#"return (assert(fetch_first("small")))"#)?;
    ensure!(got.contains("found") && std::fs::read(&got)? == b"hello from eiskaltdcpp\n", "{got}");
    let inner = me.value(
        r#"local handles = assert(mirror({hub = hub, nick = "eisk"}, "share/sub"))
           assert(#handles == 1, #handles)
           return (assert(handles[1]:wait()))"#,
    )?;
    ensure!(inner.contains("mirror") && inner.ends_with("inner.dat"), "{inner}");
    ensure!(std::fs::read(&inner)? == vec![7u8; 70_000], "inner.dat differs");
    Ok(())
}
