//! Share tree, file list and search benchmark on 1,000,000 synthetic files.
//!
//! Prints figures and ratios against baselines measured in the same run; it
//! asserts nothing. Run with `cargo bench --bench share_index`; set
//! `DCLUA_BENCH_FILES` for another share size.
//!
//! - tree: build time (bulk vs one `insert` per file) and bytes per entry
//!   from a counting global allocator (vs the plain `Vec<ShareEntry>`);
//! - index: build time and bytes per entry;
//! - file list: `files.xml.bz2` generation on all cores vs one core, and
//!   reading it back;
//! - search: latency percentiles over a mix of queries, and the index vs a
//!   linear walk of the tree (what DC++ does) on a sample of the same mix.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dclua::proto::tth::Tth;
use dclua::search::{FileType, Query, MAX_RESULTS_ACTIVE};
use dclua::share::filelist::{read_listing, write_bz2, write_xml, ListOptions, ReadLimits};
use dclua::share::index::ShareIndex;
use dclua::share::tree::{NodeId, ShareEntry, ShareTree};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ----- counting allocator -----

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call forwards to the system allocator with the caller's
// arguments unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` came from this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

// ----- synthetic share -----

/// Pseudo-words built from syllables, used with a Zipf-like skew so that a
/// few words are very common and most are rare, as in real names.
struct Vocab {
    words: Vec<String>,
}

impl Vocab {
    fn new(rng: &mut StdRng, n: usize) -> Vocab {
        // Onset, nucleus and coda, English-like; a few accented letters.
        const ONSET: &[&str] = &[
            "", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
            "w", "z", "st", "tr", "ch", "sh", "th", "br", "pl", "gr", "cl", "sp", "qu", "ž",
        ];
        const NUCLEUS: &[&str] =
            &["a", "e", "i", "o", "u", "y", "ai", "ea", "ou", "io", "ee", "oo", "é", "ö"];
        const CODA: &[&str] =
            &["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng", "x", "rk"];
        let mut words: Vec<String> = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::new();
        while words.len() < n {
            let syllables = rng.random_range(1..4);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSET[rng.random_range(0..ONSET.len())]);
                w.push_str(NUCLEUS[rng.random_range(0..NUCLEUS.len())]);
                w.push_str(CODA[rng.random_range(0..CODA.len())]);
            }
            if w.chars().count() >= 3 && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        Vocab { words }
    }

    /// A word, skewed towards the start of the list.
    fn pick(&self, rng: &mut StdRng) -> &str {
        let u: f64 = rng.random();
        let i = ((self.words.len() as f64).powf(u) as usize).saturating_sub(1);
        &self.words[i.min(self.words.len() - 1)]
    }

    fn title(&self, rng: &mut StdRng, min: usize, max: usize) -> String {
        let n = rng.random_range(min..=max);
        let mut out = String::new();
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            let w = self.pick(rng);
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        }
        out
    }
}

const ROOTS: &[(&str, &[&str])] = &[
    ("Music", &["mp3", "mp3", "mp3", "flac", "ogg", "m4a"]),
    ("Movies", &["mkv", "avi", "mp4", "srt", "nfo"]),
    ("Books", &["pdf", "epub", "djvu", "txt"]),
    ("Software", &["exe", "zip", "iso", "tar.gz", "msi"]),
    ("Pictures", &["jpg", "jpg", "png", "raw"]),
];

fn random_tth(rng: &mut StdRng) -> Tth {
    let mut b = [0u8; 24];
    rng.fill(&mut b[..]);
    Tth(b)
}

