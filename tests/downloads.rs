//! Downloads against real peers: dclua browses eiskaltdcpp's file list from
//! Lua and downloads from it by TTH on uhub (ADC) and on the Verlihub core
//! (NMDC), active and passive, and from another dclua; every file is
//! checked byte for byte.
//!
//! Everything talks to 127.0.0.1 only; every wait is bounded.
//! `tests/setup-peers.sh` must have run.
//!
//! The three-source and `kill -9` tests use CI sizes (24 and 40 MiB);
//! `DCLUA_BIG_DOWNLOADS=1` runs them by hand at the issue's sizes (1 GiB
//! and 500 MiB, recorded in BENCHMARKS.md):
//! `DCLUA_BIG_DOWNLOADS=1 cargo test --release --test downloads -- --nocapture three_sources kill_9`.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use support::client::Client;
use support::noise;
use support::{Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, Uhub, UhubOptions};

/// Bytes of the large test file: several TTH blocks, several reads.
const BIG: usize = 5 * 1024 * 1024 + 4321;

/// The by-hand sizes instead of CI's (see the module documentation).
fn big_downloads() -> bool {
    std::env::var_os("DCLUA_BIG_DOWNLOADS").is_some_and(|v| v != "0")
}

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
    let big = noise(BIG, 0x9e37_79b9);
    std::fs::write(dir.join("big.bin"), &big)?;
    std::fs::write(dir.join("small.txt"), b"hello from eiskaltdcpp\n")?;
    std::fs::write(dir.join("sub").join("inner.dat"), vec![7u8; 70_000])?;
    Ok(big)
}

