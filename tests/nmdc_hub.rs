//! dclua's NMDC hub session, driven from Lua, against real software: the
//! verlihub-py NMDC hub with two dclua clients, eiskaltdcpp on the same hub,
//! and an in-process fake hub for hostile input a real hub never sends.
//!
//! Each dclua client is a worker thread with its own Lua host and hub
//! registry, driven through console chunks (coroutine jobs, so they may
//! wait). Everything talks to 127.0.0.1 only; every wait is bounded.
//! `tests/setup-peers.sh` must have run.

mod support;

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dclua::hub::{ConnectMode, Identity};
use dclua::lua::ChunkOutcome;
use support::client::{services, wait_log, Client};
use support::fake_hub::{junk, rss, FakeConn, FakeHub, FAKE_LOCK};
use support::{Eiskalt, EiskaltOptions, NmdcHub, NmdcHubOptions, SearchType};

// ----- against the real NMDC hub ------------------------------------------------

#[test]
fn two_clients_see_each_other_chat_pm_and_search() -> Result<()> {
    let hub =
        NmdcHub::start(NmdcHubOptions { topic: "all about tests".into(), ..Default::default() })?;
    let url = hub.url();
    let alice = Client::passive("alice");
    let bob = Client::passive("bob");

    alice.connect(&url, "{}")?;
    alice.run(
        r#"joined = {}
           dc.on("user_joined", function(e) joined[#joined + 1] = e.nick .. ":" .. e.user.client end)"#,
    )?;
    bob.connect(&url, r#"{nick = "bob"}"#)?;

    // Each sees the other with the $MyINFO it announced, parsed.
    let seen = alice.run(
        r#"local u = eventually("bob's $MyINFO", function()
             local u = hub:user("bob"); return u and u.client ~= "" and u end)
           return u.nick, u.description, u.email, u.client, u.version, u.mode, u.slots,
                  u.hubs.normal, u.share, u.op, u.raw:sub(1, 17)"#,
    )?;
    assert_eq!(
        seen,
        [
            "bob",
            "bob the tester",
            "bob@example.org",
            "dclua",
            env!("CARGO_PKG_VERSION"),
            "passive",
            "4",
            "1",
            "0",
            "false",
            "$MyINFO $ALL bob "
        ]
    );
    let seen = bob.run(
        r#"local u = eventually("alice's $MyINFO", function()
             local u = hub:user("alice"); return u and u.client ~= "" and u end)
           return u.description, u.client, hub.user_count >= 4, hub:user("OpChat").op"#,
    )?;
    assert_eq!(seen, ["alice the tester", "dclua", "true", "true"]);
    assert_eq!(
        alice.value("return eventually('the join', function() return joined[1] end)")?,
        "bob:dclua"
    );
    // The hub's name and topic.
    assert_eq!(
        bob.run("return hub.name, hub.topic, hub.protocol, hub.nick, hub.url")?,
        ["dclua-test-nmdc - all about tests", "all about tests", "nmdc", "bob", &url]
    );

    // Main chat both ways, shown in the console, with the HTML escaping undone.
    bob.run(r#"expect("chat", "chat", {nick = "alice"})"#)?;
    alice.run(r#"assert(hub:say("hi bob | $5 & more"))"#)?;
    assert_eq!(
        bob.run(r#"local e = expect_done("chat") return e.text, e.me, e.raw, e.hub == hub"#)?,
        ["hi bob | $5 & more", "false", "<alice> hi bob &#124; &#36;5 & more", "true"]
    );
    bob.output_line("<alice> hi bob | $5 & more")?;
    alice.run(r#"expect("chat", "chat", {nick = "bob"})"#)?;
    bob.run(r#"assert(hub:say("waves", {me = true}))"#)?;
    assert_eq!(
        alice.run(r#"local e = expect_done("chat") return e.text, e.me"#)?,
        ["waves", "true"]
    );
    alice.output_line("* bob waves")?;

    // PMs both ways; a consuming handler hides one from the console.
    bob.run(r#"expect("pm", "pm", {from = "alice"})"#)?;
    alice.run(r#"assert(hub:pm("bob", "psst, bob"))"#)?;
    // Issue 13, finding 7: a PM to nobody says so instead of returning true.
    assert_eq!(
        alice.run(r#"return hub:pm("nobody_here", "hello?")"#)?,
        ["false", "no such user on this hub: nobody_here"]
    );
    assert_eq!(
        bob.run(r#"local e = expect_done("pm") return e.from, e.to, e.text"#)?,
        ["alice", "bob", "psst, bob"]
    );
    bob.output_line("PM <alice> psst, bob")?;
    alice.run(
        r#"hidden = dc.on("pm", function(e) last_pm = e.text return true end)
           expect("pm", "pm", {from = "bob"})"#,
    )?;
    bob.run(r#"assert(hub:pm("alice", "secret reply"))"#)?;
    assert_eq!(alice.value(r#"return expect_done("pm").text"#)?, "secret reply");
    assert_eq!(alice.value("return last_pm")?, "secret reply");
    alice.run(r#"hidden:remove() assert(hub:say("after the pm"))"#)?;
    let shown = alice.output_line("after the pm")?;
    assert!(!shown.contains("secret reply"));

    // A search from alice (passive) reaches bob's handler; bob answers
    // through the hub and the result comes back to dc.search and as an event.
    bob.run(
        r#"dc.on("search", function(e)
             searches = (searches or 0) + 1
             last_search = e
             local tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ"
             hub:send_raw(("$SR bob music\\Some Song.mp3\5%d 2/4\5TTH:%s (127.0.0.1)\5%s"):format(
               4321, tth, e.nick))
           end)"#,
    )?;
    alice.run(r#"results_seen = {} dc.on("search_result", function(e) results_seen[#results_seen + 1] = e end)"#)?;
    let got = alice.run(
        r#"local results, note = dc.search{text = "song", timeout = 5, max_results = 1}
           assert(note == nil, note)
           local r = results[1]
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
            "4",
            "false",
            "hub",
            "true"
        ]
    );
    assert_eq!(
        bob.run(
            "return last_search.nick, last_search.text, last_search.passive, last_search.type"
        )?,
        ["alice", "song", "true", "any"]
    );
    assert_eq!(
        alice.value(
            r#"return eventually("the event", function() return results_seen[1] end).name"#
        )?,
        "Some Song.mp3"
    );
    // A result that does not match is not returned (but is still an event).
    let got = alice.run(
        r#"local results = dc.search{text = "nothing matches this", timeout = 1}
           return #results"#,
    )?;
    assert_eq!(got, ["0"]);
    // Bob leaves: alice sees it.
    alice.run(r#"expect("left", "user_left", {nick = "bob"})"#)?;
    bob.run("hub:disconnect()")?;
    alice.run(r#"expect_done("left") assert(hub:user("bob") == nil)"#)?;
    assert_eq!(bob.value(r#"return eventually("the end", function() return hub.state == "disconnected" and hub.state end)"#)?, "disconnected");
    Ok(())
}

#[test]
fn a_greeter_answers_a_user_who_joins() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let greeter = Client::passive("greeter");
    greeter.run(
        r#"welcomes = {}
           dc.on("chat", function(e)
             if e.text:find("Welcome") then welcomes[#welcomes + 1] = e.text end
           end)"#,
    )?;
    // Like scripts/greeter.lua: each handler call is its own coroutine. It is
    // loaded before the greeter joins: the users of the initial list (the
    // hub's bots) must not be greeted.
    let script = r#"
        local greeted = {}
        dc.on("user_joined", function(e)
          if greeted[e.nick] then return end
          greeted[e.nick] = true
          dc.sleep(0.1)
          e.hub:say(("Welcome, %s!"):format(e.nick))
        end)"#;
    greeter
        .on_worker(move || {
            services().host().load_source("greeter", None, script.as_bytes(), false, &[])
        })
        .map_err(anyhow::Error::msg)?;
    greeter.connect(&url, "{}")?;
    let carol = Client::passive("carol");
    carol.run(r#"expect("welcome", "chat", {nick = "greeter"})"#)?;
    carol.connect(&url, "{}")?;
    assert_eq!(carol.value(r#"return expect_done("welcome").text"#)?, "Welcome, carol!");
    let welcomes = greeter.run(
        r#"eventually("the echo", function() return #welcomes > 0 end)
           dc.sleep(0.3)
           return table.unpack(welcomes)"#,
    )?;
    assert_eq!(welcomes, ["Welcome, carol!"]);
    Ok(())
}

#[test]
fn registered_nick_logs_in_and_a_wrong_password_fails() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions {
        users: vec![("member".into(), "s3cret".into()), ("spare".into(), "pw2".into())],
        ..Default::default()
    })?;
    let url = hub.url();
    let member = Client::passive("member");
    member.connect(&url, r#"{password = "s3cret"}"#)?;
    // Registered: the tag says so (H:0/1/0), in our own entry and as others
    // see it.
    assert_eq!(member.value(r#"return hub:user("member").hubs.registered"#)?, "1");
    let other = Client::passive("other");
    other.connect(&url, "{}")?;
    assert_eq!(
        other.value(
            r#"return eventually("member's tag", function()
                 local u = hub:user("member") return u and u.hubs and u.hubs.registered end)"#
        )?,
        "1"
    );

    let intruder = Client::passive("intruder");
    let got = intruder.run(&format!(
        r#"expect("failed", "login_failed")
           expect("gone", "hub_disconnected")
           hub = dc.connect("{url}", {{nick = "spare", password = "wrong", reconnect_delay = 0.2}})
           local f = expect_done("failed")
           local d = expect_done("gone")
           return f.reason, f.raw, d.reconnect_in, f.hub == hub"#
    ))?;
    assert_eq!(got, ["wrong password", "$BadPass", "nil", "true"]);
    // No reconnect after a wrong password: the session ended.
    assert_eq!(
        intruder.value("dc.sleep(0.5) return hub.state .. ' ' .. #dc.hubs()")?,
        "disconnected 0"
    );

    // No password set for a registered nick: the same, with a reason saying so.
    let got = intruder.run(&format!(
        r#"expect("failed", "login_failed")
           dc.connect("{url}", {{nick = "spare"}})
           return expect_done("failed").reason"#
    ))?;
    assert_eq!(got, ["the hub asks for a password and none is set"]);
    Ok(())
}

#[test]
fn the_client_reconnects_by_itself_after_the_hub_restarts() -> Result<()> {
    let mut hub = NmdcHub::start(NmdcHubOptions::default())?;
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
    // The session works after the reconnect.
    let erin = Client::passive("erin");
    erin.connect(&url, "{}")?;
    erin.run(r#"expect("hi", "chat", {nick = "dave"})"#)?;
    dave.run(r#"assert(hub:say("back again"))"#)?;
    assert_eq!(erin.value(r#"return expect_done("hi").text"#)?, "back again");
    Ok(())
}

// ----- with eiskaltdcpp on the same hub ------------------------------------------

#[test]
fn eiskaltdcpp_and_dclua_chat_pm_search_and_see_each_other() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
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
    // dclua in active mode: searches go out with our UDP port.
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

    // dclua in eiskaltdcpp's user list, with the share and the tag it announced.
    let seen = eisk.wait_user(&url, "frank")?;
    ensure!(seen.share == 123_456_789, "share as eiskaltdcpp sees it: {}", seen.share);
    let tag = format!("<dclua V:{},M:A,H:1/0/0,S:5>", env!("CARGO_PKG_VERSION"));
    ensure!(seen.tag == tag, "tag as eiskaltdcpp sees it: {:?}, want {tag:?}", seen.tag);
    ensure!(seen.description == "dclua under test", "description {:?}", seen.description);
    // And eiskaltdcpp in dclua's, parsed.
    let got = frank.run(
        r#"local u = eventually("eisk", function()
             local u = hub:user("eisk") return u and u.client ~= "" and u end)
           return u.client, u.mode, u.slots, u.share > 0"#,
    )?;
    assert_eq!(got, ["EiskaltDC++", "active", "10", "true"]);

    // Chat both ways.
    frank.run(r#"assert(hub:say("hello eiskalt"))"#)?;
    eisk.wait_chat(&url, Some("frank"), "hello eiskalt")?;
    frank.run(r#"expect("chat", "chat", {nick = "eisk"})"#)?;
    eisk.say(&url, "hello dclua")?;
    assert_eq!(frank.value(r#"return expect_done("chat").text"#)?, "hello dclua");

    // PMs both ways.
    frank.run(r#"assert(hub:pm("eisk", "private hello"))"#)?;
    ensure!(eisk.wait_pm(&url, "frank", "private hello")? == "private hello");
    frank.run(r#"expect("pm", "pm", {from = "eisk"})"#)?;
    eisk.pm(&url, "frank", "private answer")?;
    assert_eq!(frank.value(r#"return expect_done("pm").text"#)?, "private answer");

    // A search sent by eiskaltdcpp reaches dclua's search event.
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
           return e.passive, e.nick, e.address ~= nil, e.type, e.raw:sub(1, 8)"#,
    )?;
    assert_eq!(got, ["false", "nil", "true", "any", "$Search "]);

    // dclua searches actively: eiskaltdcpp answers by UDP to the shared
    // listener, which routes the result to this hub.
    let got = frank.run(
        r#"local results = dc.search{text = "payload alpha", timeout = 5, max_results = 1}
           local r = assert(results[1], "no result")
           return r.nick, r.name, r.size, r.via, #r.tth, r.hub == hub"#,
    )?;
    assert_eq!(got, ["eisk", "payload-alpha.bin", "100000", "udp", "39", "true"]);
    Ok(())
}

// ----- an in-process fake hub, for what real hubs never send ------------------------

#[test]
fn hostile_input_from_a_fake_hub_does_no_harm() -> Result<()> {
    let fake = FakeHub::start()?;
    let gina = Client::passive("gina");
    gina.run(&format!(
        r#"chats = {{}}
           dc.on("chat", function(e) chats[#chats + 1] = e.text end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{charset = "utf-8", reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("gina")?;
    gina.run(r#"expect_done("connected")"#)?;

    // Bytes that are not UTF-8 (the hub's charset here) and $MyINFO lines
    // with fields missing.
    conn.send(b"<bad\xff\xfe> caf\xe9 \x81|")?;
    conn.send(
        b"$MyINFO $ALL nofields|$MyINFO $ALL onlydesc hello|$MyINFO $ALL notag desc$ $|\
          $MyINFO $ALL brokentag d<++ V:1,M:A,H:x/y,S:q>$ $$$notanumber$|$MyINFO $ALL |\
          $MyINFO nothing|$MyINFO $ALL flagless d$ $$$5$|",
    )?;
    // Garbage: bare and truncated commands, control bytes, random bytes.
    conn.send(b"$|$$$$|$Garbage \x00\x01\x02|$SR broken|$Search|$Search x|$ConnectToMe|$To:|")?;
    conn.send(b"$To: gina From: |$Hello|$Quit|$OpList|$UserIP|$UserIP $$|$BotList $$$$|<|<>|>|")?;
    conn.send(b"$Lock|$Key|$Supports|$HubName|$ZOn|")?;
    conn.send(b"<hub> after the zon that was no zlib|")?;
    let mut fresh = broken_zon_then_junk(&fake, &gina, &mut conn)?;

    // A 10 MB line without '|': the client closes with a clear log line and
    // comes back by itself.
    fresh.send(b"<hub> before the flood|")?;
    gina.run(
        r#"eventually("the chat", function() return chats[#chats] == "before the flood" end)"#,
    )?;
    gina.run(r#"expect("drop", "hub_disconnected") expect("connected", "hub_connected")"#)?;
    let _ = fresh.send(&vec![b'x'; 10 << 20]);
    ensure!(fresh.closed()?, "the client did not close the flooding connection");
    wait_log(&["hub", "longer than 4194304 bytes without '|'", "connection closed"])?;
    let reason = gina.value(r#"return expect_done("drop").reason"#)?;
    ensure!(reason.contains("longer than"), "drop reason {reason:?}");
    let mut third = fake.accept()?;
    third.login("gina")?;
    gina.run(r#"expect_done("connected")"#)?;
    third.send(b"<hub> still here|")?;
    gina.run(r#"eventually("the chat", function() return chats[#chats] == "still here" end)"#)?;
    Ok(())
}

/// The hostile test's middle part: the first connection ended with a `$ZOn`
/// that is not zlib (closed with a clear log line); the client logs in again
/// and the same junk, without it, leaves the session up. Returns the live
/// connection.
fn broken_zon_then_junk(fake: &FakeHub, gina: &Client, conn: &mut FakeConn) -> Result<FakeConn> {
    // The '$ZOn' followed by plain text is a broken zlib stream: the client
    // closes this connection, logs why, and reconnects.
    ensure!(conn.closed()?, "the client kept a connection whose $ZOn block is not zlib");
    wait_log(&["hub", "$ZOn block is not a valid zlib stream"])?;
    let bad = gina.value("return chats[1]")?;
    assert_eq!(bad, "caf\u{fffd} \u{fffd}", "invalid UTF-8 became U+FFFD");
    let mut fresh = fake.accept()?;
    gina.run(r#"expect("connected", "hub_connected")"#)?;
    fresh.login("gina")?;
    gina.run(r#"expect_done("connected")"#)?;
    // The same junk without the broken $ZOn: everything stays up, and the
    // users whose $MyINFO had fields missing are listed.
    fresh.send(
        b"$MyINFO $ALL nofields|$MyINFO $ALL onlydesc hello|$MyINFO $ALL notag desc$ $|\
          $MyINFO $ALL brokentag d<++ V:1,M:A,H:x/y,S:q>$ $$$notanumber$|$MyINFO $ALL |\
          $MyINFO nothing|$MyINFO $ALL flagless d$ $$$5$|",
    )?;
    fresh.send(b"$|$$$$|$Garbage \x00\x01\x02|$SR broken|$Search|$Search x|$ConnectToMe|$To:|")?;
    fresh
        .send(b"$To: gina From: |$Hello|$Quit|$OpList|$UserIP|$UserIP $$|$BotList $$$$|<|<>|>|")?;
    fresh.send(b"$Lock|$Key|$Supports|$HubName|$HubTopic|")?;
    let mut noise = junk(200_000, 0x9e37_79b9_7f4a_7c15);
    for (i, b) in noise.iter_mut().enumerate() {
        if i % 97 == 0 {
            *b = b'|';
        }
    }
    noise.push(b'|');
    fresh.send(&noise)?;
    fresh.send(b"<hub> survived the junk|")?;
    gina.run(
        r#"eventually("the chat", function() return chats[#chats] == "survived the junk" end)"#,
    )?;
    let got = gina.run(
        r#"local n = function(x) local u = hub:user(x) return u and (u.description .. "/" .. u.share) or "-" end
           return n("nofields"), n("onlydesc"), n("notag"), n("brokentag"), n("flagless"),
                  hub:user("brokentag").client, hub.state"#,
    )?;
    assert_eq!(got, ["/0", "hello/0", "desc/0", "d/0", "d/5", "++", "online"]);
    Ok(fresh)
}

#[test]
fn a_burst_of_100000_users_is_listed_and_reported() -> Result<()> {
    const USERS: usize = 100_000;
    let fake = FakeHub::start()?;
    let hank = Client::passive("hank");
    hank.run(&format!(
        r#"joins = 0
           dc.on("user_joined", function(e) joins = joins + 1 end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("hank")?;
    hank.run(r#"expect_done("connected")"#)?;
    let before = rss();
    let mut burst = Vec::with_capacity(USERS * 80);
    for i in 0..USERS {
        burst.extend_from_slice(
            format!("$MyINFO $ALL user{i:06} description {i}<++ V:0.868,M:A,H:1/0/0,S:3>$ $100\x01$u{i}@example.org${}$|", i * 1000)
                .as_bytes(),
        );
    }
    burst.extend_from_slice(b"<hub> burst done|");
    conn.send(&burst)?;
    let got = hank.run(
        r#"expect("done", "chat", {text = "burst done"}, 30) expect_done("done")
           eventually("every join", function() return joins == 100000 end, 30)
           local u = hub:user("user054321")
           return hub.user_count, joins, u.description, u.share, u.email, u.slots"#,
    )?;
    let grown = rss().saturating_sub(before);
    assert_eq!(
        got,
        ["100001", "100000", "description 54321", "54321000", "u54321@example.org", "3"]
    );
    // The wire held about 10 MB; the list and the events in flight must stay
    // far below what an unbounded queue would take.
    ensure!(grown < 400 << 20, "resident memory grew by {} MiB", grown >> 20);
    Ok(())
}

/// A million users that take longer than 3 s to arrive (the old cut) are
/// one initial list: one `hub_connected` with every user, no `user_joined`
/// for any of them; a user who comes after the list is a join.
#[test]
fn a_million_users_arriving_slowly_are_one_initial_list() -> Result<()> {
    const USERS: usize = 1_000_000;
    const CHUNKS: usize = 200;
    let fake = FakeHub::start()?;
    let ivy = Client::passive("ivy");
    ivy.run(&format!(
        r#"joins, connected = 0, {{}}
           dc.on("user_joined", function(e) joins = joins + 1 end)
           dc.on("hub_connected", function(e) connected[#connected + 1] = e.users end)
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("ivy")?;
    let start = Instant::now();
    let per = USERS / CHUNKS;
    for c in 0..CHUNKS {
        let mut chunk = Vec::with_capacity(per * 90);
        for i in c * per..(c + 1) * per {
            chunk.extend_from_slice(
                format!("$MyINFO $ALL m{i:07} d<++ V:0.868,M:A,H:1/0/0,S:3>$ $100\x01$${}$|", i)
                    .as_bytes(),
            );
        }
        conn.send(&chunk)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    ensure!(took > Duration::from_secs(3), "the list took only {took:?} to send");
    let got = ivy.run_for(
        r#"eventually("hub_connected", function() return #connected > 0 end, 110)
           return #connected, connected[1], joins, hub.user_count"#,
        Duration::from_secs(120),
    )?;
    ensure!(
        got == ["1", &(USERS + 1).to_string(), "0", &(USERS + 1).to_string()],
        "hub_connected events, users, joins, users listed: {got:?} (the list took {took:?})"
    );
    conn.send(b"$MyINFO $ALL latecomer d<++ V:0.868,M:A,H:1/0/0,S:3>$ $100\x01$$0$|")?;
    let joins = ivy.value(
        r#"eventually("the join", function() return joins == 1 end, 10) return #connected"#,
    )?;
    ensure!(joins == "1", "hub_connected fired again: {joins}");
    Ok(())
}

/// Without a `charset`, an NMDC hub is read and written as UTF-8 (what
/// most hubs speak today); text that is not valid UTF-8 is shown with
/// replacement characters and flagged once in the log.
#[test]
fn nmdc_text_is_utf8_by_default_and_bad_text_is_flagged_once() -> Result<()> {
    let fake = FakeHub::start()?;
    let una = Client::passive("una");
    una.run(&format!(
        r#"chats = {{}}
           dc.on("chat", function(e) chats[#chats + 1] = e.text end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("una")?;
    una.run(r#"expect_done("connected")"#)?;
    conn.send("<bob> Grüße привет|".as_bytes())?;
    let got =
        una.value(r#"eventually("the chat", function() return #chats == 1 end) return chats[1]"#)?;
    ensure!(got == "Grüße привет", "read as {got:?}");
    una.run(r#"hub:say("Grüße zurück")"#)?;
    conn.wait_for("<una> Grüße zurück|".as_bytes())?;
    // cp1251 "привет" twice: shown replaced, said once.
    conn.send(b"<bob> \xef\xf0\xe8\xe2\xe5\xf2|<bob> \xef\xf0\xe8\xe2\xe5\xf2 again|<bob> done|")?;
    una.run(r#"eventually("the chats", function() return chats[#chats] == "done" end)"#)?;
    let line = wait_log(&["hub", "text that is not valid UTF-8"])?;
    ensure!(line.contains("set the hub's charset"), "{line}");
    let lines = support::client::log_lines();
    let flagged = lines
        .lock()
        .map_err(|_| anyhow::anyhow!("log lock"))?
        .iter()
        .filter(|l| l.contains("text that is not valid UTF-8") && l.contains(&fake.url()))
        .count();
    ensure!(flagged == 1, "flagged {flagged} times");
    Ok(())
}

/// Two `dc.search` calls with the same words at once each get each result
/// once (NMDC results carry no token: the second is not sent again, the
/// two share the answers), as a single one does.
#[test]
fn concurrent_identical_searches_get_each_result_once() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let files = support::component_dir("twin-search")?;
    std::fs::write(files.path().join("report-one.txt"), b"first report")?;
    std::fs::write(files.path().join("report-two.txt"), b"second report")?;
    let sharer = Client::sharing(
        Identity {
            nick: "sharer".into(),
            slots: 2,
            mode: ConnectMode::Active,
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Identity::default()
        },
        files.path(),
    );
    sharer.wait_shared(2)?;
    sharer.connect(&url, "{}")?;
    let me = Client::passive("twins");
    me.connect(&url, "{}")?;
    let got = me.run(
        r#"eventually("the sharer", function() return hub:user("sharer") ~= nil end)
           local a, b
           dc.spawn(function() a = dc.search({text = "report", timeout = 3}) end)
           dc.spawn(function() b = dc.search({text = "report", timeout = 3}) end)
           eventually("both searches", function() return a ~= nil and b ~= nil end, 10)
           local c = dc.search({text = "report", timeout = 3})
           return #a, #b, #c"#,
    )?;
    ensure!(got == ["2", "2", "2"], "results per search: {got:?}");
    Ok(())
}

/// `dc.connect` takes the description and e-mail to announce on that hub.
#[test]
fn a_hub_gets_its_own_description_and_email() -> Result<()> {
    let fake = FakeHub::start()?;
    let vic = Client::passive("vic");
    vic.run(&format!(
        r#"hub = dc.connect("{}", {{description = "here for the tests", email = "vic@hub.example"}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("vic")?;
    let text = conn.text();
    ensure!(
        text.contains("$MyINFO $ALL vic here for the tests<") && text.contains("$vic@hub.example$"),
        "announced: {text:?}"
    );
    let e = vic.run(r#"return pcall(dc.connect, "dchub://127.0.0.1:1", {descripton = "x"})"#)?;
    ensure!(e[1].contains("did you mean \"description\""), "{e:?}");
    Ok(())
}

#[test]
fn zon_blocks_are_inflated_and_plain_text_resumes() -> Result<()> {
    use flate2::write::ZlibEncoder;
    let fake = FakeHub::start()?;
    let ivy = Client::passive("ivy");
    ivy.run(&format!(
        r#"chats = {{}}
           dc.on("chat", function(e) chats[#chats + 1] = e.text end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("ivy")?;
    let mut block = Vec::new();
    for i in 0..500 {
        block.extend_from_slice(format!("$MyINFO $ALL z{i} zipped$ $1\x01$$7$|").as_bytes());
    }
    block.extend_from_slice(b"$HubTopic from the zlib block|<hub> inside|");
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&block)?;
    let mut stream = b"$ZOn|".to_vec();
    stream.extend(z.finish()?);
    stream.extend_from_slice(b"<hub> plain again|");
    conn.send(&stream)?;
    ivy.run(r#"expect_done("connected")"#)?;
    let got = ivy.run(
        r#"eventually("the plain chat", function() return chats[#chats] == "plain again" end)
           return hub.user_count, hub.topic, chats[1], hub:user("z499").share"#,
    )?;
    assert_eq!(got, ["501", "from the zlib block", "inside", "7"]);
    Ok(())
}

/// Issue 15, finding 6: two hubs sending us to each other used to be
/// followed forever. The second redirect back to a hub this chain left ends
/// the session, naming the loop, and nothing connects to the first hub again.
#[test]
fn a_redirect_loop_ends_the_session() -> Result<()> {
    let first = FakeHub::start()?;
    let second = FakeHub::start()?;
    let lou = Client::passive("lou");
    lou.run(&format!(
        r#"expect("connected", "hub_connected")
           expect("ended", "hub_disconnected", function(e) return e.reconnect_in == nil end)
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        first.url()
    ))?;
    let mut conn = first.accept()?;
    conn.login("lou")?;
    lou.run(r#"expect_done("connected") expect("connected", "hub_connected")"#)?;
    conn.send(format!("$ForceMove 127.0.0.1:{}|", second.port.get()).as_bytes())?;
    ensure!(conn.closed()?, "the client stayed on the hub that redirected it");
    let mut moved = second.accept()?;
    moved.login("lou")?;
    lou.run(r#"expect_done("connected")"#)?;
    moved.send(format!("$ForceMove {}|", first.url()).as_bytes())?;
    ensure!(moved.closed()?, "the client stayed on the second hub");
    let got = lou.run(r#"local e = expect_done("ended") return e.reason"#)?;
    ensure!(got[0].contains("redirect loop ("), "the end names the loop: {got:?}");
    ensure!(first.quiet_for(Duration::from_millis(500))?, "the loop was followed back");
    Ok(())
}

/// Issue 15, finding 6: a hub that sends `$ForceMove` to itself right after
/// its `$Lock` once caused 24,180 reconnects in 10 s. The redirect to the
/// address we are on is refused and the session comes back with its usual
/// backoff (doubling from `reconnect_delay`): a handful of connections in
/// 4 s, not thousands.
#[test]
fn a_hub_redirecting_to_itself_gets_no_reconnect_storm() -> Result<()> {
    let fake = FakeHub::start()?;
    let rob = Client::passive("rob");
    rob.run(&format!(
        r#"reasons = {{}}
           dc.on("hub_disconnected", function(e) reasons[#reasons + 1] = e.reason end)
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        fake.url()
    ))?;
    let mut lock = b"$Lock ".to_vec();
    lock.extend_from_slice(FAKE_LOCK);
    lock.extend_from_slice(format!(" Pk=fakehub|$ForceMove {}|", fake.url()).as_bytes());
    let start = Instant::now();
    let mut streams = Vec::new();
    while start.elapsed() < Duration::from_secs(4) {
        match fake.listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.write_all(&lock);
                streams.push(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("accepting"),
        }
    }
    let connections = streams.len();
    ensure!((1..=6).contains(&connections), "{connections} connections in 4 s");
    let reason = rob.value(r#"return reasons[1] or "none""#)?;
    ensure!(reason.contains("redirect"), "the first drop: {reason}");
    Ok(())
}

#[test]
fn redirects_are_followed_unless_vetoed() -> Result<()> {
    let first = FakeHub::start()?;
    let second = FakeHub::start()?;
    let jack = Client::passive("jack");
    jack.run(&format!(
        r#"expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        first.url()
    ))?;
    let mut conn = first.accept()?;
    conn.login("jack")?;
    jack.run(r#"expect_done("connected") expect("redirect", "hub_redirect") expect("connected", "hub_connected")"#)?;
    let target = format!("127.0.0.1:{}", second.port.get());
    conn.send(format!("$ForceMove {target}|").as_bytes())?;
    ensure!(conn.closed()?, "the client stayed on the hub that redirected it");
    let mut moved = second.accept()?;
    moved.login("jack")?;
    let got = jack.run(
        r#"local r = expect_done("redirect")
           local c = expect_done("connected")
           return r.url, r.follow, c.hub == hub, hub.url"#,
    )?;
    assert_eq!(got, [target.as_str(), "true", "true", target.as_str()]);

    // A handler that consumes hub_redirect vetoes it: the client goes back to
    // the hub it was on.
    let kim = Client::passive("kim");
    kim.run(&format!(
        r#"dc.on("hub_redirect", function(e) vetoed = e.url return true end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#,
        first.url()
    ))?;
    let mut conn = first.accept()?;
    conn.login("kim")?;
    kim.run(r#"expect_done("connected") expect("connected", "hub_connected")"#)?;
    conn.send(format!("$ForceMove {target}|").as_bytes())?;
    ensure!(conn.closed()?, "the client stayed on the hub that redirected it");
    let mut back = first.accept()?;
    ensure!(second.quiet_for(Duration::from_millis(300))?, "the vetoed redirect was followed");
    back.login("kim")?;
    assert_eq!(
        kim.run(r#"expect_done("connected") return vetoed, hub.url"#)?,
        [target.as_str(), first.url().as_str()]
    );
    Ok(())
}

#[test]
fn hub_raw_handlers_see_every_line_in_order_and_may_consume_it() -> Result<()> {
    let fake = FakeHub::start()?;
    let lou = Client::passive("lou");
    lou.run(&format!(
        r#"raws, chats = {{}}, {{}}
           dc.on("hub_raw", function(e)
             raws[#raws + 1] = e.raw
             if e.raw:find("^%$HubTopic") then return true end
           end)
           dc.on("chat", function(e) chats[#chats + 1] = e.text end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("lou")?;
    lou.run(r#"expect_done("connected")"#)?;
    let mut lines = Vec::new();
    for i in 0..300 {
        lines.extend_from_slice(format!("<hub> line {i}|").as_bytes());
        if i == 150 {
            lines.extend_from_slice(b"$HubTopic hidden topic|");
        }
    }
    conn.send(&lines)?;
    let got = lou.run(
        r#"eventually("every line", function() return #chats == 300 end)
           for i = 1, 300 do assert(chats[i] == "line " .. (i - 1), "chat out of order at " .. i) end
           local topic_at
           for i, r in ipairs(raws) do if r == "$HubTopic hidden topic" then topic_at = i end end
           return hub.topic, raws[topic_at - 1], raws[topic_at + 1], raws[1]:sub(1, 6)"#,
    )?;
    assert_eq!(got, ["", "<hub> line 150", "<hub> line 151", "$Lock "]);
    Ok(())
}

#[test]
fn unloading_a_script_disconnects_its_hubs() -> Result<()> {
    let fake = FakeHub::start()?;
    let max = Client::passive("max");
    let src = format!(r#"hub = dc.connect("{}", {{reconnect_delay = 0.2}})"#, fake.url());
    let id = max
        .on_worker(move || services().host().load_source("owner", None, src.as_bytes(), false, &[]))
        .map_err(anyhow::Error::msg)?;
    let mut conn = fake.accept()?;
    conn.login("max")?;
    assert_eq!(
        max.value(
            "return eventually('online', function() return dc.hubs()[1].state == 'online' end)"
        )?,
        "true"
    );
    max.on_worker(move || services().host().unload(id));
    ensure!(conn.closed()?, "the hub of the unloaded script is still connected");
    assert_eq!(
        max.value("return eventually('gone', function() return #dc.hubs() == 0 end)")?,
        "true"
    );
    ensure!(
        fake.quiet_for(Duration::from_millis(500))?,
        "the hub reconnected after its script was unloaded"
    );
    Ok(())
}

// ----- the configuration's hubs ---------------------------------------------------

#[test]
fn hubs_of_the_configuration_connect_at_start() -> Result<()> {
    let fake = FakeHub::start()?;
    let dir = support::component_dir("dclua-run")?;
    let config = dir.path().join("config.lua");
    std::fs::write(
        &config,
        format!(
            r#"nick = "cfguser"
               description = "from the config"
               slots = 7
               hubs = {{ {{ url = "{}", autoconnect = true }} }}
               log_level = "warn"
            "#,
            fake.url()
        ),
    )?;
    let script = dir.path().join("bot.lua");
    std::fs::write(
        &script,
        r#"local e = dc.wait("hub_connected", {timeout = 10})
           print("connected to " .. e.hub.url .. " as " .. e.hub.nick)
           local c = dc.wait("chat", {timeout = 10})
           print("chat: " .. c.text)
           dc.quit(0)"#,
    )?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dclua"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("run")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting dclua")?;
    let mut conn = None;
    let run = (|| -> Result<()> {
        let c = conn.insert(fake.accept()?);
        c.login("cfguser")?;
        let info = c.text();
        ensure!(info.contains("$MyINFO $ALL cfguser from the config<dclua V:"), "{info:?}");
        ensure!(info.contains(",M:P,H:1/0/0,S:7>"), "{info:?}");
        // Echo its $MyINFO (the initial list is then complete), then chat.
        let start = info.find("$MyINFO").unwrap_or(0);
        let echo = info[start..].to_string();
        c.send(echo.as_bytes())?;
        c.send(b"<hub> hello config|")?;
        Ok(())
    })();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out)?;
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err)?;
    }
    run.with_context(|| format!("stdout:\n{out}\nstderr:\n{err}"))?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "dclua: {status:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    drop(conn);
    // Chat went to the log, not to the script's standard output.
    assert_eq!(out, format!("connected to {} as cfguser\nchat: hello config\n", fake.url()));
    Ok(())
}

#[test]
fn user_flags_connection_requests_and_outgoing_commands() -> Result<()> {
    let fake = FakeHub::start()?;
    let ned = Client::passive("ned");
    ned.run(&format!(
        r#"requests, infos, left = {{}}, {{}}, {{}}
           dc.on("connection_request", function(e) requests[#requests + 1] = e end)
           dc.on("hub_info", function(e) infos[#infos + 1] = e.name .. "/" .. e.topic end)
           dc.on("user_left", function(e) left[#left + 1] = e.nick end)
           expect("connected", "hub_connected")
           hub = dc.connect("{}", {{reconnect_delay = 0}})"#,
        fake.url()
    ))?;
    let mut conn = fake.accept()?;
    conn.login("ned")?;
    conn.send(b"$MyINFO $ALL ned x$ $1\x01$$0$|$MyINFO $ALL opal x$ $1\x01$$0$|$MyINFO $ALL robo x$ $1\x01$$0$|")?;
    ned.run(r#"expect_done("connected")"#)?;
    conn.got.clear();
    conn.send(
        b"$OpList opal$$|$BotList robo$$|$UserIP opal 127.0.0.1$$ned 127.0.0.1$$|\
          $HubTopic new topic|$ConnectToMe ned 127.0.0.1:4000|$ConnectToMe ned 127.0.0.1:4001S|\
          $RevConnectToMe opal ned|$RevConnectToMe opal someoneelse|$Quit robo|<hub> mark|",
    )?;
    let got = ned.run(
        r#"eventually("the mark", function() return #left == 1 end)
           local o = hub:user("opal")
           local r1, r2, r3 = requests[1], requests[2], requests[3]
           return o.op, o.ip, o.bot, left[1], infos[#infos], #requests,
                  r1.address, r1.tls, r1.reverse, r2.address, r2.tls, r3.nick, r3.reverse"#,
    )?;
    assert_eq!(
        got,
        [
            "true",
            "127.0.0.1",
            "false",
            "robo",
            "fake hub/new topic",
            "3",
            "127.0.0.1:4000",
            "false",
            "false",
            "127.0.0.1:4001",
            "true",
            "opal",
            "true"
        ]
    );

    // Searches as they go on the wire, passive: words with '$' for spaces,
    // one size bound, the type code; a TTH search.
    ned.run(
        r#"dc.search{text = "two words", type = "video", min_size = 1000, timeout = 0}
           dc.search{tth = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ", timeout = 0}
           dc.search{text = "small", max_size = 5, timeout = 0}
           assert(hub:send_raw("$Custom line"))"#,
    )?;
    conn.wait_for(b"$Custom line|")?;
    assert_eq!(
        conn.text(),
        "$Search Hub:ned T?F?1000?7?two$words|\
         $Search Hub:ned F?T?0?9?TTH:LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ|\
         $Search Hub:ned T?T?5?1?small|$Custom line|"
    );

    // Connection requests out, as the transfer layer will send them.
    conn.got.clear();
    ned.on_worker(|| {
        let rt = services().runtime().clone();
        let hub = services().hubs().ids()[0];
        rt.send(
            hub,
            dclua::hub::HubCommand::ConnectToMe {
                nick: "opal".into(),
                port: 4100,
                tls: true,
                token: None,
            },
        );
        rt.send(hub, dclua::hub::HubCommand::RevConnectToMe { nick: "opal".into(), token: None });
    });
    conn.wait_for(b"$RevConnectToMe ned opal|")?;
    assert_eq!(conn.text(), "$ConnectToMe opal 127.0.0.1:4100S|$RevConnectToMe ned opal|");
    Ok(())
}

#[test]
fn my_info_follows_changes_rate_limited_and_counts_every_hub() -> Result<()> {
    let first = FakeHub::start()?;
    let second = FakeHub::start()?;
    let olga = Client::passive("olga");
    olga.run(&format!(r#"a = dc.connect("{}", {{reconnect_delay = 0}})"#, first.url()))?;
    let mut a = first.accept()?;
    a.login("olga")?;
    ensure!(a.text().contains(",M:P,H:1/0/0,S:4>"), "{}", a.text());
    a.got.clear();
    olga.run(&format!(r#"b = dc.connect("{}", {{reconnect_delay = 0}})"#, second.url()))?;
    let mut b = second.accept()?;
    b.login("olga")?;
    // The second hub counts both; the first hears of the second too, once
    // its rate limit (2 s after its last $MyINFO) allows.
    ensure!(b.text().contains(",H:2/0/0,"), "{}", b.text());
    a.wait_for(b",H:2/0/0,")?;

    // Two quick changes of the description make one $MyINFO with the last.
    a.got.clear();
    b.got.clear();
    olga.on_worker(|| {
        let hubs = services().hubs().clone();
        let rt = services().runtime().clone();
        let mut id = hubs.identity();
        id.description = "first change".into();
        hubs.set_identity(&rt, id.clone());
        id.description = "second change".into();
        hubs.set_identity(&rt, id);
    });
    a.wait_for(b"second change")?;
    b.wait_for(b"second change")?;
    for conn in [&a, &b] {
        let text = conn.text();
        ensure!(!text.contains("first change"), "the first change went out too: {text:?}");
        ensure!(text.matches("$MyINFO").count() == 1, "{text:?}");
    }
    Ok(())
}

// ----- the Lua API's edges ----------------------------------------------------------

#[test]
fn the_hub_api_checks_its_arguments_and_matches_its_description() -> Result<()> {
    let fake = FakeHub::start()?;
    let pat = Client::passive("pat");
    let err = |chunk: &str| match pat.eval(chunk) {
        ChunkOutcome::Error(e) => e,
        ChunkOutcome::Values(v) => format!("no error: {v:?}"),
    };
    for (chunk, want) in [
        (r#"dc.connect("http://x")"#, "unknown scheme \"http\""),
        (r#"dc.connect("adc://127.0.0.1")"#, "ADC addresses need a port"),
        (
            r#"dc.connect("127.0.0.1:5", {pasword = "x"})"#,
            "unknown option \"pasword\" (did you mean \"password\"?)",
        ),
        (r#"dc.connect("127.0.0.1:5", {charset = "klingon"})"#, "unknown charset \"klingon\""),
        (
            r#"dc.connect("127.0.0.1:5", {nick = "two words"})"#,
            "it must be non-empty and have no space",
        ),
        (r#"dc.connect(5)"#, "expected a hub address"),
        (r#"dc.search{}"#, "give text = \"words\" or tth"),
        (r#"dc.search{tth = "nope"}"#, "is not 39 base32 characters"),
        (
            r#"dc.search{text = "x", tpye = "video"}"#,
            "unknown option \"tpye\" (did you mean \"type\"?)",
        ),
        (r#"dc.search{text = "x", type = "films"}"#, "unknown type \"films\""),
        (r#"dc.search{text = "x", min_size = -1}"#, "min_size must be a whole number"),
        (r#"dc.search{text = "x", hub = {}}"#, "hub must be a dc.Hub"),
        (r#"dc.search(7)"#, "expected a table"),
    ] {
        let e = err(chunk);
        ensure!(e.contains(want), "{chunk}: {e:?} lacks {want:?}");
    }
    // No hub online: an empty result and why.
    assert_eq!(
        pat.run(r#"local r, why = dc.search("anything") return #r, why"#)?,
        ["0", "no hub is online"]
    );

    pat.run(&format!(r#"hub = dc.connect("{}", {{reconnect_delay = 0}})"#, fake.url()))?;
    let mut conn = fake.accept()?;
    conn.login("pat")?;
    pat.run(r#"eventually("online", function() return hub.state == "online" end)"#)?;
    for (chunk, want) in [
        (r#"hub.say("x")"#, "call it on a hub, with ':'"),
        (r#"hub:say(5)"#, "expected the text (a string), got number"),
        (r#"hub:pm("x")"#, "expected the text (a string), got nil"),
        (r#"hub.name = "mine""#, "field 'name' is read-only"),
    ] {
        let e = err(chunk);
        ensure!(e.contains(want), "{chunk}: {e:?} lacks {want:?}");
    }
    // hub:wait sees only this hub's events.
    pat.run(
        r#"waiter = dc.spawn(function()
             return hub:wait("chat", {filter = {text = "ping"}, timeout = 5}).nick
           end)
           dc.emit("chat", {text = "ping", nick = "not from a hub"})"#,
    )?;
    conn.send(b"<hub> ping|")?;
    assert_eq!(pat.run("return waiter:wait()")?, ["true", "hub"]);
    assert_eq!(pat.run(r#"return hub:wait("chat", {timeout = 0.05})"#)?, ["nil"]);
    // Hub objects cross into other events and states as themselves.
    let got = pat.run(
        r#"expect("mine", "mine")
           dc.emit("mine", {hub = hub, list = dc.hubs()})
           local e = expect_done("mine")
           return e.hub == hub, e.list[1] == hub, tostring(hub), hub.protocol, hub.charset"#,
    )?;
    assert_eq!(got, ["true", "true", &format!("dc.Hub({})", fake.url()), "nmdc", "UTF-8"]);

    // Every method and field the API description lists exists on a live hub,
    // and every method there is described.
    let live = pat.run(
        r#"local mt = getmetatable(hub)
           local out = {}
           for k, v in pairs(mt.__index) do
             if type(v) == "function" then out[#out + 1] = "dc.Hub:" .. k end
           end
           table.sort(out)
           return table.concat(out, " ")"#,
    )?;
    let mut described: Vec<&str> = dclua::lua::api::FUNCTIONS
        .iter()
        .map(|f| f.path)
        .filter(|p| p.starts_with("dc.Hub:"))
        .collect();
    described.sort_unstable();
    assert_eq!(live[0], described.join(" "));
    for f in dclua::lua::api::CLASS_FIELDS {
        let key = f.path.trim_start_matches("dc.Hub.");
        let ty = pat.value(&format!("return type(hub.{key})"))?;
        ensure!(ty != "nil" || key == "keyprint", "hub.{key} is nil");
    }
    // After a disconnect the object still answers.
    pat.run(r#"hub:disconnect() eventually("the end", function() return hub.state == "disconnected" end)"#)?;
    let got = pat.run(r#"return hub.url, hub.user_count, hub:say("x")"#)?;
    assert_eq!(got, [fake.url().as_str(), "0", "false", "the hub is disconnected"]);
    Ok(())
}

// ----- nmdcs:// -------------------------------------------------------------------

/// A fake NMDC hub over TLS (rustls in a plain thread): greets, takes the
/// login, says one line in main chat, then keeps the connection open until
/// the client goes.
fn tls_fake_hub(
    tls: dclua::tls::TlsContext,
) -> Result<(String, std::thread::JoinHandle<Result<()>>)> {
    let port = support::ports::free_port()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.get())).context("binding")?;
    let url = format!("nmdcs://127.0.0.1:{}", port.get());
    let server = tls.server(dclua::tls::ClientAuth::Request)?;
    let handle = std::thread::spawn(move || -> Result<()> {
        let _port = port;
        listener.set_nonblocking(false)?;
        let (tcp, _) = listener.accept()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let rustls::Connection::Server(conn) = server.into_rustls() else {
            bail!("a server session was expected");
        };
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let mut lock = b"$Lock ".to_vec();
        lock.extend_from_slice(FAKE_LOCK);
        lock.extend_from_slice(b" Pk=tlshub|$HubName secure hub|");
        // The handshake happens on the first write or read.
        if s.write_all(&lock).and_then(|()| s.flush()).is_err() {
            return Ok(()); // the client refused our certificate
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"$|$|" || w == b"$$|") && !got.ends_with(b"$|") {
            match s.read(&mut buf) {
                Ok(0) => return Ok(()),
                Err(_) => return Ok(()), // refused, or the client went
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(14).any(|w| w == b"$ValidateNick ")
                        && !got.windows(6).any(|w| w == b"$Hello")
                    {
                        if let Some(nick) = String::from_utf8_lossy(&got)
                            .split("$ValidateNick ")
                            .nth(1)
                            .and_then(|r| r.split('|').next())
                            .map(str::to_string)
                        {
                            s.write_all(format!("$Hello {nick}|").as_bytes())?;
                            got.extend_from_slice(b"$Hello");
                        }
                    }
                }
            }
        }
        s.write_all(b"<secure> hello over TLS|")?;
        s.flush()?;
        // Stay until the client closes.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        Ok(())
    });
    Ok((url, handle))
}

#[test]
fn nmdcs_with_the_right_keyprint_connects_and_a_wrong_one_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hub_tls = dclua::tls::TlsContext::open(&dir.path().join("hub"), Some("HUB"))?;
    let kp = hub_tls.our_keyprint().to_string();

    // The right keyprint: login, chat over TLS, hub.keyprint filled.
    let (url, server) = tls_fake_hub(hub_tls.clone())?;
    let c = Client::passive("tlsbot");
    let data = dir.path().join("client");
    c.on_worker(move || services().hubs().set_data_dir(&data));
    c.run(r#"expect("chat", "chat")"#)?;
    c.connect(&format!("{url}/?kp={kp}"), "{}")?;
    let text = c.value(r#"local e = expect_done("chat") return e.nick .. ": " .. e.text"#)?;
    assert_eq!(text, "secure: hello over TLS");
    assert_eq!(c.value("return hub.keyprint")?, kp);
    c.run("hub:disconnect()")?;
    drop(c);
    server.join().map_err(|_| anyhow::anyhow!("the fake hub panicked"))??;

    // A wrong keyprint: refused with both keyprints named, and no reconnect.
    let (url, server) = tls_fake_hub(hub_tls)?;
    let c = Client::passive("tlsbot2");
    let data = dir.path().join("client2");
    c.on_worker(move || services().hubs().set_data_dir(&data));
    let wrong = "SHA256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let reason = c.value(&format!(
        r#"expect("gone", "hub_disconnected")
           hub = dc.connect("{url}/?kp={wrong}", {{}})
           local e = expect_done("gone")
           return e.reason .. " / reconnect: " .. tostring(e.reconnect_in)"#
    ))?;
    assert!(reason.contains(wrong) && reason.contains(&kp), "{reason}");
    assert!(reason.ends_with("reconnect: nil"), "{reason}");
    drop(c);
    server.join().map_err(|_| anyhow::anyhow!("the fake hub panicked"))??;
    Ok(())
}

/// Where a command goes to a bot.
#[derive(Clone, Copy)]
enum Where {
    Pm,
    Chat,
}

/// Sends `text` to `bot` (by PM or in main chat) from `client`'s first hub
/// and returns the bot's answer there.
fn ask_bot(client: &Client, bot: &str, how: Where, text: &str) -> Result<String> {
    let (event, filter, send) = match how {
        Where::Pm => {
            ("pm", format!("{{from = {bot:?}}}"), format!("dc.hubs()[1]:pm({bot:?}, {text:?})"))
        }
        Where::Chat => {
            ("chat", format!("{{nick = {bot:?}}}"), format!("dc.hubs()[1]:say({text:?})"))
        }
    };
    client.value(&format!(
        r#"expect("answer", "{event}", {filter}, 15) {send} return expect_done("answer").text"#
    ))
}

/// scripts/seen.lua on the real NMDC hub: "!seen NICK" answered by PM when
/// asked by PM and "!help" in main chat when asked there; what it saw
/// survives the script's restart (its store).
#[test]
fn the_seen_bot_answers_where_it_is_asked_and_remembers() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let bot = Client::passive("seenbot");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seen.lua");
    let load = |path: std::path::PathBuf| move || services().host().load_file(&path, false, &[]);
    let id = bot.on_worker(load(script.clone())).map_err(anyhow::Error::msg)?;
    bot.connect(&url, "{}")?;

    let carol = Client::passive("carol");
    carol.connect(&url, "{}")?;
    carol.run(r#"dc.hubs()[1]:say("hello everyone") dc.sleep(0.3) dc.hubs()[1]:disconnect()"#)?;

    let dave = Client::passive("dave");
    dave.connect(&url, "{}")?;
    let answer = ask_bot(&dave, "seenbot", Where::Pm, "!seen carol")?;
    ensure!(answer == "carol was last seen leaving, just now.", "{answer:?}");
    let help = ask_bot(&dave, "seenbot", Where::Chat, "!help")?;
    ensure!(
        help == "Commands: !seen - NICK: when NICK was last seen; !help - this list",
        "{help:?}"
    );

    // A restart of the script: what it saw comes back from its store.
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(bot.on_worker(move || services().host().unload(id)), "the bot unloads");
    bot.on_worker(load(script)).map_err(anyhow::Error::msg)?;
    let answer = ask_bot(&dave, "seenbot", Where::Pm, "!seen carol")?;
    ensure!(answer == "carol was last seen leaving, just now.", "after a restart: {answer:?}");
    Ok(())
}

/// The hub address of the tutorial's configuration, replaced by a test hub's.
const TUTORIAL_HUB: &str = "dchub://hub.example.org:411";

/// `dclua run` of `script` with the tutorial's configuration (step 1)
/// pointed at `url`, standard output and error piped; and its home.
fn run_tutorial_script(
    url: &str,
    script: &str,
) -> Result<(tempfile::TempDir, std::process::Child)> {
    let config = support::guide_block("Step 1: install and configure", 0)?;
    ensure!(config.contains(TUTORIAL_HUB), "the tutorial's hub address changed");
    let home = tempfile::tempdir()?;
    let dir = home.path().join("config").join("dclua");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.lua"), config.replace(TUTORIAL_HUB, url))?;
    let path = home.path().join("script.lua");
    std::fs::write(&path, script)?;
    let child = support::bin::dclua(home.path())
        .arg("run")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    Ok((home, child))
}

/// The tutorial's first script (step 2) with its configuration (step 1),
/// run with `dclua run` against the real NMDC hub: it prints the login and
/// main chat, and answers "ping".
#[test]
fn the_tutorials_first_script_shows_chat_and_answers_ping() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let (_home, mut child) =
        run_tutorial_script(&url, &support::guide_block("Step 2: a first script", 0)?)?;
    let dave = Client::passive("dave");
    dave.connect(&url, "{}")?;
    let answer = dave.value(
        r#"eventually("mybot on the hub", function() return hub:user("mybot") ~= nil end, 30)
           expect("pong", "chat", {nick = "mybot"}, 15)
           hub:say("ping")
           return expect_done("pong").text"#,
    );
    // Dave may hear the hub's echo of the pong before the bot's own
    // process prints it: read its output until then (<= 10 s), then stop it.
    let mut reader = std::io::BufReader::new(child.stdout.take().context("the bot's stdout")?);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stdout.contains("<mybot> pong\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => stdout.push_str(&line),
            Err(_) => break,
        }
    }
    child.kill()?;
    let out = child.wait_with_output()?;
    stdout.extend(rx.try_iter());
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(answer.as_ref().is_ok_and(|a| a == "pong"), "{answer:?}\n{stdout}\n{stderr}");
    ensure!(stdout.contains(&format!("connected to {url}, ")), "{stdout}\n{stderr}");
    ensure!(stdout.contains("<dave> ping\n<mybot> pong\n"), "{stdout}\n{stderr}");
    Ok(())
}

/// The tutorial's waiting script (step 3), run with `dclua run` against the
/// real NMDC hub: it asks, waits for "yes", greets who said it, and ends by
/// itself.
#[test]
fn the_tutorials_waiting_script_asks_waits_and_ends() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let dave = Client::passive("dave");
    dave.connect(&url, "{}")?;
    dave.run(r#"expect("question", "chat", {nick = "mybot"}, 30)"#)?;
    let (_home, mut child) =
        run_tutorial_script(&url, &support::guide_block("Step 3: waiting", 0)?)?;
    let talk = dave.value(
        r#"local q = expect_done("question").text
           expect("hello", "chat", {nick = "mybot"}, 15)
           hub:say("yes")
           return q .. " / " .. expect_done("hello").text"#,
    );
    let t = Instant::now();
    while child.try_wait()?.is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            child.kill()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(talk? == "Anyone there? Say yes. / Hello, dave!", "{stdout}\n{stderr}");
    ensure!(out.status.success(), "it ends by itself: {:?}\n{stdout}\n{stderr}", out.status);
    ensure!(stdout == "done\n", "{stdout}\n{stderr}");
    Ok(())
}

/// The guide's lifetime example ("Ownership and unloading"), run with
/// `dclua run` against the real NMDC hub: it prints the users and ends by
/// itself once it has left the hub.
#[test]
fn the_guides_lifetime_example_ends_by_itself() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let example = support::guide_block("Ownership and unloading", 0)?;
    ensure!(example.contains("dchub://127.0.0.1:4111"), "the example's hub address changed");
    let home = tempfile::tempdir()?;
    let script = home.path().join("fetch.lua");
    std::fs::write(&script, example.replace("dchub://127.0.0.1:4111", &hub.url()))?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dclua"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("HOME", home.path())
        .arg("run")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let t = Instant::now();
    while child.try_wait()?.is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            child.kill()?;
            bail!("the example did not end by itself within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    ensure!(stdout.trim().ends_with(" users"), "{stdout:?}");
    Ok(())
}

/// The tutorial's bot with a store ("Step 5: remembering things"), loaded
/// as the configuration would load it, on the real NMDC hub: it answers by
/// PM and in main chat, and its counts survive a restart.
#[test]
fn the_guides_first_bot_answers_and_counts_across_restarts() -> Result<()> {
    let hub = NmdcHub::start(NmdcHubOptions::default())?;
    let url = hub.url();
    let bot_src = support::guide_block("Step 5: remembering things", 0)?;
    let bot = Client::passive("mybot");
    let load = move || services().host().load_source("bot", None, bot_src.as_bytes(), false, &[]);
    let id = bot.on_worker(load.clone()).map_err(anyhow::Error::msg)?;
    bot.connect(&url, "{}")?;
    let dave = Client::passive("dave");
    dave.connect(&url, "{}")?;
    let hello = |how| ask_bot(&dave, "mybot", how, "!hello");
    ensure!(hello(Where::Pm)? == "Hello, dave! (1)");
    ensure!(hello(Where::Chat)? == "Hello, dave! (2)");
    ensure!(bot.on_worker(move || services().host().unload(id)), "the bot unloads");
    bot.on_worker(load).map_err(anyhow::Error::msg)?;
    ensure!(hello(Where::Pm)? == "Hello, dave! (3)", "the count survives a restart");
    Ok(())
}
