//! Proves the test harness in `tests/support/`: real hubs (uhub, the Verlihub NMDC core)
//! and real EiskaltDC++ peers start on 127.0.0.1, log in, chat, authenticate registered
//! users, transfer files, restart on the same port, and stop.
//!
//! These tests exercise independent software only; dclua's own interop tests build on the
//! same harness. They need `tests/setup-peers.sh` to have run.

mod support;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use support::{
    ports, Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, SearchType, TlsCert, Uhub, UhubOptions,
};

fn peer(nick: &str, hubs: &[&str]) -> EiskaltOptions {
    EiskaltOptions {
        nick: nick.to_string(),
        hubs: hubs.iter().map(|h| h.to_string()).collect(),
        ..EiskaltOptions::default()
    }
}

#[test]
fn ports_are_distinct_and_below_the_ephemeral_range() -> Result<()> {
    // Threads reserving at once, as parallel tests do.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| (0..10).map(|_| ports::free_port()).collect::<Result<Vec<_>>>())
        })
        .collect();
    let mut held = Vec::new();
    for h in handles {
        held.extend(h.join().map_err(|_| anyhow::anyhow!("port thread panicked"))??);
    }
    let nums: HashSet<u16> = held.iter().map(ports::Port::get).collect();
    ensure!(nums.len() == held.len(), "a port was handed out twice: {nums:?}");
    ensure!(nums.iter().all(|p| (20000..32768).contains(p)), "port out of range: {nums:?}");
    Ok(())
}

#[test]
fn missing_software_names_the_setup_script() {
    let err = support::find_binary("dclua-no-such-program").expect_err("found a ghost");
    let msg = format!("{err:#}");
    assert!(msg.contains("dclua-no-such-program") && msg.contains("tests/setup-peers.sh"), "{msg}");
}

#[test]
fn uhub_guest_and_registered_users() -> Result<()> {
    let mut hub = Uhub::start(UhubOptions {
        users: vec![("reguser".into(), "s3cret".into()), ("other".into(), "pw2".into())],
        operators: vec![("opuser".into(), "0pp4ss".into())],
        ..UhubOptions::default()
    })?;
    let url = hub.url();
    ensure!(url == format!("adc://127.0.0.1:{}", hub.port()), "unexpected url {url}");

    // A guest logs in, sees itself, and reads its own main-chat message back.
    let alice = Eiskalt::start(peer("alice", &[&url]))?;
    ensure!(alice.nicks(&url)?.contains(&"alice".to_string()));
    let me = alice.wait_user(&url, "alice")?;
    ensure!(me.tag.contains("EiskaltDC++"), "tag {:?}", me.tag);
    alice.say(&url, "hello from alice")?;
    let line = alice.wait_chat(&url, Some("alice"), "hello from alice")?;
    ensure!(line.text == "hello from alice", "chat line {line:?}");

    // Registered users log in with their passwords; the operator is flagged as such.
    let reg = Eiskalt::start(EiskaltOptions {
        passwords: vec![(url.clone(), "s3cret".into())],
        ..peer("reguser", &[&url])
    })?;
    let op = Eiskalt::start(EiskaltOptions {
        passwords: vec![(url.clone(), "0pp4ss".into())],
        ..peer("opuser", &[&url])
    })?;
    ensure!(!alice.wait_user(&url, "reguser")?.is_op);
    ensure!(alice.wait_user(&url, "opuser")?.is_op, "opuser is not shown as operator");

    // A wrong password is refused.
    let wrong = Eiskalt::start(EiskaltOptions {
        passwords: vec![(url.clone(), "wrong".into())],
        ..peer("other", &[])
    })?;
    wrong.rpc("hub.add", serde_json::json!({"huburl": url, "enc": ""}))?;
    support::wait_until(
        "a refusal of the wrong password",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(wrong.status_messages(&url).into_iter().find(|m| m.contains("Password is wrong"))),
    )?;
    ensure!(!alice.nicks(&url)?.contains(&"other".to_string()), "other got in");
    drop((wrong, op));

    // Private message between a guest and a registered user.
    alice.pm(&url, "reguser", "psst")?;
    ensure!(reg.wait_pm(&url, "alice", "psst")? == "psst");
    reg.pm(&url, "alice", "multi\nline")?;
    ensure!(alice.wait_pm(&url, "reguser", "multi")? == "multi\nline");

    // Restart on the same port: the peers reconnect by themselves.
    let port = hub.port();
    hub.restart()?;
    ensure!(hub.port() == port);
    alice.wait_logged_in(&url)?;
    alice.wait_user(&url, "reguser")?;
    let log = hub.log();
    ensure!(log.contains("\"reguser\" (user)"), "uhub log lacks reguser's login:\n{log}");
    ensure!(log.contains("\"other\" (msg_auth_invalid_password)"), "uhub log:\n{log}");

    hub.stop()?;
    ensure!(hub.pid().is_none());
    Ok(())
}

