//! Fuzz targets: the functions that both the coverage-guided fuzzer
//! (`cargo +nightly fuzz`, the crate in `fuzz/`) and the stable mutation
//! driver (`tests/fuzz.rs`, run by `cargo test`) feed with arbitrary bytes.
//!
//! Owns the invariants each parser of untrusted input must keep; a panic
//! (an assertion here, or one inside the code under test) is a finding. It
//! does no I/O and keeps no state between calls, so a crashing input
//! reproduces by itself. Not part of the client: nothing else calls it.
//!
//! | target | feeds | checks |
//! |---|---|---|
//! | `nmdc_codec` | NMDC frames, hub charset chosen by the first byte | encoding a parsed frame is canonical: parse(encode(m)) encodes the same |
//! | `adc_codec` | ADC lines | the same for messages, and every typed view re-encodes to a message that parses |
//! | `zpipe` | a `$ZOn` zlib block | bounded output, consumed within the input |
//! | `file_list` | `files.xml(.bz2)` | bounded reading, totals that add up |
//! | `tthl` | TTH leaves + a file size | verification never panics, agrees with the tree |
//! | `hub_address` | hub addresses (configuration, `dc.connect`, redirects) | a parsed address prints a canonical form that parses back to it |
//! | `magnet` | magnet links (`dc.magnet`) | a parsed magnet with a size prints a magnet that parses back to it |
//! | `peer_session` | client-client frames, NMDC or ADC, either side | the handshake machine never panics, says nothing after closing, and every answer it writes is one frame that parses back |

use crate::proto::{adc, nmdc, tth};
use crate::share::filelist::{read_listing, ReadLimits};

/// One fuzz target: a name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` folder), the function, and the tokens a mutator
/// should splice in (the grammar's keywords and separators).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
    /// Tokens worth inserting.
    pub dictionary: &'static [&'static [u8]],
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "nmdc_codec",
        run: nmdc_codec,
        dictionary: &[
            b"|",
            b" ",
            b"$",
            b"$MyINFO $ALL ",
            b"$Search ",
            b"$SR ",
            b"$Lock EXTENDEDPROTOCOL",
            b" Pk=",
            b"$ConnectToMe ",
            b"$RevConnectToMe ",
            b"$ADCGET file TTH/",
            b"$ADCSND ",
            b"$Direction Download ",
            b"$Supports ",
            b"$To: ",
            b" From: ",
            b"$<",
            b"<",
            b"> ",
            b"$$",
            b"&#124;",
            b"&#36;",
            b"\x05",
            b"?T?F?",
            b"TTH:",
            b"<++ V:0.868,M:A,H:1/0/0,S:5>",
            b"$ZOn",
            b"$UserCommand ",
            b"$Hello ",
            b"$Quit ",
            b"$ForceMove ",
            b"$OpList ",
            b"$$",
        ],
    },
    Target {
        name: "adc_codec",
        run: adc_codec,
        dictionary: &[
            b"\n",
            b" ",
            b"\\s",
            b"\\n",
            b"\\\\",
            b"BINF ",
            b"IINF ",
            b"ISUP ADBASE ADTIGR",
            b"ISID ",
            b"BMSG ",
            b"DMSG ",
            b"EMSG ",
            b"FSCH ",
            b" +TCP4",
            b"BSCH ",
            b"DRES ",
            b"DCTM ",
            b"DRCM ",
            b"CGET file TTH/",
            b"CSND ",
            b"ISTA ",
            b"IQUI ",
            b" RD",
            b"IGPA ",
            b"HPAS ",
            b" ID",
            b" NI",
            b" SS",
            b" TR",
            b" AN",
            b" TO",
            b" PM",
            b"AAAA",
            b"ADC/1.0",
            b"ADCS/0.10",
        ],
    },
    Target {
        name: "zpipe",
        run: zpipe,
        dictionary: &[b"\x78\x9c", b"\x78\x01", b"\x00\x00\xff\xff"],
    },
    Target {
        name: "file_list",
        run: file_list,
        dictionary: &[
            b"BZh9",
            b"<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>",
            b"<FileListing Version=\"1\" CID=\"A\" Base=\"/\">",
            b"</FileListing>",
            b"<Directory Name=\"",
            b"</Directory>",
            b"<File Name=\"",
            b"\" Size=\"",
            b"\" TTH=\"",
            b"\"/>",
            b"Incomplete=\"1\"",
            b"&amp;",
            b"&#0;",
            b"..",
            b"/",
        ],
    },
    Target { name: "tthl", run: tthl, dictionary: &[] },
    Target {
        name: "hub_address",
        run: hub_address,
        dictionary: &[
            b"dchub://",
            b"nmdcs://",
            b"adcs://",
            b"adc://",
            b"[::1]",
            b":411",
            b"/?kp=SHA256/",
            b"%2F",
            b"&kp=",
            b"#",
            b"@",
            b"XJ4BNP4PAHH6UQKBIDPF3LRCEOYAGYNDSYLXVHFUCD7WD4QACWWQ",
        ],
    },
    Target {
        name: "magnet",
        run: magnet,
        dictionary: &[
            b"magnet:?",
            b"xt=urn:tree:tiger:",
            b"urn:btih:",
            b"&xl=",
            b"&dn=",
            b"&",
            b"=",
            b"%",
            b"%20",
            b"%C3%A9",
            b"+",
            b"LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ",
            b"18446744073709551615",
        ],
    },
    Target {
        name: "peer_session",
        run: peer_session,
        dictionary: &[
            b"|",
            b"\n",
            b"$MyNick ",
            b"$Lock EXTENDEDPROTOCOL",
            b" Pk=",
            b"$Supports ADCGet TTHL TTHF ZLIG",
            b"$Direction Download ",
            b"$Direction Upload ",
            b"$Key ",
            b"$ADCGET file TTH/",
            b"$ADCGET list /",
            b"$ADCGET tthl TTH/",
            b" 0 -1",
            b" ZL1",
            b"CSUP ADBASE ADTIGR",
            b"CINF ID",
            b" TO",
            b"CGET file ",
            b"CGET list / 0 -1 RE1",
            b"CSTA 253 ",
            b"LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ",
        ],
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// NMDC frames (split at `|`), in UTF-8 or CP1252 as the first byte says:
/// parsing never panics, and the encoding of a parsed frame is canonical.
pub fn nmdc_codec(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let charset = if first & 1 == 0 { encoding_rs::UTF_8 } else { encoding_rs::WINDOWS_1252 };
    for frame in rest.split(|&b| b == b'|') {
        let msg = nmdc::parse(frame, charset);
        // `encode` writes the frame with its terminating `|`.
        let once = nmdc::encode(&msg, charset);
        let body = once.strip_suffix(b"|").unwrap_or(&once);
        let again = nmdc::encode(&nmdc::parse(body, charset), charset);
        assert!(
            once == again,
            "NMDC encoding is not canonical:\n frame {:?}\n once  {:?}\n again {:?}",
            String::from_utf8_lossy(frame),
            String::from_utf8_lossy(&once),
            String::from_utf8_lossy(&again)
        );
    }
}

/// ADC lines (split at `\n`): parsing never panics; a parsed message
/// re-encodes to a line that parses to the same encoding; every typed view
/// that reads builds a message that parses again.
pub fn adc_codec(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let Ok(msg) = adc::parse(line) else { continue };
        let once = adc::encode(&msg);
        let reparsed = adc::parse(&once).unwrap_or_else(|e| {
            panic!(
                "ADC re-encoding does not parse ({e}):\n line {:?}\n once {:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&once)
            )
        });
        assert!(
            adc::encode(&reparsed) == once,
            "ADC encoding is not canonical: {:?}",
            String::from_utf8_lossy(line)
        );
        if let Ok(cmd) = adc::Command::from_message(&msg) {
            let built = cmd.to_message(msg.header().clone());
            let bytes = adc::encode(&built);
            assert!(
                adc::parse(&bytes).is_ok(),
                "a typed view built an unparsable line:\n line {:?}\n built {:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&bytes)
            );
        }
        let (_, _errors) = adc::Inf::from_message_lossy(&msg);
    }
}

