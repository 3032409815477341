//! Uploads against a real downloading peer: eiskaltdcpp fetches dclua's file
//! list and files on uhub (ADC) and on the Verlihub core (NMDC), with either
//! side active or passive; slots full; and hostile peers from an in-process
//! fake peer (requests outside the share, bad ranges, silence, tokens nobody
//! issued).
//!
//! Everything talks to 127.0.0.1 only; every wait is bounded.
//! `tests/setup-peers.sh` must have run.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use support::client::Client;
use support::nmdc_raw::{FakePeer, RawUser};
use support::{Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, Uhub, UhubOptions};

/// Bytes of the large test file (a few hashing blocks, several sends).
const BIG: usize = 3 * 1024 * 1024 + 12_345;

fn dclua(nick: &str, active: bool, share: &Path) -> Client {
    Client::sharing(
        Identity {
            nick: nick.into(),
            description: "dclua uploading".into(),
            slots: 2,
            mode: if active { ConnectMode::Active } else { ConnectMode::Passive },
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Identity::default()
        },
        share,
    )
}

/// Bytes of the file eiskaltdcpp downloads in every active/passive
/// combination.
const HUNDRED_MIB: usize = 100 << 20;

/// A share folder with a large file (pseudo-random bytes), a small one and
/// one in a subfolder.
fn make_share(dir: &Path) -> Result<Vec<u8>> {
    make_share_sized(dir, BIG)
}

fn make_share_sized(dir: &Path, size: usize) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir.join("sub"))?;
    let big = support::noise(size, 0x1234_5678);
    std::fs::write(dir.join("big.bin"), &big)?;
    std::fs::write(dir.join("small.txt"), b"hello from dclua\n")?;
    std::fs::write(dir.join("sub").join("inner.dat"), vec![42u8; 70_000])?;
    Ok(big)
}

/// eiskaltdcpp downloads dclua's file list and then the big file by TTH;
/// checks names, sizes and bytes.
fn list_and_file(url: &str, dclua_active: bool, eisk_active: bool) -> Result<()> {
    list_and_file_with(url, dclua_active, eisk_active, false)
}

fn list_and_file_with(
    url: &str,
    dclua_active: bool,
    eisk_active: bool,
    compress: bool,
) -> Result<()> {
    let files = support::component_dir("upload-share")?;
    let share = files.path().join("share");
    let big = make_share_sized(&share, HUNDRED_MIB)?;
    let dl = files.path().join("downloads");
    let me = dclua("sharer", dclua_active, &share);
    me.wait_shared(3)?;
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        hubs: vec![url.to_string()],
        passive: !eisk_active,
        compress,
        ..EiskaltOptions::default()
    })?;
    me.connect(url, "{}")?;
    me.run(
        r#"started, finished, compressed = 0, 0, 0
           dc.on("upload_started", function(e)
             started = started + 1
             if e.compressed then compressed = compressed + 1 end
           end)
           dc.on("upload_finished", function(e) finished = finished + 1; last = e end)"#,
    )?;
    let seen = eisk.wait_user(url, "sharer")?;
    ensure!(seen.share as usize >= HUNDRED_MIB, "eiskaltdcpp sees a share of {}", seen.share);

    let list = eisk.download_file_list(url, "sharer", Duration::from_secs(30))?;
    let root = eisk.list_dir(&list, "")?;
    ensure!(root.iter().any(|e| e.name == "Share" && e.is_dir), "list root: {root:?}");
    let top = eisk.list_dir(&list, "Share")?;
    let names: Vec<(&str, u64, bool)> =
        top.iter().map(|e| (e.name.as_str(), e.size, e.is_dir)).collect();
    ensure!(
        names
            == [
                ("big.bin", HUNDRED_MIB as u64, false),
                ("small.txt", 17, false),
                ("sub", 70_000, true)
            ],
        "the list as eiskaltdcpp reads it: {names:?}"
    );
    let tth = top[0].tth.clone().context("big.bin has a TTH")?;
    let got =
        eisk.download_tth(url, &tth, HUNDRED_MIB as u64, "big.bin", &dl, Duration::from_secs(120))?;
    ensure!(std::fs::read(&got)? == big, "the downloaded bytes differ");
    let counts = me.run(
        r#"eventually("upload events", function() return finished >= 2 end)
           return started >= 2, last.nick, last.hub ~= nil, #dc.uploads()"#,
    )?;
    ensure!(counts == ["true", "eisk", "true", "0"], "events: {counts:?}");
    let compressed: u32 = me.value("return compressed")?.parse()?;
    ensure!((compressed > 0) == compress, "compressed uploads: {compressed}");
    Ok(())
}

