//! Test vectors for `proto::adc`: tables of (wire line, parsed value,
//! canonical re-encoding) for the generic message, every typed view, escapes
//! and errors; the lines captured from uhub and eiskaltdcpp in
//! `tests/vectors/adc/`; and hostile input that must never panic.

use std::fmt::Debug;
use std::net::Ipv4Addr;

use dclua::proto::adc::commands::transfer_type;
use dclua::proto::adc::features::{self, Feature, FeatureFilter};
use dclua::proto::adc::status::code;
use dclua::proto::adc::{
    self, encode, parse, password_response, AnyCid, Away, Cid, Command, CommandName, CommandView,
    Ctm, FileType, Get, Gfi, Gpa, Header, Inf, Message, MessageType, Msg, ParseError, Pas, Pid,
    Qui, Rcm, Res, Sch, Severity, Sid, SidCmd, Snd, Sta, Sup, Update, UserType, ViewErrorKind,
};
use dclua::proto::tth::Tth;
use rand::{Rng, SeedableRng};

const UHUB: &str = include_str!("vectors/adc/uhub.txt");
const EISKALTDCPP: &str = include_str!("vectors/adc/eiskaltdcpp.txt");
const PASSWORDS: &str = include_str!("vectors/adc/password.txt");

fn sid(text: &str) -> Sid {
    text.parse().unwrap()
}

fn tth(text: &str) -> Tth {
    text.parse().unwrap()
}

fn cid(text: &str) -> Cid {
    text.parse().unwrap()
}

