//! Searches over the share index: TTH, words, sizes, types, exclusions,
//! limits, case-insensitivity and updates, plus a cross-check of the index
//! against a brute-force matcher on random shares.

use std::collections::BTreeSet;

use dclua::proto::tth::Tth;
use dclua::search::{FileType, Query, MAX_RESULTS_ACTIVE, MAX_RESULTS_PASSIVE};
use dclua::share::index::ShareIndex;
use dclua::share::tree::{NodeId, ShareEntry, ShareTree};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tth(n: u32) -> Tth {
    let mut b = [0u8; 24];
    b[..4].copy_from_slice(&n.to_le_bytes());
    b[20..].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
    Tth(b)
}

fn entry(path: &str, size: u64, n: u32) -> ShareEntry {
    ShareEntry { path: path.to_string(), size, tth: Some(tth(n)), mtime: 1_700_000_000 }
}

fn sample() -> ShareIndex {
    let entries = vec![
        entry("Music/The Beatles/Help.mp3", 4_000_000, 1),
        entry("Music/The Beatles/Yesterday.flac", 30_000_000, 2),
        entry("Music/The Beatles/cover.jpg", 80_000, 3),
        entry("Music/Queen/Bohemian Rhapsody.mp3", 6_000_000, 4),
        entry("Music/Queen/Live/Help Live.mp3", 5_000_000, 5),
        entry("Movies/Help! (1965).mkv", 1_400_000_000, 6),
        entry("Movies/Help! (1965).nfo", 2_000, 7),
        entry("Books/Ärger im Paradies.epub", 900_000, 8),
        entry("Books/linux-kernel.pdf", 12_000_000, 9),
        entry("Software/setup.exe", 50_000_000, 10),
        entry("Software/archive.tar.gz", 3_000_000, 11),
        // The same content shared twice.
        entry("Backup/Help.mp3", 4_000_000, 1),
        // Not hashed yet: never found.
        ShareEntry { path: "Music/Pending/Help unhashed.mp3".into(), size: 1, tth: None, mtime: 0 },
    ];
    let (tree, warnings) = ShareTree::from_entries(entries);
    assert!(warnings.is_empty(), "{warnings:?}");
    ShareIndex::new(tree)
}

fn paths(index: &ShareIndex, q: &Query) -> Vec<String> {
    let mut p: Vec<String> = index.search(q, 100).into_iter().map(|h| h.path).collect();
    p.sort();
    p
}

fn words(w: &str) -> Query {
    Query::words(w)
}

#[test]
fn by_tth_finds_every_copy_and_nothing_else() {
    let index = sample();
    let hits = index.search(&Query::for_tth(tth(1)), 100);
    let mut got: Vec<_> = hits.iter().map(|h| (h.path.as_str(), h.size, h.tth, h.is_dir)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Backup/Help.mp3", 4_000_000, Some(tth(1)), false),
            ("Music/The Beatles/Help.mp3", 4_000_000, Some(tth(1)), false),
        ]
    );
    assert!(index.search(&Query::for_tth(tth(999)), 100).is_empty());
    let one = Query::for_tth(tth(1));
    assert_eq!(index.search(&one, 1).len(), 1);
    // Words are ignored in a TTH search, as DC++ does.
    let mixed = Query { include: vec!["nothing-like-this".into()], ..Query::for_tth(tth(9)) };
    assert_eq!(paths(&index, &mixed), ["Books/linux-kernel.pdf"]);
    assert_eq!(
        index.find_tth(&tth(2)),
        vec![index.tree().lookup("Music/The Beatles/Yesterday.flac").unwrap()]
    );
}

