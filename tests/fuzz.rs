//! The stable fuzz driver: every target of `dclua::fuzzing` fed with
//! mutations of its seed corpus (`fuzz/corpus/<target>/`, made from the
//! captured protocol vectors), on the stable toolchain, as part of
//! `cargo test`.
//!
//! It is not coverage-guided (that is `cargo +nightly fuzz run <target>`,
//! see the README): it applies random byte-level and token-level mutations,
//! stacked a few deep, to the seeds, which finds the shallow crashes cheaply
//! and keeps them from coming back. Runs are deterministic for a seed:
//! `DCLUA_FUZZ_SEED` (default fixed) and `DCLUA_FUZZ_EXECS` (executions per
//! target; default 100,000, a few seconds) choose the run. A crashing input is
//! written to `target/fuzz-findings/<target>-<hash>` and printed, and the test
//! fails; `cargo +nightly fuzz run <target> <file>` or this driver with
//! `DCLUA_FUZZ_REPLAY=<file>` replays it.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dclua::fuzzing::{target, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_EXECS: u64 = 100_000;
/// Inputs never grow past this (the codecs' interesting paths are short).
const MAX_INPUT: usize = 64 * 1024;

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name)
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).expect("seed")).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One random mutation of `data` (in place).
fn mutate(rng: &mut StdRng, data: &mut Vec<u8>, t: &Target, seeds: &[Vec<u8>]) {
    let pos = |rng: &mut StdRng, len: usize| if len == 0 { 0 } else { rng.random_range(0..=len) };
    match rng.random_range(0..10) {
        // Flip a bit.
        0 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            data[i] ^= 1 << rng.random_range(0..8);
        }
        // Set a byte to an interesting value.
        1 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            const SPECIAL: [u8; 12] =
                [0, 0x01, 0x05, b'|', b'$', b' ', b'\n', b'\\', 0x7f, 0x80, 0xc3, 0xff];
            data[i] =
                if rng.random_bool(0.5) { SPECIAL[rng.random_range(0..12)] } else { rng.random() };
        }
        // Delete a range.
        2 if !data.is_empty() => {
            let a = rng.random_range(0..data.len());
            let b = (a + rng.random_range(1..=16)).min(data.len());
            data.drain(a..b);
        }
        // Duplicate a range.
        3 if !data.is_empty() => {
            let a = rng.random_range(0..data.len());
            let b = (a + rng.random_range(1..=64)).min(data.len());
            let chunk = data[a..b].to_vec();
            let at = pos(rng, data.len());
            let times = if rng.random_bool(0.1) { rng.random_range(2..200) } else { 1 };
            for _ in 0..times {
                data.splice(at..at, chunk.iter().copied());
            }
        }
        // Insert random bytes.
        4 => {
            let at = pos(rng, data.len());
            let n = rng.random_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        // Splice in part of another seed.
        5 => {
            let other = &seeds[rng.random_range(0..seeds.len())];
            if !other.is_empty() {
                let a = rng.random_range(0..other.len());
                let b = (a + rng.random_range(1..=256)).min(other.len());
                let at = pos(rng, data.len());
                data.splice(at..at, other[a..b].iter().copied());
            }
        }
        // Truncate.
        6 if data.len() > 1 => {
            let n = rng.random_range(0..data.len());
            data.truncate(n);
        }
        // Insert or overwrite with a dictionary token.
        _ if !t.dictionary.is_empty() => {
            let tok = t.dictionary[rng.random_range(0..t.dictionary.len())];
            let at = pos(rng, data.len());
            if rng.random_bool(0.5) || at + tok.len() > data.len() {
                data.splice(at..at, tok.iter().copied());
            } else {
                data[at..at + tok.len()].copy_from_slice(tok);
            }
        }
        _ => data.push(rng.random()),
    }
    data.truncate(MAX_INPUT);
}

fn escaped(data: &[u8]) -> String {
    data.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}

/// Runs `target` on `input`; a panic becomes an `Err` with its message.
fn run_one(t: &Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (t.run)(input))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-text panic".into())
    })
}

fn fuzz(name: &str) {
    let t = target(name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    if let Ok(file) = std::env::var("DCLUA_FUZZ_REPLAY") {
        let input = fs::read(&file).expect("replay input");
        if let Err(msg) = run_one(t, &input) {
            panic!("{name} crashes on {file}: {msg}");
        }
        return;
    }
    let execs: u64 = std::env::var("DCLUA_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EXECS);
    let seed: u64 = std::env::var("DCLUA_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let seeds = seeds(name);
    // The seeds themselves first: they must never crash.
    for (i, s) in seeds.iter().enumerate() {
        if let Err(msg) = run_one(t, s) {
            panic!("{name}: seed {i} crashes: {msg}\ninput: {}", escaped(s));
        }
    }
    let name_hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut rng = StdRng::seed_from_u64(seed ^ name_hash);
    // Silence the default panic output of caught findings; restored after.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let mut finding = None;
    for _ in 0..execs {
        let mut input = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut input, t, &seeds);
        }
        if let Err(msg) = run_one(t, &input) {
            finding = Some((input, msg));
            break;
        }
    }
    std::panic::set_hook(hook);
    let secs = start.elapsed().as_secs_f64();
    if let Some((input, msg)) = finding {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
        let _ = fs::create_dir_all(&dir);
        let hash = input.iter().fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let path = dir.join(format!("{name}-{hash:016x}"));
        let _ = fs::write(&path, &input);
        panic!(
            "{name}: crash with seed {seed}: {msg}\ninput ({} bytes, saved to {}): {}",
            input.len(),
            path.display(),
            escaped(&input)
        );
    }
    eprintln!(
        "fuzz {name}: {execs} executions in {secs:.2} s ({:.0}/s), seed {seed}, 0 crashes",
        execs as f64 / secs.max(1e-9)
    );
}

#[test]
fn fuzz_nmdc_codec() {
    fuzz("nmdc_codec");
}

#[test]
fn fuzz_adc_codec() {
    fuzz("adc_codec");
}

#[test]
fn fuzz_zpipe() {
    fuzz("zpipe");
}

#[test]
fn fuzz_file_list() {
    fuzz("file_list");
}

#[test]
fn fuzz_tthl() {
    fuzz("tthl");
}

#[test]
fn fuzz_hub_address() {
    fuzz("hub_address");
}

#[test]
fn fuzz_magnet() {
    fuzz("magnet");
}

#[test]
fn fuzz_peer_session() {
    fuzz("peer_session");
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let tested = [
        "nmdc_codec",
        "adc_codec",
        "zpipe",
        "file_list",
        "tthl",
        "hub_address",
        "magnet",
        "peer_session",
    ];
    for t in dclua::fuzzing::TARGETS {
        assert!(tested.contains(&t.name), "target {} has no test in tests/fuzz.rs", t.name);
        assert!(corpus_dir(t.name).is_dir(), "target {} has no seed corpus", t.name);
        let target_file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{}.rs", t.name));
        assert!(target_file.is_file(), "target {} has no cargo-fuzz file", t.name);
    }
}
