//! Test data: kubo's deterministic bytes, a seeded RNG, hashing and comparing files, and the
//! shape of a balanced UnixFS DAG (computed here, independently of the code under test).

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// kubo's default chunk size for `ipfs add --cid-version=1`.
pub const CHUNK: u64 = 262_144;
/// kubo's default links per internal node.
pub const LINKS: u64 = 174;
/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// kubo's deterministic test data (`test/cli/testutils/random_deterministic.go`): the ChaCha20
/// keystream with key `sha256(seed)`, a zero 12-byte nonce and counter 0. Streams `len` bytes to
/// `out`.
pub fn write_kubo_data(out: &mut impl Write, seed: &str, len: u64) -> std::io::Result<()> {
    let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let mut cipher = ChaCha20::new(&key.into(), &[0u8; 12].into());
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        let chunk = &mut buf[..n];
        chunk.fill(0);
        cipher.apply_keystream(chunk);
        out.write_all(chunk)?;
        left -= n as u64;
    }
    Ok(())
}

/// Writes `len` bytes of kubo's deterministic data for `seed` to the file `path`.
pub fn kubo_file(path: &Path, seed: &str, len: u64) {
    let f =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let mut w = std::io::BufWriter::with_capacity(MIB as usize, f);
    write_kubo_data(&mut w, seed, len)
        .and_then(|()| w.flush())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// kubo's deterministic data for `seed`, in memory.
pub fn kubo_bytes(seed: &str, len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len as usize);
    write_kubo_data(&mut v, seed, len).expect("writing to a Vec");
    v
}

/// A small seeded generator (SplitMix64): the same seed gives the same sizes on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// sha256 of a file as lowercase hex, and its length.
pub fn sha256_file(path: &Path) -> (String, u64) {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    (hex::encode(h.finalize()), len)
}

/// sha256 of bytes as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Panics unless the two files have the same length and the same bytes.
#[track_caller]
pub fn assert_same_file(got: &Path, want: &Path) {
    let (gh, gl) = sha256_file(got);
    let (wh, wl) = sha256_file(want);
    assert!(
        gl == wl && gh == wh,
        "{} differs from {}: got {gl} bytes sha256 {gh}, want {wl} bytes sha256 {wh}",
        got.display(),
        want.display()
    );
}

/// Number of leaves (chunks) of a file of `len` bytes: an empty file still has one empty leaf.
pub fn leaf_count(len: u64, chunk: u64) -> u64 {
    len.div_ceil(chunk).max(1)
}

/// Depth of the balanced DAG: 0 when the root is the single raw leaf, else the number of
/// internal levels.
pub fn dag_depth(len: u64, chunk: u64, links: u64) -> u32 {
    let mut nodes = leaf_count(len, chunk);
    let mut depth = 0;
    while nodes > 1 {
        nodes = nodes.div_ceil(links);
        depth += 1;
    }
    depth
}

/// Number of distinct blocks in the balanced DAG of a file whose chunks are all different
/// (true of kubo's random data): leaves plus internal nodes of every level.
pub fn block_count(len: u64, chunk: u64, links: u64) -> u64 {
    let mut nodes = leaf_count(len, chunk);
    let mut total = nodes;
    while nodes > 1 {
        nodes = nodes.div_ceil(links);
        total += nodes;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_data_matches_the_reference_vector() {
        // First bytes of ChaCha20(sha256("chunk-v0-seed")), as given by Node's
        // crypto.createCipheriv('chacha20', key, Buffer.alloc(16)) (ipfs-interop.md §1.5).
        let d = kubo_bytes("chunk-v0-seed", 262_145);
        assert_eq!(d.len(), 262_145);
        assert_eq!(hex::encode(&d[..16]), "4a07e1b7e7b2f73a70419a292c87be55");
        assert_eq!(
            hex::encode(&d[262_129..]),
            "f5b1dc4c79596d812a216449163d6335"
        );
        assert_eq!(
            sha256_hex(&d),
            "d30716d255862b00ad746f40f6c4a223e3c67b073f1d0a7d6d67813d8de9585c"
        );
        // The same bytes written in one go and in pieces must agree (keystream continuity).
        let mut streamed = Vec::new();
        write_kubo_data(&mut streamed, "chunk-v0-seed", 262_145).expect("vec");
        assert_eq!(d, streamed);
    }

    #[test]
    fn dag_shape() {
        assert_eq!(block_count(0, CHUNK, LINKS), 1);
        assert_eq!(block_count(CHUNK, CHUNK, LINKS), 1);
        assert_eq!(block_count(CHUNK + 1, CHUNK, LINKS), 3);
        assert_eq!(block_count(174 * CHUNK + 1, CHUNK, LINKS), 178);
        assert_eq!(dag_depth(174 * CHUNK, CHUNK, LINKS), 1);
        assert_eq!(dag_depth(174 * CHUNK + 1, CHUNK, LINKS), 2);
        assert_eq!(block_count(1000, 16, 3), 95);
        assert_eq!(dag_depth(1000, 16, 3), 4);
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7);
        for x in a {
            assert_eq!(x, r.next_u64());
        }
    }
}