#[test]
fn words_match_names_and_folders_case_insensitively() {
    let index = sample();
    assert_eq!(
        paths(&index, &words("help")),
        [
            "Backup/Help.mp3",
            "Movies/Help! (1965).mkv",
            "Movies/Help! (1965).nfo",
            "Music/Queen/Live/Help Live.mp3",
            "Music/The Beatles/Help.mp3",
        ]
    );
    // One term on the folder, one on the file.
    assert_eq!(paths(&index, &words("BEATLES HELP")), ["Music/The Beatles/Help.mp3"]);
    // A folder matching every term is returned, with everything below it.
    assert_eq!(
        paths(&index, &words("beatles")),
        [
            "Music/The Beatles",
            "Music/The Beatles/Help.mp3",
            "Music/The Beatles/Yesterday.flac",
            "Music/The Beatles/cover.jpg",
        ]
    );
    // Substrings, two-letter and one-letter terms, unicode folding.
    assert_eq!(paths(&index, &words("rhaps")), ["Music/Queen/Bohemian Rhapsody.mp3"]);
    assert_eq!(paths(&index, &words("äRGER")), ["Books/Ärger im Paradies.epub"]);
    assert_eq!(paths(&index, &words("ux kern")), ["Books/linux-kernel.pdf"]);
    assert_eq!(paths(&index, &words("z")), ["Software/archive.tar.gz"]);
    // A term with a separator is split into its parts.
    assert_eq!(
        paths(&index, &words("queen/live")),
        ["Music/Queen/Live", "Music/Queen/Live/Help Live.mp3"]
    );
    // Terms nothing contains.
    assert!(index.search(&words("help zzzz"), 100).is_empty());
    assert!(index.search(&words("xq"), 100).is_empty());
}

#[test]
fn exclusions_remove_whole_paths() {
    let index = sample();
    let q = Query { exclude: vec!["LIVE".into(), "movies".into()], ..words("help") };
    assert_eq!(paths(&index, &q), ["Backup/Help.mp3", "Music/The Beatles/Help.mp3"]);
    let q = Query { exclude: vec!["beatles".into()], ..words("mp3") };
    assert_eq!(
        paths(&index, &q),
        ["Backup/Help.mp3", "Music/Queen/Bohemian Rhapsody.mp3", "Music/Queen/Live/Help Live.mp3"]
    );
}

#[test]
fn sizes_bound_files_and_drop_folders() {
    let index = sample();
    let q = Query { min_size: Some(5_000_000), ..words("help") };
    assert_eq!(paths(&index, &q), ["Movies/Help! (1965).mkv", "Music/Queen/Live/Help Live.mp3"]);
    let q = Query { max_size: Some(4_000_000), ..words("help") };
    assert_eq!(
        paths(&index, &q),
        ["Backup/Help.mp3", "Movies/Help! (1965).nfo", "Music/The Beatles/Help.mp3"]
    );
    let q = Query { size: Some(2_000), ..words("help") };
    assert_eq!(paths(&index, &q), ["Movies/Help! (1965).nfo"]);
    let q = Query { min_size: Some(0), ..words("beatles") };
    assert_eq!(index.search(&q, 100).iter().filter(|h| h.is_dir).count(), 0);
    let q = Query { min_size: Some(10), max_size: Some(5), ..words("help") };
    assert!(index.search(&q, 100).is_empty());
    // Size only, no words: the tree is walked.
    let q = Query { size: Some(12_000_000), ..Query::default() };
    assert_eq!(paths(&index, &q), ["Books/linux-kernel.pdf"]);
}

