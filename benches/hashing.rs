use dclua::proto::tth::TreeHasher;
use std::time::Instant;
use tiger::{Digest, Tiger};
fn main() {
    let buf: Vec<u8> = (0..64u64 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let r = Tiger::digest(&buf);
        let raw = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut h = TreeHasher::new();
        for c in buf.chunks(1 << 20) { h.update(c); }
        let tree = h.finish();
        let tt = t.elapsed().as_secs_f64();
        let mb = buf.len() as f64 / 1e6;
        println!("raw {:.0} MB/s tree {:.0} MB/s ratio {:.3} {:?}{}", mb/raw, mb/tt, raw/tt, r[0], tree.root);
    }
}