fn download_log() -> String {
    support::client::log_matching(
        "dclua's download log",
        &["peer", "download", "client connection"],
    )
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
    // A partial list of one folder (`list /share/sub/`).
    let partial = me.run(
        r#"local sub = dc.browse({hub = hub, nick = "eisk"}, {dir = "/share/sub/"})
           local names = {}
           for f in sub:files() do names[#names + 1] = f.path end
           return table.concat(names, ",")"#,
    )?;
    ensure!(partial[0].ends_with("inner.dat"), "the partial list: {partial:?}");
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
           assert(r.user and r.user.nick == "eisk" and r.user.hub == hub, "result.user")
           local adc = hub.url:find("^adcs?://") ~= nil
           assert(adc == (r.user.sid ~= nil), "user.sid is for ADC users: " .. tostring(r.user.sid))
           assert(not adc or r.user.sid:find("^[A-Z2-7][A-Z2-7][A-Z2-7][A-Z2-7]$"), "user.sid")
           local d = r:download({dir = "from-search"})
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
    // A user object sends a private message.
    me.run(r#"local u = hub:user("eisk"); assert(u:pm("thanks for the files"))"#)?;
    eisk.wait_pm(url, "getter", "thanks for the files")?;
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

fn sharer(nick: &str, share: &Path) -> Client {
    Client::sharing(
        Identity {
            nick: nick.into(),
            description: "dclua sharing".into(),
            slots: 3,
            mode: ConnectMode::Active,
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Identity::default()
        },
        share,
    )
}

fn set_download_limit(me: &Client, bytes_per_second: u64) {
    me.on_worker(move || support::client::services().downloads().set_limit(bytes_per_second));
}

/// The Lua that searches `tth`, queues it from every source that answered
/// and waits; returns the path and `nick=bytes` per source.
fn fetch_from_all(tth: &str, size: usize, sources: usize) -> String {
    format!(
        r#"local rs = {{}}
           eventually("{sources} sources", function()
             rs = dc.search({{tth = "{tth}", timeout = 2, max_results = {sources}}})
             return #rs >= {sources}
           end, 25)
           d = dc.download({{tth = "{tth}", size = {size}, name = "multi.bin", sources = rs}})
           local path, err = d:wait()
           assert(path, err)
           local per = {{}}
           for _, s in ipairs(d:progress().sources) do per[#per + 1] = s.nick .. "=" .. s.bytes .. "=" .. s.user end
           table.sort(per)
           return path, table.concat(per, ",")"#
    )
}

/// One file from three sources at once (eiskaltdcpp and two dclua): every
/// source sends part of it, the bytes are right.
#[test]
fn three_sources_share_one_download() -> Result<()> {
    let big = big_downloads();
    let size: usize = if big { 1 << 30 } else { 24 << 20 };
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("download-multi")?;
    let share = files.path().join("multi");
    std::fs::create_dir_all(&share)?;
    let data = noise(size, 0xfeed_beef);
    std::fs::write(share.join("multi.bin"), &data)?;
    let tth = dclua::proto::tth::tree_root(&data).to_base32();
    let _eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let one = sharer("one", &share);
    let two = sharer("two", &share);
    one.wait_shared(1)?;
    two.wait_shared(1)?;
    one.connect(&url, "{}")?;
    two.connect(&url, "{}")?;
    let me = dclua("getter", true);
    me.connect(&url, "{}")?;
    // Slow enough that every source is connected before the end (the
    // gigabyte at full speed: the sources join while it runs).
    if !big {
        set_download_limit(&me, 6 << 20);
    }
    let t0 = std::time::Instant::now();
    let out = me
        .run_for(&fetch_from_all(&tth, size, 3), std::time::Duration::from_secs(600))
        .with_context(download_log)?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "three sources: {} MiB in {secs:.1} s ({:.0} MiB/s), per source: {}",
        size >> 20,
        (size >> 20) as f64 / secs,
        out[1]
    );
    ensure!(std::fs::read(&out[0])? == data, "the downloaded bytes differ");
    let per: Vec<(String, u64)> = out[1]
        .split(',')
        .map(|p| {
            let mut it = p.split('=');
            let n = it.next().unwrap_or_default();
            let b = it.next().unwrap_or_default();
            (n.to_string(), b.parse().unwrap_or(0))
        })
        .collect();
    ensure!(per.len() == 3, "sources: {per:?}");
    ensure!(
        per.iter().all(|(_, b)| *b > 0),
        "a source sent nothing: {per:?} ({})\n{}",
        out[1],
        download_log()
    );
    let total: u64 = per.iter().map(|(_, b)| b).sum();
    ensure!(total >= size as u64, "only {total} bytes received: {per:?}");
    Ok(())
}

/// A source whose file changed on disk after it was hashed sends blocks
/// that fail their leaf hash: it is dropped, the blocks come from the good
/// source, and the file is right.
#[test]
fn a_source_sending_bad_blocks_is_dropped() -> Result<()> {
    const SIZE: usize = 12 << 20;
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("download-bad")?;
    let good_dir = files.path().join("good");
    let bad_dir = files.path().join("bad");
    std::fs::create_dir_all(&good_dir)?;
    std::fs::create_dir_all(&bad_dir)?;
    let data = noise(SIZE, 0x0bad_b10c);
    std::fs::write(good_dir.join("multi.bin"), &data)?;
    std::fs::write(bad_dir.join("multi.bin"), &data)?;
    let tth = dclua::proto::tth::tree_root(&data).to_base32();
    let good = sharer("good", &good_dir);
    let bad = sharer("bad", &bad_dir);
    good.wait_shared(1)?;
    bad.wait_shared(1)?;
    // Every 256 KiB, one byte changes; the time stamp stays, so the bad
    // source still serves the file under its old TTH.
    let path = bad_dir.join("multi.bin");
    let mtime = std::fs::metadata(&path)?.modified()?;
    let mut tampered = data.clone();
    for i in (100..SIZE).step_by(256 << 10) {
        tampered[i] ^= 0xff;
    }
    std::fs::write(&path, &tampered)?;
    std::fs::File::options().write(true).open(&path)?.set_modified(mtime)?;
    good.connect(&url, "{}")?;
    bad.connect(&url, "{}")?;
    let me = dclua("getter", true);
    me.connect(&url, "{}")?;
    set_download_limit(&me, 4 << 20);
    me.run(
        r#"bad_blocks = 0
           dc.on("download_failed", function(e)
             if e.reason:find("leaf hash") then bad_blocks = bad_blocks + 1 end
           end)"#,
    )?;
    let out = me.run(&fetch_from_all(&tth, SIZE, 2)).with_context(download_log)?;
    ensure!(std::fs::read(&out[0])? == data, "the downloaded bytes differ");
    let bad_blocks: u32 = me.value("return bad_blocks")?.parse()?;
    ensure!(bad_blocks >= 1, "no bad block was reported; per source: {}", out[1]);
    // Once dropped, the bad source is not asked for the file again.
    ensure!(
        bad_blocks == 1,
        "the bad source was asked again: {bad_blocks} bad blocks\n{}",
        download_log()
    );
    Ok(())
}

/// `kill -9` in the middle of a download by the real binary, then a
/// restart: the download resumes, fetches exactly the bytes that were not
/// verified and recorded, and ends with the right file; no partial file
/// ever appears under the target name.
#[test]
fn a_download_survives_kill_9() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let big = big_downloads();
    let size: usize = if big { 500 << 20 } else { 40 << 20 };
    // The first run is slowed down and killed past this many verified bytes
    // (the queue records verified bytes every 16 MiB and at a segment's end).
    let (kill_after, first_limit_kib) =
        if big { (size as u64 / 2, 64 * 1024) } else { (20 << 20, 8 * 1024) };
    let s = OneSource::start("download-kill", size, 0x5eed_1234)?;
    let (url, tth, data, home, downloads) = (&s.url, &s.tth, &s.data, &s.home, &s.downloads);
    let config = |limit_kib: u32| {
        format!(
            "nick = 'getter'\nmode = 'passive'\ndownload_dir = {dl:?}\ndownload_limit = {limit_kib}\n",
            dl = downloads.display().to_string()
        )
    };
    let script = home.join("get.lua");
    std::fs::write(
        &script,
        format!(
            r#"local hub = dc.connect("{url}", {{}})
               assert(dc.wait("hub_connected", {{timeout = 20}}), "no hub")
               for _ = 1, 500 do
                 if hub:user("sharer") then break end
                 dc.sleep(0.02)
               end
               local q = dc.queue()
               print("start " .. (q[1] and q[1].verified or 0))
               dc.on("download_progress", function(e) print("progress " .. e.verified) end)
               local d = dc.download({{tth = "{tth}", size = {size}, name = "big.bin",
                                       sources = {{{{hub = hub, nick = "sharer"}}}}}})
               local path, err = d:wait()
               assert(path, err)
               print("done " .. path .. " " .. d:progress().fetched)
               dc.quit()
            "#
        ),
    )?;
    let run = |limit_kib: u32| -> Result<std::process::Child> {
        let cfg = home.join(format!("config-{limit_kib}.lua"));
        std::fs::write(&cfg, config(limit_kib))?;
        Ok(Command::new(env!("CARGO_BIN_EXE_dclua"))
            .env("XDG_CONFIG_HOME", home.join("xdg-config"))
            .env("XDG_DATA_HOME", home.join("xdg-data"))
            .env("HOME", home)
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(home.join("data"))
            .arg("run")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(home.join(format!("stderr-{limit_kib}")))?)
            .spawn()?)
    };
    let target = downloads.join("big.bin");

    // First run, slowed down: killed once more than `kill_after` bytes are
    // verified.
    let mut child = run(first_limit_kib)?;
    // However the first run goes, it ends within 90 s.
    let pid = child.id();
    let first_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = first_done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(90));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: kill(2) on our child, not yet waited for (so its pid
            // cannot have been reused).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let lines = BufReader::new(child.stdout.take().context("stdout")?);
    let mut killed_at = None;
    let mut seen = Vec::new();
    for line in lines.lines() {
        let line = line?;
        seen.push(line.clone());
        if let Some(v) = line.strip_prefix("progress ") {
            let v: u64 = v.parse()?;
            ensure!(
                !target.exists(),
                "{} exists before the download is complete",
                target.display()
            );
            if v > kill_after {
                child.kill()?;
                killed_at = Some(v);
                break;
            }
        }
        if seen.len() > 10_000 {
            break;
        }
    }
    let _ = child.wait();
    first_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let killed_at = killed_at.with_context(|| format!("never killed; output: {seen:?}"))?;
    ensure!(!target.exists(), "the target exists after kill -9");
    let tmp: Vec<_> = std::fs::read_dir(downloads)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(tmp.iter().any(|n| n.ends_with(".dctmp")), "no temporary file: {tmp:?}");

    // Second run, at full speed: resumes from what was recorded.
    let mut child = run(0)?;
    let t0 = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(90) {
            child.kill()?;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The console's progress line (a line per update when not a terminal).
    ensure!(
        text.lines().any(|l| l.starts_with("downloading: big.bin ")
            && l.contains(&format!("% of {}.0 MiB", size >> 20))),
        "no progress line: {text}"
    );
    let start: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("start "))
        .with_context(|| format!("no start line: {text}"))?
        .parse()?;
    let done = text
        .lines()
        .find_map(|l| l.strip_prefix("done "))
        .with_context(|| format!("not done: {text}"))?;
    let (path, fetched) = done.rsplit_once(' ').context("done line")?;
    let fetched: u64 = fetched.parse()?;
    ensure!(
        start >= 16 << 20 && start <= killed_at,
        "resumed from {start} (killed at {killed_at})"
    );
    ensure!(
        fetched == size as u64 - start,
        "fetched {fetched} bytes after the restart, {} were missing",
        size as u64 - start
    );
    println!(
        "kill -9: {} MiB, killed at {killed_at} verified bytes, resumed from {start}, fetched {fetched} after the restart",
        size >> 20
    );
    ensure!(Path::new(path) == target, "went to {path}");
    ensure!(std::fs::read(&target)? == *data, "the resumed file differs");
    Ok(())
}

/// Replaces a sharing client's file list on disk (what it serves as
/// `files.xml.bz2`) with `bytes`.
fn replace_list(who: &Client, bytes: Vec<u8>) -> Result<()> {
    let path = who
        .on_worker(|| support::client::services().share().and_then(|s| s.file_list_path()))
        .context("the sharer has written its list")?;
    let tmp = path.with_extension("hostile");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn bz2(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).expect("compressing in memory");
    e.finish().expect("compressing in memory")
}

/// A bzip2 bomb and a list that is not XML: `dc.browse` fails with the
/// reason, memory stays bounded, and the client goes on (a good list is
/// read afterwards).
#[test]
fn hostile_file_lists_fail_with_a_clear_error() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("download-hostile-list")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let peer = sharer("hostile", &share);
    peer.wait_shared(3)?;
    peer.connect(&url, "{}")?;
    let me = dclua("getter", true);
    me.connect(&url, "{}")?;
    me.run(r#"eventually("the peer", function() return hub:user("hostile") ~= nil end)"#)?;
    let browse = r#"local ok, err = pcall(dc.browse, {hub = hub, nick = "hostile"})
                    return ok, tostring(err)"#;

    // 300 MiB of XML from a few hundred KiB: the valid start of a list,
    // then the same small stream of blanks again and again.
    let mut bomb = bz2(b"<?xml version=\"1.0\"?><FileListing Version=\"1\" Base=\"/\">");
    let blank = bz2(&vec![b' '; 1 << 20]);
    for _ in 0..300 {
        bomb.extend_from_slice(&blank);
    }
    ensure!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    let good = peer
        .on_worker(|| support::client::services().share().and_then(|s| s.file_list_path()))
        .context("the list")?;
    let good = std::fs::read(good)?;
    replace_list(&peer, bomb)?;
    let out = me.run(browse)?;
    ensure!(out[0] == "false" && out[1].contains("decompresses to more than"), "the bomb: {out:?}");

    replace_list(&peer, bz2(b"this is not a file list at all, <<<>>>"))?;
    let out = me.run(browse)?;
    ensure!(out[0] == "false" && out[1].contains("reading the file list"), "not XML: {out:?}");

    // The client goes on: the real list again.
    replace_list(&peer, good)?;
    let out = me.run(r#"return dc.browse({hub = hub, nick = "hostile"}).file_count"#)?;
    ensure!(out == ["3"], "the good list: {out:?}");

    // A magnet of a shared file, queued by the other client.
    let magnet = peer.value("return (assert(dc.share.magnet('/Share/big.bin')))")?;
    ensure!(
        magnet.starts_with("magnet:?xt=urn:tree:tiger:") && magnet.ends_with("&dn=big.bin"),
        "{magnet}"
    );
    ensure!(magnet.contains(&format!("&xl={BIG}&")), "{magnet}");
    let path = me.value(&format!(
        r#"local d = dc.magnet("{magnet}", {{sources = {{{{hub = hub, nick = "hostile"}}}}, dir = "magnets"}})
           return (assert(d:wait()))"#
    ))?;
    ensure!(path.contains("magnets") && std::fs::read(&path)?.len() == BIG, "{path}");
    Ok(())
}

/// On an `adcs://` hub with TLS transfers on both sides, the download runs
/// over TLS (the peer's certificate checked against its INF keyprint).
#[test]
fn adcs_download_over_tls() -> Result<()> {
    let certs = support::component_dir("download-certs")?;
    let cert = support::TlsCert::generate(certs.path())?;
    let hub = Uhub::start(UhubOptions {
        tls: Some((cert.cert.clone(), cert.key.clone())),
        tls_required: true,
        ..UhubOptions::default()
    })?;
    let url = hub.url();
    let files = support::component_dir("download-tls")?;
    let share = files.path().join("share");
    let big = make_share(&share)?;
    let _eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.clone()],
        tls: true,
        ..EiskaltOptions::default()
    })?;
    let me = dclua("getter", true);
    me.connect(&format!("{url}/?kp={}", cert.keyprint), "{}")?;
    me.run(
        r#"tls_started = 0
           dc.on("download_started", function(e) if e.tls then tls_started = tls_started + 1 end end)
           eventually("eisk", function() return hub:user("eisk") ~= nil end)"#,
    )?;
    let path = me
        .value(
            r#"local list = dc.browse({hub = hub, nick = "eisk"})
               local f = list:find("big")[1]
               return (assert(f:download():wait()))"#,
        )
        .with_context(download_log)?;
    ensure!(std::fs::read(&path)? == big, "the downloaded bytes differ");
    let n: u32 = me.value("return tls_started")?.parse()?;
    ensure!(n >= 1, "no download over TLS\n{}", download_log());
    Ok(())
}

