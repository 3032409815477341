//! Test vectors for the NMDC codec (`dclua::proto::nmdc`), go-dc style:
//! tables of (wire bytes, parsed value, canonical re-encoding), the lines
//! captured from a real hub and a real client in `tests/vectors/nmdc/`, and
//! hostile input that must never panic.

use dclua::proto::nmdc::search::file_type;
use dclua::proto::nmdc::user::flags;
use dclua::proto::nmdc::{
    encode, lock_to_key, parse, AdcTransfer, Chat, ConnectToMe, Direction, HubCounts, Lock,
    Message, MyInfo, NatRole, PrivateMessage, ResultHub, Search, SearchPattern, SearchResult,
    SearchSource, SizeLimit, Tag, UserCommand, UserIp, Way,
};
use dclua::proto::tth::Tth;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1251, WINDOWS_1252};

/// One vector: `wire` parses to `msg` and encodes back to `canonical`
/// (`None`: to `wire` itself), `|` excluded.
struct Vector {
    charset: &'static Encoding,
    wire: &'static [u8],
    msg: Message,
    canonical: Option<&'static [u8]>,
}

fn v(wire: &'static [u8], msg: Message) -> Vector {
    Vector { charset: WINDOWS_1252, wire, msg, canonical: None }
}

fn vc(wire: &'static [u8], msg: Message, canonical: &'static [u8]) -> Vector {
    Vector { charset: WINDOWS_1252, wire, msg, canonical: Some(canonical) }
}