/// About `files` entries: Root/Artist/Album (Year)/NN - Title.ext, 10 to 30
/// files per album folder.
fn synthetic_share(files: usize, seed: u64) -> Vec<ShareEntry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = Vocab::new(&mut rng, 50_000);
    let mut out = Vec::with_capacity(files);
    while out.len() < files {
        let (root, exts) = ROOTS[rng.random_range(0..ROOTS.len())];
        let artist = vocab.title(&mut rng, 1, 3);
        for _ in 0..rng.random_range(1..6) {
            let album =
                format!("{} ({})", vocab.title(&mut rng, 1, 4), rng.random_range(1960..2025));
            for track in 1..=rng.random_range(10..31) {
                if out.len() >= files {
                    break;
                }
                let ext = exts[rng.random_range(0..exts.len())];
                let title = vocab.title(&mut rng, 1, 5);
                out.push(ShareEntry {
                    path: format!("{root}/{artist}/{album}/{track:02} - {title}.{ext}"),
                    size: rng.random_range(1_000..2_000_000_000u64),
                    tth: Some(random_tth(&mut rng)),
                    mtime: 1_600_000_000 + rng.random_range(0..100_000_000u64),
                });
            }
        }
    }
    out
}

// ----- queries -----

/// A query and the result limit it is run with.
struct SearchQuery {
    q: Query,
    max_results: usize,
}

impl std::ops::Deref for SearchQuery {
    type Target = Query;
    fn deref(&self) -> &Query {
        &self.q
    }
}

impl std::ops::DerefMut for SearchQuery {
    fn deref_mut(&mut self) -> &mut Query {
        &mut self.q
    }
}

struct Mix {
    kinds: Vec<&'static str>,
    queries: Vec<(usize, SearchQuery)>,
}