/// The real binary's console under tmux: while a download runs, its
/// progress shows above the prompt at most once a second, and a line being
/// typed meanwhile stays whole on the prompt.
#[test]
fn the_console_shows_download_progress_above_the_prompt() -> Result<()> {
    use support::tmux::{last_line, quote, Tmux};
    const SIZE: usize = 24 << 20;
    let s = OneSource::start("download-console", SIZE, 0x00c0_ffee)?;
    let (url, tth, home, downloads) = (&s.url, &s.tth, &s.home, &s.downloads);
    let cfg = home.join("config.lua");
    // 3 MiB/s: eight seconds of progress.
    std::fs::write(
        &cfg,
        format!(
            "nick = 'getter'\nmode = 'passive'\ndownload_dir = {:?}\ndownload_limit = 3072\n",
            downloads.display().to_string()
        ),
    )?;
    let tmux = Tmux::start(s.files.path());
    let p = tmux.window(
        "dl",
        &format!(
            "env HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data {} --config {} --data-dir {}",
            quote(Path::new(env!("CARGO_BIN_EXE_dclua"))),
            quote(&cfg),
            quote(&home.join("data")),
            h = quote(home),
        ),
    );
    p.wait("the first prompt", |s| last_line(s) == "dclua>");
    p.line(&format!(
        "hub = dc.connect('{url}') dc.wait('hub_connected', {{timeout = 20}}) \
         for _ = 1, 400 do if hub:user('sharer') then break end dc.sleep(0.05) end"
    ));
    p.wait("the prompt after connecting", |s| {
        last_line(s) == "dclua>" && s.matches("dclua>").count() >= 2
    });
    p.line(&format!(
        "d = dc.download({{tth = '{tth}', size = {SIZE}, name = 'big.bin', \
         sources = {{{{hub = hub, nick = 'sharer'}}}}}})"
    ));
    // Typed while the download runs, not yet entered.
    let typed = "return 'typed while downloading'";
    p.wait("the prompt after queueing", |s| s.matches("dclua>").count() >= 3);
    p.text(typed);
    let screen = p.wait("two progress lines above the line being typed", |s| {
        s.lines().filter(|l| l.starts_with("downloading: big.bin ")).count() >= 2
            && last_line(s) == format!("dclua> {typed}")
    });
    ensure!(
        !screen.lines().any(|l| l.contains("downloading:") && l.contains("typed")),
        "a progress line mixed into the typed line:\n{screen}"
    );
    p.keys(&["Enter"]);
    p.wait("the typed chunk's value", |s| s.matches("typed while downloading").count() >= 2);
    p.quit();
    Ok(())
}