/// A `$ZOn` block: output stays within the limit, input consumption within
/// the input.
pub fn zpipe(data: &[u8]) {
    const LIMIT: u64 = 1 << 20;
    let mut pipe = nmdc::zpipe::ZPipe::with_limit(LIMIT);
    let mut out = Vec::new();
    let mut input = data;
    // Small output steps exercise the resumption path.
    for _ in 0..64 {
        match pipe.inflate(input, &mut out, 4096) {
            Ok(step) => {
                assert!(step.consumed <= input.len(), "consumed past the input");
                assert!(out.len() as u64 <= LIMIT + 1, "output past the limit");
                if step.finished {
                    let _ = step.leftover(input);
                    return;
                }
                input = &input[step.consumed..];
                if input.is_empty() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// A file list, bzip2 or plain XML, read with small bounds: never more
/// entries than allowed, and totals that add up.
pub fn file_list(data: &[u8]) {
    let limits = ReadLimits { max_xml_bytes: 1 << 20, max_entries: 10_000, max_depth: 32 };
    if let Ok(listing) = read_listing(data, &limits) {
        let files = listing.root.total_files();
        assert!(files <= limits.max_entries, "{files} files past the limit");
        let _ = listing.root.total_size();
        let _ = listing.root.find_dir("/a/b/");
    }
}

/// TTH leaves for a file size taken from the first eight bytes: checking
/// them never panics, and leaves that pass rebuild a tree that agrees.
pub fn tthl(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().expect("eight bytes")) % (1 << 40);
    let leaves = &data[8..];
    // The root of the leaves as given: verification must accept it exactly
    // when the leaves have the shape the size requires.
    let root = tth::Tth([0x5a; 24]);
    let _ = tth::verify_tthl(leaves, size, &root);
    if let Ok(tree) = tth::TigerTree::from_tthl(size, root, leaves) {
        for i in 0..4 {
            let _ = tree.block_range(i);
            let _ = tree.verify_block(i, leaves);
        }
    }
}

/// A hub address: when it parses, its canonical form parses back to the
/// same address and prints the same.
pub fn hub_address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = crate::address::HubUrl::parse(text) else { return };
    let canonical = url.to_string();
    let again = crate::address::HubUrl::parse(&canonical).unwrap_or_else(|e| {
        panic!("the canonical form {canonical:?} of {text:?} does not parse: {e}")
    });
    assert_eq!(again, url, "{text:?} and its canonical form {canonical:?} differ");
    assert_eq!(again.to_string(), canonical, "the canonical form of {text:?} is not a fixed point");
}

/// A magnet link: parsing never panics; one that parses with a size prints
/// (as `dc.share.magnet` does) a magnet that parses back to the same TTH,
/// size and name.
pub fn magnet(data: &[u8]) {
    use crate::lua::download_api::{magnet_of, parse_magnet};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(m) = parse_magnet(text) else { return };
    let Some(size) = m.size else { return };
    let name = m.name.clone().unwrap_or_default();
    let printed = magnet_of(&m.tth, size, &name);
    let back = parse_magnet(&printed).unwrap_or_else(|e| {
        panic!("the magnet {printed:?} printed for {text:?} does not parse: {e}")
    });
    assert_eq!(back.tth, m.tth, "{text:?} -> {printed:?}");
    assert_eq!(back.size, Some(size), "{text:?} -> {printed:?}");
    assert_eq!(back.name.unwrap_or_default(), name, "{text:?} -> {printed:?}");
}

/// Client-client frames into the peer session machine: the first byte picks
/// the protocol (bit 0: ADC) and our side (bit 1: we dialled); the rest is
/// cut at the protocol's delimiter; bit 2 says we want to download. Whatever
/// comes, the machine does not
/// panic, says nothing once it closed, writes whole frames only, and the
/// answer header of every request parses back to the same request.
pub fn peer_session(data: &[u8]) {
    use crate::peer::session::{Hello, Output, Protocol, Refusal, Role, Session};
    let Some((&first, rest)) = data.split_first() else { return };
    let protocol = if first & 1 == 0 { Protocol::Nmdc } else { Protocol::Adc };
    let role = if first & 2 == 0 { Role::Accepting } else { Role::Connecting };
    let hello = || Hello {
        nick: "fuzz".into(),
        charset: encoding_rs::WINDOWS_1252,
        cid: "CID".into(),
        token: Some("t".into()),
        hub_url: "dchub://127.0.0.1:411".into(),
        download: first & 4 != 0,
    };
    let known = (role == Role::Connecting).then(hello);
    let mut s = Session::new(protocol, role, known, u32::from(first));
    let delim = protocol.delimiter();
    let whole = |bytes: &[u8]| {
        assert!(bytes.last() == Some(&delim), "an answer that is not whole frames: {bytes:?}");
    };
    let mut closed = false;
    let mut outs = s.start();
    for frame in rest.split(|&b| b == delim) {
        let more = s.on_frame(frame);
        if closed {
            assert!(more.is_empty(), "output after the close: {more:?}");
        }
        outs.extend(more);
        while let Some(o) = outs.pop() {
            match o {
                Output::Send(bytes) => whole(&bytes),
                Output::Identify(_) if role == Role::Accepting => outs.extend(s.bind(hello())),
                Output::Request(req) => {
                    let header = s.send_header(&req, req.start, req.bytes.unwrap_or(0), false);
                    whole(&header);
                    let line = &header[..header.len() - 1];
                    let back = match protocol {
                        Protocol::Nmdc => match nmdc::parse(line, encoding_rs::UTF_8) {
                            nmdc::Message::AdcSnd(t) => t.identifier,
                            other => panic!("the header {line:?} parsed as {other:?}"),
                        },
                        Protocol::Adc => {
                            let m = adc::parse(line).expect("the header parses");
                            let snd = adc::Snd::from_message(&m).expect("the header is a SND");
                            snd.identifier.to_string()
                        }
                    };
                    assert_eq!(back, req.identifier, "the header names another file");
                    whole(&s.refusal(&Refusal::SlotsFull(Some(3))));
                    whole(&s.refusal(&Refusal::NotAvailable("x".into())));
                }
                Output::Ready if s.is_downloading() => {
                    let req = crate::peer::session::Request {
                        kind: crate::peer::session::Kind::File,
                        identifier: "TTH/LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ".into(),
                        start: 0,
                        bytes: Some(1 << 20),
                        compressed: false,
                        recursive: false,
                    };
                    whole(&s.get(&req));
                }
                Output::Close(_) => closed = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_takes_empty_and_tiny_inputs() {
        for t in TARGETS {
            for input in [&b""[..], b"\0", b"|", b"\n", b"BZh9", b"\x78\x9c", &[0xff; 9]] {
                (t.run)(input);
            }
        }
        assert!(target("nmdc_codec").is_some());
        assert!(target("nope").is_none());
    }
}
