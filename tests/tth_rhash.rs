//! Our TTH against an independent implementation: `rhash --tth` (Debian
//! package `rhash`) over the same files on disk, from empty to ~300 MiB.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use dclua::proto::tth::{tree_root, verify_tthl, Tth};
use dclua::share::hasher::hash_file;

/// `rhash --tth --simple FILE` prints `<base32 TTH, lower case>  FILE`.
fn rhash_tth(path: &Path) -> Tth {
    let out = match Command::new("rhash").args(["--tth", "--simple"]).arg(path).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`rhash` is not installed; run the project's peer setup script \
             (tests/setup-peers.sh) to install the programs the tests compare with"
        ),
        Err(e) => panic!("running rhash: {e}"),
    };
    assert!(out.status.success(), "rhash failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("rhash output is ASCII");
    let word = text.split_whitespace().next().unwrap_or_default();
    word.parse().unwrap_or_else(|e| panic!("rhash printed {text:?}: {e}"))
}

/// Writes `len` pseudo-random bytes (xorshift64*, seeded) to `path` in 1 MiB
/// pieces.
fn write_random(path: &Path, len: u64, seed: u64) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            word.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

fn check(path: &Path) {
    let want = rhash_tth(path);
    let hashed = hash_file(path).unwrap();
    assert_eq!(hashed.tree.root, want, "{} ({} bytes)", path.display(), hashed.size);
    // The kept leaves rebuild that same root.
    assert!(hashed.tree.leaves.len() <= 512);
    verify_tthl(&hashed.tree.to_tthl(), hashed.size, &want).unwrap();
}

#[test]
fn edge_sizes_match_rhash() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 1, 1023, 1024, 1025] {
        let path = dir.path().join(format!("a{len}"));
        let data = vec![b'a'; len];
        std::fs::write(&path, &data).unwrap();
        check(&path);
        assert_eq!(rhash_tth(&path), tree_root(&data));
    }
    // The protocol vectors, through rhash too.
    let vectors = [
        (0, "LWPNACQDBZRYXW3VHJVCJ64QBZNGHOHHHZWCLNQ"),
        (1, "CZQUWH3IYXBF5L3BGYUGZHASSMXU647IP2IKE4Y"),
        (1024, "BR4BVJBMHDFVCFI4WBPSL63W5TWXWVBSC574BLI"),
        (1025, "CDYY2OW6F6DTGCH3Q6NMSDLSRV7PNMAL3CED3DA"),
    ];
    for (len, tth) in vectors {
        assert_eq!(rhash_tth(&dir.path().join(format!("a{len}"))).to_string(), tth);
    }
}

#[test]
fn random_files_match_rhash() {
    let dir = tempfile::tempdir().unwrap();
    let sizes: [u64; 16] = [
        2,
        1000,
        2047,
        2049,
        65_535,
        65_536,
        65_537,
        (1 << 20) + 13,
        3_333_333,
        (32 << 20) - 1,
        (32 << 20) + 1,
        (64 << 20) + 4097,
        100_000_007,
        7 << 20,
        777,
        (300 << 20) + 12_345,
    ];
    for (n, &len) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("r{n}"));
        write_random(&path, len, n as u64 + 1);
        check(&path);
        // Big files go as soon as they are checked.
        std::fs::remove_file(&path).unwrap();
    }
}
