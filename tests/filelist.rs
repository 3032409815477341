//! File lists: our `files.xml.bz2` read back by a generic XML reader and by
//! our own bounded reader; partial lists; escaping; hostile lists.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use dclua::proto::tth::Tth;
use dclua::share::filelist::{
    read_listing, write_bz2, write_xml, FileListError, ListDir, ListOptions, ReadLimits, GENERATOR,
};
use dclua::share::tree::{ShareEntry, ShareTree};
use quick_xml::events::Event;

const CID: &str = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ";

fn tth(n: u32) -> Tth {
    let mut b = [0u8; 24];
    b[..4].copy_from_slice(&n.to_le_bytes());
    b[8..12].copy_from_slice(&n.wrapping_mul(0x9e37_79b9).to_le_bytes());
    Tth(b)
}

fn entry(path: &str, size: u64, n: u32) -> ShareEntry {
    ShareEntry { path: path.to_string(), size, tth: Some(tth(n)), mtime: 1_700_000_000 }
}

fn sample_tree() -> ShareTree {
    let (tree, warnings) = ShareTree::from_entries(vec![
        entry("Music/Beatles/Help.mp3", 4_000_000, 1),
        entry("Music/Beatles/Yesterday.flac", 30_000_000, 2),
        entry("Music/Queen/Live/Bohemian.mp3", 6_000_000, 3),
        entry("Music/readme.txt", 12, 4),
        entry("Books/linux.pdf", 9, 5),
        // Not hashed: neither it nor its folder may be listed.
        ShareEntry { path: "Music/Pending/new.mp3".into(), size: 1, tth: None, mtime: 0 },
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    tree
}

fn bunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(data).read_to_end(&mut out).expect("valid bzip2");
    out
}

/// What a generic XML reader sees: root attributes, and every file as
/// (path, size, TTH text), every folder as (path, incomplete).
#[derive(Debug, Default)]
struct Seen {
    root: BTreeMap<String, String>,
    files: BTreeMap<String, (u64, String)>,
    dirs: BTreeMap<String, bool>,
}

fn parse_generic(xml: &[u8]) -> Seen {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut seen = Seen::default();
    let mut path: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).expect("well-formed XML");
        let (e, empty) = match &event {
            Event::Start(e) => (e.clone(), false),
            Event::Empty(e) => (e.clone(), true),
            Event::End(e) => {
                if e.name().as_ref() == b"Directory" {
                    path.pop();
                }
                buf.clear();
                continue;
            }
            Event::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        let attrs: BTreeMap<String, String> = e
            .attributes()
            .map(|a| {
                let a = a.expect("valid attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).expect("utf-8 key"),
                    a.unescape_value().expect("valid escapes").into_owned(),
                )
            })
            .collect();
        let full = |name: &str| {
            let mut p = path.clone();
            p.push(name.to_string());
            p.join("/")
        };
        match e.name().as_ref() {
            b"FileListing" => seen.root = attrs,
            b"Directory" => {
                let name = attrs["Name"].clone();
                seen.dirs.insert(full(&name), attrs.get("Incomplete").is_some_and(|v| v == "1"));
                if !empty {
                    path.push(name);
                }
            }
            b"File" => {
                let size = attrs["Size"].parse().expect("numeric size");
                seen.files.insert(full(&attrs["Name"]), (size, attrs["TTH"].clone()));
            }
            other => panic!("unexpected element {:?}", String::from_utf8_lossy(other)),
        }
        buf.clear();
    }
    seen
}

/// Every listed file of a tree below `base` as (path relative to base, size,
/// TTH), built from the tree's own accessors.
fn tree_files(tree: &ShareTree, base: &str) -> BTreeMap<String, (u64, String)> {
    let start = tree.lookup(base).expect("base exists");
    let prefix = tree.path(start);
    let mut out = BTreeMap::new();
    tree.walk(start, |id| {
        if let Some(t) = tree.tth(id) {
            let p = tree.path(id);
            let rel = if prefix.is_empty() { p } else { p[prefix.len() + 1..].to_string() };
            out.insert(rel, (tree.size(id), t.to_string()));
        }
    });
    out
}