/// A uhub with one dclua ("sharer") sharing `big.bin` of `size` pseudo-random
/// bytes, and a home folder (`dl` for downloads) for a dclua binary.
struct OneSource {
    _hub: Uhub,
    url: String,
    files: tempfile::TempDir,
    data: Vec<u8>,
    tth: String,
    _source: Client,
    home: std::path::PathBuf,
    downloads: std::path::PathBuf,
}

impl OneSource {
    fn start(what: &str, size: usize, seed: u32) -> Result<OneSource> {
        let hub = Uhub::start(UhubOptions::default())?;
        let url = hub.url();
        let files = support::component_dir(what)?;
        let share = files.path().join("share");
        std::fs::create_dir_all(&share)?;
        let data = noise(size, seed);
        std::fs::write(share.join("big.bin"), &data)?;
        let tth = dclua::proto::tth::tree_root(&data).to_base32();
        let source = sharer("sharer", &share);
        source.wait_shared(1)?;
        source.connect(&url, "{}")?;
        let home = files.path().join("home");
        let downloads = home.join("dl");
        std::fs::create_dir_all(&downloads)?;
        Ok(OneSource { _hub: hub, url, files, data, tth, _source: source, home, downloads })
    }
}

/// Hostile sources, raw NMDC peers on the Verlihub core that dclua asks for
/// a file: leaves that do not rebuild the root, a 10 GB `tthl`, more bytes
/// than asked, a handshake out of order, a handshake repeated. Each ends
/// with a clear reason (an event for the download, a log line for the
/// connection), nothing a peer only announces is allocated, and the client
/// goes on.
#[test]
fn hostile_sources_are_dropped_with_a_reason() -> Result<()> {
    use dclua::proto::tth::TreeHasher;
    use std::io::Write;
    use support::nmdc_raw::{FakePeer, RawUser};

    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let me = dclua("getter", true);
    me.connect(&url, "{}")?;
    me.run(
        r#"reasons = {}
           dc.on("download_failed", function(e) reasons[#reasons + 1] = e.reason end)"#,
    )?;
    let data = noise(1 << 20, 0x4057_11e5);
    let mut hasher = TreeHasher::new();
    hasher.update(&data);
    let tree = hasher.finish();
    let tth = tree.root.to_base32();
    let tthl = tree.to_tthl();

    // A source logs in, the file is queued from it, dclua connects to it
    // and asks for the leaves first.
    let source = |k: usize| -> Result<(RawUser, FakePeer)> {
        let nick = format!("mal{k}");
        let mut user = RawUser::login(hub.port(), &nick)?;
        me.run(&format!(
            r#"eventually("{nick} online", function() return hub:user("{nick}") ~= nil end, 10)
               d{k} = dc.download({{tth = "{tth}", size = {size}, name = "h{k}.bin",
                                    sources = {{{{hub = hub, nick = "{nick}"}}}}}})"#,
            size = data.len()
        ))?;
        let port = user.wait_connect_to_me()?;
        let mut peer = FakePeer::connect_as_source(port, &nick)?;
        let ask = peer.line()?;
        ensure!(ask.starts_with(&format!("$ADCGET tthl TTH/{tth} 0 -1")), "asked {ask:?}");
        Ok((user, peer))
    };
    let reason = |needle: &str| -> Result<String> {
        me.value(&format!(
            r#"local found
               eventually("a reason with {needle}", function()
                 for _, r in ipairs(reasons) do
                   if r:find("{needle}", 1, true) then found = r; return true end
                 end
               end, 10)
               return found"#
        ))
    };
    let cancel = |k: usize| me.run(&format!("assert(d{k}:cancel())"));

    // Leaves that do not rebuild the root: this source is dropped for the
    // file (dclua asks it for nothing more).
    let (_u0, mut p0) = source(0)?;
    p0.send(&format!("$ADCSND tthl TTH/{tth} 0 48|"))?;
    p0.stream.write_all(&[7u8; 48])?;
    let r = reason("leaves")?;
    ensure!(r.contains("root"), "{r}");
    p0.read_to_close();
    cancel(0)?;

    // A 10 GB tthl announced: refused at the header, nothing allocated.
    let (_u1, mut p1) = source(1)?;
    p1.send(&format!("$ADCSND tthl TTH/{tth} 0 10000000000|"))?;
    let r = reason("10000000000 bytes")?;
    ensure!(r.contains("tthl"), "{r}");
    p1.read_to_close();
    cancel(1)?;

    // Right leaves, then more bytes than asked for a segment.
    let (_u2, mut p2) = source(2)?;
    p2.send(&format!("$ADCSND tthl TTH/{tth} 0 {}|", tthl.len()))?;
    p2.stream.write_all(&tthl)?;
    let ask = p2.line()?;
    ensure!(ask.starts_with(&format!("$ADCGET file TTH/{tth} 0 ")), "asked {ask:?}");
    p2.send(&format!("$ADCSND file TTH/{tth} 0 {}|", 2 * data.len()))?;
    let r = reason("we asked for")?;
    ensure!(r.contains(&(2 * data.len()).to_string()), "{r}");
    p2.read_to_close();
    cancel(2)?;

    // A handshake out of order ($Direction before $MyNick), then one
    // repeated: each connection ends with the reason in the log.
    let mut user3 = RawUser::login(hub.port(), "mal3")?;
    me.run(&format!(
        r#"eventually("mal3 online", function() return hub:user("mal3") ~= nil end, 10)
           d3 = dc.download({{tth = "{tth}", size = {size}, name = "h3.bin",
                              sources = {{{{hub = hub, nick = "mal3"}}}}}})"#,
        size = data.len()
    ))?;
    let port = user3.wait_connect_to_me()?;
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port))?;
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    raw.write_all(b"$Direction Upload 100|$Key k|$MyNick mal3|")?;
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut rest);
    let line = support::client::wait_log(&["client connection", "$Direction"])?;
    println!("out of order: {line}");
    cancel(3)?;
    let (_u4, mut p4) = source(4)?;
    p4.send("$MyNick mal4|$Lock EXTENDEDPROTOCOLagain Pk=again|")?;
    p4.read_to_close();
    let line = support::client::wait_log(&["mal4", "closed: the peer repeated its handshake"])?;
    println!("repeated: {line}");
    cancel(4)?;

    // The client goes on: the queue answers, nothing is left in it.
    ensure!(
        me.value("return #dc.queue()")? == "0",
        "the queue: {}",
        me.value("return #dc.queue()")?
    );
    Ok(())
}