#[test]
fn types_and_extensions() {
    let index = sample();
    let typed = |t: FileType, w: &str| Query { file_type: t, ..words(w) };
    assert_eq!(paths(&index, &typed(FileType::Video, "help")), ["Movies/Help! (1965).mkv"]);
    assert_eq!(paths(&index, &typed(FileType::Document, "help")), ["Movies/Help! (1965).nfo"]);
    assert_eq!(
        paths(&index, &typed(FileType::Audio, "beatles")),
        ["Music/The Beatles/Help.mp3", "Music/The Beatles/Yesterday.flac"]
    );
    assert_eq!(
        paths(&index, &typed(FileType::Picture, "beatles")),
        ["Music/The Beatles/cover.jpg"]
    );
    assert_eq!(paths(&index, &typed(FileType::Executable, "")), ["Software/setup.exe"]);
    assert_eq!(paths(&index, &typed(FileType::Compressed, "soft")), ["Software/archive.tar.gz"]);
    assert_eq!(
        paths(&index, &typed(FileType::Folder, "e")),
        ["Movies", "Music/Queen", "Music/Queen/Live", "Music/The Beatles", "Software"]
    );
    assert_eq!(
        paths(&index, &typed(FileType::File, "queen")),
        ["Music/Queen/Bohemian Rhapsody.mp3", "Music/Queen/Live/Help Live.mp3"]
    );
    let ext = Query { extensions: vec!["FLAC".into(), ".mkv".into()], ..words("") };
    assert_eq!(
        paths(&index, &ext),
        ["Movies/Help! (1965).mkv", "Music/The Beatles/Yesterday.flac"]
    );
    assert!(FileType::Audio.extensions().contains(&"mp3"));
}

#[test]
fn limits_cap_the_results() {
    let entries: Vec<ShareEntry> =
        (0..50).map(|i| entry(&format!("Stuff/song {i:02}.mp3"), 1000 + i, i as u32)).collect();
    let index = ShareIndex::new(ShareTree::from_entries(entries).0);
    for limit in [MAX_RESULTS_PASSIVE, MAX_RESULTS_ACTIVE, 1, 0] {
        assert_eq!(index.search(&Query::words("song"), limit).len(), limit);
    }
    assert_eq!((MAX_RESULTS_PASSIVE, MAX_RESULTS_ACTIVE), (5, 10));
    let q = Query { file_type: FileType::Audio, ..Query::words("song") };
    assert_eq!(index.search(&q, 1000).len(), 50);
}

#[test]
fn unhashed_files_and_empty_folders_stay_hidden() {
    let index = sample();
    assert!(index.search(&words("unhashed"), 100).is_empty());
    assert!(index.search(&words("pending"), 100).is_empty());
}

#[test]
fn updates_are_seen_by_searches() {
    let mut index = sample();
    assert!(index.search(&words("submarine"), 100).is_empty());
    index.insert(entry("Music/The Beatles/Yellow Submarine.mp3", 7, 100)).unwrap();
    assert_eq!(
        paths(&index, &words("beatles submarine")),
        ["Music/The Beatles/Yellow Submarine.mp3"]
    );
    assert_eq!(index.search(&Query::for_tth(tth(100)), 100).len(), 1);
    // A file that gets its TTH becomes searchable.
    index.insert(entry("Music/Pending/Help unhashed.mp3", 5, 101)).unwrap();
    assert_eq!(paths(&index, &words("unhashed")), ["Music/Pending/Help unhashed.mp3"]);
    // A new TTH replaces the old one.
    index.insert(entry("Music/Pending/Help unhashed.mp3", 5, 102)).unwrap();
    assert!(index.search(&Query::for_tth(tth(101)), 100).is_empty());
    assert_eq!(index.search(&Query::for_tth(tth(102)), 100).len(), 1);
    // Removing a folder removes everything below it from every search.
    index.remove("Music/The Beatles").unwrap();
    assert!(index.search(&words("beatles"), 100).is_empty());
    assert!(index.search(&words("submarine"), 100).is_empty());
    assert!(index.search(&Query::for_tth(tth(100)), 100).is_empty());
    assert_eq!(index.search(&Query::for_tth(tth(1)), 100).len(), 1);
    // Reused ids must not bring stale names back.
    index.insert(entry("New/plain.txt", 1, 200)).unwrap();
    index.insert(entry("New/other.txt", 1, 201)).unwrap();
    assert!(index.search(&words("yesterday"), 100).is_empty());
    assert_eq!(paths(&index, &words("plain")), ["New/plain.txt"]);
    assert_eq!(index.tree().shared_files(), 12);
}

// ----- brute force cross-check -----