fn msg(line: &str) -> Message {
    parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn set<T>(v: T) -> Option<Update<T>> {
    Some(Update::Set(v))
}

/// The data lines of a vectors file (not comments, not empty).
fn vector_lines(file: &'static str) -> impl Iterator<Item = &'static str> {
    file.lines().filter(|l| !l.is_empty() && !l.starts_with('#'))
}

// ---------------------------------------------------------------------------
// Generic messages

/// (wire, header, command, parameters, canonical re-encoding or "" if the same)
fn message_table() -> Vec<(&'static str, Header, &'static str, Vec<&'static str>, &'static str)> {
    let a = sid("AAAB");
    let b = sid("AAAC");
    vec![
        ("HSUP ADBASE ADTIGR", Header::Hub, "SUP", vec!["ADBASE", "ADTIGR"], ""),
        ("ISID AAAB", Header::Info, "SID", vec!["AAAB"], ""),
        ("BMSG AAAB hello\\sworld", Header::Broadcast { from: a }, "MSG", vec!["hello world"], ""),
        ("CINF IDX TO1", Header::Client, "INF", vec!["IDX", "TO1"], ""),
        (
            "DCTM AAAB AAAC ADC/1.0 3000 tok",
            Header::Direct { from: a, to: b },
            "CTM",
            vec!["ADC/1.0", "3000", "tok"],
            "",
        ),
        (
            "EMSG AAAB AAAC x PMAAAB",
            Header::Echo { from: a, to: b },
            "MSG",
            vec!["x", "PMAAAB"],
            "",
        ),
        (
            "FSCH AAAC +TCP4-NAT0 TO1 ANa",
            Header::Feature {
                from: b,
                filter: FeatureFilter::new().require(Feature::TCP4).exclude(Feature::NAT0),
            },
            "SCH",
            vec!["TO1", "ANa"],
            "",
        ),
        (
            "URES 6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI SI1 FN/a",
            Header::Udp { cid: cid("6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI").into() },
            "RES",
            vec!["SI1", "FN/a"],
            "",
        ),
        // A CID of another length is kept as text.
        (
            "USCH ABCDEFGH ANx",
            Header::Udp { cid: AnyCid::Other("ABCDEFGH".into()) },
            "SCH",
            vec!["ANx"],
            "",
        ),
        // Non-zero spare bits in a 39-character CID: decoded, then written as zero.
        (
            "URES 6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HJ FN/a",
            Header::Udp { cid: cid("6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI").into() },
            "RES",
            vec!["FN/a"],
            "URES 6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI FN/a",
        ),
        // No parameters at all, and a trailing newline in the input.
        ("HZON\n", Header::Hub, "ZON", vec![], "HZON"),
        // Every escape, and escapes next to each other.
        (
            "BMSG AAAB a\\sb\\nc\\\\d \\s\\s\\\\\\n",
            Header::Broadcast { from: a },
            "MSG",
            vec!["a b\nc\\d", "  \\\n"],
            "",
        ),
        // Empty parameters (eiskaltdcpp's CSTA 000 with no text) are kept.
        ("CSTA 000  RFadc://h:1", Header::Client, "STA", vec!["000", "", "RFadc://h:1"], ""),
        ("BINF AAAB ", Header::Broadcast { from: a }, "INF", vec![""], ""),
        // UTF-8 text.
        ("BMSG AAAB ünïcödé\\s☃", Header::Broadcast { from: a }, "MSG", vec!["ünïcödé ☃"], ""),
        // Unknown commands parse like any other.
        (
            "ICMD Hub\\smenu TTHMSG\\s+info\\n CT3",
            Header::Info,
            "CMD",
            vec!["Hub menu", "TTHMSG +info\n", "CT3"],
            "",
        ),
        ("HXY9 param", Header::Hub, "XY9", vec!["param"], ""),
    ]
}

#[test]
fn generic_message_table() {
    for (wire, header, command, params, canonical) in message_table() {
        let m = msg(wire);
        assert_eq!(m.header(), &header, "{wire:?}");
        assert_eq!(m.command().as_str(), command, "{wire:?}");
        assert_eq!(m.params().collect::<Vec<_>>(), params, "{wire:?}");
        assert_eq!(m.len(), params.len());
        let want = if canonical.is_empty() { wire.trim_end_matches('\n') } else { canonical };
        assert_eq!(String::from_utf8(encode(&m)).unwrap(), format!("{want}\n"), "{wire:?}");
        assert_eq!(m.to_string(), want);
        // Building the same message by hand gives an equal value.
        let mut built = Message::new(header, CommandName::parse(command).unwrap());
        for p in &params {
            built.push(p);
        }
        assert_eq!(built, m, "{wire:?}");
        assert_eq!(parse(&m.encode()).unwrap(), m, "{wire:?} round trip");
    }
}

#[test]
fn parse_error_table() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Empty),
        (b"\n", ParseError::Empty),
        (b"XINF", ParseError::BadType { found: 'X' }),
        (b"binf AAAB", ParseError::BadType { found: 'b' }),
        ("ÄINF".as_bytes(), ParseError::BadType { found: 'Ä' }),
        (b"B", ParseError::BadCommand { found: "B".into() }),
        (b"BIN", ParseError::BadCommand { found: "BIN".into() }),
        (b"BINFO AAAB", ParseError::BadCommand { found: "BINFO".into() }),
        (b"Binf AAAB", ParseError::BadCommand { found: "Binf".into() }),
        (b"B1NF AAAB", ParseError::BadCommand { found: "B1NF".into() }),
        (b" BINF", ParseError::BadType { found: ' ' }),
        (b"BINF", ParseError::MissingField { what: "source SID", letter: 'B' }),
        (b"DCTM AAAB", ParseError::MissingField { what: "target SID", letter: 'D' }),
        (b"FSCH AAAB", ParseError::MissingField { what: "feature filter", letter: 'F' }),
        (b"URES", ParseError::MissingField { what: "CID", letter: 'U' }),
        (b"BINF AAA", ParseError::BadSid { what: "source SID", found: "AAA".into(), offset: 5 }),
        (
            b"BINF AAAAA",
            ParseError::BadSid { what: "source SID", found: "AAAAA".into(), offset: 5 },
        ),
        (b"BINF aaab", ParseError::BadSid { what: "source SID", found: "aaab".into(), offset: 5 }),
        (b"BINF AA1B", ParseError::BadSid { what: "source SID", found: "AA1B".into(), offset: 5 }),
        (b"BINF  AAAB", ParseError::BadSid { what: "source SID", found: "".into(), offset: 5 }),
        (
            b"EMSG AAAB AAA8 x",
            ParseError::BadSid { what: "target SID", found: "AAA8".into(), offset: 10 },
        ),
        (b"FSCH AAAB TCP4", ParseError::BadFeatureFilter { found: "TCP4".into(), offset: 10 }),
        (b"FSCH AAAB +TCP", ParseError::BadFeatureFilter { found: "+TCP".into(), offset: 10 }),
        (b"URES abc FN/x", ParseError::BadCid { found: "abc".into(), offset: 5 }),
        (b"BMSG AAAB a\\tb", ParseError::BadEscape { offset: 11, found: 't' }),
        (b"BMSG AAAB ok PMAAAB \\x", ParseError::BadEscape { offset: 20, found: 'x' }),
        (b"BMSG AAAB \\S", ParseError::BadEscape { offset: 10, found: 'S' }),
        (b"BMSG AAAB end\\", ParseError::DanglingEscape { offset: 13 }),
        (b"BMSG AAAB a\\ b", ParseError::DanglingEscape { offset: 11 }),
        (b"BMSG AAAB \xff", ParseError::NotUtf8 { offset: 10 }),
        (b"BMSG AAAB \xc3", ParseError::NotUtf8 { offset: 10 }),
        (b"BMSG AAAB \xed\xa0\x80", ParseError::NotUtf8 { offset: 10 }),
        (b"\xffINF", ParseError::NotUtf8 { offset: 0 }),
    ];
    for (wire, want) in cases {
        let got = parse(wire).unwrap_err();
        assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(wire));
        // Every error names the problem in words.
        assert!(!got.to_string().is_empty());
    }
    // The escape error message says the whole message is discarded.
    let text = parse(b"BMSG AAAB a\\tb").unwrap_err().to_string();
    assert!(text.contains("unknown escape \\t") && text.contains("discard"), "{text}");
}

