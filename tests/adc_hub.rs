//! dclua's ADC hub session, driven from Lua, against real software: uhub
//! with two dclua clients (chat, PMs, searches, passwords, reconnect,
//! `adcs://` keyprints), eiskaltdcpp on uhub, the greeter bot on an ADC and
//! an NMDC hub at once, and an in-process fake hub for hostile input a real
//! hub never sends.
//!
//! Each dclua client is a worker thread with its own Lua host, hub registry
//! and data folder (PID, certificate), driven through console chunks.
//! Everything talks to 127.0.0.1 only; every wait is bounded.
//! `tests/setup-peers.sh` must have run.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use dclua::tls::Keyprint;
use support::client::{services, wait_log, Client};
use support::{
    Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, SearchType, TlsCert, Uhub, UhubOptions,
};

/// The SID of our own user on the hub (from our INF as the hub echoed it).
const MY_SID: &str = r#"hub:user(hub.nick).sid"#;

// ----- against uhub ------------------------------------------------------------------

#[test]
fn two_clients_see_each_other_chat_pm_and_search() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let alice = Client::passive("alice");
    let bob = Client::active("bob");

    alice.connect(&url, "{}")?;
    alice.run(
        r#"joined = {}
           dc.on("user_joined", function(e) joined[#joined + 1] = e.nick .. ":" .. e.user.client end)"#,
    )?;
    bob.connect(&url, "{}")?;
    assert_eq!(
        bob.run("return hub.protocol, hub.name, hub.state, hub.keyprint")?,
        ["adc", "dclua-test-adc", "online", "nil"]
    );

    // Each sees the other with the INF it announced.
    let seen = alice.run(
        r#"local u = eventually("bob's INF", function()
             local u = hub:user("bob"); return u and u.client ~= "" and u end)
           return u.nick, u.description, u.client, u.version, u.mode, u.slots, u.hubs.normal,
                  u.share, u.op, u.ip, #u.cid, u.raw:sub(1, 4)"#,
    )?;
    assert_eq!(
        seen,
        [
            "bob",
            "bob the tester",
            "dclua",
            env!("CARGO_PKG_VERSION"),
            "active",
            "2",
            "1",
            "0",
            "false",
            "127.0.0.1",
            "39",
            "BINF"
        ]
    );
    let seen = bob.run(
        r#"local u = eventually("alice's INF", function()
             local u = hub:user("alice"); return u and u.client ~= "" and u end)
           return u.description, u.email, u.mode, hub:user("bob") ~= nil"#,
    )?;
    assert_eq!(seen, ["alice the tester", "alice@example.org", "passive", "true"]);
    assert_eq!(
        alice.value("return eventually('the join', function() return joined[1] end)")?,
        "bob:dclua"
    );

    // Main chat both ways (with spaces and backslashes escaped on the wire).
    bob.run(r#"expect("chat", "chat", {nick = "alice"})"#)?;
    alice.run(r#"assert(hub:say("hi bob \\ with spaces"))"#)?;
    assert_eq!(
        bob.run(
            r#"local e = expect_done("chat") return e.text, e.me, e.raw:sub(1, 9), e.hub == hub"#
        )?,
        ["hi bob \\ with spaces", "false", "BMSG AAAB", "true"]
    );
    bob.output_line("<alice> hi bob \\ with spaces")?;
    alice.run(r#"expect("chat", "chat", {nick = "bob"})"#)?;
    bob.run(r#"assert(hub:say("waves", {me = true}))"#)?;
    assert_eq!(
        alice.run(r#"local e = expect_done("chat") return e.text, e.me"#)?,
        ["waves", "true"]
    );
    alice.output_line("* bob waves")?;

    // PMs both ways; our own PM's echo is not reported.
    alice.run(r#"own_pms = 0 dc.on("pm", function(e) if e.from == "bob" and e.text == "psst, bob" then own_pms = own_pms + 1 end end)"#)?;
    bob.run(r#"expect("pm", "pm", {from = "alice"})"#)?;
    alice.run(r#"assert(hub:pm("bob", "psst, bob"))"#)?;
    assert_eq!(
        bob.run(
            r#"local e = expect_done("pm") return e.from, e.to, e.nick, e.text, e.raw:sub(1, 4)"#
        )?,
        ["alice", "bob", "alice", "psst, bob", "EMSG"]
    );
    alice.run(r#"expect("pm", "pm", {from = "bob"})"#)?;
    bob.run(r#"assert(hub:pm("alice", "reply", {me = true}))"#)?;
    assert_eq!(alice.run(r#"local e = expect_done("pm") return e.text, e.me"#)?, ["reply", "true"]);
    assert_eq!(alice.value("dc.sleep(0.2) return own_pms")?, "0");

    // Alice (passive) searches: FSCH to active users; bob (active) gets it
    // and answers through the hub with a DRES.
    bob.run(&format!(
        r#"dc.on("search", function(e)
             last_search = e
             local token = e.raw:match(" TO(%S+)")
             local tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ"
             hub:send_raw(("DRES %s %s SI4321 SL2 FN/music/Some\\sSong.mp3 TR%s TO%s"):format(
               {MY_SID}, e.raw:sub(6, 9), tth, token))
           end)"#
    ))?;
    let got = alice.run(
        r#"local results, note = dc.search{text = "song", timeout = 5, max_results = 1}
           assert(note == nil, note)
           local r = assert(results[1], "no result")
           return #results, r.nick, r.path, r.name, r.size, r.tth, r.free_slots, r.slots,
                  r.is_dir, r.via, r.hub == hub"#,
    )?;
    assert_eq!(
        got,
        [
            "1",
            "bob",
            "music/Some Song.mp3",
            "Some Song.mp3",
            "4321",
            "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ",
            "2",
            "2",
            "false",
            "hub",
            "true"
        ]
    );
    assert_eq!(
        bob.run("return last_search.nick, last_search.text, last_search.passive, last_search.type, last_search.raw:sub(1, 4)")?,
        ["alice", "song", "true", "any", "FSCH"]
    );
    // Bob (active) searches with BSCH; alice answers through the hub.
    alice.run(&format!(
        r#"dc.on("search", function(e)
             alice_saw = e
             hub:send_raw(("DRES %s %s SI7 SL1 FN/docs/needle.txt TO%s"):format(
               {MY_SID}, e.raw:sub(6, 9), e.raw:match(" TO(%S+)")))
           end)"#
    ))?;
    let got = bob.run(
        r#"local results = dc.search{text = "needle", type = "document", timeout = 5, max_results = 1}
           local r = assert(results[1], "no result")
           return r.nick, r.path, r.size, r.via"#,
    )?;
    assert_eq!(got, ["alice", "docs/needle.txt", "7", "hub"]);
    assert_eq!(
        alice.run("return alice_saw.nick, alice_saw.passive, alice_saw.address ~= nil, alice_saw.type, alice_saw.raw:sub(1, 4)")?,
        ["bob", "false", "true", "document", "BSCH"]
    );

    // A user who changes their information: an incremental INF.
    alice.run(r#"expect("upd", "user_updated", {nick = "bob"})"#)?;
    bob.worker
        .call(|pool| {
            let hubs = services().hubs().clone();
            let mut id = hubs.identity();
            id.description = "bob, updated".into();
            id.away = true;
            hubs.set_identity(pool.runtime(), id);
        })
        .expect("the worker answers");
    assert_eq!(
        alice.run(
            r#"local e = expect_done("upd") return e.user.description, e.user.away, e.user.client"#
        )?,
        ["bob, updated", "true", "dclua"]
    );

    // Bob leaves: alice sees it.
    alice.run(r#"expect("left", "user_left", {nick = "bob"})"#)?;
    bob.run("hub:disconnect()")?;
    alice.run(r#"expect_done("left") assert(hub:user("bob") == nil)"#)?;
    assert_eq!(bob.value(r#"return eventually("the end", function() return hub.state == "disconnected" and hub.state end)"#)?, "disconnected");
    Ok(())
}

#[test]
fn registered_account_logs_in_and_a_wrong_password_fails() -> Result<()> {
    let hub = Uhub::start(UhubOptions {
        users: vec![("member".into(), "s3cret".into()), ("spare".into(), "pw2".into())],
        ..Default::default()
    })?;
    let url = hub.url();
    let member = Client::passive("member");
    member.connect(&url, r#"{password = "s3cret"}"#)?;
    assert_eq!(
        member.run(
            r#"local u = eventually("HR1", function()
                 local u = hub:user("member") return u.hubs.registered == 1 and u end)
               return u.hubs.registered, u.hubs.normal"#
        )?,
        ["1", "0"]
    );

    let intruder = Client::passive("intruder");
    let got = intruder.run(&format!(
        r#"expect("failed", "login_failed")
           expect("gone", "hub_disconnected")
           hub = dc.connect("{url}", {{nick = "spare", password = "wrong", reconnect_delay = 0.2}})
           local f = expect_done("failed")
           local d = expect_done("gone")
           return f.reason, f.raw:sub(1, 8), d.reconnect_in, f.hub == hub, d.reason"#
    ))?;
    ensure!(got[0].to_lowercase().contains("password"), "reason {:?}", got[0]);
    assert_eq!(got[1..4], ["ISTA 223", "nil", "true"]);
    ensure!(got[4].starts_with("login failed: "), "{:?}", got[4]);
    assert_eq!(
        intruder.value("dc.sleep(0.5) return hub.state .. ' ' .. #dc.hubs()")?,
        "disconnected 0"
    );

    let got = intruder.run(&format!(
        r#"expect("failed", "login_failed")
           dc.connect("{url}", {{nick = "spare"}})
           return expect_done("failed").reason"#
    ))?;
    assert_eq!(got, ["the hub asks for a password and none is set"]);
    Ok(())
}

#[test]
fn the_client_reconnects_by_itself_after_uhub_restarts() -> Result<()> {
    let mut hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let dave = Client::passive("dave");
    dave.connect(&url, "{reconnect_delay = 0.3}")?;
    dave.run(
        r#"drops = {}
           dc.on("hub_disconnected", function(e) drops[#drops + 1] = e end)
           expect("back", "hub_connected", nil, 20)"#,
    )?;
    hub.restart()?;
    let got = dave.run(
        r#"local e = expect_done("back")
           local d = drops[1]
           return e.hub == hub, hub.state, d.reason, d.reconnect_in ~= nil"#,
    )?;
    assert_eq!(got[..2], ["true", "online"]);
    assert_eq!(got[3], "true");
    assert!(got[2].contains("closed"), "drop reason {:?}", got[2]);
    let erin = Client::passive("erin");
    erin.connect(&url, "{}")?;
    erin.run(r#"expect("hi", "chat", {nick = "dave"})"#)?;
    dave.run(r#"assert(hub:say("back again"))"#)?;
    assert_eq!(erin.value(r#"return expect_done("hi").text"#)?, "back again");
    Ok(())
}

#[test]
fn adcs_with_the_right_keyprint_connects_and_a_wrong_one_is_refused() -> Result<()> {
    let certs = support::component_dir("certs")?;
    let cert = TlsCert::generate(certs.path())?;
    let hub = Uhub::start(UhubOptions {
        tls: Some((cert.cert.clone(), cert.key.clone())),
        tls_required: true,
        ..UhubOptions::default()
    })?;
    let good = format!("{}/?kp={}", hub.url(), cert.keyprint);
    let fay = Client::active("fay");
    fay.connect(&good, "{}")?;
    assert_eq!(
        fay.run(r#"return hub.protocol, hub.keyprint, hub:user("fay").raw:match(" KP(%S+)") ~= nil, hub:user("fay").raw:match(" SU(%S+)")"#)?,
        ["adc", cert.keyprint.as_str(), "true", "TCP4,UDP4,ADC0"]
    );
    let wrong = Keyprint::of_der(b"another certificate").to_string();
    let bad = format!("{}/?kp={wrong}", hub.url());
    let gus = Client::passive("gus");
    let got = gus.run(&format!(
        r#"expect("gone", "hub_disconnected")
           hub = dc.connect("{bad}", {{reconnect_delay = 0.2}})
           local d = expect_done("gone")
           dc.sleep(0.5)
           return d.reason, d.reconnect_in, hub.state"#
    ))?;
    ensure!(got[0].contains(&wrong) && got[0].contains(&cert.keyprint), "reason {:?}", got[0]);
    assert_eq!(got[1..], ["nil", "disconnected"]);
    wait_log(&["hub adcs://", "refusing the connection"])?;
    Ok(())
}

// ----- with eiskaltdcpp on uhub --------------------------------------------------------

#[test]
fn eiskaltdcpp_and_dclua_chat_pm_search_and_see_each_other() -> Result<()> {
    let hub = Uhub::start(UhubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("eiskalt-share")?;
    let share = files.path().join("stuff");
    std::fs::create_dir_all(&share)?;
    std::fs::write(share.join("payload-alpha.bin"), vec![7u8; 100_000])?;
    let eisk = Eiskalt::start(EiskaltOptions {
        nick: "eisk".into(),
        share: Some(share),
        hubs: vec![url.clone()],
        ..EiskaltOptions::default()
    })?;
    let frank = Client::new(Identity {
        nick: "frank".into(),
        description: "dclua under test".into(),
        slots: 5,
        share_size: 123_456_789,
        mode: ConnectMode::Active,
        listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Identity::default()
    });
    frank.connect(&url, "{}")?;

    let seen = eisk.wait_user(&url, "frank")?;
    ensure!(seen.share == 123_456_789, "share as eiskaltdcpp sees it: {}", seen.share);
    ensure!(seen.description == "dclua under test", "description {:?}", seen.description);
    ensure!(!seen.passive, "eiskaltdcpp sees frank as passive: {:?}", seen.raw);
    let got = frank.run(
        r#"local u = eventually("eisk", function()
             local u = hub:user("eisk") return u and u.client ~= "" and u end)
           return u.client, u.mode, u.share > 0, #u.cid"#,
    )?;
    assert_eq!(got, ["EiskaltDC++", "active", "true", "39"]);

    frank.run(r#"assert(hub:say("hello eiskalt"))"#)?;
    eisk.wait_chat(&url, Some("frank"), "hello eiskalt")?;
    frank.run(r#"expect("chat", "chat", {nick = "eisk"})"#)?;
    eisk.say(&url, "hello dclua")?;
    assert_eq!(frank.value(r#"return expect_done("chat").text"#)?, "hello dclua");

    frank.run(r#"assert(hub:pm("eisk", "private hello"))"#)?;
    ensure!(eisk.wait_pm(&url, "frank", "private hello")? == "private hello");
    frank.run(r#"expect("pm", "pm", {from = "eisk"})"#)?;
    eisk.pm(&url, "frank", "private answer")?;
    assert_eq!(frank.value(r#"return expect_done("pm").text"#)?, "private answer");

    frank
        .run(r#"expect("search", "search", function(e) return e.text == "needle haystack" end)"#)?;
    eisk.search_with(
        Some(&url),
        "needle haystack",
        SearchType::Any,
        support::SearchWait {
            max: Duration::from_millis(300),
            min_results: 1,
            quiet: Duration::ZERO,
        },
    )?;
    let got = frank.run(
        r#"local e = expect_done("search")
           return e.passive, e.nick, e.address ~= nil, e.type, e.raw:sub(1, 4)"#,
    )?;
    assert_eq!(got, ["false", "eisk", "true", "any", "BSCH"]);

    // dclua searches actively: eiskaltdcpp answers with a URES datagram to
    // the shared UDP listener, routed to this hub by the search token.
    let got = frank.run(
        r#"local results = dc.search{text = "payload alpha", timeout = 5, max_results = 1}
           local r = assert(results[1], "no result")
           return r.nick, r.name, r.size, r.via, #r.tth, r.hub == hub"#,
    )?;
    assert_eq!(got, ["eisk", "payload-alpha.bin", "100000", "udp", "39", "true"]);
    Ok(())
}

// ----- one bot, both protocols ----------------------------------------------------------

#[test]
fn the_greeter_works_unchanged_on_an_adc_and_an_nmdc_hub() -> Result<()> {
    let adc = Uhub::start(UhubOptions::default())?;
    let nmdc = NmdcHub::start(NmdcHubOptions::default())?;
    let greeter = Client::passive("greeter");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/greeter.lua");
    greeter
        .on_worker(move || services().host().load_file(&script, false, &[]).map(|_| ()))
        .map_err(anyhow::Error::msg)?;
    greeter.run(&format!(
        r#"expect("a", "hub_connected") adc_hub = dc.connect("{}") expect_done("a")
           expect("n", "hub_connected") nmdc_hub = dc.connect("{}") expect_done("n")"#,
        adc.url(),
        nmdc.url()
    ))?;
    let carol = Client::passive("carol");
    carol.run(r#"expect("welcome", "chat", {nick = "greeter"}, 15)"#)?;
    carol.connect(&adc.url(), "{}")?;
    let dora = Client::passive("dora");
    dora.run(r#"expect("welcome", "chat", {nick = "greeter"}, 15)"#)?;
    dora.connect(&nmdc.url(), "{}")?;
    assert_eq!(carol.value(r#"return expect_done("welcome").text"#)?, "Welcome, carol!");
    assert_eq!(dora.value(r#"return expect_done("welcome").text"#)?, "Welcome, dora!");
    assert_eq!(greeter.run("return adc_hub.protocol, nmdc_hub.protocol")?, ["adc", "nmdc"]);
    Ok(())
}

/// The rate-limited bot: the file that passes its kit tests
/// (`scripts/pinger_test.lua`, scripted hubs on a virtual clock) works
/// unchanged on uhub and on the Verlihub core, the limit included.
#[test]
fn the_pinger_passes_its_kit_tests_and_works_unchanged_on_real_hubs() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir()?;
    let kit = support::bin::dclua(home.path())
        .current_dir(root)
        .args(["test", "scripts/pinger_test.lua"])
        .output()?;
    let report = String::from_utf8_lossy(&kit.stdout);
    ensure!(kit.status.success() && report.contains("6 passed; 0 failed"), "{report}");

    let adc = Uhub::start(UhubOptions::default())?;
    let nmdc = NmdcHub::start(NmdcHubOptions::default())?;
    let bot = Client::passive("pingbot");
    let script = root.join("scripts/pinger.lua");
    bot.on_worker(move || services().host().load_file(&script, false, &[]).map(|_| ()))
        .map_err(anyhow::Error::msg)?;
    bot.run(&format!(
        r#"expect("a", "hub_connected") dc.connect("{}") expect_done("a")
           expect("n", "hub_connected") dc.connect("{}") expect_done("n")"#,
        adc.url(),
        nmdc.url()
    ))?;
    for url in [adc.url(), nmdc.url()] {
        let erin = Client::passive("erin");
        erin.connect(&url, "{}")?;
        // Five pings at once: three answers, the rest dropped.
        let pongs = erin.value(
            r#"eventually("pingbot on the hub", function() return hub:user("pingbot") ~= nil end, 30)
               local n = 0
               local h = dc.on("chat", function(e)
                 if e.nick == "pingbot" and e.text == "pong, erin" then n = n + 1 end
               end)
               for _ = 1, 5 do hub:say("ping") end
               dc.sleep(3)
               h:remove()
               return n"#,
        )?;
        ensure!(pongs == "3", "{url}: {pongs} answers to five pings at once");
        erin.run("hub:disconnect()")?;
        // The window is ten seconds: wait it out for the next hub.
        std::thread::sleep(Duration::from_secs(8));
    }
    Ok(())
}

// ----- hostile input from a fake hub ------------------------------------------------------

/// Reads lines from the client until one starts with `prefix` (≤ 10 s).
fn read_until(r: &mut BufReader<TcpStream>, prefix: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the client closed the connection before sending {prefix:?}");
        }
        if line.starts_with(prefix) {
            return Ok(line.trim_end().to_string());
        }
    }
    bail!("no {prefix:?} line within 10 s")
}

#[test]
fn hostile_input_from_a_fake_hub_is_survived_and_logged() -> Result<()> {
    let port = support::ports::free_port()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.get()))?;
    listener.set_nonblocking(false)?;
    let url = format!("adc://127.0.0.1:{}", port.get());
    let (done_tx, done_rx) = channel::<Result<String>>();
    let (go_tx, go_rx) = channel::<()>();
    let hub = std::thread::spawn(move || {
        let run = || -> Result<String> {
            let (stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut w = stream.try_clone()?;
            let mut r = BufReader::new(stream);
            read_until(&mut r, "HSUP ")?;
            w.write_all(
                b"ISUP ADBASE ADTIGR\nISID AAAB\nIINF CT32 NIFake\\shub DEhostile VEfake\n",
            )?;
            let inf = read_until(&mut r, "BINF AAAB ")?;
            let mut out = Vec::new();
            out.extend_from_slice(b"BINF AAAC IDKAEPJQ7XF2QQTBLTQ4DMTXJZBFJQXKUHGV5QWNQ NIbob SS5 SUTCP4 I4127.0.0.1\n");
            out.extend_from_slice(format!("{inf} I4127.0.0.1 CT0\n").as_bytes());
            // Unknown escapes, a huge INF, SID collisions, a STA flood, garbage.
            out.extend_from_slice(b"BMSG AAAC bad\\xescape\n");
            out.extend_from_slice(
                format!("BINF AAAD NIhuge DE{}\n", "x".repeat(200_000)).as_bytes(),
            );
            out.extend_from_slice(b"BINF AAAE NIbob SS77\n");
            out.extend_from_slice(b"BINF AAAF SS1\n");
            for i in 0..5000 {
                out.extend_from_slice(format!("ISTA 110 flood\\s{i}\n").as_bytes());
            }
            out.extend_from_slice(b"\xff\xfe\x00garbage\nZZZZ\nBINF\nBMSG\nEMSG AAAC\nIQUI\nBSCH AAAC TRnot-a-tth\n\n\n");
            out.extend_from_slice(
                b"IQUI AAAC\nDMSG AAAE AAAB still\\salive PMAAAE\nBMSG AAAE still\\salive\n",
            );
            w.write_all(&out)?;
            // A line past the frame limit: the client must close, not grow.
            go_rx.recv_timeout(Duration::from_secs(20))?;
            let big = vec![b'x'; 600_000];
            let _ = w.write_all(&big);
            // The client reconnects: the new connection says HSUP again.
            let (stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut r = BufReader::new(stream);
            read_until(&mut r, "HSUP ")
        };
        let _ = done_tx.send(run());
    });
    let mallory = Client::passive("mallory");
    mallory.run(
        r#"chats, pms = {}, {}
           dc.on("chat", function(e) chats[#chats + 1] = e end)
           dc.on("pm", function(e) pms[#pms + 1] = e end)"#,
    )?;
    mallory.connect(&url, "{reconnect_delay = 0.2}")?;
    let got = mallory.run(
        r#"local e = eventually("still alive", function()
             for _, c in ipairs(chats) do if c.text == "still alive" then return c end end end)
           local flood = 0
           for _, c in ipairs(chats) do if c.text:find("^flood") then flood = flood + 1 end end
           local p = eventually("the pm", function() return pms[1] end)
           return e.nick, flood, hub.name, hub.topic, hub:user("bob").share, hub:user("huge"),
                  p.from, p.text"#,
    )?;
    assert_eq!(got, ["bob", "5000", "Fake hub", "hostile", "77", "nil", "bob", "still alive"]);
    assert_eq!(mallory.value("return hub.user_count")?, "2");
    go_tx.send(())?;
    let again = done_rx.recv_timeout(Duration::from_secs(20)).context("the fake hub's end")??;
    ensure!(again.starts_with("HSUP ADBAS0 ADBASE ADTIGR"), "{again}");
    let _ = hub.join();
    for needles in [
        &["unknown escape"][..],
        &["ignored an INF", "8192"],
        &["SID collision", "AAAE"],
        &["counted, not logged"],
        &["frame longer than", "reconnecting"],
    ] {
        wait_log(needles)?;
    }
    Ok(())
}

// ----- redirects across protocols ----------------------------------------------------

/// Issue 9: the hub driver owns redirects, in either direction between the
/// protocols. An NMDC hub's `$ForceMove` to uhub lands the same hub object
/// on the ADC hub (chat works there); an ADC hub's `IQUI ... RD` to the
/// Verlihub core lands it back on NMDC. The hub keeps its id throughout.
#[test]
fn redirects_cross_between_nmdc_and_adc() -> Result<()> {
    let uhub = Uhub::start(UhubOptions::default())?;
    let nmdc = NmdcHub::start(NmdcHubOptions::default())?;
    let fake = support::fake_hub::FakeHub::start()?;
    let roy = Client::passive("roy");
    roy.run(&format!(
        r#"expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("roy")?;
    roy.run(r#"expect_done("connected") expect("redirect", "hub_redirect") expect("connected", "hub_connected")"#)?;
    conn.send(format!("$ForceMove {}|", uhub.url()).as_bytes())?;
    ensure!(conn.closed()?, "the client stayed on the NMDC hub that redirected it");
    let got = roy.run(
        r#"local r = expect_done("redirect")
           local c = expect_done("connected")
           expect("chat", "chat", {text = "now on adc"})
           hub:say("now on adc")
           local e = expect_done("chat")
           return r.url == hub.url, c.hub == hub, hub.protocol, hub.state, e.nick"#,
    )?;
    assert_eq!(got, ["true", "true", "adc", "online", "roy"]);

    // Back: a fake ADC hub sends us (IQUI of our SID with RD) to the NMDC hub.
    let port = support::ports::free_port()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.get()))?;
    let target = nmdc.url();
    let fake_adc = std::thread::spawn(move || -> Result<()> {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = stream.try_clone()?;
        let mut r = BufReader::new(stream);
        read_until(&mut r, "HSUP ")?;
        w.write_all(b"ISUP ADBASE ADTIGR\nISID AAAB\nIINF CT32 NIFake\n")?;
        let inf = read_until(&mut r, "BINF AAAB ")?;
        w.write_all(format!("{inf}\n").as_bytes())?;
        read_until(&mut r, "BMSG AAAB ready")?;
        w.write_all(
            format!("IQUI AAAB RD{} MSmoving\\son\n", target.replace(' ', "\\s")).as_bytes(),
        )?;
        Ok(())
    });
    let sam = Client::passive("sam");
    sam.connect(&format!("adc://127.0.0.1:{}", port.get()), "{reconnect_delay = 0.2}")?;
    let got = sam.run(
        r#"expect("redirect", "hub_redirect")
           expect("connected", "hub_connected")
           hub:say("ready")
           local r = expect_done("redirect")
           local c = expect_done("connected")
           return r.url, r.reason, c.hub == hub, hub.protocol, hub.state, hub.url"#,
    )?;
    fake_adc.join().map_err(|_| anyhow::anyhow!("the fake ADC hub panicked"))??;
    assert_eq!(
        got,
        [nmdc.url().as_str(), "moving on", "true", "nmdc", "online", nmdc.url().as_str()]
    );
    Ok(())
}
