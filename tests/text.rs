//! Text from the network before a terminal or the log
//! (`dclua::text::neutralise`), and the log writing one neutralised line per
//! record (`dclua::logging`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dclua::logging;
use dclua::text::{neutralise, neutralise_bytes};

#[test]
fn control_characters_are_shown_escaped_and_text_is_kept() {
    let cases: &[(&str, &str)] = &[
        ("plain chat line", "plain chat line"),
        ("", ""),
        ("tab\tkept", "tab\tkept"),
        (
            "h\u{e9}llo w\u{f6}rld \u{65e5}\u{672c} \u{1f600}",
            "h\u{e9}llo w\u{f6}rld \u{65e5}\u{672c} \u{1f600}",
        ),
        ("C:\\path\\file", "C:\\path\\file"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b]0;pwned\x07", "\\e]0;pwned\\x07"),
        ("\x1b[2J\x1b[H", "\\e[2J\\e[H"),
        ("\x1b[31mred\x1b[0m", "\\e[31mred\\e[0m"),
        ("nul\0byte", "nul\\x00byte"),
        ("del\x7f", "del\\x7f"),
        ("bs\x08\x08", "bs\\x08\\x08"),
        ("c1\u{85}next line \u{9b}2J", "c1\\u{85}next line \\u{9b}2J"),
        ("sep\u{2028}line\u{2029}", "sep\\u{2028}line\\u{2029}"),
        ("bidi \u{202e}txt.exe", "bidi \\u{202e}txt.exe"),
        ("isolate \u{2066}x\u{2069}", "isolate \\u{2066}x\\u{2069}"),
        ("\u{a0}nbsp and \u{200b}zwsp stay", "\u{a0}nbsp and \u{200b}zwsp stay"),
        ("hi\r\n12:00:00.000 INFO  hub: forged", "hi\\r\\n12:00:00.000 INFO  hub: forged"),
    ];
    for &(input, want) in cases {
        let have = neutralise(input);
        assert_eq!(have, want, "neutralise({input:?})");
        assert!(!have.contains(['\n', '\r', '\x1b', '\x07']), "{have:?}");
    }
    // Nothing to do: no copy.
    assert!(matches!(neutralise("clean"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn bytes_that_are_not_utf8_are_shown_as_hex() {
    let cases: &[(&[u8], &str)] = &[
        (b"ok", "ok"),
        (b"caf\xe9", "caf\\xe9"),
        (b"\xff\xfe\x1b[2J", "\\xff\\xfe\\e[2J"),
        (b"\xc3\xa9t\xc3", "\u{e9}t\\xc3"),
        (b"c1 raw \x9b2J", "c1 raw \\x9b2J"),
        ("\u{e9}\n".as_bytes(), "\u{e9}\\n"),
    ];
    for &(input, want) in cases {
        assert_eq!(neutralise_bytes(input), want, "neutralise_bytes({input:?})");
    }
}

#[test]
fn a_log_record_is_one_neutralised_line() {
    let line = logging::format_at(
        Duration::from_millis(3_723_004),
        log::Level::Info,
        "dclua::hub",
        "<evil> hi\r\n01:02:03.004 WARN  hub: forged\x1b]0;title\x07",
    );
    assert_eq!(
        line,
        "01:02:03.004 INFO  hub: <evil> hi\\r\\n01:02:03.004 WARN  hub: forged\\e]0;title\\x07"
    );

    // Through the `log` facade and a sink, as the console receives lines.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&lines);
    logging::init(log::LevelFilter::Info);
    logging::set_sink(Some(Box::new(move |l: &str| {
        seen.lock().expect("lines").push(l.to_string());
    })));
    log::info!(target: "dclua::test_text", "chat: {}", "a\nb\x1b[2J");
    logging::set_sink(None);
    let lines = lines.lock().expect("lines");
    let mine: Vec<&String> = lines.iter().filter(|l| l.contains("test_text")).collect();
    assert_eq!(mine.len(), 1, "{lines:?}");
    assert!(mine[0].ends_with("test_text: chat: a\\nb\\e[2J"), "{}", mine[0]);
}