#[test]
fn named_params_and_updates() {
    let m = msg("BSCH AAAB TO1 ANfoo ANbar NObaz EXmp3 EXogg");
    assert_eq!(m.get_all("AN").collect::<Vec<_>>(), ["foo", "bar"]);
    assert_eq!(m.get_all("EX").collect::<Vec<_>>(), ["mp3", "ogg"]);
    assert_eq!(m.get("TO"), Some("1"));
    assert_eq!(m.get("XX"), None);

    // SUP items are named parameters too.
    let sup = msg("HSUP ADBAS0 ADBASE ADTIGR");
    assert_eq!(sup.get_all("AD").collect::<Vec<_>>(), ["BAS0", "BASE", "TIGR"]);

    // Folding incremental INFs into a stored one (real lines from uhub).
    let mut alice = msg(
        "BINF AAAB ID6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI NIalice DEharness\\speer\\sa SL10 FS10 \
         SS300016 SF2 HN0 HR0 HO0 APEiskaltDC++ VE2.4.2 US13107200 U428210 SUSEGA,TCP4,UDP4 I4127.0.0.1",
    );
    alice.apply_update(&msg("BINF AAAB FS9 HN1"));
    alice.apply_update(&msg("BINF AAAB DE AW1"));
    let inf = Inf::from_message(&alice).unwrap();
    assert_eq!(inf.free_slots, set(9));
    assert_eq!(inf.hubs_normal, set(1));
    assert_eq!(inf.description, None);
    assert_eq!(inf.away, set(Away::Away));
    assert_eq!(inf.nick, set("alice"));
    assert_eq!(alice.len(), 16);
}

// ---------------------------------------------------------------------------
// Typed views: (wire, parsed view, canonical re-encoding)

fn check<'a, V>(m: &'a Message, want: V, canonical: &str)
where
    V: CommandView<'a> + PartialEq + Debug,
{
    let got = V::from_message(m).unwrap_or_else(|e| panic!("{m}: {e}"));
    assert_eq!(got, want, "{m}");
    let rebuilt = want.to_message(m.header().clone());
    assert_eq!(String::from_utf8(rebuilt.encode()).unwrap(), format!("{canonical}\n"), "{m}");
    // The generic dispatcher agrees.
    assert!(!matches!(Command::from_message(m), Ok(Command::Raw(_)) | Err(_)), "{m}");
}

macro_rules! view {
    ($wire:expr, $want:expr) => {
        view!($wire, $want, $wire)
    };
    ($wire:expr, $want:expr, $canonical:expr) => {{
        let m = msg($wire);
        check(&m, $want, $canonical);
    }};
}

#[test]
fn sup_and_sid_views() {
    use Feature as F;
    view!("HSUP ADBAS0 ADBASE ADTIGR", Sup::adding(&features::HUB_SUP));
    view!(
        "HSUP ADBAS0 ADBASE ADTIGR ADUCM0 ADBLO0 ADZLIF",
        Sup { add: vec![F::BAS0, F::BASE, F::TIGR, F::UCM0, F::BLO0, F::ZLIF], remove: vec![] }
    );
    view!("CSUP ADBAS0 ADBASE ADTIGR ADBZIP", Sup::adding(&features::CC_SUP));
    view!(
        "ISUP ADBASE RMZLIF ADTIGR",
        Sup { add: vec![F::BASE, F::TIGR], remove: vec![F::ZLIF] },
        "ISUP ADBASE ADTIGR RMZLIF"
    );
    // An over-long feature name is skipped, not fatal.
    view!("ISUP ADBASE ADTOOLONG", Sup { add: vec![F::BASE], remove: vec![] }, "ISUP ADBASE");
    view!("ISID AAAB", SidCmd { sid: sid("AAAB") });
    view!("ISID 7777", SidCmd { sid: Sid::new(Sid::MAX).unwrap() });
}

#[test]
fn inf_views() {
    use Feature as F;
    // eiskaltdcpp's login INF, field order included.
    let wire = "BINF AAAC ID6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ PDT4F6PHIIDBCFBKQKPAOQ2VAKO3RJRFHGEKONO5Y \
                NIbob DEharness\\speer\\sb SL10 FS10 SS0 SF0 HN0 HR0 HO0 APEiskaltDC++ VE2.4.2 US13107200 \
                I4127.0.0.1 U428220 SUSEGA,TCP4,UDP4";
    let pid: Pid = "T4F6PHIIDBCFBKQKPAOQ2VAKO3RJRFHGEKONO5Y".parse().unwrap();
    view!(
        wire,
        Inf {
            cid: set(pid.cid().into()),
            pid: set(pid),
            nick: set("bob"),
            description: set("harness peer b"),
            slots: set(10),
            free_slots: set(10),
            share_size: set(0),
            shared_files: set(0),
            hubs_normal: set(0),
            hubs_registered: set(0),
            hubs_operator: set(0),
            application: set("EiskaltDC++"),
            version: set("2.4.2"),
            upload_speed: set(13107200),
            ip4: set(Ipv4Addr::new(127, 0, 0, 1)),
            udp4: set(28220),
            features: set(vec![F::SEGA, F::TCP4, F::UDP4]),
            ..Inf::default()
        }
    );
    // The hub's own INF.
    view!(
        "IINF CT32 VEuhub/0.4.1-release NIharness-adc-hub DEuhub\\stest\\shub\\s(loopback\\sonly)",
        Inf {
            client_type: set(UserType::HUB),
            version: set("uhub/0.4.1-release"),
            nick: set("harness-adc-hub"),
            description: set("uhub test hub (loopback only)"),
            ..Inf::default()
        },
        "IINF NIharness-adc-hub DEuhub\\stest\\shub\\s(loopback\\sonly) VEuhub/0.4.1-release CT32"
    );
    // Incremental: changes and clears; unknown fields are ignored.
    view!(
        "BINF AAAB FS9 HN1 DE I4 SU XXwhatever AW2",
        Inf {
            free_slots: set(9),
            hubs_normal: set(1),
            description: Some(Update::Clear),
            ip4: Some(Update::Clear),
            features: Some(Update::Clear),
            away: set(Away::ExtendedAway),
            ..Inf::default()
        },
        "BINF AAAB DE FS9 HN1 I4 SU AW2"
    );
    // Client-client INF, TLS fields, IPv6, other-length CID.
    view!(
        "CINF IDWQ4ZI5J5NMAY3QCWH3LHLUSIDHS23ROFQUU2EMI TO3835833341",
        Inf {
            cid: set(cid("WQ4ZI5J5NMAY3QCWH3LHLUSIDHS23ROFQUU2EMI").into()),
            token: set("3835833341"),
            ..Inf::default()
        }
    );
    view!(
        "BINF AAAD IDABCD KPSHA256/E3MZH3LE I6::1 U63000 SUADC0,TCP6 CT6 LCen-US EMa@b RFadc://x:1 DS5 AS9 AM2",
        Inf {
            cid: set(AnyCid::Other("ABCD".into())),
            keyprint: set("SHA256/E3MZH3LE"),
            ip6: set("::1".parse().unwrap()),
            udp6: set(3000),
            features: set(vec![F::ADC0, F::TCP6]),
            client_type: set(UserType(6)),
            locale: set("en-US"),
            email: set("a@b"),
            referrer: set("adc://x:1"),
            download_speed: set(5),
            auto_slot_speed: set(9),
            min_auto_slots: set(2),
            ..Inf::default()
        },
        "BINF AAAD IDABCD DS5 AS9 AM2 EMa@b I6::1 U63000 SUADC0,TCP6 CT6 KPSHA256/E3MZH3LE LCen-US RFadc://x:1"
    );
    let ct = UserType(6);
    assert!(ct.contains(UserType::OPERATOR) && ct.is_operator() && !ct.contains(UserType::BOT));
}