#[test]
fn uhub_over_tls() -> Result<()> {
    let certs = support::component_dir("certs")?;
    let cert = TlsCert::generate(certs.path())?;
    ensure!(cert.keyprint.starts_with("SHA256/") && cert.keyprint.len() == 59, "{}", cert.keyprint);
    let hub = Uhub::start(UhubOptions {
        tls: Some((cert.cert.clone(), cert.key.clone())),
        tls_required: true,
        registered_only: true,
        users: vec![("bobby".into(), "b0b".into())],
        ..UhubOptions::default()
    })?;
    let url = hub.url();
    ensure!(url.starts_with("adcs://"), "{url}");
    let bob = Eiskalt::start(EiskaltOptions {
        passwords: vec![(url.clone(), "b0b".into())],
        ..peer("bobby", &[&url])
    })?;
    bob.say(&url, "over tls")?;
    bob.wait_chat(&url, Some("bobby"), "over tls")?;
    ensure!(bob.trace().contains("HUB_OUT"), "no hub traffic in the trace");

    // Registered users only: a guest is refused.
    let guest = Eiskalt::start(peer("guest", &[]))?;
    guest.rpc("hub.add", serde_json::json!({"huburl": url, "enc": ""}))?;
    support::wait_until(
        "the hub to refuse a guest",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            Ok(guest
                .status_messages(&url)
                .into_iter()
                .find(|m| m.contains("registered users only")))
        },
    )?;
    ensure!(!bob.nicks(&url)?.contains(&"guest".to_string()), "guest got in");
    Ok(())
}

/// Reads from an NMDC connection until `pred` holds for what arrived, or 5 s pass.
fn read_until(s: &mut TcpStream, got: &mut String, pred: impl Fn(&str) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    while !pred(got) {
        if Instant::now() > deadline {
            bail!("timed out; received so far: {got:?}");
        }
        match s.read(&mut buf) {
            Ok(0) => bail!("connection closed; received: {got:?}"),
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("reading from the NMDC hub"),
        }
    }
    Ok(())
}

/// A minimal NMDC login as `nick` with `password`; returns everything the hub sent.
fn nmdc_login(port: u16, nick: &str, password: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let mut got = String::new();
    read_until(&mut s, &mut got, |g| g.starts_with("$Lock ") && g.contains('|'))?;
    // The hub does not check $Key; any value will do for this probe.
    write!(s, "$Supports NoHello|$Key harness|$ValidateNick {nick}|")?;
    read_until(&mut s, &mut got, |g| {
        g.contains("$GetPass|") || g.contains("$Hello ") || g.contains("$ValidateDenide")
    })?;
    if got.contains("$GetPass|") {
        write!(s, "$MyPass {password}|")?;
        read_until(&mut s, &mut got, |g| g.contains("$BadPass|") || g.contains("$Hello "))?;
    }
    Ok(got)
}