const VOCAB: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "Live",
    "remix",
    "the",
    "of",
    "Ärger",
    "ünder",
    "mp",
    "x",
    "2001",
    "best",
    "collection",
    "tour",
    "Queen",
    "help",
    "yesterday",
    "ab",
    "ba",
    "ß",
];
const EXTS: &[&str] = &["mp3", "flac", "avi", "mkv", "txt", "pdf", "jpg", "zip", "exe", "bin"];

fn random_name(rng: &mut StdRng, file: bool) -> String {
    let n = rng.random_range(1..4);
    let mut parts: Vec<String> =
        (0..n).map(|_| VOCAB[rng.random_range(0..VOCAB.len())].to_string()).collect();
    parts.push(rng.random_range(0..50u32).to_string());
    let mut name = parts.join(if rng.random_bool(0.5) { " " } else { "_" });
    if file {
        name.push('.');
        name.push_str(EXTS[rng.random_range(0..EXTS.len())]);
    }
    name
}

fn random_path(rng: &mut StdRng) -> String {
    let depth = rng.random_range(1..4);
    let mut p = vec![["Music", "Video", "Misc"][rng.random_range(0..3)].to_string()];
    for _ in 1..depth {
        p.push(random_name(rng, false));
    }
    p.push(random_name(rng, true));
    p.join("/")
}

fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Every listed node with its case-folded path components.
fn listed_paths(tree: &ShareTree) -> Vec<(NodeId, Vec<String>)> {
    let mut out = Vec::new();
    tree.walk(tree.top(), |id| {
        if tree.is_listed(id) {
            out.push((id, tree.path(id).split('/').map(lower).collect()));
        }
    });
    out
}

/// The definition of a match, written the slow and obvious way.
fn brute_force(tree: &ShareTree, listed: &[(NodeId, Vec<String>)], q: &Query) -> BTreeSet<NodeId> {
    let split = |terms: &[String]| -> Vec<String> {
        terms
            .iter()
            .flat_map(|t| t.split(['/', '\\']))
            .filter(|t| !t.is_empty())
            .map(lower)
            .collect()
    };
    let include = split(&q.include);
    let exclude = split(&q.exclude);
    let sized = q.min_size.is_some() || q.max_size.is_some() || q.size.is_some();
    let mut out = BTreeSet::new();
    for (id, comps) in listed {
        let id = *id;
        if !include.iter().all(|t| comps.iter().any(|c| c.contains(t.as_str())))
            || exclude.iter().any(|t| comps.iter().any(|c| c.contains(t.as_str())))
        {
            continue;
        }
        if tree.is_dir(id) {
            if matches!(q.file_type, FileType::Any | FileType::Folder)
                && q.extensions.is_empty()
                && !sized
            {
                out.insert(id);
            }
            continue;
        }
        let size = tree.size(id);
        if q.file_type == FileType::Folder
            || q.min_size.is_some_and(|m| size < m)
            || q.max_size.is_some_and(|m| size > m)
            || q.size.is_some_and(|m| size != m)
        {
            continue;
        }
        let name = tree.name(id);
        let ext = name.rsplit_once('.').map(|(_, e)| lower(e));
        let group = q.file_type.extensions();
        if !group.is_empty() && !ext.as_ref().is_some_and(|e| group.contains(&e.as_str())) {
            continue;
        }
        if !q.extensions.is_empty()
            && !ext.as_ref().is_some_and(|e| q.extensions.iter().any(|x| lower(x) == *e))
        {
            continue;
        }
        out.insert(id);
    }
    out
}