#[test]
fn adc_both_active() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    list_and_file(&hub.url(), true, true).with_context(peer_log)
}

#[test]
fn adc_dclua_active_eiskaltdcpp_passive() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    list_and_file(&hub.url(), true, false).with_context(peer_log)
}

#[test]
fn adc_dclua_passive_eiskaltdcpp_active() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    list_and_file(&hub.url(), false, true).with_context(peer_log)
}

#[test]
fn adc_compressed_transfers() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    list_and_file_with(&hub.url(), true, true, true).with_context(peer_log)
}

#[test]
fn nmdc_compressed_transfers() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    list_and_file_with(&hub.url(), true, false, true).with_context(peer_log)
}

#[test]
fn nmdc_both_active() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    list_and_file(&hub.url(), true, true).with_context(peer_log)
}

#[test]
fn nmdc_dclua_active_eiskaltdcpp_passive() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    list_and_file(&hub.url(), true, false).with_context(peer_log)
}

#[test]
fn nmdc_dclua_passive_eiskaltdcpp_active() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    list_and_file(&hub.url(), false, true).with_context(peer_log)
}

// ----- an in-process fake peer ------------------------------------------------------------

/// dclua active on an NMDC hub; a fake user asks for a reverse connection
/// through the hub, so dclua expects it on its listener.
fn expected_fake_peer(hub: &NmdcHub, nick: &str) -> Result<(FakePeer, RawUser)> {
    let mut user = RawUser::login(hub.port(), nick)?;
    user.send(&format!("$RevConnectToMe {nick} sharer|"))?;
    let port = user.wait_connect_to_me()?;
    Ok((FakePeer::connect(port, nick)?, user))
}