#[test]
fn inf_errors_and_lossy_reading() {
    let m = msg("BINF AAAB NIok SSlots SL3 I4300.1.1.1 SUTCP4,LONGER");
    let err = Inf::from_message(&m).unwrap_err();
    assert_eq!(err.command, CommandName::INF);
    assert!(matches!(err.kind, ViewErrorKind::BadValue { field: "SS", .. }), "{err}");
    assert!(err.to_string().contains("SS") && err.to_string().contains("lots"), "{err}");
    let (inf, errors) = Inf::from_message_lossy(&m);
    assert_eq!(inf.nick, set("ok"));
    assert_eq!(inf.slots, set(3));
    assert_eq!(inf.share_size, None);
    assert_eq!(inf.ip4, None);
    assert_eq!(inf.features, None);
    let fields: Vec<_> = errors
        .iter()
        .map(|e| match &e.kind {
            ViewErrorKind::BadValue { field, .. } => *field,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(fields, ["SS", "I4", "SU"]);
    for bad in [
        "BINF AAAB SS-1",
        "BINF AAAB SS+1",
        "BINF AAAB U470000",
        "BINF AAAB PDSHORT",
        "BINF AAAB IDlower",
    ] {
        assert!(Inf::from_message(&msg(bad)).is_err(), "{bad}");
    }
    let wrong = Inf::from_message(&msg("BMSG AAAB hi")).unwrap_err();
    assert_eq!(wrong.kind, ViewErrorKind::WrongCommand { found: CommandName::MSG });
}

#[test]
fn msg_views() {
    view!(
        "BMSG AAAB hello\\sworld,\\sback\\\\slash\\sand\\nnewline",
        Msg::chat("hello world, back\\slash and\nnewline")
    );
    view!("BMSG AAAC waves ME1", Msg { me: true, ..Msg::chat("waves") });
    view!("EMSG AAAC AAAB psst\\salice PMAAAC", Msg::private("psst alice", sid("AAAC")));
    view!(
        "DMSG AAAB AAAC hi TS1700000000 ME1 PMAAAD",
        Msg { text: "hi", pm: Some(sid("AAAD")), me: true, timestamp: Some(1_700_000_000) },
        "DMSG AAAB AAAC hi PMAAAD ME1 TS1700000000"
    );
    // ME0 is not third person.
    view!("BMSG AAAB x ME0", Msg::chat("x"), "BMSG AAAB x");
    // Text that looks like a flag is still the text.
    view!("BMSG AAAB PMAAAB", Msg::chat("PMAAAB"));
    assert!(Msg::from_message(&msg("BMSG AAAB")).is_err());
    assert!(Msg::from_message(&msg("EMSG AAAB AAAC x PMlower")).is_err());
}

#[test]
fn sch_and_res_views() {
    let root = "4BZNIEXFEUXVDB4U4PQ2R2QYWVRANWODG7OB3XY";
    view!(
        "BSCH AAAC TO3143102668 ANhello",
        Sch { token: Some("3143102668"), include: vec!["hello"], ..Sch::default() }
    );
    view!(
        &format!("FSCH AAAC +TCP4-NAT0 TO1373579106 TR{root}"),
        Sch { token: Some("1373579106"), tth: Some(tth(root)), ..Sch::default() }
    );
    view!(
        "BSCH AAAD TOcapture3 ANrandom EXbin GE1000 LE400000 TY1",
        Sch {
            token: Some("capture3"),
            include: vec!["random"],
            extensions: vec!["bin"],
            min_size: Some(1000),
            max_size: Some(400000),
            file_type: Some(FileType::File),
            ..Sch::default()
        }
    );
    view!(
        "BSCH AAAB ANa\\sb NOc ANd EQ5 TY2 GR33 RXmp3 RXwav TD7 EXx",
        Sch {
            include: vec!["a b", "d"],
            exclude: vec!["c"],
            extensions: vec!["x"],
            exact_size: Some(5),
            file_type: Some(FileType::Directory),
            groups: Some(33),
            excluded_extensions: vec!["mp3", "wav"],
            tree_depth: Some(7),
            ..Sch::default()
        },
        "BSCH AAAB ANa\\sb ANd NOc EXx EQ5 TY2 TD7 GR33 RXmp3 RXwav"
    );
    for bad in ["BSCH AAAB TY3", "BSCH AAAB LEx", "BSCH AAAB TRshort", "BSCH AAAB GE-1"] {
        assert!(Sch::from_message(&msg(bad)).is_err(), "{bad}");
    }

    let leaf = "XV66LRMZNY3VJLR7G543VS7AHEAR6E3PWDNUICI";
    let hello = Res {
        path: "/share-a/hello file.txt",
        size: Some(16),
        slots: Some(10),
        tth: Some(tth(leaf)),
        token: Some("2859343270"),
        tree_depth: None,
    };
    view!(
        &format!("DRES AAAB AAAC SI16 SL10 FN/share-a/hello\\sfile.txt TR{leaf} TO2859343270"),
        hello
    );
    view!(
        &format!("URES 6BNRHYVKN2OFI2KAVSLW4DGVKDAVLIBZ4W2N2HI SI16 SL10 FN/share-a/hello\\sfile.txt TR{leaf} TO2859343270"),
        hello
    );
    // GFI's answer, in eiskaltdcpp's order, re-encoded in RES order.
    view!(
        &format!("CRES FN/share-a/hello\\sfile.txt SI16 TR{leaf}"),
        Res { slots: None, token: None, ..hello },
        &format!("CRES SI16 FN/share-a/hello\\sfile.txt TR{leaf}")
    );
    // eiskaltdcpp's directory result: trailing slash, all-zero TTH.
    let dir = msg("DRES AAAB AAAC SI300016 SL10 FN/share-a/ TRAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA TO1903221067");
    let res = Res::from_message(&dir).unwrap();
    assert!(res.is_directory());
    assert_eq!(res.tth, Some(Tth([0; 24])));
    assert!(Res::from_message(&msg("DRES AAAB AAAC SI1")).is_err());
}

#[test]
fn connection_views() {
    view!(
        "DCTM AAAC AAAB ADC/1.0 28220 3878458027",
        Ctm { protocol: adc::PROTOCOL_ADC, port: 28220, token: "3878458027" }
    );
    view!(
        "DCTM AAAE AAAD ADCS/0.10 28261 3835833341",
        Ctm { protocol: adc::PROTOCOL_ADCS, port: 28261, token: "3835833341" }
    );
    view!("DRCM AAAC AAAB ADC/1.0 1984640432", Rcm { protocol: "ADC/1.0", token: "1984640432" });
    for bad in [
        "DCTM AAAC AAAB ADC/1.0 70000 t",
        "DCTM AAAC AAAB ADC/1.0 x t",
        "DCTM AAAC AAAB ADC/1.0 1",
        "DRCM AAAC AAAB ADC/1.0",
    ] {
        assert!(Command::from_message(&msg(bad)).is_err(), "{bad}");
    }
    view!(
        "IGPA 22RMQ4N5DZVFEFX53UR4GEJPFW4HIS2BMPLQSWY",
        Gpa { salt: "22RMQ4N5DZVFEFX53UR4GEJPFW4HIS2BMPLQSWY" }
    );
    view!(
        "HPAS B6DQ7GTNWVXC74BSZ3QVV33UQMXT5LZEJ2AM6PY",
        Pas { response: "B6DQ7GTNWVXC74BSZ3QVV33UQMXT5LZEJ2AM6PY".into() }
    );
    let gpa = Gpa { salt: "22RMQ4N5DZVFEFX53UR4GEJPFW4HIS2BMPLQSWY" };
    assert_eq!(
        gpa.respond("secret").unwrap().to_message(Header::Hub).encode(),
        b"HPAS B6DQ7GTNWVXC74BSZ3QVV33UQMXT5LZEJ2AM6PY\n"
    );
}

#[test]
fn qui_and_sta_views() {
    let bare = Qui {
        sid: sid("AAAC"),
        initiator: None,
        time_left: None,
        message: None,
        redirect: None,
        disconnect_transfers: false,
    };
    view!("IQUI AAAC", bare);
    view!(
        "IQUI AAAD MSNickname\\sis\\salready\\sin\\suse",
        Qui { sid: sid("AAAD"), message: Some("Nickname is already in use"), ..bare }
    );
    view!(
        "IQUI AAAB IDAAAC TL-1 MSbanned RDadc://other:1 DI1",
        Qui {
            sid: sid("AAAB"),
            initiator: Some(sid("AAAC")),
            time_left: Some(-1),
            message: Some("banned"),
            redirect: Some("adc://other:1"),
            disconnect_transfers: true
        }
    );
    assert!(Qui::from_message(&msg("IQUI ABC")).is_err());

    view!(
        "ISTA 000 Powered\\sby\\suhub/0.4.1-release",
        Sta::new(Severity::Success, 0, "Powered by uhub/0.4.1-release")
    );
    view!(
        "ISTA 222 Nickname\\sis\\salready\\sin\\suse",
        Sta::new(Severity::Fatal, code::NICK_TAKEN, "Nickname is already in use")
    );
    view!(
        "ISTA 243 CID\\sis\\snot\\svalid FBID",
        Sta { bad_field: Some("ID"), ..Sta::new(Severity::Fatal, 43, "CID is not valid") }
    );
    view!(
        "ISTA 243 CID\\sis\\snot\\sspecified FMID",
        Sta { missing_field: Some("ID"), ..Sta::new(Severity::Fatal, 43, "CID is not specified") }
    );
    view!(
        "DSTA AAAB AAAD 241 Protocol\\sunknown PRFOO/1.0 TObadproto1",
        Sta {
            protocol: Some("FOO/1.0"),
            token: Some("badproto1"),
            ..Sta::new(Severity::Fatal, code::PROTOCOL_UNSUPPORTED, "Protocol unknown")
        }
    );
    view!(
        "CSTA 000  RFadc://127.0.0.1:28200",
        Sta { referrer: Some("adc://127.0.0.1:28200"), ..Sta::new(Severity::Success, 0, "") }
    );
    view!(
        "CSTA 151 File\\sNot\\sAvailable",
        Sta::new(Severity::Recoverable, code::FILE_NOT_AVAILABLE, "File Not Available")
    );
    view!(
        "CSTA 153 No\\sslots QP3",
        Sta { queue_position: Some(3), ..Sta::new(Severity::Recoverable, 53, "No slots") }
    );
    view!(
        "ISTA 232 Banned TL600 FCBMSG",
        Sta {
            time_left: Some(600),
            fourcc: Some("BMSG"),
            ..Sta::new(Severity::Fatal, 32, "Banned")
        },
        "ISTA 232 Banned FCBMSG TL600"
    );
    view!(
        "ISTA 246 Bad\\sIP I41.2.3.4",
        Sta { ip4: Some(Ipv4Addr::new(1, 2, 3, 4)), ..Sta::new(Severity::Fatal, 46, "Bad IP") }
    );
    // A code without text still reads.
    view!("ISTA 100", Sta::new(Severity::Recoverable, 0, ""), "ISTA 100 ");

    let taken = msg("ISTA 222 x");
    let sta = Sta::from_message(&taken).unwrap();
    assert_eq!(sta.description(), "nick taken");
    assert_eq!(sta.code_string(), "222");
    assert_eq!(Sta::new(Severity::Fatal, 49, "").description(), "protocol error");
    for bad in ["ISTA 322 x", "ISTA 22 x", "ISTA 2222 x", "ISTA abc x", "ISTA", "ISTA 200 x TLsoon"]
    {
        assert!(Sta::from_message(&msg(bad)).is_err(), "{bad}");
    }
}

#[test]
fn transfer_views() {
    let root = "4BZNIEXFEUXVDB4U4PQ2R2QYWVRANWODG7OB3XY";
    let tthl = Get {
        kind: transfer_type::TTHL,
        identifier: &format!("TTH/{root}"),
        start: 0,
        length: None,
        compressed: false,
        recursive: false,
        downloaded: None,
    };
    view!(&format!("CGET tthl TTH/{root} 0 -1"), tthl);
    assert_eq!(tthl.tth(), Some(tth(root)));
    view!(
        &format!("CGET file TTH/{root} 262144 37856"),
        Get { kind: "file", start: 262144, length: Some(37856), ..tthl }
    );
    view!(
        "CGET file files.xml.bz2 0 -1",
        Get { kind: "file", identifier: transfer_type::FILE_LIST_BZ2, ..tthl }
    );
    view!("CGET list / 0 -1 RE1", Get { kind: "list", identifier: "/", recursive: true, ..tthl });
    view!(
        "CGET file TTH/X 5 10 DB5 ZL1",
        Get {
            kind: "file",
            identifier: "TTH/X",
            start: 5,
            length: Some(10),
            compressed: true,
            downloaded: Some(5),
            ..tthl
        },
        "CGET file TTH/X 5 10 ZL1 DB5"
    );
    assert_eq!(Get { identifier: "TTH/X", ..tthl }.tth(), None);
    view!(
        &format!("CSND file TTH/{root} 0 65536"),
        Snd {
            kind: "file",
            identifier: &format!("TTH/{root}"),
            start: 0,
            length: 65536,
            compressed: false
        }
    );
    view!(
        "CSND file x 0 9 ZL1",
        Snd { kind: "file", identifier: "x", start: 0, length: 9, compressed: true }
    );
    view!(
        "CGFI file TTH/XV66LRMZNY3VJLR7G543VS7AHEAR6E3PWDNUICI",
        Gfi { kind: "file", identifier: "TTH/XV66LRMZNY3VJLR7G543VS7AHEAR6E3PWDNUICI" }
    );
    for bad in
        ["CGET file x 0", "CGET file x -5 1", "CGET file x 0 -2", "CSND file x 0 -1", "CGFI file"]
    {
        assert!(Command::from_message(&msg(bad)).is_err(), "{bad}");
    }
}

#[test]
fn unknown_commands_are_raw() {
    let m = msg("ICMD ADCH++/Info TTHMSG\\s+info\\n CT1");
    match Command::from_message(&m).unwrap() {
        Command::Raw(raw) => assert_eq!(raw, &m),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.positional(0), Some("ADCH++/Info"));
    assert_eq!(m.get("TT"), Some("HMSG +info\n"));
    let copied = Command::from_message(&m).unwrap().to_message(Header::Hub);
    assert_eq!(copied.to_string(), "HCMD ADCH++/Info TTHMSG\\s+info\\n CT1");
    assert_eq!(copied.message_type(), MessageType::Hub);
}

// ---------------------------------------------------------------------------
// Captured lines

fn check_captured(file: &'static str) -> usize {
    let mut n = 0;
    for line in vector_lines(file) {
        let m = parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(m.encode(), format!("{line}\n").into_bytes(), "re-encoding {line:?}");
        assert_eq!(m.to_string(), line);
        if let Err(e) = Command::from_message(&m) {
            panic!("{line:?}: {e}");
        }
        // Where a client sent both its PID and CID, Tiger(PID) must be the
        // CID: eiskaltdcpp and uhub computed these, we check our Tiger.
        if let (Some(pd), Some(id)) = (m.get("PD"), m.get("ID")) {
            let pid: Pid = pd.parse().unwrap();
            if id == "6ZUFF4ZAJTKGBNELWAN7TKKWYPWQJ7DV3F5G4WQ" && pd.starts_with("AAAA") {
                // The capture's deliberately wrong PID (uhub answered 243).
                assert_ne!(pid.cid().to_string(), id);
            } else {
                assert_eq!(pid.cid().to_string(), id, "{line:?}");
            }
        }
        n += 1;
    }
    n
}

#[test]
fn captured_uhub_lines_round_trip() {
    let n = check_captured(UHUB);
    assert!(n >= 60, "only {n} lines");
    // Spot checks of what uhub sends.
    let lines: Vec<_> = vector_lines(UHUB).collect();
    assert!(lines.contains(&"ISUP ADBASE ADTIGR ADPING ADUCMD"));
    let sup = Sup::from_message(&msg("ISUP ADBASE ADTIGR ADPING ADUCMD")).unwrap();
    assert!(sup.adds(Feature::TIGR) && sup.adds(Feature::PING) && sup.adds(Feature::UCMD));
    // uhub relayed the passive search of carol to alice (active) with the
    // filter that selects active clients.
    assert!(lines.contains(&"FSCH AAAC +TCP4-NAT0 TO2859343270 ANhello"));
    let fsch = msg("FSCH AAAC +TCP4-NAT0 TO2859343270 ANhello");
    let Header::Feature { filter, from } = fsch.header() else { panic!("{fsch}") };
    assert_eq!(*from, sid("AAAC"));
    let active = |f| features::SU_ACTIVE4.contains(&f);
    let passive = |f| features::SU_PASSIVE.contains(&f);
    assert!(filter.matches(active) && !filter.matches(passive));
}

#[test]
fn captured_eiskaltdcpp_lines_round_trip() {
    let n = check_captured(EISKALTDCPP);
    assert!(n >= 60, "only {n} lines");
    let lines: Vec<_> = vector_lines(EISKALTDCPP).collect();
    // What a real client announces (protocols.md §4, pitfall 1).
    assert!(lines.contains(&"HSUP ADBAS0 ADBASE ADTIGR ADUCM0 ADBLO0 ADZLIF"));
    assert!(lines.contains(&"CSUP ADBAS0 ADBASE ADTIGR ADBZIP"));
    let tls = lines.iter().find(|l| l.contains("SUSEGA,ADC0,TCP4,UDP4")).map(|l| msg(l)).unwrap();
    let inf = Inf::from_message(&tls).unwrap();
    assert!(inf.supports(Feature::ADC0) && inf.supports(Feature::TCP4));
    assert!(inf.keyprint.and_then(Update::into_value).unwrap().starts_with("SHA256/"));
    let passive = lines.iter().find(|l| l.contains("SUSEGA,NAT0")).map(|l| msg(l)).unwrap();
    assert_eq!(Inf::from_message(&passive).unwrap().features, set(features::SU_PASSIVE.to_vec()));
    let active = lines.iter().find(|l| l.contains("SUSEGA,TCP4,UDP4")).map(|l| msg(l)).unwrap();
    assert_eq!(Inf::from_message(&active).unwrap().features, set(features::SU_ACTIVE4.to_vec()));
    // Passive searches go out twice (DC++ lineage).
    assert!(lines.contains(&"FSCH AAAC +TCP4-NAT0 TO2859343270 ANhello"));
    assert!(lines.contains(&"FSCH AAAC +NAT0 TO2859343270 ANhello"));
}

#[test]
fn captured_password_challenges() {
    let mut accepted = 0;
    for row in vector_lines(PASSWORDS) {
        let fields: Vec<_> = row.split_whitespace().collect();
        let [salt, password, response, verdict] = fields[..] else { panic!("bad row {row:?}") };
        assert_eq!(password_response(password, salt).unwrap(), response, "{row}");
        match verdict {
            "accepted" => accepted += 1,
            "rejected" => {
                // The account's real password gives another answer.
                assert_ne!(password_response("secret", salt).unwrap(), response);
            }
            other => panic!("verdict {other:?}"),
        }
    }
    assert_eq!(accepted, 2);
}

// ---------------------------------------------------------------------------
// Identities and building

#[test]
fn identities() {
    let pid = Pid::random();
    let cid = pid.cid();
    assert_eq!(Cid::from_pid(&pid), cid);
    let inf = Inf { cid: set(cid.into()), pid: set(pid), ..Inf::default() };
    let m = inf.to_message(Header::Broadcast { from: sid("AAAB") });
    let back = Inf::from_message(&m).unwrap();
    assert_eq!(back.pid, set(pid));
    assert_eq!(back.cid, set(AnyCid::Tiger(cid)));
    // The PID never shows in Debug output.
    assert!(!format!("{m:?}").contains(&pid.to_string()));
    assert!(format!("{m}").contains(&pid.to_string()));
}

#[test]
fn building_a_login() {
    let me = Pid::random();
    let sup = Sup::adding(&features::HUB_SUP).to_message(Header::Hub);
    assert_eq!(sup.encode(), b"HSUP ADBAS0 ADBASE ADTIGR\n");
    let inf = Inf {
        cid: set(me.cid().into()),
        pid: set(me),
        nick: set("dc lua"),
        ip4: set(Ipv4Addr::UNSPECIFIED),
        udp4: set(3000),
        features: set(features::SU_ACTIVE4.to_vec()),
        ..Inf::default()
    }
    .to_message(Header::Broadcast { from: sid("AAAB") });
    let text = inf.to_string();
    assert!(text.starts_with(&format!("BINF AAAB ID{} PD{} NIdc\\slua ", me.cid(), me)), "{text}");
    assert!(text.ends_with(" I40.0.0.0 U43000 SUSEGA,TCP4,UDP4"), "{text}");
    let sch = Sch { token: Some("1"), include: vec!["two words"], ..Sch::default() }.to_message(
        Header::Feature {
            from: sid("AAAB"),
            filter: FeatureFilter::new().require(Feature::TCP4).exclude(Feature::NAT0),
        },
    );
    assert_eq!(sch.encode(), b"FSCH AAAB +TCP4-NAT0 TO1 ANtwo\\swords\n");
}

// ---------------------------------------------------------------------------
// Hostile input: never panic; whatever parses must survive a round trip.

/// Parses `bytes` and, if it is a message, checks the round trip and runs
/// every reader over it.
fn exercise(bytes: &[u8]) {
    let Ok(m) = parse(bytes) else { return };
    let wire = m.encode();
    let again = parse(&wire)
        .unwrap_or_else(|e| panic!("re-parse of {:?}: {e}", String::from_utf8_lossy(&wire)));
    assert_eq!(again, m);
    let _ = Command::from_message(&m);
    let _ = Inf::from_message_lossy(&m);
    let _ = format!("{m} {m:?}");
    let _ = m.named().count();
    let mut copy = m.clone();
    copy.apply_update(&m);
    copy.set("NI", "x");
    copy.remove("NI");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xADC);
    // Biased towards ADC-looking bytes so that parsing gets past the header.
    let alphabet = b"BCDEFHIUINFMSGSCHRESAB27 \\sn\\ +-/.0123456789\xc3\xa9\xff\n";
    for _ in 0..20_000 {
        let len = rng.random_range(0..64);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.8) {
                    alphabet[rng.random_range(0..alphabet.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        exercise(&bytes);
    }
}

#[test]
fn mutated_real_lines_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for line in vector_lines(UHUB).chain(vector_lines(EISKALTDCPP)) {
        let bytes = line.as_bytes();
        // Every prefix.
        for cut in 0..=bytes.len() {
            exercise(&bytes[..cut]);
        }
        // Random byte changes.
        for _ in 0..50 {
            let mut b = bytes.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            exercise(&b);
        }
    }
}

#[test]
fn huge_inf_is_handled() {
    // A 1 MB description and thousands of fields.
    let mut line = String::from("BINF AAAB NIbig DE");
    line.push_str(&"x\\s".repeat(350_000));
    for i in 0..5_000 {
        line.push_str(&format!(" X{} SS{i}", i % 10));
    }
    assert!(line.len() > 1_000_000);
    let m = msg(&line);
    assert_eq!(m.encode().len(), line.len() + 1);
    let inf = Inf::from_message(&m).unwrap();
    assert_eq!(inf.share_size, set(4999));
    assert_eq!(inf.description.and_then(Update::into_value).map(str::len), Some(700_000));
    exercise(line.as_bytes());

    // A huge bad line fails cleanly, naming where.
    let mut bad = line.clone().into_bytes();
    bad.extend_from_slice(b" \\q");
    assert_eq!(parse(&bad), Err(ParseError::BadEscape { offset: bad.len() - 2, found: 'q' }));
}

#[test]
fn invalid_utf8_and_bad_sids_are_errors() {
    for bytes in [
        &b"BINF AAAB NI\xfe"[..],
        b"BINF AAAB NI\xc0\xaf",
        b"BINF AAAB NI\xf4\x90\x80\x80",
        b"BMSG AAAB \xe2\x82",
    ] {
        assert!(matches!(parse(bytes), Err(ParseError::NotUtf8 { .. })), "{bytes:?}");
    }
    for s in ["AAA", "AAAAA", "aaaa", "AA0A", "AA8A", "AA-A", "", "ÅÅ"] {
        let line = format!("BINF {s} NIx");
        assert!(
            matches!(
                parse(line.as_bytes()),
                Err(ParseError::BadSid { .. } | ParseError::NotUtf8 { .. })
            ),
            "{line}"
        );
        let quit = format!("IQUI {s}");
        assert!(Qui::from_message(&msg(&quit)).is_err(), "{quit}");
    }
}