fn random_query(rng: &mut StdRng) -> Query {
    let mut q = Query::default();
    let term = |rng: &mut StdRng| -> String {
        let w = VOCAB[rng.random_range(0..VOCAB.len())];
        let chars: Vec<char> = w.chars().collect();
        // Whole words, or a random piece of one (down to one letter).
        if rng.random_bool(0.5) {
            let a = rng.random_range(0..chars.len());
            let b = rng.random_range(a + 1..=chars.len());
            let piece: String = chars[a..b].iter().collect();
            if rng.random_bool(0.3) {
                piece.to_uppercase()
            } else {
                piece
            }
        } else {
            w.to_string()
        }
    };
    for _ in 0..rng.random_range(0..4) {
        q.include.push(term(rng));
    }
    if rng.random_bool(0.2) {
        q.exclude.push(term(rng));
    }
    if rng.random_bool(0.15) {
        q.file_type = [FileType::Audio, FileType::Video, FileType::Folder, FileType::File]
            [rng.random_range(0..4)];
    }
    if rng.random_bool(0.1) {
        q.extensions.push(EXTS[rng.random_range(0..EXTS.len())].to_uppercase());
    }
    if rng.random_bool(0.1) {
        q.min_size = Some(rng.random_range(0..1000));
    }
    if rng.random_bool(0.1) {
        q.max_size = Some(rng.random_range(0..1000));
    }
    q
}

fn check_against_brute_force(index: &ShareIndex, rng: &mut StdRng, queries: usize) {
    let listed = listed_paths(index.tree());
    let mut answered = 0;
    for _ in 0..queries {
        let q = random_query(rng);
        let expected = brute_force(index.tree(), &listed, &q);
        answered += usize::from(!expected.is_empty());
        let hits = index.search(&q, usize::MAX);
        let got: BTreeSet<NodeId> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got.len(), hits.len(), "duplicate results for {q:?}");
        assert_eq!(got, expected, "query {q:?}");
        // A limit returns that many of the same results.
        let limit = rng.random_range(1..12);
        let capped = index.search(&q, limit);
        assert_eq!(capped.len(), limit.min(expected.len()), "limit {limit} for {q:?}");
        assert!(capped.iter().all(|h| expected.contains(&h.id)), "capped {q:?}");
        for h in &hits {
            assert_eq!(h.path, index.tree().path(h.id));
            assert_eq!(h.is_dir, index.tree().is_dir(h.id));
        }
    }
    // The random queries must mostly find something, or this proves little.
    assert!(answered * 2 > queries, "only {answered} of {queries} queries had results");
}

#[test]
fn index_agrees_with_brute_force_through_changes() {
    let mut rng = StdRng::seed_from_u64(0xdc1a);
    let entries: Vec<ShareEntry> = (0..3000)
        .map(|i| {
            let mut e = entry(&random_path(&mut rng), rng.random_range(0..1000), i);
            if i % 17 == 0 {
                e.tth = None;
            }
            e
        })
        .collect();
    let (tree, _) = ShareTree::from_entries(entries);
    let mut index = ShareIndex::new(tree);
    check_against_brute_force(&index, &mut rng, 300);

    let mut next_tth = 10_000u32;
    let mut churn = |index: &mut ShareIndex, rng: &mut StdRng, adds: usize, remove: f64| {
        for _ in 0..adds {
            next_tth += 1;
            // Some collide and are refused; some update existing files.
            let _ = index.insert(entry(&random_path(rng), rng.random_range(0..1000), next_tth));
        }
        let mut victims = Vec::new();
        let tree = index.tree();
        tree.walk(tree.top(), |id| {
            if id != tree.top() && rng.random_bool(remove) {
                victims.push(tree.path(id));
            }
        });
        for v in victims {
            // A folder removed earlier takes its content with it.
            let _ = index.remove(&v);
        }
    };
    // Small changes: new nodes live in the appended region, removed ones
    // linger as stale entries; searches must see through both.
    for _ in 0..3 {
        churn(&mut index, &mut rng, 600, 0.03);
        let stats = index.stats();
        assert!(stats.appended > 0 && stats.stale > 0, "{stats:?}");
        check_against_brute_force(&index, &mut rng, 150);
    }
    // Large changes trigger rebuilds of the lists.
    let before = index.stats().appended;
    for _ in 0..3 {
        churn(&mut index, &mut rng, 2500, 0.25);
        check_against_brute_force(&index, &mut rng, 150);
    }
    assert!(index.stats().appended < before + 7500, "no rebuild happened");
}