fn listing_files(dir: &ListDir, prefix: &str, out: &mut BTreeMap<String, (u64, Option<Tth>)>) {
    let join =
        |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
    for f in &dir.files {
        out.insert(join(&f.name), (f.size, f.tth));
    }
    for d in &dir.dirs {
        listing_files(d, &join(&d.name), out);
    }
}

#[test]
fn full_list_reads_back_with_a_generic_xml_reader() {
    let tree = sample_tree();
    let bz = write_bz2(&tree, &ListOptions { threads: 2, ..ListOptions::full(CID) }).unwrap();
    assert_eq!(&bz[..3], b"BZh");
    let xml = bunzip(&bz);
    // No BOM; the exact declaration DC++ writes.
    assert!(xml.starts_with(b"<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n"));
    let seen = parse_generic(&xml);
    let root: Vec<(&str, &str)> = seen.root.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(root, [("Base", "/"), ("CID", CID), ("Generator", GENERATOR), ("Version", "1")]);
    assert_eq!(GENERATOR, "dclua 0.1.0");
    assert_eq!(seen.files, tree_files(&tree, "/"));
    assert_eq!(seen.files["Music/Beatles/Help.mp3"], (4_000_000, tth(1).to_string()));
    let dirs: Vec<&str> = seen.dirs.keys().map(String::as_str).collect();
    assert_eq!(dirs, ["Books", "Music", "Music/Beatles", "Music/Queen", "Music/Queen/Live"]);
    assert!(seen.dirs.values().all(|&incomplete| !incomplete));
    // The uncompressed form is the same document.
    let plain = write_xml(&tree, &ListOptions { threads: 1, ..ListOptions::full(CID) }).unwrap();
    assert_eq!(plain, xml);
}