fn in_charset(charset: &'static Encoding, mut vector: Vector) -> Vector {
    vector.charset = charset;
    vector
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn tth(b32: &str) -> Tth {
    b32.parse().expect("test TTH is valid")
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// At most 200 characters of `text`, for failure messages about huge frames.
fn short(text: &str) -> String {
    let mut t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        t.push_str("...");
    }
    t
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.push(b'|');
    f
}

fn check(vector: &Vector) {
    let got = parse(vector.wire, vector.charset);
    assert_eq!(got, vector.msg, "parse of {}", show(vector.wire));
    let want = framed(vector.canonical.unwrap_or(vector.wire));
    assert_eq!(
        show(&encode(&vector.msg, vector.charset)),
        show(&want),
        "encode of {:?}",
        vector.msg
    );
    // The canonical form is a fixed point.
    let again = parse(&want[..want.len() - 1], vector.charset);
    assert_eq!(again, vector.msg, "parse of canonical {}", show(&want));
}

fn my_info(
    nick: &str,
    description: &str,
    tag: Option<Tag>,
    connection: &str,
    flag: Option<u8>,
) -> MyInfo {
    MyInfo {
        nick: s(nick),
        description: s(description),
        tag,
        connection: s(connection),
        flag,
        email: String::new(),
        share: 0,
    }
}

fn tag(
    client: &str,
    version: Option<&str>,
    mode: Option<&str>,
    hubs: Option<(u32, u32, u32)>,
    slots: Option<u32>,
) -> Tag {
    Tag {
        client: s(client),
        version: version.map(s),
        mode: mode.map(s),
        hubs: hubs.map(|(normal, registered, op)| HubCounts { normal, registered, op }),
        slots,
        other: Vec::new(),
    }
}

fn handshake_vectors() -> Vec<Vector> {
    vec![
        v(b"", Message::KeepAlive),
        v(
            b"$Lock EXTENDEDPROTOCOL_verlihub Pk=version0.9.8e-r2",
            Message::Lock(Lock {
                lock: b"EXTENDEDPROTOCOL_verlihub".to_vec(),
                pk: Some(s("version0.9.8e-r2")),
                reference: None,
            }),
        ),
        v(
            b"$Lock EXTENDEDPROTOCOLABCABCABCABCABCABC Pk=DCPLUSPLUS0.777Ref=dchub://example.org:411",
            Message::Lock(Lock {
                lock: b"EXTENDEDPROTOCOLABCABCABCABCABCABC".to_vec(),
                pk: Some(s("DCPLUSPLUS0.777")),
                reference: Some(s("dchub://example.org:411")),
            }),
        ),
        v(b"$Lock Sometimes_no_pk", Message::Lock(Lock { lock: b"Sometimes_no_pk".to_vec(), pk: None, reference: None })),
        vc(
            b"$Lock abc junk after",
            Message::Lock(Lock { lock: b"abc".to_vec(), pk: None, reference: None }),
            b"$Lock abc",
        ),
        // Key bytes are raw, whatever the charset.
        in_charset(UTF_8, v(b"$Key \x14\xd1/%DCN000%/\xff", Message::Key(b"\x14\xd1/%DCN000%/\xff".to_vec()))),
        vc(
            b"$Supports UserCommand NoGetINFO NoHello UserIP2 TTHSearch ZPipe0 ",
            Message::Supports(
                ["UserCommand", "NoGetINFO", "NoHello", "UserIP2", "TTHSearch", "ZPipe0"].map(s).to_vec(),
            ),
            b"$Supports UserCommand NoGetINFO NoHello UserIP2 TTHSearch ZPipe0",
        ),
        v(b"$ValidateNick johndoe", Message::ValidateNick(s("johndoe"))),
        v(b"$GetPass", Message::GetPass(None)),
        v(b"$GetPass W6XN3LSKPO3CIB4N4XTZ4FNO3VYQTXF7JVA67OA", Message::GetPass(Some(s("W6XN3LSKPO3CIB4N4XTZ4FNO3VYQTXF7JVA67OA")))),
        v(b"$MyPass qwerty", Message::MyPass(s("qwerty"))),
        v(b"$BadPass", Message::BadPass),
        v(b"$ValidateDenide john", Message::ValidateDenide(s("john"))),
        v(b"$ValidateDenide", Message::ValidateDenide(String::new())),
        v(b"$Hello john", Message::Hello(s("john"))),
        v(b"$Version 1,0091", Message::Version(s("1,0091"))),
        v(b"$GetNickList", Message::GetNickList),
        v(b"$LogedIn john", Message::LogedIn(s("john"))),
        v(b"$LogedIn", Message::LogedIn(String::new())),
        v(b"$HubIsFull", Message::HubIsFull),
        v(b"$ZOn", Message::ZOn),
        v(b"$GetINFO peter john", Message::GetInfo { target: s("peter"), from: s("john") }),
    ]
}

fn user_vectors() -> Vec<Vector> {
    let mut dcpp = my_info(
        "johndoe",
        "",
        Some(tag("++", Some("0.673"), Some("P"), Some((0, 1, 0)), Some(2))),
        "LAN(T3)",
        Some(b'1'),
    );
    dcpp.email = s("example@example.com");
    dcpp.share = 1234;
    let mut apex = my_info(
        "johndoe",
        "RU",
        Some(Tag {
            other: vec![s("L:512")],
            ..tag("ApexDC++", Some("0.4.0"), Some("P"), Some((27, 1, 3)), Some(92))
        }),
        "LAN(T3)",
        Some(b'K'),
    );
    apex.email = s("example@example.com");
    apex.share = 1234;
    let mut legacy = my_info(
        "N8611",
        "",
        Some(tag("++", Some("0.868"), Some("A"), Some((34, 0, 0)), Some(3))),
        "0.005",
        Some(b'.'),
    );
    legacy.share = 27_225_945_203;
    let mut dup = my_info(
        "user",
        "some,desc,<go-dcpp V:0.20.1,M:A,H:2/1/0,S:6>",
        Some(tag("go-dcpp", Some("0.20.1"), Some("A"), Some((2, 1, 0)), Some(6))),
        "",
        None,
    );
    dup.connection = String::new();
    dup.flag = Some(0x04);
    dup.share = 324_882_100_000;
    let mut unclosed =
        my_info("whist", "RU [29]some desc<GreylynkDC++ v:2.3.5,", None, "LAN(T1)", Some(b'A'));
    unclosed.share = 65_075_277_005;
    let mut bot = my_info("test", "@ HUB-Bot", None, "BOT", Some(b' '));
    bot.email = s("mail (3.0.1)");
    let mut escaped = my_info("x", "costs 5$ | R&D &#36;", None, "", None);
    escaped.email = s("a&b@c");
    let mut cyr = my_info(
        "Петя",
        "Привет всем ",
        Some(tag("++", Some("0.868"), Some("A"), Some((1, 0, 0)), Some(3))),
        "100",
        Some(flags::NORMAL | flags::TLS),
    );
    cyr.share = 1 << 40;
    vec![
        v(b"$MyINFO $ALL johndoe <++ V:0.673,M:P,H:0/1/0,S:2>$ $LAN(T3)1$example@example.com$1234$", Message::MyInfo(dcpp)),
        v(
            b"$MyINFO $ALL johndoe RU<ApexDC++ V:0.4.0,M:P,H:27/1/3,S:92,L:512>$ $LAN(T3)K$example@example.com$1234$",
            Message::MyInfo(apex),
        ),
        // Edge cases from go-dc's user_test.go, seen on real hubs.
        v(b"$MyINFO $ALL #GlobalOpChat $ $$$0$", Message::MyInfo(my_info("#GlobalOpChat", "", None, "", None))),
        vc(
            b"$MyINFO $ALL verg P verg$ $0.005A$$$",
            Message::MyInfo(my_info("verg", "P verg", None, "0.005", Some(b'A'))),
            b"$MyINFO $ALL verg P verg$ $0.005A$$0$",
        ),
        vc(b"$MyINFO $ALL -EA-Sports $P$$$0$", Message::MyInfo(my_info("-EA-Sports", "", None, "", None)), b"$MyINFO $ALL -EA-Sports $ $$$0$"),
        vc(
            b"$MyINFO $ALL N8611 <++ V:0.868,M:A,H:34,S:3>$A$0.005.$$27225945203$",
            Message::MyInfo(legacy),
            b"$MyINFO $ALL N8611 <++ V:0.868,M:A,H:34/0/0,S:3>$ $0.005.$$27225945203$",
        ),
        v(
            b"$MyINFO $ALL user some,desc,<go-dcpp V:0.20.1,M:A,H:2/1/0,S:6><go-dcpp V:0.20.1,M:A,H:2/1/0,S:6>$ $\x04$$324882100000$",
            Message::MyInfo(dup),
        ),
        v(b"$MyINFO $ALL whist RU [29]some desc<GreylynkDC++ v:2.3.5,$ $LAN(T1)A$$65075277005$", Message::MyInfo(unclosed)),
        v(b"$MyINFO $ALL test @ HUB-Bot$ $BOT $mail (3.0.1)$0$", Message::MyInfo(bot)),
        // Missing fields, no flag byte, no space after the nick.
        vc(b"$MyINFO $ALL lonely", Message::MyInfo(my_info("lonely", "", None, "", None)), b"$MyINFO $ALL lonely $ $$$0$"),
        vc(b"$MyINFO $ALL lonely$ $$$", Message::MyInfo(my_info("lonely", "", None, "", None)), b"$MyINFO $ALL lonely $ $$$0$"),
        v(b"$MyINFO $ALL x costs 5&#36; &#124; R&D &amp;#36;$ $$a&b@c$0$", Message::MyInfo(escaped)),
        in_charset(
            WINDOWS_1251,
            v(
                b"$MyINFO $ALL \xcf\xe5\xf2\xff \xcf\xf0\xe8\xe2\xe5\xf2 \xe2\xf1\xe5\xec <++ V:0.868,M:A,H:1/0/0,S:3>$ $100\x11$$1099511627776$",
                Message::MyInfo(cyr),
            ),
        ),
        v(b"$NickList john$$peter$$", Message::NickList(vec![s("john"), s("peter")])),
        vc(b"$NickList john$$peter", Message::NickList(vec![s("john"), s("peter")]), b"$NickList john$$peter$$"),
        v(b"$OpList", Message::OpList(Vec::new())),
        vc(b"$OpList ", Message::OpList(Vec::new()), b"$OpList"),
        v(b"$BotList marie$$", Message::BotList(vec![s("marie")])),
        v(b"$Quit peter", Message::Quit(s("peter"))),
        v(
            b"$UserIP johndoe 127.0.1.2$$janedoe 127.0.1.3",
            Message::UserIp(vec![
                UserIp { nick: s("johndoe"), ip: Some(s("127.0.1.2")) },
                UserIp { nick: s("janedoe"), ip: Some(s("127.0.1.3")) },
            ]),
        ),
        vc(
            b"$UserIP johndoe 127.0.1.2$$",
            Message::UserIp(vec![UserIp { nick: s("johndoe"), ip: Some(s("127.0.1.2")) }]),
            b"$UserIP johndoe 127.0.1.2",
        ),
        v(b"$UserIP johndoe", Message::UserIp(vec![UserIp { nick: s("johndoe"), ip: None }])),
    ]
}

fn chat_vectors() -> Vec<Vector> {
    let chat =
        |nick: Option<&str>, text: &str| Message::Chat(Chat { nick: nick.map(s), text: s(text) });
    let pm = |to: &str, from: &str, nick: Option<&str>, text: &str| {
        Message::PrivateMessage(PrivateMessage {
            to: s(to),
            from: s(from),
            nick: nick.map(s),
            text: s(text),
        })
    };
    vec![
        v(b"<John> cats are cute", chat(Some("John"), "cats are cute")),
        v(b"hub message or status", chat(None, "hub message or status")),
        v(b"<> message text", chat(Some(""), "message text")),
        vc(b"<nick>", chat(Some("nick"), ""), b"<nick> "),
        vc(b"<nick>\nmessage text\nsecond line", chat(Some("nick"), "message text\nsecond line"), b"<nick> message text\nsecond line"),
        vc(b"<nick>message text", chat(Some("nick"), "message text"), b"<nick> message text"),
        v(b"<< nick >> message", chat(Some("< nick >"), "message")),
        v(b"<john> is kicking peter because: I am not a dog person", chat(Some("john"), "is kicking peter because: I am not a dog person")),
        // DC++ escaping: `&` is escaped only where it begins a sequence.
        v(
            b"<alice> hello &#36;world &#124; pipes & &amp;amp; done",
            chat(Some("alice"), "hello $world | pipes & &amp; done"),
        ),
        // A hub that does not escape `$` in chat; the canonical form does.
        vc(b"<bob> 5$ please", chat(Some("bob"), "5$ please"), b"<bob> 5&#36; please"),
        in_charset(WINDOWS_1251, v(b"<\xcf\xe5\xf2\xff> \xcf\xf0\xe8\xe2\xe5\xf2, \xec\xe8\xf0!", chat(Some("Петя"), "Привет, мир!"))),
        in_charset(WINDOWS_1252, v(b"<Zo\xeb> caf\xe9 \x80 \xbd \x81", chat(Some("Zoë"), "café € ½ \u{81}"))),
        in_charset(UTF_8, v(b"<\xd0\x9a\xd0\xb0\xd1\x80\xd0\xbb> \xe2\x9c\x93", chat(Some("Карл"), "✓"))),
        v(b"$To: john From: peter $<peter> dogs are more cute", pm("john", "peter", Some("peter"), "dogs are more cute")),
        v(b"$To: dave From: alice $<alice> hi dave &#36;&#124;", pm("dave", "alice", Some("alice"), "hi dave $|")),
        v(b"$To: me From: OpChat $<op> relayed", pm("me", "OpChat", Some("op"), "relayed")),
        v(b"$To: me From: Hub $text without nick", pm("me", "Hub", None, "text without nick")),
        in_charset(
            WINDOWS_1251,
            v(b"$To: \xc2\xe0\xf1\xff From: \xcf\xe5\xf2\xff $<\xcf\xe5\xf2\xff> \xef\xf0\xe8\xe2\xe5\xf2", pm("Вася", "Петя", Some("Петя"), "привет")),
        ),
    ]
}

fn search_vectors() -> Vec<Vector> {
    let search = |source: SearchSource, size: SizeLimit, file_type: u8, pattern: SearchPattern| {
        Message::Search(Search { source, size, file_type, pattern })
    };
    let active = || SearchSource::Active { ip: s("127.0.1.5"), port: 412 };
    let passive = |nick: &str| SearchSource::Passive { nick: s(nick) };
    let words = |w: &str| SearchPattern::Text(s(w));
    let root = "TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA";
    let sr = |path: &str,
              size: Option<u64>,
              slots: (u32, u32),
              hub: ResultHub,
              addr: &str,
              target: Option<&str>| {
        Message::SearchResult(SearchResult {
            nick: s("User1"),
            path: s(path),
            size,
            free_slots: slots.0,
            total_slots: slots.1,
            hub,
            hub_address: s(addr),
            target: target.map(s),
        })
    };
    let hub = |name: &str| ResultHub::Name(s(name));
    vec![
        v(b"$Search 127.0.1.5:412 T?T?500000?1?Gentoo$2005", search(active(), SizeLimit::AtMost(500_000), file_type::ANY, words("Gentoo 2005"))),
        v(b"$Search Hub:SomeNick T?F?500000?7?Gentoo$2005", search(passive("SomeNick"), SizeLimit::AtLeast(500_000), file_type::VIDEO, words("Gentoo 2005"))),
        v(
            b"$Search 127.0.1.5:412 F?T?0?9?TTH:TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA",
            search(active(), SizeLimit::None, file_type::TTH, SearchPattern::Tth(tth(root))),
        ),
        vc(
            b"$Search Hub:SomeNick F?F?0?9?TTH:to32wpd6aqe7va7654heam5gkfqgil7f2bekfna",
            search(passive("SomeNick"), SizeLimit::None, file_type::TTH, SearchPattern::Tth(tth(root))),
            b"$Search Hub:SomeNick F?T?0?9?TTH:TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA",
        ),
        // `$` in a pattern is a space; a literal `$` is escaped; `?` survives.
        v(b"$Search Hub:x F?T?0?1?5&#36;$what?", search(passive("x"), SizeLimit::None, file_type::ANY, words("5$ what?"))),
        v(b"$Search [::1]:412 F?T?0?13?x", search(SearchSource::Active { ip: s("[::1]"), port: 412 }, SizeLimit::None, 13, words("x"))),
        in_charset(
            WINDOWS_1251,
            v(b"$Search Hub:\xcf\xe5\xf2\xff F?T?0?1?\xf4\xe8\xeb\xfc\xec$2024", search(passive("Петя"), SizeLimit::None, file_type::ANY, words("фильм 2024"))),
        ),
        // $SR examples of nmdc.md, plus TTH and passive forms.
        v(b"$SR User1 ponies.txt\x05437 3/4\x05Testhub (127.0.1.1:411)", sr("ponies.txt", Some(437), (3, 4), hub("Testhub"), "127.0.1.1:411", None)),
        v(b"$SR User1 images 0/4\x05Testhub (127.0.1.1:411)", sr("images", None, (0, 4), hub("Testhub"), "127.0.1.1:411", None)),
        v(b"$SR User1 pictures 0/4\x05Testhub (127.0.1.1)", sr("pictures", None, (0, 4), hub("Testhub"), "127.0.1.1", None)),
        v(
            b"$SR User1 ponies.txt\x05437 3/4\x05Testhub (127.0.1.1:411)\x05User2",
            sr("ponies.txt", Some(437), (3, 4), hub("Testhub"), "127.0.1.1:411", Some("User2")),
        ),
        v(b"$SR User1 images 0/4\x05Testhub (127.0.1.1:411)\x05User2", sr("images", None, (0, 4), hub("Testhub"), "127.0.1.1:411", Some("User2"))),
        v(
            b"$SR User1 My Music\\a b.mp3\x054000000 1/3\x05My (very) good hub (127.0.0.9:4111)",
            sr("My Music\\a b.mp3", Some(4_000_000), (1, 3), hub("My (very) good hub"), "127.0.0.9:4111", None),
        ),
        v(
            b"$SR User1 share\\x.iso\x05123 0/1\x05TTH:TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA (127.0.0.9:411)\x05User2",
            sr("share\\x.iso", Some(123), (0, 1), ResultHub::Tth(tth(root)), "127.0.0.9:411", Some("User2")),
        ),
        in_charset(
            WINDOWS_1251,
            v(
                b"$SR User1 \xf4\xe8\xeb\xfc\xec\xfb\\\xe0.avi\x051 2/2\x05\xd5\xe0\xe1 (1.2.3.4)",
                sr("фильмы\\а.avi", Some(1), (2, 2), hub("Хаб"), "1.2.3.4", None),
            ),
        ),
    ]
}

fn connection_vectors() -> Vec<Vector> {
    let ctm = |remote: &str, port: u16, tls: bool, nat: Option<NatRole>, sender: Option<&str>| {
        Message::ConnectToMe(ConnectToMe {
            remote: s(remote),
            ip: s("127.0.1.2"),
            port,
            tls,
            nat,
            sender: sender.map(s),
        })
    };
    let adc = |kind: &str, id: &str, start: u64, bytes: i64, flags: &[&str]| AdcTransfer {
        kind: s(kind),
        identifier: s(id),
        start,
        bytes,
        flags: flags.iter().map(|f| s(f)).collect(),
    };
    vec![
        v(b"$ConnectToMe john 127.0.1.2:412", ctm("john", 412, false, None, None)),
        v(b"$ConnectToMe john 127.0.1.2:412S", ctm("john", 412, true, None, None)),
        v(
            b"$ConnectToMe john 127.0.1.2:412NS peter",
            ctm("john", 412, true, Some(NatRole::Request), Some("peter")),
        ),
        v(
            b"$ConnectToMe john 127.0.1.2:412N peter",
            ctm("john", 412, false, Some(NatRole::Request), Some("peter")),
        ),
        v(
            b"$ConnectToMe peter 127.0.1.2:412RS",
            ctm("peter", 412, true, Some(NatRole::Response), None),
        ),
        vc(
            b"$ConnectToMe peter john 127.0.1.2:412",
            ctm("john", 412, false, None, Some("peter")),
            b"$ConnectToMe john 127.0.1.2:412 peter",
        ),
        v(
            b"$RevConnectToMe peter john",
            Message::RevConnectToMe { from: s("peter"), to: s("john") },
        ),
        v(b"$ForceMove example.com:411", Message::ForceMove(s("example.com:411"))),
        v(b"$MyNick aaa", Message::MyNick(s("aaa"))),
        v(
            b"$Direction Download 31604",
            Message::Direction(Direction { way: Way::Download, number: 31604 }),
        ),
        v(b"$Direction Upload 82", Message::Direction(Direction { way: Way::Upload, number: 82 })),
        v(
            b"$ADCGET file files.xml.bz2 0 -1 ZL1",
            Message::AdcGet(adc("file", "files.xml.bz2", 0, -1, &["ZL1"])),
        ),
        v(
            b"$ADCSND file files.xml.bz2 0 29725 ZL1",
            Message::AdcSnd(adc("file", "files.xml.bz2", 0, 29725, &["ZL1"])),
        ),
        v(
            b"$ADCGET file TTH/TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA 65536 131072",
            Message::AdcGet(adc(
                "file",
                "TTH/TO32WPD6AQE7VA7654HEAM5GKFQGIL7F2BEKFNA",
                65536,
                131072,
                &[],
            )),
        ),
        v(
            b"$ADCGET list /My\\ Music/\\\\odd\\ \\\\/ 0 -1 RE1",
            Message::AdcGet(adc("list", "/My Music/\\odd \\/", 0, -1, &["RE1"])),
        ),
        // ADC parameters are UTF-8 whatever the hub charset.
        in_charset(
            WINDOWS_1251,
            v(b"$ADCGET file /\xd0\xb0 0 -1", Message::AdcGet(adc("file", "/а", 0, -1, &[]))),
        ),
        v(b"$MaxedOut", Message::MaxedOut(None)),
        v(b"$MaxedOut 2", Message::MaxedOut(Some(2))),
        v(b"$Error File Not Available", Message::Error(s("File Not Available"))),
        v(b"$Failed File Not Available", Message::Failed(s("File Not Available"))),
    ]
}

fn hub_vectors() -> Vec<Vector> {
    let uc = |kind: u8, context: u32, title: &str, command: &str| {
        Message::UserCommand(UserCommand { kind, context, title: s(title), command: s(command) })
    };
    vec![
        v(b"$HubName Verlihub &#36;&#124; R&D", Message::HubName(s("Verlihub $| R&D"))),
        in_charset(WINDOWS_1251, v(b"$HubName \xd5\xe0\xe1", Message::HubName(s("Хаб")))),
        v(b"$HubTopic The topic of the hub is not set.", Message::HubTopic(s("The topic of the hub is not set."))),
        v(
            b"$UserCommand 2 6 Kick$&#36;To: %[nick] From: %[mynick] &#36;<%[mynick]> bye&#124;&#36;Kick %[nick]&#124;",
            uc(2, 6, "Kick", "$To: %[nick] From: %[mynick] $<%[mynick]> bye|$Kick %[nick]|"),
        ),
        v(b"$UserCommand 1 1 Info\\Rules$<%[mynick]> +rules&#124;", uc(1, 1, "Info\\Rules", "<%[mynick]> +rules|")),
        v(b"$UserCommand 0 3", uc(0, 3, "", "")),
        v(b"$UserCommand 255 7", uc(255, 7, "", "")),
    ]
}

fn raw_vectors() -> Vec<Vector> {
    let raw =
        |frame: &[u8]| Message::Raw(dclua::proto::nmdc::Raw { frame: frame.to_vec(), error: None });
    vec![
        v(b"$MCTo: john $peter Cats are cute", raw(b"$MCTo: john $peter Cats are cute")),
        v(b"$BotINFO pinger", raw(b"$BotINFO pinger")),
        v(b"$", raw(b"$")),
        v(
            b"$myinfo $ALL lower case is another command",
            raw(b"$myinfo $ALL lower case is another command"),
        ),
    ]
}

#[test]
fn handshake_table() {
    handshake_vectors().iter().for_each(check);
}

#[test]
fn user_table() {
    user_vectors().iter().for_each(check);
}

#[test]
fn chat_table() {
    chat_vectors().iter().for_each(check);
}

#[test]
fn search_table() {
    search_vectors().iter().for_each(check);
}

#[test]
fn connection_table() {
    connection_vectors().iter().for_each(check);
}

#[test]
fn hub_table() {
    hub_vectors().iter().for_each(check);
}

#[test]
fn unknown_commands_stay_raw() {
    raw_vectors().iter().for_each(check);
}

#[test]
fn every_command_has_a_vector() {
    let all: Vec<Vector> = [
        handshake_vectors(),
        user_vectors(),
        chat_vectors(),
        search_vectors(),
        connection_vectors(),
        hub_vectors(),
        raw_vectors(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let kinds: std::collections::BTreeSet<&str> = all.iter().map(|v| v.msg.kind()).collect();
    let expected = [
        "KeepAlive",
        "Lock",
        "Key",
        "Supports",
        "ValidateNick",
        "GetPass",
        "MyPass",
        "BadPass",
        "ValidateDenide",
        "Hello",
        "Version",
        "GetNickList",
        "MyInfo",
        "NickList",
        "OpList",
        "BotList",
        "Quit",
        "Chat",
        "PrivateMessage",
        "Search",
        "SearchResult",
        "ConnectToMe",
        "RevConnectToMe",
        "ForceMove",
        "UserIp",
        "HubName",
        "HubTopic",
        "UserCommand",
        "ZOn",
        "GetInfo",
        "LogedIn",
        "HubIsFull",
        "MyNick",
        "Direction",
        "AdcGet",
        "AdcSnd",
        "MaxedOut",
        "Error",
        "Failed",
        "Raw",
    ];
    for k in expected {
        assert!(kinds.contains(k), "no vector for {k}");
    }
    assert_eq!(kinds.len(), expected.len(), "{kinds:?}");
}

#[test]
fn malformed_known_commands_become_raw_with_a_reason() {
    let table: [(&[u8], &str, &str); 12] = [
        (b"$MyINFO johndoe desc$ $$$0$", "$MyINFO", "missing \"$ALL \""),
        (b"$Search 1.2.3.4:412", "$Search", "missing search string"),
        (b"$Search 1.2.3.4:99999 F?T?0?1?x", "$Search", "source is neither ip:port nor Hub:nick"),
        (b"$Search Hub:x T?T?big?1?x", "$Search", "size is not a number"),
        (b"$Search Hub:x F?T?0?9?TTH:tooshort", "$Search", "TTH is not 39 base32 characters"),
        (b"$SR nick result without separators", "$SR", "no 0x05 separator"),
        (b"$SR nick a\x05b\x05c\x05d\x05e", "$SR", "more than three 0x05 separators"),
        (b"$ConnectToMe john 1.2.3.4:412X", "$ConnectToMe", "unknown port suffix"),
        (b"$To: john peter $<peter> hi", "$To:", "missing \" From: \""),
        (b"$ADCGET file x 0", "$ADCGET", "expected <type> <identifier> <start> <bytes>"),
        (b"$UserCommand x 1 t$c", "$UserCommand", "type is not a number from 0 to 255"),
        (b"$MaxedOut soon", "$MaxedOut", "queue position is not a number"),
    ];
    for (wire, command, reason) in table {
        match parse(wire, WINDOWS_1252) {
            Message::Raw(raw) => {
                let err = raw.error.unwrap_or_else(|| panic!("no error for {}", show(wire)));
                assert_eq!((err.command.as_str(), err.reason), (command, reason), "{}", show(wire));
                assert_eq!(raw.frame, wire);
                assert_eq!(
                    encode(
                        &Message::Raw(dclua::proto::nmdc::Raw { frame: raw.frame, error: None }),
                        WINDOWS_1252
                    ),
                    framed(wire)
                );
            }
            other => panic!("{} parsed as {other:?}", show(wire)),
        }
    }
}

#[test]
fn charset_edge_cases() {
    // Invalid bytes for the charset become U+FFFD; never an error.
    assert_eq!(
        parse(b"<a\xff> b\xfe\xc3", UTF_8),
        Message::Chat(Chat { nick: Some(s("a\u{fffd}")), text: s("b\u{fffd}\u{fffd}") })
    );
    // Characters the charset cannot hold are sent as numeric references.
    let msg = Message::Chat(Chat { nick: Some(s("me")), text: s("日本 ok") });
    assert_eq!(encode(&msg, WINDOWS_1252), b"<me> &#26085;&#26412; ok|");
    // Charsets that cannot carry NMDC (not ASCII-compatible) fall back to CP1252.
    assert_eq!(
        parse(b"<Zo\xeb> hi", encoding_rs::UTF_16LE),
        Message::Chat(Chat { nick: Some(s("Zoë")), text: s("hi") })
    );
    assert_eq!(encode(&Message::Hello(s("Zoë")), encoding_rs::UTF_16BE), b"$Hello Zo\xeb|");
}

#[test]
fn fields_cannot_inject_commands() {
    let evil = "x|$Kick victim";
    let msgs = [
        Message::Hello(s(evil)),
        Message::Chat(Chat { nick: Some(s(evil)), text: s(evil) }),
        Message::PrivateMessage(PrivateMessage::new(evil, evil, evil)),
        Message::MyInfo(MyInfo {
            nick: s(evil),
            description: s(evil),
            flag: Some(b'|'),
            ..MyInfo::default()
        }),
        Message::MyInfo(MyInfo { connection: s("LAN"), flag: Some(b'$'), ..MyInfo::default() }),
        Message::Search(Search {
            source: SearchSource::Passive { nick: s(evil) },
            size: SizeLimit::None,
            file_type: 1,
            pattern: SearchPattern::Text(s(evil)),
        }),
        Message::ConnectToMe(ConnectToMe::new(evil, evil, 1)),
        Message::Key(b"k|y".to_vec()),
        Message::Lock(Lock { lock: b"l|ck".to_vec(), pk: Some(s(evil)), reference: Some(s(evil)) }),
        Message::AdcGet(AdcTransfer {
            kind: s(evil),
            identifier: s(evil),
            start: 0,
            bytes: -1,
            flags: vec![s(evil)],
        }),
        Message::NickList(vec![s(evil)]),
        Message::Raw(dclua::proto::nmdc::Raw { frame: evil.as_bytes().to_vec(), error: None }),
    ];
    for m in &msgs {
        for cs in [WINDOWS_1252, WINDOWS_1251, UTF_8, encoding_rs::SHIFT_JIS] {
            let wire = encode(m, cs);
            assert_eq!(wire.iter().filter(|&&b| b == b'|').count(), 1, "{m:?} -> {}", show(&wire));
            assert_eq!(wire.last(), Some(&b'|'));
        }
    }
    // The flag bytes `$` and `|` lose the legacy SERVER bit instead of breaking the frame.
    let m = Message::MyInfo(MyInfo { connection: s("LAN"), flag: Some(b'$'), ..MyInfo::default() });
    assert_eq!(encode(&m, WINDOWS_1252), b"$MyINFO $ALL  $ $LAN $$0$|");
}

#[test]
fn myinfo_accessors() {
    let Message::MyInfo(info) =
        parse(b"$MyINFO $ALL a d<++ V:1,M:P,H:1/2/3,S:4,O:5>$ $LAN\x13$$1$", WINDOWS_1252)
    else {
        panic!("not a MyINFO");
    };
    assert!(
        info.has_flag(flags::NORMAL) && info.has_flag(flags::AWAY) && info.has_flag(flags::TLS)
    );
    assert!(!info.has_flag(flags::SERVER));
    let tag = info.tag.expect("tag");
    assert!(tag.is_passive());
    assert_eq!(tag.hubs, Some(HubCounts { normal: 1, registered: 2, op: 3 }));
    assert_eq!(tag.get("O"), Some("5"));
}

// ---------------------------------------------------------------------------
// Captured lines (tests/vectors/nmdc/*.txt)
// ---------------------------------------------------------------------------

fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/nmdc")
}

/// Undoes the escaping of the vector files: `\xNN` and `\\`.
fn unescape_line(line: &str) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex digits");
                    out.push(u8::from_str_radix(hex, 16).expect("hex byte"));
                    i += 4;
                }
                other => panic!("bad escape {other:?} in {line:?}"),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Runs one capture file; returns how many frames it checked.
fn run_capture_file(name: &str) -> usize {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut charset = WINDOWS_1252;
    let mut lines = text.lines().enumerate().peekable();
    let mut checked = 0;
    while let Some((n, line)) = lines.next() {
        let at = format!("{name}:{}", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(label) = line.strip_prefix("@charset ") {
            charset = Encoding::for_label(label.as_bytes())
                .unwrap_or_else(|| panic!("{at}: unknown charset"));
            continue;
        }
        let (mode, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{at}: no mode"));
        let (kind, frame) = rest.split_once(' ').unwrap_or((rest, ""));
        let frame = unescape_line(frame);
        let canonical = match mode {
            "E" => frame.clone(),
            "C" => {
                let (_, next) =
                    lines.next().unwrap_or_else(|| panic!("{at}: C line without = line"));
                unescape_line(
                    next.strip_prefix("= ").unwrap_or_else(|| panic!("{at}: expected \"= \"")),
                )
            }
            _ => panic!("{at}: unknown mode {mode:?}"),
        };
        let msg = parse(&frame, charset);
        assert_eq!(msg.kind(), kind, "{at}: {} parsed as {msg:?}", show(&frame));
        assert_eq!(
            show(&encode(&msg, charset)),
            show(&framed(&canonical)),
            "{at}: re-encoding of {msg:?}"
        );
        assert_eq!(parse(&canonical, charset), msg, "{at}: canonical form parses differently");
        checked += 1;
    }
    checked
}

#[test]
fn captured_hub_lines() {
    assert!(run_capture_file("verlihub-hub.txt") >= 30);
}

#[test]
fn captured_client_to_hub_lines() {
    assert!(run_capture_file("eiskalt-to-hub.txt") >= 10);
}

#[test]
fn captured_client_client_lines() {
    assert!(run_capture_file("eiskalt-cc.txt") >= 10);
}

#[test]
fn captured_udp_search_results() {
    assert!(run_capture_file("eiskalt-udp.txt") >= 3);
}

#[test]
fn captured_lock_key_pairs() {
    let path = vectors_dir().join("lock-key.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lock = None;
    let mut pairs = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        if let Some(l) = line.strip_prefix("LOCK ") {
            lock = Some(unescape_line(l));
        } else if let Some(k) = line.strip_prefix("KEY ") {
            let l = lock.take().expect("KEY after LOCK");
            let key = unescape_line(k);
            assert_eq!(show(&lock_to_key(&l)), show(&key), "key of lock {}", show(&l));
            // The same through $Lock parsing, with the Pk= part the peers sent.
            let mut frame = b"$Lock ".to_vec();
            frame.extend_from_slice(&l);
            frame.extend_from_slice(b" Pk=DCPLUSPLUS2.4.2Ref=dchub://127.0.0.1:28100");
            let Message::Lock(parsed) = parse(&frame, WINDOWS_1252) else { panic!("not a $Lock") };
            assert_eq!(parsed.key(), key);
            pairs += 1;
        }
    }
    assert_eq!(pairs, 3);
}

#[test]
fn captured_values_are_understood() {
    // A few captured lines checked field by field, beyond their kind.
    let m = parse(
        b"$MyINFO $ALL \xd0\x9a\xd0\xb0\xd1\x80\xd0\xbb harness peer carol <EiskaltDC++ V:2.4.2,M:P,H:1/0/0,S:10>$ $100!$$0$",
        UTF_8,
    );
    let mut want = my_info(
        "Карл",
        "harness peer carol ",
        Some(tag("EiskaltDC++", Some("2.4.2"), Some("P"), Some((1, 0, 0)), Some(10))),
        "100",
        Some(b'!'),
    );
    want.share = 0;
    assert_eq!(m, Message::MyInfo(want));

    let m = parse(
        b"$SR alice share\\Some Dir 10/10\x05TTH:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA (127.0.0.1:28100)\x05\xd0\x9a\xd0\xb0\xd1\x80\xd0\xbb",
        UTF_8,
    );
    let Message::SearchResult(sr) = m else { panic!("{m:?}") };
    assert!(sr.is_dir());
    assert_eq!(
        (sr.path.as_str(), sr.target.as_deref(), sr.free_slots),
        ("share\\Some Dir", Some("Карл"), 10)
    );
    assert_eq!(sr.tth(), Some(Tth([0; 24])));

    let m = parse(b"$SR alice share\\Some Dir\\file with spaces & $dollar.bin\x05300000 10/10\x05TTH:CJ244N5CWQNOP6NLCVGBHUEVHQCYCYCKNQOCGOY (127.0.0.1:28100)", UTF_8);
    let Message::SearchResult(sr) = m else { panic!("{m:?}") };
    assert_eq!(sr.path, "share\\Some Dir\\file with spaces & $dollar.bin");
    assert_eq!((sr.size, sr.hub_address.as_str()), (Some(300_000), "127.0.0.1:28100"));
    assert_eq!(sr.tth(), Some(tth("CJ244N5CWQNOP6NLCVGBHUEVHQCYCYCKNQOCGOY")));

    let m =
        parse(b"$ADCSND file /share/Some\\ Dir/file\\ with\\ spaces\\ &\\ $dollar.bin 0 10", UTF_8);
    let Message::AdcSnd(t) = m else { panic!("{m:?}") };
    assert_eq!(t.identifier, "/share/Some Dir/file with spaces & $dollar.bin");
    assert_eq!((t.start, t.bytes), (0, 10));

    let m = parse(b"$Search Hub:\xd0\x9a\xd0\xb0\xd1\x80\xd0\xbb T?F?1572864?1?small$txt", UTF_8);
    assert_eq!(
        m,
        Message::Search(Search {
            source: SearchSource::Passive { nick: s("Карл") },
            size: SizeLimit::AtLeast(1_572_864),
            file_type: file_type::ANY,
            pattern: SearchPattern::Text(s("small txt")),
        })
    );
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PREFIXES: [&[u8]; 44] = [
    b"",
    b"<",
    b"<n> ",
    b"$Lock ",
    b"$Key ",
    b"$Supports ",
    b"$ValidateNick ",
    b"$GetPass ",
    b"$MyPass ",
    b"$BadPass",
    b"$ValidateDenide ",
    b"$Hello ",
    b"$Version ",
    b"$GetNickList",
    b"$MyINFO ",
    b"$MyINFO $ALL ",
    b"$NickList ",
    b"$OpList ",
    b"$BotList ",
    b"$Quit ",
    b"$To: ",
    b"$To: a From: b $",
    b"$Search ",
    b"$Search Hub:",
    b"$Search 1.2.3.4:5 ",
    b"$SR ",
    b"$SR n ",
    b"$ConnectToMe ",
    b"$RevConnectToMe ",
    b"$ForceMove ",
    b"$UserIP ",
    b"$HubName ",
    b"$HubTopic ",
    b"$UserCommand ",
    b"$ZOn",
    b"$GetINFO ",
    b"$LogedIn ",
    b"$HubIsFull",
    b"$MyNick ",
    b"$Direction ",
    b"$ADCGET ",
    b"$ADCSND ",
    b"$MaxedOut ",
    b"$Error ",
];

/// Bytes that mean something to the parsers, plus high bytes.
const ALPHABET: &[u8] =
    b" $$?\x05:/<>&#;\\\nTFNRSAPVMHO,0123456789.()abcTTH:\x01\xff\xd0\x9a\xc3\x80";

fn random_frame(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let mut f = PREFIXES[rng.below(PREFIXES.len())].to_vec();
    let len = rng.below(max_len + 1);
    for _ in 0..len {
        f.push(if rng.below(8) == 0 {
            rng.next() as u8
        } else {
            ALPHABET[rng.below(ALPHABET.len())]
        });
    }
    f
}

/// What must hold for any input: no panic (by reaching the asserts), exactly
/// one frame out, and the canonical form is a fixed point.
fn check_hostile(frame: &[u8], charset: &'static Encoding) {
    let msg = parse(frame, charset);
    let wire = encode(&msg, charset);
    let at = || short(&show(frame));
    assert_eq!(
        wire.iter().filter(|&&b| b == b'|').count(),
        1,
        "{} -> {}",
        at(),
        short(&show(&wire))
    );
    assert_eq!(wire.last(), Some(&b'|'));
    if frame.contains(&b'|') {
        return; // Not a real frame: the fixed point below does not apply.
    }
    let canonical = &wire[..wire.len() - 1];
    let again = parse(canonical, charset);
    assert!(
        again == msg,
        "{} -> {} parses differently: {}",
        at(),
        short(&show(canonical)),
        short(&format!("{again:?}"))
    );
    assert!(
        encode(&again, charset) == wire,
        "{} -> {} is not a fixed point",
        at(),
        short(&show(canonical))
    );
}

#[test]
fn random_frames_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..60_000 {
        let charset = [WINDOWS_1252, WINDOWS_1251, UTF_8][i % 3];
        let frame = random_frame(&mut rng, 80);
        check_hostile(&frame, charset);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    for _ in 0..20_000 {
        let len = rng.below(64);
        let frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_hostile(&frame, UTF_8);
        check_hostile(&frame, WINDOWS_1251);
    }
}

#[test]
fn truncated_frames_never_panic() {
    let all = [
        handshake_vectors(),
        user_vectors(),
        chat_vectors(),
        search_vectors(),
        connection_vectors(),
        hub_vectors(),
    ];
    for v in all.iter().flatten() {
        for end in 0..=v.wire.len() {
            check_hostile(&v.wire[..end], v.charset);
            check_hostile(&v.wire[end..], v.charset);
        }
    }
}

#[test]
fn megabyte_frames_never_panic() {
    // 1 MiB frames after every command prefix: random significant bytes, a
    // run of `$` and a run of `>` (worst cases for the list and chat
    // splitters). Parsing must stay linear; the output must be one frame.
    let mut rng = Rng(42);
    let body: Vec<u8> = (0..1 << 20).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
    let dollars: Vec<u8> = vec![b'$'; 1 << 20];
    let gts: Vec<u8> = vec![b'>'; 1 << 20];
    for (i, prefix) in PREFIXES.iter().enumerate() {
        for tail in [&body, &dollars, &gts] {
            let mut frame = prefix.to_vec();
            frame.extend_from_slice(tail);
            if i % 4 == 0 {
                check_hostile(&frame, UTF_8);
            } else {
                let wire = encode(&parse(&frame, UTF_8), UTF_8);
                assert_eq!(
                    wire.iter().filter(|&&b| b == b'|').count(),
                    1,
                    "{}",
                    short(&show(&frame))
                );
            }
        }
    }
}