#[test]
fn hostile_requests_are_refused_and_nothing_outside_the_share_is_read() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("hostile-share")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let secret = files.path().join("secret.txt");
    std::fs::write(&secret, "top secret")?;
    std::os::unix::fs::symlink(&secret, share.join("link.txt"))?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(3)?;
    me.connect(&url, "{}")?;
    me.run(
        r#"failures = {}
           dc.on("upload_failed", function(e) failures[#failures + 1] = e.reason end)"#,
    )?;
    let (mut peer, _user) = expected_fake_peer(&hub, "mallory")?;
    for bad in [
        "file ../../etc/passwd 0 -1",
        "file /etc/passwd 0 -1",
        "file Share/link.txt 0 -1",
        "file Share/../secret.txt 0 -1",
        "file TTH/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 0 -1",
    ] {
        let answer = peer.get(bad)?;
        ensure!(answer == "$Error File Not Available", "{bad}: {answer:?}");
    }
    // Ranges: past the end, too long.
    let answer = peer.get("file Share/small.txt 18 -1")?;
    ensure!(answer == "$Error File Not Available", "past the end: {answer:?}");
    let answer = peer.get("file Share/small.txt 10 100")?;
    ensure!(answer == "$Error File Not Available", "too long: {answer:?}");
    let answer = peer.get("file Share/small.txt -5 3")?;
    ensure!(answer.starts_with("$Error"), "negative start: {answer:?}");
    // A good request still works on the same connection, by path.
    let answer = peer.get("file Share/small.txt 6 4")?;
    ensure!(answer == "$ADCSND file Share/small.txt 6 4", "{answer:?}");
    let mut data = [0u8; 4];
    peer.reader.read_exact(&mut data)?;
    ensure!(&data == b"from", "{:?}", data);
    let reasons = me.value(r#"return table.concat(failures, "\n")"#)?;
    ensure!(reasons.contains("outside the share"), "{reasons}");
    // The link is not followed: it is not in the share at all.
    ensure!(reasons.contains("link.txt\": not in the share"), "{reasons}");
    ensure!(reasons.contains("past the end"), "{reasons}");

    // Probing on and on: the connection ends after 32 refusals.
    let mut answers = 0;
    for i in 0..40 {
        if peer.send(&format!("$ADCGET file Share/nothing{i} 0 -1|")).is_err() {
            break;
        }
        match peer.line() {
            Ok(a) if a == "$Error File Not Available" => answers += 1,
            _ => break,
        }
    }
    ensure!(answers < 40, "the prober was answered {answers} times");
    support::client::wait_log(&["requests refused on one connection"])?;

    // A 10 MB line ends the connection; memory stays bounded.
    let (mut peer, _user2) = expected_fake_peer(&hub, "mallory2")?;
    let junk = vec![b'x'; 10 << 20];
    let _ = peer.stream.write_all(&junk);
    let mut rest = Vec::new();
    let _ = peer.reader.read_to_end(&mut rest);
    support::client::wait_log(&["client connection with", "closed"])?;
    Ok(())
}

#[test]
fn slots_full_gives_maxedout_but_the_list_still_comes() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("slots-share")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(3)?;
    me.connect(&url, "{}")?;
    // Every slot is refused by the policy: as if all were taken.
    me.run(r#"dc.share.slot_policy(function(ask) asked = ask.nick; return false end)"#)?;
    let (mut peer, _user) = expected_fake_peer(&hub, "leecher")?;
    let answer = peer.get("file Share/big.bin 0 -1")?;
    ensure!(answer == "$MaxedOut 1", "first in the waiting line: {answer:?}");
    ensure!(me.value("return asked")? == "leecher");
    // The file list and small files take a mini slot.
    let answer = peer.get("file files.xml.bz2 0 -1")?;
    ensure!(answer.starts_with("$ADCSND file files.xml.bz2 0 "), "{answer:?}");
    let n: usize = answer.rsplit(' ').next().unwrap_or("0").parse()?;
    let mut list = vec![0u8; n];
    peer.reader.read_exact(&mut list)?;
    ensure!(list.starts_with(b"BZh"), "a bzip2 list");
    // A partial list, and TTH leaves that rebuild the root.
    let answer = peer.get("list /Share/ 0 -1")?;
    ensure!(answer.starts_with("$ADCSND list /Share/ 0 "), "{answer:?}");
    let n: usize = answer.rsplit(' ').next().unwrap_or("0").parse()?;
    let mut xml = vec![0u8; n];
    peer.reader.read_exact(&mut xml)?;
    let xml = String::from_utf8(xml)?;
    ensure!(xml.contains(r#"<File Name="small.txt" Size="17""#), "{xml}");
    ensure!(xml.contains(r#"Name="sub""#) && xml.contains("Incomplete=\"1\""), "{xml}");
    let tth = me.value(r#"return dc.share.find({text = "big.bin"})[1].tth"#)?;
    let answer = peer.get(&format!("tthl TTH/{tth} 0 -1"))?;
    ensure!(answer.starts_with(&format!("$ADCSND tthl TTH/{tth} 0 ")), "{answer:?}");
    let n: usize = answer.rsplit(' ').next().unwrap_or("0").parse()?;
    let mut leaves = vec![0u8; n];
    peer.reader.read_exact(&mut leaves)?;
    let root: dclua::proto::tth::Tth = tth.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    dclua::proto::tth::verify_tthl(&leaves, BIG as u64, &root)
        .map_err(|e| anyhow::anyhow!("the leaves do not rebuild the root: {e:?}"))?;
    // The policy returning nil: the usual rules, a free slot.
    me.run(r#"dc.share.slot_policy(nil)"#)?;
    let answer = peer.get("file Share/big.bin 0 1000")?;
    ensure!(answer == "$ADCSND file Share/big.bin 0 1000", "{answer:?}");
    Ok(())
}

// ----- TLS --------------------------------------------------------------------------------

/// eiskaltdcpp downloads over TLS on `adcs://`; the upload reports TLS.
fn tls_list_and_file(eisk_active: bool) -> Result<()> {
    let certs = support::component_dir("upload-certs")?;
    let cert = support::TlsCert::generate(certs.path())?;
    let hub = Uhub::start(UhubOptions {
        tls: Some((cert.cert.clone(), cert.key.clone())),
        tls_required: true,
        ..UhubOptions::default()
    })?;
    let url = hub.url();
    let files = support::component_dir("upload-tls-share")?;
    let share = files.path().join("share");
    let big = make_share(&share)?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(3)?;
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        hubs: vec![url.clone()],
        passive: !eisk_active,
        tls: true,
        ..EiskaltOptions::default()
    })?;
    me.connect(&format!("{url}/?kp={}", cert.keyprint), "{}")?;
    me.run(r#"tls_uploads = 0
              dc.on("upload_finished", function(e) if e.tls then tls_uploads = tls_uploads + 1 end end)"#)?;
    eisk.wait_user(&url, "sharer")?;
    let list = eisk.download_file_list(&url, "sharer", Duration::from_secs(30))?;
    let top = eisk.list_dir(&list, "Share")?;
    let tth = top.iter().find(|e| e.name == "big.bin").and_then(|e| e.tth.clone());
    let tth = tth.context("big.bin in the list")?;
    let dl = files.path().join("downloads");
    let got = eisk.download_tth(&url, &tth, BIG as u64, "big.bin", &dl, Duration::from_secs(60))?;
    ensure!(std::fs::read(&got)? == big, "the downloaded bytes differ");
    let n = me.value(r#"return eventually("TLS uploads", function() return tls_uploads >= 2 and tls_uploads end)"#)?;
    ensure!(n.parse::<u32>()? >= 2, "uploads over TLS: {n}");
    Ok(())
}

#[test]
fn adcs_both_active_over_tls() -> Result<()> {
    tls_list_and_file(true).with_context(peer_log)
}

#[test]
fn adcs_eiskaltdcpp_passive_over_tls() -> Result<()> {
    tls_list_and_file(false).with_context(peer_log)
}

/// dclua's log lines about peers and uploads, for a failure's context.
fn peer_log() -> String {
    support::client::log_matching("dclua's peer log", &["peer", "upload", "client connection"])
}

// ----- connections that misbehave -----------------------------------------------------------

fn shorten_timeouts(me: &Client) {
    me.on_worker(|| {
        support::client::services().peers().set_timeouts(dclua::peer::Timeouts {
            handshake: Duration::from_millis(800),
            idle: Duration::from_secs(2),
            check_every: Duration::from_millis(700),
            min_rate: 64 * 1024,
        });
    });
}

fn listen_port(me: &Client) -> u16 {
    me.on_worker(|| support::client::services().peers().ports().0.expect("listening"))
}

/// Reads until the peer closes (or 10 s); what came.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => break,
        }
    }
    got
}

#[test]
fn silent_unexpected_and_slow_peers_are_dropped() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let files = support::component_dir("misbehaving-share")?;
    let share = files.path().join("share");
    make_share(&share)?;
    // A file larger than what the socket buffers hold.
    std::fs::write(share.join("huge.bin"), vec![1u8; 48 << 20])?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(4)?;
    me.connect(&hub.url(), "{}")?;
    shorten_timeouts(&me);
    let port = listen_port(&me);

    // Silence: closed when the handshake time is up.
    let mut silent = TcpStream::connect(("127.0.0.1", port))?;
    silent.set_read_timeout(Some(Duration::from_millis(200)))?;
    ensure!(read_until_closed(&mut silent).is_empty());
    support::client::wait_log(&["timed out waiting for the handshake"])?;

    // Many silent connections from one address: past 8 in their handshake,
    // the next are closed at once.
    let crowd: Vec<TcpStream> =
        (0..12).map(|_| TcpStream::connect(("127.0.0.1", port))).collect::<Result<_, _>>()?;
    support::client::wait_log(&[
        "refused a client connection from 127.0.0.1",
        "still in their handshake",
    ])?;
    drop(crowd);
    // Once they are gone, the address may connect again.
    std::thread::sleep(Duration::from_millis(1200));

    // An NMDC nick nobody expects.
    let mut stranger = TcpStream::connect(("127.0.0.1", port))?;
    stranger.set_read_timeout(Some(Duration::from_millis(200)))?;
    stranger.write_all(b"$MyNick stranger|$Lock EXTENDEDPROTOCOLx Pk=y|")?;
    let got = read_until_closed(&mut stranger);
    ensure!(got.is_empty(), "a stranger got {:?}", String::from_utf8_lossy(&got));
    support::client::wait_log(&["nobody expects a connection from stranger"])?;

    // An ADC token nobody issued.
    let mut forger = TcpStream::connect(("127.0.0.1", port))?;
    forger.set_read_timeout(Some(Duration::from_millis(200)))?;
    forger.write_all(b"CSUP ADBASE ADTIGR\n")?;
    forger.write_all(b"CINF ID7LUC4RL5FKAKKBSLNFGEY6BTV6UEAPL3RU5I45Y TOforged\n")?;
    let got = String::from_utf8_lossy(&read_until_closed(&mut forger)).into_owned();
    ensure!(got.starts_with("CSUP ") && !got.contains("CINF"), "a forger got {got:?}");
    support::client::wait_log(&[
        "nobody expects a connection from 7LUC4",
        "token Some(\"forged\")",
    ])?;

    // A reader that stops reading: dropped once the socket buffers are full.
    let (mut slow, _user) = expected_fake_peer(&hub, "snail")?;
    slow.send("$ADCGET file Share/huge.bin 0 -1|")?;
    let header = slow.line()?;
    ensure!(header.starts_with("$ADCSND file Share/huge.bin 0 50331648"), "{header:?}");
    support::client::wait_log(&["upload to snail", "huge.bin", "reads too slowly"])?;
    ensure!(me.value("return #dc.uploads()")? == "0");
    Ok(())
}

// ----- the upload limit, a download paused and resumed --------------------------------------

#[test]
fn a_limited_upload_paused_and_resumed_by_eiskaltdcpp_ends_with_the_right_bytes() -> Result<()> {
    limited_pause_resume().with_context(peer_log)
}

fn limited_pause_resume() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("limited-share")?;
    let share = files.path().join("share");
    let big = make_share(&share)?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(3)?;
    me.on_worker(|| support::client::services().peers().set_upload_limit(200 * 1024));
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    me.connect(&url, "{}")?;
    me.run(
        r#"starts, failed, done = {}, 0, 0
           dc.on("upload_finished", function(e) done = done + e.bytes end)
           function total()
             local u = dc.uploads()[1]
             return done + (u and u.sent or 0)
           end
           dc.on("upload_started", function(e)
             if e.file:match("big.bin$") then starts[#starts + 1] = e.start end end)
           dc.on("upload_failed", function(e)
             if e.file:match("big.bin$") then failed = failed + 1 end end)"#,
    )?;
    eisk.wait_user(&url, "sharer")?;
    let tth = me.value(r#"return dc.share.find({text = "big.bin"})[1].tth"#)?;
    let dl = files.path().join("downloads");
    let target = eisk.queue_add(&dl, "big.bin", BIG as u64, &tth)?;
    let target_s = target.display().to_string();
    // A TTH search attaches dclua as the source; then wait for a third.
    let sending = support::wait_until(
        "a fifth of big.bin sent",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let sent: u64 = me.value("return total()")?.parse()?;
            if sent == 0 {
                eisk.rpc("search.clear", serde_json::json!({"huburl": url}))?;
                eisk.rpc(
                    "search.send",
                    serde_json::json!({"searchstring": tth, "searchtype": support::SearchType::Tth as i32,
                        "sizemode": 0, "sizetype": 0, "size": 0.0, "huburls": url}),
                )?;
            }
            Ok((sent as usize > BIG / 5).then_some(sent))
        },
    )?;
    ensure!((sending as usize) < BIG, "the limit did not slow the upload down");
    // Paused by eiskaltdcpp: it drops the connection (in the middle of a
    // segment, or between two).
    eisk.rpc("queue.setpriority", serde_json::json!({"target": target_s, "priority": 0}))?;
    // Paused: no request for a while (the segment under way may end first).
    me.value(
        r#"local quiet = 0
           return eventually("the uploads to stop", function()
             quiet = #dc.uploads() == 0 and quiet + 1 or 0
             return quiet > 75
           end, 20)"#,
    )?;
    ensure!(!target.exists(), "the download completed before it was paused");
    eisk.rpc("queue.setpriority", serde_json::json!({"target": target_s, "priority": 3}))?;
    support::wait_until(
        "big.bin complete",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            Ok((std::fs::metadata(&target).map(|m| m.len()).ok() == Some(BIG as u64)
                && !eisk.queue()?.contains_key(&target_s))
            .then_some(()))
        },
    )?;
    ensure!(std::fs::read(&target)? == big, "the downloaded bytes differ");
    let resumed = me
        .value(r#"for _, s in ipairs(starts) do if s > 0 then return "yes" end end return "no""#)?;
    ensure!(resumed == "yes", "no request resumed past the start");
    Ok(())
}

// ----- a large file to two peers at once, while chatting ------------------------------------

/// Two eiskaltdcpp peers download a 100 MiB file at the same time while a
/// dclua bot chats on the hub: the bytes are identical and chat keeps
/// flowing. Prints the chat round trips (BENCHMARKS.md records them).
#[test]
fn two_peers_download_100_mib_while_the_bot_chats() -> Result<()> {
    two_peers_while_chatting().with_context(peer_log)
}

fn two_peers_while_chatting() -> Result<()> {
    const SIZE: usize = 100 << 20;
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("hundred-share")?;
    let share = files.path().join("share");
    std::fs::create_dir_all(&share)?;
    let mut data = vec![0u8; SIZE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 7;
        x ^= x >> 9;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(share.join("hundred.bin"), &data)?;
    let me = dclua("sharer", true, &share);
    me.wait_shared(1)?;
    me.connect(&url, "{}")?;
    let tth = me.value(r#"return dc.share.find({text = "hundred"})[1].tth"#)?;
    let peers: Vec<Eiskalt> = ["eisk1", "eisk2"]
        .iter()
        .map(|n| {
            Eiskalt::start(EiskaltOptions {
                nick: (*n).into(),
                hubs: vec![url.clone()],
                ..EiskaltOptions::default()
            })
        })
        .collect::<Result<_>>()?;
    for p in &peers {
        p.wait_user(&url, "sharer")?;
    }
    // The chat round trip with nothing else going on: the baseline.
    let mut idle = Vec::new();
    for i in 0..30 {
        idle.push(chat_round_trip(&me, &format!("idle {i}"))?);
    }
    idle.sort();
    let dl = files.path().join("downloads");
    let (tth2, url2) = (tth.clone(), url.clone());
    let results = std::thread::scope(|scope| -> Result<Vec<std::path::PathBuf>> {
        let handles: Vec<_> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (tth, url, dir) = (tth2.clone(), url2.clone(), dl.join(format!("p{i}")));
                scope.spawn(move || {
                    p.download_tth(
                        &url,
                        &tth,
                        SIZE as u64,
                        "hundred.bin",
                        &dir,
                        Duration::from_secs(120),
                    )
                })
            })
            .collect();
        // Chat while they download: each line's round trip through the hub.
        let mut rtts = Vec::new();
        let mut during = 0;
        for i in 0..400 {
            if handles.iter().all(|h| h.is_finished()) {
                break;
            }
            let uploading: usize = me.value("return #dc.uploads()")?.parse()?;
            let rtt = chat_round_trip(&me, &format!("ping {i}"))?;
            if uploading > 0 {
                rtts.push(rtt);
                during += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        rtts.sort();
        if !rtts.is_empty() {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let line = |v: &[Duration]| {
                format!(
                    "min {:.2} ms, median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
                    ms(v[0]),
                    ms(v[v.len() / 2]),
                    ms(v[v.len() * 9 / 10]),
                    ms(v[v.len() - 1])
                )
            };
            println!("chat round trip, idle ({} lines): {}", idle.len(), line(&idle));
            println!("chat round trip during two uploads ({during} lines): {}", line(&rtts));
            println!(
                "median ratio during/idle: {:.2}x",
                rtts[rtts.len() / 2].as_secs_f64() / idle[idle.len() / 2].as_secs_f64()
            );
        }
        handles.into_iter().map(|h| h.join().expect("a download thread")).collect()
    })?;
    for got in results {
        ensure!(std::fs::read(&got)? == data, "{} differs", got.display());
    }
    Ok(())
}

/// One chat line said and seen coming back from the hub; the time it took
/// (a console chunk's own cost included, the same for every line).
fn chat_round_trip(me: &Client, text: &str) -> Result<Duration> {
    let start = std::time::Instant::now();
    me.run(&format!(
        r#"local text = "{text}"
           hub:say(text)
           assert(hub:wait("chat", {{filter = function(e) return e.text == text end, timeout = 10}}),
                  "the chat line did not come back")"#
    ))?;
    Ok(start.elapsed())
}

/// Two passive users cannot connect: dclua says so as an event and in the
/// log instead of letting the peer time out.
#[test]
fn a_passive_peer_asking_passive_dclua_gets_a_clear_no() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let files = support::component_dir("passive-share")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let me = dclua("sharer", false, &share);
    me.wait_shared(3)?;
    me.connect(&hub.url(), "{}")?;
    me.run(r#"expect("no", "upload_failed")"#)?;
    let mut user = RawUser::login(hub.port(), "passer")?;
    user.send("$RevConnectToMe passer sharer|")?;
    let got = me.run(r#"local e = expect_done("no") return e.nick, e.reason"#)?;
    ensure!(got[0] == "passer", "{got:?}");
    ensure!(got[1].contains("is passive and so are we"), "{got:?}");
    support::client::wait_log(&["passer", "no connection is possible between two passive users"])?;
    Ok(())
}

/// The guide's uploads example runs as written (loaded as a script).
#[test]
fn the_guide_uploads_example_runs() -> Result<()> {
    let example = support::guide_example("Uploads")?;
    let example = example.as_str();
    let files = support::component_dir("guide-share")?;
    let share = files.path().join("share");
    make_share(&share)?;
    let me = dclua("sharer", true, &share);
    me.run(example)?;
    // The policy it set answers as written.
    let verdicts = me.on_worker(|| {
        let peers = support::client::services().peers().clone();
        let ask = |nick: &str, size: u64| dclua::peer::SlotAsk {
            user: dclua::peer::PeerUser {
                hub: support::client::services().runtime().spawn(Noop),
                hub_url: "adc://127.0.0.1:1".into(),
                nick: nick.into(),
                cid: None,
            },
            file: "x".into(),
            size,
            free: false,
        };
        [
            peers.slot_verdict(&ask("alice", 10)),
            peers.slot_verdict(&ask("eve", 5 << 30)),
            peers.slot_verdict(&ask("eve", 10)),
        ]
    });
    use dclua::peer::SlotVerdict::*;
    ensure!(verdicts == [Grant, Refuse, Default], "{verdicts:?}");
    Ok(())
}

struct Noop;
impl dclua::runtime::Job for Noop {
    fn poll(&mut self, _: &mut dclua::runtime::Context<'_>) -> dclua::runtime::Step {
        dclua::runtime::Step::Done
    }
    fn is_alive(&self) -> bool {
        false
    }
    fn stop(&mut self) {}
}

/// The real binary, configured as a user would (active mode, a share, a hub
/// to connect at start) and driven through its piped console: eiskaltdcpp
/// downloads its file list and a file, and `dc.uploads`/events say so.
#[test]
fn the_dclua_binary_serves_eiskaltdcpp() -> Result<()> {
    use std::process::{Command, Stdio};
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("binary-share")?;
    let share = files.path().join("share");
    let big = make_share(&share)?;
    let config = files.path().join("config.lua");
    std::fs::write(
        &config,
        format!(
            r#"nick = "binsharer"
               mode = "active"
               listen_address = "127.0.0.1"
               data_dir = "{}"
               shares = {{ {{ path = "{}", name = "Share" }} }}
               hubs = {{ {{ url = "{url}" }} }}
            "#,
            files.path().join("data").display(),
            share.display()
        ),
    )?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dclua"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let outcome = (|| -> Result<()> {
        let eisk = Eiskalt::start(EiskaltOptions {
            nick: "eisk".into(),
            hubs: vec![url.clone()],
            ..EiskaltOptions::default()
        })?;
        let seen = eisk.wait_user(&url, "binsharer")?;
        ensure!(!seen.passive, "eiskaltdcpp sees dclua as passive");
        // The share is hashed and announced once its size shows.
        support::wait_until(
            "the share announced",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || Ok(eisk.user(&url, "binsharer")?.filter(|u| u.share as usize >= BIG).map(|_| ())),
        )?;
        let stdin = child.stdin.as_mut().context("stdin")?;
        stdin
            .write_all(b"done = 0\ndc.on(\"upload_finished\", function() done = done + 1 end)\n")?;
        // The size shows as soon as the files are found; the list has a
        // file once it is hashed: fetch it again until big.bin is there.
        let mut tth = None;
        for _ in 0..20 {
            let list = eisk.download_file_list(&url, "binsharer", Duration::from_secs(30))?;
            let top = eisk.list_dir(&list, "Share")?;
            tth = top.iter().find(|e| e.name == "big.bin").and_then(|e| e.tth.clone());
            if tth.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let tth = tth.context("big.bin in the list")?;
        let dl = files.path().join("downloads");
        let got =
            eisk.download_tth(&url, &tth, BIG as u64, "big.bin", &dl, Duration::from_secs(60))?;
        ensure!(std::fs::read(&got)? == big, "the downloaded bytes differ");
        stdin.write_all(b"print(\"uploads done: \" .. done)\n")?;
        Ok(())
    })();
    // End of input ends the piped console, and the client with it.
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output()?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    outcome.with_context(|| format!("dclua's output:\n{stdout}\n{stderr}"))?;
    ensure!(
        stdout.contains("uploads done: ") && !stdout.contains("uploads done: 0"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let all = format!("{stdout}{stderr}");
    ensure!(
        all.contains("upload to eisk: Share/big.bin"),
        "no console line for the upload:\n{all}"
    );
    Ok(())
}