#[test]
fn fifty_thousand_files_round_trip_through_our_reader() {
    let entries: Vec<ShareEntry> = (0..50_000u32)
        .map(|i| {
            let path = format!(
                "Root{}/Artist {}/Album {} ({})/{:02} - Track {i} ü&<'\".mp3",
                i % 3,
                i % 97,
                i % 1201,
                1960 + i % 60,
                i % 30
            );
            entry(&path, u64::from(i) * 7919 + 1, i)
        })
        .collect();
    let (tree, warnings) = ShareTree::from_entries(entries);
    assert!(warnings.is_empty(), "{:?}", &warnings[..warnings.len().min(3)]);
    assert_eq!(tree.shared_files(), 50_000);
    let bz = write_bz2(&tree, &ListOptions { threads: 2, ..ListOptions::full(CID) }).unwrap();
    // Several chunks make several bzip2 streams: a single-stream decoder
    // stops after the first one.
    let mut first = Vec::new();
    bzip2::read::BzDecoder::new(&bz[..]).read_to_end(&mut first).unwrap();
    let all = bunzip(&bz);
    assert!(first.len() < all.len(), "expected a multi-stream file");
    // One thread or two: the same document.
    let one = write_bz2(&tree, &ListOptions { threads: 1, ..ListOptions::full(CID) }).unwrap();
    assert_eq!(bunzip(&one), all);

    let listing = read_listing(&bz[..], &ReadLimits::default()).unwrap();
    assert_eq!(listing.cid.as_deref(), Some(CID));
    assert_eq!(listing.base, "/");
    assert_eq!(listing.version.as_deref(), Some("1"));
    assert_eq!((listing.skipped, listing.duplicates), (0, 0));
    assert_eq!(listing.root.total_files(), 50_000);
    assert_eq!(listing.root.total_size(), tree.shared_size());
    let mut got = BTreeMap::new();
    listing_files(&listing.root, "", &mut got);
    let expected: BTreeMap<String, (u64, Option<Tth>)> = tree_files(&tree, "/")
        .into_iter()
        .map(|(p, (size, t))| (p, (size, t.parse().ok())))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn partial_lists() {
    let tree = sample_tree();
    // The root, one level: virtual roots as stubs.
    let xml = write_xml(&tree, &ListOptions::partial(CID, "/", false)).unwrap();
    let seen = parse_generic(&xml);
    assert_eq!(seen.root["Base"], "/");
    let dirs: Vec<(&str, bool)> = seen.dirs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(dirs, [("Books", true), ("Music", true)]);
    assert!(seen.files.is_empty());

    // One folder, one level (case-insensitive request, canonical Base).
    let xml = write_xml(&tree, &ListOptions::partial(CID, "/music/", false)).unwrap();
    let seen = parse_generic(&xml);
    assert_eq!(seen.root["Base"], "/Music/");
    let dirs: Vec<(&str, bool)> = seen.dirs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // The folder with only an unhashed file is not listed at all.
    assert_eq!(dirs, [("Beatles", true), ("Queen", true)]);
    let files: Vec<&str> = seen.files.keys().map(String::as_str).collect();
    assert_eq!(files, ["readme.txt"]);
    // Our reader sees the same.
    let listing = read_listing(&xml[..], &ReadLimits::default()).unwrap();
    assert_eq!(listing.base, "/Music/");
    assert!(listing.root.dirs.iter().all(|d| d.incomplete && d.dirs.is_empty()));

    // Recursive (ADC RE1): everything below, nothing incomplete.
    let xml = write_xml(&tree, &ListOptions::partial(CID, "/Music/Queen/", true)).unwrap();
    let seen = parse_generic(&xml);
    assert_eq!(seen.root["Base"], "/Music/Queen/");
    assert_eq!(seen.files, tree_files(&tree, "Music/Queen"));
    assert_eq!(seen.dirs.into_iter().collect::<Vec<_>>(), [("Live".to_string(), false)]);

    // Partial lists compress too.
    let bz = write_bz2(&tree, &ListOptions::partial(CID, "/Books/", false)).unwrap();
    assert_eq!(parse_generic(&bunzip(&bz)).files.len(), 1);

    for missing in ["/Nope/", "/Music/Beatles/Help.mp3", "/Music/Pending/", "/../"] {
        assert!(
            matches!(
                write_xml(&tree, &ListOptions::partial(CID, missing, false)),
                Err(FileListError::NoSuchFolder(_))
            ),
            "{missing}"
        );
    }
}

#[test]
fn odd_names_are_escaped_and_come_back_intact() {
    let names = [
        "a&b<c>d\"e'f.txt",
        "&amp; already escaped.txt",
        "]]> cdata end.txt",
        "日本語のファイル.mp3",
        "emoji 🎵 song.mp3",
        "combining é vs é.txt",
        "  leading and trailing  ",
    ];
    let entries: Vec<ShareEntry> = names
        .iter()
        .enumerate()
        .map(|(i, n)| entry(&format!("Odd <&> \"'/{n}"), i as u64, i as u32))
        .collect();
    let (tree, warnings) = ShareTree::from_entries(entries);
    assert!(warnings.is_empty(), "{warnings:?}");
    let xml = write_xml(&tree, &ListOptions::full(CID)).unwrap();
    let text = String::from_utf8(xml.clone()).unwrap();
    assert!(text.contains("Name=\"Odd &lt;&amp;&gt; &quot;&apos;\""));
    assert!(text.contains("&amp;amp; already"));
    // Inside attributes no raw specials survive: a line's only `<` opens its
    // tag, and every `&` starts an entity.
    const ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
    for line in text.lines().skip(1) {
        assert_eq!(line.find('<'), Some(0), "{line}");
        assert_eq!(line.matches('<').count(), 1, "{line}");
        for (i, _) in line.match_indices('&') {
            assert!(ENTITIES.iter().any(|e| line[i..].starts_with(e)), "{line}");
        }
    }
    let seen = parse_generic(&xml);
    let mut got: Vec<String> =
        seen.files.keys().map(|p| p.trim_start_matches("Odd <&> \"'/").to_string()).collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    let listing = read_listing(&xml[..], &ReadLimits::default()).unwrap();
    assert_eq!(listing.root.dirs[0].name, "Odd <&> \"'");
    let mut ours: Vec<String> =
        listing.root.dirs[0].files.iter().map(|f| f.name.to_string()).collect();
    ours.sort();
    assert_eq!(ours, want);
}

fn bz(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_bzip2_bomb_is_refused() {
    // One stream of a valid list start, then the same small stream of
    // whitespace again and again: 128 MB of XML from a few kilobytes.
    let mut bomb = bz(b"<?xml version=\"1.0\"?><FileListing Version=\"1\" Base=\"/\">");
    let blank = bz(&vec![b' '; 1 << 20]);
    for _ in 0..128 {
        bomb.extend_from_slice(&blank);
    }
    assert!(bomb.len() < 128 * 1024, "{} bytes", bomb.len());
    let limits = ReadLimits { max_xml_bytes: 8 << 20, ..ReadLimits::default() };
    match read_listing(&bomb[..], &limits) {
        Err(FileListError::TooLarge { limit }) => assert_eq!(limit, 8 << 20),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // Too many entries, and folders nested too deep.
    let mut many = String::from("<FileListing Base=\"/\">");
    for i in 0..1000 {
        many.push_str(&format!("<File Name=\"f{i}\" Size=\"1\"/>"));
    }
    many.push_str("</FileListing>");
    let limits = ReadLimits { max_entries: 999, ..ReadLimits::default() };
    assert!(matches!(
        read_listing(&bz(many.as_bytes())[..], &limits),
        Err(FileListError::TooManyEntries { limit: 999 })
    ));
    assert_eq!(
        read_listing(many.as_bytes(), &ReadLimits::default()).unwrap().root.files.len(),
        1000
    );
    let deep = format!(
        "<FileListing Base=\"/\">{}{}</FileListing>",
        "<Directory Name=\"d\">".repeat(300),
        "</Directory>".repeat(300)
    );
    assert!(matches!(
        read_listing(deep.as_bytes(), &ReadLimits::default()),
        Err(FileListError::TooDeep { limit: 256 })
    ));
}

#[test]
fn reader_tolerates_old_lists_and_refuses_dot_names() {
    let limits = ReadLimits::default();
    // A BOM, no CID (old NMDC lists), a malformed size, a bad TTH, an
    // unknown element, invalid UTF-8, and a case-insensitive duplicate.
    let mut list = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n".to_vec();
    list.extend_from_slice(b"<FileListing Version=\"1\" Generator=\"old\">");
    list.extend_from_slice(b"<Directory Name=\"Dir\">");
    list.extend_from_slice(
        b"<File Name=\"ok.txt\" Size=\"5\" TTH=\"LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ\"/>",
    );
    list.extend_from_slice(b"<File Name=\"OK.TXT\" Size=\"6\"/>");
    list.extend_from_slice(b"<File Name=\"nosize.txt\"/>");
    list.extend_from_slice(b"<File Name=\"badtth.txt\" Size=\"7\" TTH=\"nope\"/>");
    list.extend_from_slice(b"<File Name=\"caf\xE9.txt\" Size=\"8\"><Extra a=\"b\"/></File>");
    list.extend_from_slice(b"<Unknown><File Name=\"hidden\" Size=\"1\"/></Unknown>");
    list.extend_from_slice(b"</Directory></FileListing>");
    let listing = read_listing(&list[..], &limits).unwrap();
    assert_eq!(listing.cid, None);
    assert_eq!(listing.base, "/");
    assert_eq!(listing.generator.as_deref(), Some("old"));
    let dir = &listing.root.dirs[0];
    let files: Vec<(&str, u64, bool)> =
        dir.files.iter().map(|f| (&*f.name, f.size, f.tth.is_some())).collect();
    assert_eq!(
        files,
        [("ok.txt", 5, true), ("badtth.txt", 7, false), ("caf\u{fffd}.txt", 8, false)]
    );
    assert_eq!((listing.skipped, listing.duplicates), (1, 1));
    assert!(listing.root.find_dir("dir").is_some());

    // The same list compressed, and compressed as two streams.
    assert_eq!(read_listing(&bz(&list)[..], &limits).unwrap(), listing);
    let mut two = bz(&list[..100]);
    two.extend_from_slice(&bz(&list[100..]));
    assert_eq!(read_listing(&two[..], &limits).unwrap(), listing);

    for bad in [".", "..", "a/b"] {
        let doc = format!("<FileListing Base=\"/\"><Directory Name=\"x\"><File Name=\"{bad}\" Size=\"1\"/></Directory></FileListing>");
        assert!(
            matches!(read_listing(doc.as_bytes(), &limits), Err(FileListError::ForbiddenName(_))),
            "{bad}"
        );
    }
    for broken in ["<FileListing><Directory Name=\"a\"></File></FileListing>", "not xml at all", ""]
    {
        assert!(read_listing(broken.as_bytes(), &limits).is_err(), "{broken}");
    }
}