/// scripts/searcher.lua (with its search words and period set for the test)
/// on uhub against eiskaltdcpp: each matching file is downloaded once,
/// however many rounds find it, and not again after the script restarts.
#[test]
fn the_searcher_bot_downloads_each_new_hit_once() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("searcher-bot")?;
    let share = files.path().join("share");
    std::fs::create_dir_all(&share)?;
    std::fs::write(share.join("searchme-one.dat"), noise(40_000, 11))?;
    std::fs::write(share.join("searchme-two.dat"), noise(50_000, 12))?;
    std::fs::write(share.join("other.dat"), noise(10_000, 13))?;
    let _eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let me = dclua("searcher", true);
    me.connect(&url, "{}")?;
    me.run(
        r#"eventually("eisk on the hub", function() return dc.hubs()[1]:user("eisk") ~= nil end, 30)"#,
    )?;

    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/searcher.lua"),
    )?;
    let settings = [
        ("local WORDS = \"ubuntu iso\"", "local WORDS = \"searchme\""),
        ("local EVERY = 300", "local EVERY = 2"),
    ];
    let mut source = script.clone();
    for (from, to) in settings {
        ensure!(source.contains(from), "scripts/searcher.lua has no {from:?} line");
        source = source.replace(from, to);
    }
    let load = {
        let source = source.clone();
        move || {
            support::client::services().host().load_source(
                "searcher",
                None,
                source.as_bytes(),
                false,
                &[],
            )
        }
    };
    let id = me.on_worker(load.clone()).map_err(anyhow::Error::msg)?;
    // The first round runs when a hub is online: it is already, so the
    // every-2-seconds rounds find the files.
    let done = r#"eventually("both files", function()
                    local n = 0
                    for _, d in ipairs(dc.queue()) do
                      if d.state == "done" then n = n + 1 end
                    end
                    return n == 2 and n
                  end, 60)"#;
    me.run_for(done, std::time::Duration::from_secs(90))?;
    for (name, seed, len) in [("searchme-one.dat", 11, 40_000), ("searchme-two.dat", 12, 50_000)] {
        let got = support::client::wait_log(&["searcher: got", name])?;
        let path = got.split("searcher: got ").nth(1).context("the path")?.trim();
        ensure!(std::fs::read(path)? == noise(len, seed), "{path} differs");
        ensure!(path.contains("searcher"), "downloaded into the script's folder: {path}");
    }
    // More rounds, then a restart: nothing is fetched twice.
    std::thread::sleep(std::time::Duration::from_secs(5));
    ensure!(me.on_worker(move || support::client::services().host().unload(id)));
    me.on_worker(load).map_err(anyhow::Error::msg)?;
    std::thread::sleep(std::time::Duration::from_secs(5));
    let queued = me.value("return #dc.queue()")?;
    ensure!(queued == "2", "{queued} files queued, want 2 (each once)");
    Ok(())
}