#[test]
fn nmdc_hub_guest_and_registered_users() -> Result<()> {
    let mut hub = NmdcHub::start(NmdcHubOptions {
        users: vec![("reguser".into(), "s3cret".into())],
        ..NmdcHubOptions::default()
    })?;
    let url = hub.url();
    ensure!(url == format!("dchub://127.0.0.1:{}", hub.port()), "unexpected url {url}");

    let carol = Eiskalt::start(peer("carol", &[&url]))?;
    carol.wait_user(&url, "carol")?;
    carol.say(&url, "hello from carol")?;
    carol.wait_chat(&url, Some("carol"), "hello from carol")?;

    // Registered nick: the hub asks for the password and refuses a wrong one.
    let ok = nmdc_login(hub.port(), "reguser", "s3cret")?;
    ensure!(ok.contains("$GetPass|") && ok.contains("$Hello reguser|"), "good password: {ok:?}");
    let bad = nmdc_login(hub.port(), "reguser", "nope")?;
    ensure!(bad.contains("$BadPass|") && !bad.contains("$Hello"), "wrong password: {bad:?}");
    let guest = nmdc_login(hub.port(), "someguest", "")?;
    ensure!(!guest.contains("$GetPass") && guest.contains("$Hello someguest|"), "guest: {guest:?}");

    // A hub without guests refuses unregistered nicks.
    let closed = NmdcHub::start(NmdcHubOptions {
        users: vec![("member".into(), "pw".into())],
        allow_guests: false,
        ..NmdcHubOptions::default()
    })?;
    let refused = nmdc_login(closed.port(), "someguest", "")?;
    ensure!(refused.contains("$ValidateDenide"), "guest on a closed hub: {refused:?}");
    let member = nmdc_login(closed.port(), "member", "pw")?;
    ensure!(member.contains("$Hello member|"), "member on a closed hub: {member:?}");
    drop(closed);

    // A registered EiskaltDC++ peer, and a PM to it.
    let reg = Eiskalt::start(EiskaltOptions {
        passwords: vec![(url.clone(), "s3cret".into())],
        ..peer("reguser", &[&url])
    })?;
    carol.wait_user(&url, "reguser")?;
    carol.pm(&url, "reguser", "psst nmdc")?;
    ensure!(reg.wait_pm(&url, "carol", "psst nmdc")? == "psst nmdc");

    // Restart on the same port.
    hub.restart()?;
    carol.wait_logged_in(&url)?;
    ensure!(!hub.log().is_empty());
    hub.stop()?;
    ensure!(hub.pid().is_none());
    Ok(())
}

#[test]
fn eiskalt_transfers_on_uhub() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("share")?;
    let share = files.path().join("pub");
    fs::create_dir_all(share.join("sub"))?;
    let data: Vec<u8> =
        (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(share.join("sub").join("payload.bin"), &data)?;
    fs::write(share.join("small.txt"), b"small file\n")?;

    let seed =
        Eiskalt::start(EiskaltOptions { share: Some(share.clone()), ..peer("seeder", &[&url]) })?;
    let leech = Eiskalt::start(peer("leecher", &[&url]))?;
    let info = leech.wait_user(&url, "seeder")?;
    seed.wait_user(&url, "leecher")?;
    ensure!(info.share >= data.len() as u64, "seeder's share {} < {}", info.share, data.len());

    // Search by name, then download by TTH.
    let results = leech.search(Some(&url), "payload", SearchType::Any)?;
    let hit = results
        .iter()
        .find(|r| r.filename == "payload.bin")
        .with_context(|| format!("no payload.bin in {results:?}"))?;
    ensure!(hit.nick == "seeder" && hit.size == data.len() as u64, "{hit:?}");
    let tth = hit.tth.clone().context("file result without TTH")?;
    let by_tth = leech.search(None, &tth, SearchType::Tth)?;
    ensure!(by_tth.iter().any(|r| r.filename == "payload.bin"), "TTH search: {by_tth:?}");

    let dl = support::component_dir("downloads")?;
    let got = leech.download_tth(
        &url,
        &tth,
        data.len() as u64,
        "payload.bin",
        &dl.path().join("tth"),
        Duration::from_secs(30),
    )?;
    ensure!(fs::read(&got)? == data, "downloaded content differs");

    // File list: browse, then download a file from it.
    let list = leech.download_file_list(&url, "seeder", Duration::from_secs(20))?;
    let root = leech.list_dir(&list, "")?;
    ensure!(root.iter().any(|e| e.name == "pub" && e.is_dir), "root of the list: {root:?}");
    let top = leech.list_dir(&list, "pub")?;
    ensure!(top.iter().any(|e| e.name == "small.txt" && !e.is_dir && e.size == 11), "{top:?}");
    ensure!(top.iter().any(|e| e.name == "sub" && e.is_dir), "{top:?}");
    let got = leech.download_from_list(
        &list,
        "pub/small.txt",
        &dl.path().join("list"),
        Duration::from_secs(30),
    )?;
    ensure!(fs::read(&got)? == b"small file\n", "downloaded small.txt differs");
    ensure!(leech.queue()?.is_empty(), "queue not empty: {:?}", leech.queue()?);

    // Hub details, then leaving the hub.
    let hubs = leech.hubs_full()?;
    ensure!(hubs[&url]["connected"] == "1", "hub.listfulldesc: {hubs}");
    leech.remove_hub(&url)?;
    seed.wait_user_gone(&url, "leecher")?;
    ensure!(leech.hubs_full().is_err(), "hub.listfulldesc must be refused after hub.del");
    Ok(())
}