/// Names of a few random files, split into words, to build queries with hits.
fn name_words(tree: &ShareTree, rng: &mut StdRng) -> Vec<String> {
    loop {
        let id = tree.id_at(rng.random_range(1..tree.id_bound()));
        if let Some(id) = id.filter(|&id| tree.is_file(id)) {
            return tree
                .path(id)
                .split(['/', ' ', '.', '(', ')'])
                .filter(|w| w.len() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
                .map(str::to_string)
                .collect();
        }
    }
}

fn random_file(tree: &ShareTree, rng: &mut StdRng) -> NodeId {
    loop {
        if let Some(id) = tree.id_at(rng.random_range(1..tree.id_bound())) {
            if tree.is_file(id) {
                return id;
            }
        }
    }
}

fn query_mix(tree: &ShareTree, n: usize, seed: u64) -> Mix {
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = Vocab::new(&mut StdRng::seed_from_u64(7), 50_000);
    let kinds = vec![
        "one word",
        "two words of a name",
        "three words of a name",
        "word + audio + size",
        "word prefix",
        "2-letter + word",
        "word - exclusion",
        "no such word",
        "folder type",
        "TTH present",
        "TTH absent",
    ];
    let mut queries = Vec::with_capacity(n);
    for i in 0..n {
        let kind = i % kinds.len();
        let active = rng.random_bool(0.5);
        let limit = if active { MAX_RESULTS_ACTIVE } else { 5 };
        let pick = |rng: &mut StdRng, k: usize| -> Vec<String> {
            let mut w = name_words(tree, rng);
            while w.len() > k {
                w.remove(rng.random_range(0..w.len()));
            }
            w
        };
        let mut q = SearchQuery { max_results: limit, q: Query::default() };
        match kind {
            0 => q.include = vec![vocab.pick(&mut rng).to_string()],
            1 => q.include = pick(&mut rng, 2),
            2 => q.include = pick(&mut rng, 3),
            3 => {
                q.include = vec![vocab.pick(&mut rng).to_string()];
                q.file_type = FileType::Audio;
                q.min_size = Some(100_000_000);
            }
            4 => {
                let w = vocab.pick(&mut rng);
                q.include = vec![w.chars().take(rng.random_range(3..5)).collect()];
            }
            5 => {
                let w = vocab.pick(&mut rng);
                q.include = vec![w.chars().take(2).collect(), vocab.pick(&mut rng).to_string()];
            }
            6 => {
                q.include = vec![vocab.pick(&mut rng).to_string()];
                q.exclude = vec![vocab.pick(&mut rng).to_string()];
            }
            7 => q.include = vec![format!("zq{}", rng.random_range(0..1_000_000))],
            8 => {
                q.include = vec![vocab.pick(&mut rng).to_string()];
                q.file_type = FileType::Folder;
            }
            9 => q.tth = tree.tth(random_file(tree, &mut rng)),
            _ => q.tth = Some(random_tth(&mut rng)),
        }
        queries.push((kind, q));
    }
    Mix { kinds, queries }
}

/// The baseline: walk every listed entry and test the terms against its
/// path, as a client without an index does.
fn linear_search(tree: &ShareTree, q: &SearchQuery) -> usize {
    let include: Vec<String> = q.include.iter().map(|t| t.to_lowercase()).collect();
    let exclude: Vec<String> = q.exclude.iter().map(|t| t.to_lowercase()).collect();
    let mut found = 0;
    let mut stack = vec![(tree.top(), vec![false; include.len()])];
    while let Some((dir, have)) = stack.pop() {
        for &c in tree.children(dir) {
            if found >= q.max_results || !tree.is_listed(c) {
                continue;
            }
            if let Some(t) = &q.tth {
                if tree.is_dir(c) {
                    stack.push((c, have.clone()));
                } else if tree.tth(c).as_ref() == Some(t) {
                    found += 1;
                }
                continue;
            }
            let name = tree.name(c).to_lowercase();
            if exclude.iter().any(|t| name.contains(t.as_str())) {
                continue;
            }
            let now: Vec<bool> =
                include.iter().zip(&have).map(|(t, &h)| h || name.contains(t.as_str())).collect();
            if now.iter().all(|&h| h) {
                found += 1;
            }
            if tree.is_dir(c) {
                stack.push((c, now));
            }
        }
    }
    found
}

/// CPU time of the calling thread: unlike the wall clock, it does not count
/// the time the thread waits for a core on a loaded machine.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// CPU time of the whole process (all threads).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    let files: usize =
        std::env::var("DCLUA_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("share_index benchmark: {files} synthetic files, {cores} cores");

    // --- tree ---
    let base = reset_peak();
    let t = Instant::now();
    let entries = synthetic_share(files, 7);
    let gen_time = t.elapsed();
    let entries_bytes = live() - base;
    let n = entries.len();
    println!(
        "entries: generated in {:.2} s; the plain Vec<ShareEntry> takes {} ({:.0} B/entry)",
        gen_time.as_secs_f64(),
        mb(entries_bytes),
        entries_bytes as f64 / n as f64
    );

    // The entries are consumed (and freed) by the build: what remains above
    // `base` is the tree alone.
    reset_peak();
    let t = Instant::now();
    let (tree, warnings) = ShareTree::from_entries(entries);
    let build = t.elapsed();
    let tree_bytes = live() - base;
    let tree_peak = peak() - base;
    println!(
        "tree: built in {:.2} s ({} warnings); {} nodes ({} folders); {} = {:.1} B/entry \
         (target ≤ 200; {:.2}x the plain entry list); build peak {}",
        build.as_secs_f64(),
        warnings.len(),
        tree.len(),
        tree.len() - n,
        mb(tree_bytes),
        tree_bytes as f64 / n as f64,
        tree_bytes as f64 / entries_bytes as f64,
        mb(tree_peak),
    );
    let one_by_one = synthetic_share(n / 4, 8);
    let t = Instant::now();
    let mut inc = ShareTree::new();
    let quarter = one_by_one.len();
    for e in one_by_one {
        let _ = inc.insert(e);
    }
    let inc_time = t.elapsed();
    println!(
        "tree baseline: one insert() per file: {quarter} files in {:.2} s = {:.2} µs/file \
         (bulk build: {:.2} µs/file, {:.1}x faster)",
        inc_time.as_secs_f64(),
        inc_time.as_secs_f64() * 1e6 / quarter as f64,
        build.as_secs_f64() * 1e6 / n as f64,
        (inc_time.as_secs_f64() / quarter as f64) / (build.as_secs_f64() / n as f64),
    );
    drop(inc);

    // --- index ---
    let base = reset_peak();
    let t = Instant::now();
    let index = ShareIndex::new(tree);
    let index_time = t.elapsed();
    let index_bytes = live() - base;
    let stats = index.stats();
    println!(
        "index: built in {:.2} s; {} = {:.1} B/entry ({} trigrams, {} postings in {} = \
         {:.2} B/posting, {} TTH slots); build peak {}",
        index_time.as_secs_f64(),
        mb(index_bytes),
        index_bytes as f64 / n as f64,
        stats.grams,
        stats.postings,
        mb(stats.posting_bytes as usize),
        stats.posting_bytes as f64 / stats.postings.max(1) as f64,
        stats.tth_slots,
        mb(peak() - base),
    );
    println!(
        "tree + index: {:.1} B/entry (target ≤ 200)",
        (tree_bytes + index_bytes) as f64 / n as f64
    );
    let tree = index.tree();

    // --- file list ---
    let cid = "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ";
    let skip_list = std::env::var_os("DCLUA_BENCH_NO_LIST").is_some();
    if !skip_list {
        let t = Instant::now();
        match write_xml(tree, &ListOptions { threads: 1, ..ListOptions::full(cid) }) {
            Ok(xml) => {
                println!(
                    "files.xml (uncompressed, 1 core): {} in {:.2} s",
                    mb(xml.len()),
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => println!("files.xml failed: {e}"),
        }
    }
    let mut timings = Vec::new();
    let mut list = Vec::new();
    for threads in [cores, 1].into_iter().filter(|_| !skip_list) {
        let c = process_cpu();
        let t = Instant::now();
        match write_bz2(tree, &ListOptions { threads, ..ListOptions::full(cid) }) {
            Ok(bytes) => {
                timings.push((threads, t.elapsed(), process_cpu().saturating_sub(c)));
                if list.is_empty() {
                    list = bytes;
                }
            }
            Err(e) => println!("file list with {threads} threads failed: {e}"),
        }
    }
    if let [(c, all, all_cpu), (_, one, one_cpu)] = timings[..] {
        println!(
            "files.xml.bz2: {} written in {:.2} s on {c} cores (target ≤ 4 s) vs {:.2} s on \
             1 core: {:.2}x",
            mb(list.len()),
            all.as_secs_f64(),
            one.as_secs_f64(),
            one.as_secs_f64() / all.as_secs_f64()
        );
        println!(
            "files.xml.bz2: CPU time {:.2} s on {c} cores ({:.2} s per core: the wall time on \
             idle cores), {:.2} s on 1 core; wall/CPU {:.2} on {c} cores (1.00 = had the cores \
             to itself)",
            all_cpu.as_secs_f64(),
            all_cpu.as_secs_f64() / c as f64,
            one_cpu.as_secs_f64(),
            all.as_secs_f64() * c as f64 / all_cpu.as_secs_f64().max(1e-9),
        );
    }
    // Opening a browsed list (issue 11): the bounded reader next to
    // `bzip2 -dc` of the same file in the same run, and the bytes the read
    // list holds per entry.
    let bzip2_dc = (!skip_list).then(|| {
        let path =
            std::env::temp_dir().join(format!("dclua-bench-list-{}.xml.bz2", std::process::id()));
        std::fs::write(&path, &list).ok()?;
        let t = Instant::now();
        let ok = std::process::Command::new("bzip2")
            .arg("-dc")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&path);
        ok.then(|| t.elapsed())
    });
    let before = live();
    let t = Instant::now();
    match read_listing(&list[..], &ReadLimits::default()) {
        _ if skip_list => {}
        Ok(l) => {
            let took = t.elapsed();
            let held = live().saturating_sub(before);
            let entries = l.root.total_files() + count_dirs(&l.root);
            println!(
                "files.xml.bz2 read back in {:.2} s: {} files, {} bytes (tree: {} files, {} bytes)",
                took.as_secs_f64(),
                l.root.total_files(),
                l.root.total_size(),
                tree.shared_files(),
                tree.shared_size()
            );
            println!(
                "the read list holds {:.1} B per entry ({entries} entries; target <= 100 B)",
                held as f64 / entries.max(1) as f64
            );
            match bzip2_dc.flatten() {
                Some(b) => println!(
                    "bzip2 -dc of the same list: {:.2} s; the reader takes {:.2}x of it (target <= 1.5x)",
                    b.as_secs_f64(),
                    took.as_secs_f64() / b.as_secs_f64()
                ),
                None => println!("bzip2 -dc is not available: no baseline for opening the list"),
            }
        }
        Err(e) => println!("reading the list back failed: {e}"),
    }
    drop(list);

    // --- search ---
    let mix = query_mix(tree, 11_000, 99);
    for (_, q) in mix.queries.iter().take(500) {
        std::hint::black_box(index.search(&q.q, q.max_results));
    }
    let mut slowest: Vec<(Duration, usize, usize)> = Vec::new();
    let mut all = Vec::with_capacity(mix.queries.len());
    let mut all_cpu = Vec::with_capacity(mix.queries.len());
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); mix.kinds.len()];
    let mut per_kind_cpu: Vec<Vec<Duration>> = vec![Vec::new(); mix.kinds.len()];
    let mut results = vec![0usize; mix.kinds.len()];
    for (i, (kind, q)) in mix.queries.iter().enumerate() {
        let c = thread_cpu();
        let t = Instant::now();
        let hits = index.search(&q.q, q.max_results);
        let d = t.elapsed();
        let cpu = thread_cpu().saturating_sub(c);
        all_cpu.push(cpu);
        per_kind_cpu[*kind].push(cpu);
        slowest.push((cpu, i, hits.len()));
        results[*kind] += hits.len();
        all.push(d);
        per_kind[*kind].push(d);
    }
    all.sort();
    all_cpu.sort();
    println!(
        "search: {} queries, wall clock: p50 {}, p90 {}, p99 {} (target ≤ 1 ms), max {}",
        all.len(),
        us(pct(&all, 0.5)),
        us(pct(&all, 0.9)),
        us(pct(&all, 0.99)),
        us(pct(&all, 1.0))
    );
    println!(
        "search: {} queries, thread CPU time: p50 {}, p90 {}, p99 {} (target ≤ 1 ms), max {}",
        all_cpu.len(),
        us(pct(&all_cpu, 0.5)),
        us(pct(&all_cpu, 0.9)),
        us(pct(&all_cpu, 0.99)),
        us(pct(&all_cpu, 1.0))
    );
    println!("  per kind (wall p50 / wall p99 / CPU p99 / CPU max):");
    for (k, durations) in per_kind.iter_mut().enumerate() {
        durations.sort();
        per_kind_cpu[k].sort();
        println!(
            "  {:<24} {:>9} {:>9} {:>9} {:>9}  avg results {:.1}",
            mix.kinds[k],
            us(pct(durations, 0.5)),
            us(pct(durations, 0.99)),
            us(pct(&per_kind_cpu[k], 0.99)),
            us(pct(&per_kind_cpu[k], 1.0)),
            results[k] as f64 / durations.len().max(1) as f64
        );
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    println!("  slowest (CPU time):");
    for &(d, i, found) in slowest.iter().take(6) {
        let (kind, q) = &mix.queries[i];
        println!(
            "    {:>9}  {:<22} {} results; include {:?} exclude {:?}",
            us(d),
            mix.kinds[*kind],
            found,
            q.include,
            q.exclude
        );
    }
    // Baseline: a linear walk on a sample of the same mix.
    let sample: Vec<&SearchQuery> = mix.queries.iter().step_by(55).map(|(_, q)| q).collect();
    let t = Instant::now();
    let mut found = 0;
    for q in &sample {
        found += linear_search(tree, q);
    }
    let linear = t.elapsed();
    let t = Instant::now();
    let mut found_index = 0;
    for q in &sample {
        found_index += index.search(&q.q, q.max_results).len();
    }
    let indexed = t.elapsed();
    println!(
        "search baseline: linear walk {} per query vs index {} per query on {} queries: \
         {:.0}x ({found} vs {found_index} results)",
        us(linear / sample.len() as u32),
        us(indexed / sample.len() as u32),
        sample.len(),
        linear.as_secs_f64() / indexed.as_secs_f64()
    );
}

/// Folders below `d`.
fn count_dirs(d: &dclua::share::filelist::ListDir) -> u64 {
    d.dirs.len() as u64 + d.dirs.iter().map(count_dirs).sum::<u64>()
}