/// The tutorial's periodic job (step 6, with its search words and period
/// set for the test) on uhub against eiskaltdcpp: each matching file is
/// downloaded once, into the script's folder, and not again after the
/// script restarts.
#[test]
fn the_tutorials_periodic_search_downloads_each_new_hit_once() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("guide-watch")?;
    let share = files.path().join("share");
    std::fs::create_dir_all(&share)?;
    std::fs::write(share.join("searchme-one.dat"), noise(40_000, 21))?;
    std::fs::write(share.join("searchme-two.dat"), noise(50_000, 22))?;
    std::fs::write(share.join("other.dat"), noise(10_000, 23))?;
    let _eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share.clone()),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let me = dclua("watcher", true);
    me.connect(&url, "{}")?;
    me.run(
        r#"eventually("eisk on the hub", function() return dc.hubs()[1]:user("eisk") ~= nil end, 30)"#,
    )?;
    let mut source = support::guide_block("Step 6: a periodic job", 0)?;
    for (from, to) in [
        ("local WORDS = \"ubuntu iso\"", "local WORDS = \"searchme\""),
        ("local EVERY = 600", "local EVERY = 2"),
    ] {
        ensure!(source.contains(from), "the tutorial's watch.lua has no {from:?} line");
        source = source.replace(from, to);
    }
    let load = move || {
        support::client::services().host().load_source("watch", None, source.as_bytes(), false, &[])
    };
    let id = me.on_worker(load.clone()).map_err(anyhow::Error::msg)?;
    let done = r#"eventually("both files", function()
                    local n = 0
                    for _, d in ipairs(dc.queue()) do
                      if d.state == "done" then n = n + 1 end
                    end
                    return n == 2
                  end, 60)
                  local got = {}
                  for _, d in ipairs(dc.queue()) do got[#got + 1] = d.target end
                  table.sort(got)
                  return table.concat(got, "\n")"#;
    let got = me.run_for(done, std::time::Duration::from_secs(90))?.join("\n");
    let paths: Vec<&str> = got.lines().collect();
    ensure!(paths.len() == 2, "{got}");
    for (path, (seed, len)) in paths.iter().zip([(21, 40_000), (22, 50_000)]) {
        ensure!(path.contains("watch"), "downloaded into the script's folder: {path}");
        ensure!(std::fs::read(path)? == noise(len, seed), "{path} differs");
    }
    support::client::wait_log(&["fetching searchme-one.dat from eisk"])?;
    // More rounds, then a restart: nothing is fetched twice.
    std::thread::sleep(std::time::Duration::from_secs(5));
    ensure!(me.on_worker(move || support::client::services().host().unload(id)));
    me.on_worker(load).map_err(anyhow::Error::msg)?;
    std::thread::sleep(std::time::Duration::from_secs(5));
    let queued = me.value("return #dc.queue()")?;
    ensure!(queued == "2", "{queued} files queued, want 2 (each once)");
    Ok(())
}
