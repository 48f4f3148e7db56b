//! Known-answer tests from reference/ipfs-interop.md §1.6 and streaming properties.

use super::*;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use proptest::prelude::*;

/// kubo's deterministic test data: a ChaCha20 keystream keyed by sha256(seed), zero nonce.
fn kubo_data(seed: &str, len: usize) -> Vec<u8> {
    let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let mut c = ChaCha20::new(&key.into(), &[0u8; 12].into());
    let mut buf = vec![0u8; len];
    c.apply_keystream(&mut buf);
    buf
}

fn root(data: &[u8], layout: Layout) -> Imported {
    import_reader(data, layout).expect("reading a slice cannot fail")
}

const MIB: usize = 1024 * 1024;
const CHUNK: usize = DEFAULT_CHUNK_SIZE;

/// (description, seed or literal, length, expected CID) for the kubo `--cid-version=1` profile.
const VECTORS: &[(&str, &str, usize, &str)] = &[
    (
        "empty",
        "",
        0,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ),
    (
        "one chunk",
        "chunk-v0-seed",
        CHUNK,
        "bafkreid33n22tcydu7pk2egzkyq4phh5mjwhyf6son6zggnlnlyi3257um",
    ),
    (
        "one chunk + 1",
        "chunk-v0-seed",
        CHUNK + 1,
        "bafybeibyui7o3sbw3yifnewshhrbnuntcehluzvbkwgi5vmtsdobnc2c6y",
    ),
    (
        "174 chunks",
        "v0-seed",
        174 * CHUNK,
        "bafybeidajp2ewrtxcagm2u3qstbk2kw5srzbu7g7oraqepajpgumviz3z4",
    ),
    (
        "174 chunks + 1",
        "v0-seed",
        174 * CHUNK + 1,
        "bafybeifr472xiwfk53w5s7bayijk3lq2go6ocqqcfch6ygy5qwza5hkdl4",
    ),
    (
        "1 MiB",
        "chunk-v1-seed",
        MIB,
        "bafybeic2h5iy3qr6kenis5u6o7rhjxlv4iopgfxhnkaohxn7qo7nkwdlbm",
    ),
    (
        "1 MiB + 1",
        "chunk-v1-seed",
        MIB + 1,
        "bafybeidggqjmlziefwt6c7hqzfqxkvmibsjdcyufxrw2uxytriwjhglceu",
    ),
];

#[test]
fn hello_world() {
    let r = root(b"hello world", Layout::default());
    assert_eq!(
        r.root.to_string(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    assert_eq!(
        hex::encode(r.sha256.expect("hashed")),
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
}

#[test]
fn one_byte_is_a_raw_leaf() {
    let r = root(b"a", Layout::default());
    assert_eq!(r.root, crate::cid::cid_for(RAW, b"a"));
    assert_eq!((r.leaves, r.nodes, r.size), (1, 0, 1));
}

#[test]
fn kubo_cid_v1_vectors() {
    for &(what, seed, len, want) in VECTORS {
        let data = kubo_data(seed, len);
        let r = root(&data, Layout::default());
        assert_eq!(r.root.to_string(), want, "{what} ({len} bytes)");
        assert_eq!(r.size, len as u64);
        assert_eq!(
            r.sha256,
            Some(Sha256::digest(&data).into()),
            "{what}: file sha256"
        );
    }
}

#[test]
fn two_level_tree_has_178_blocks() {
    let data = kubo_data("v0-seed", 174 * CHUNK + 1);
    let r = root(&data, Layout::default());
    assert_eq!((r.leaves, r.nodes), (175, 3));
}

/// The 1 GiB vectors: only the JS importer computed these, so they guard the three-level
/// boundary (4096 leaves → 24 + 1 nodes) against a second implementation.
#[test]
fn one_gib_vectors() {
    let data = kubo_data("v1-2025-seed", 1024 * MIB + 1);
    let r = root(&data[..1024 * MIB], Layout::default());
    assert_eq!(
        r.root.to_string(),
        "bafybeigpdlm4cfgro65rzbmy5y7qvpoqnjos5na36vui2y2jwr3aibo6ha"
    );
    let r = root(&data, Layout::default());
    assert_eq!(
        r.root.to_string(),
        "bafybeif3z7v6leozy6bbzzwi4xbhuzuyawnp6o62dz57tttqryhwi6jkhe"
    );
}

#[test]
fn deep_tree_vector() {
    let data = kubo_data("deep", 1000);
    let r = root(&data, Layout::new(16, 3).expect("valid layout"));
    assert_eq!(
        r.root.to_string(),
        "bafybeigf3vhvg3f4jcbfxbkwuni2j4vlrqy6kw6y6gpaqlnspgobaggvay"
    );
    // 63 leaves under 3 links per node: 21 + 7 + 3 + 1 nodes, depth 4.
    assert_eq!((r.leaves, r.nodes), (63, 32));
}

#[test]
fn bad_layouts_are_refused() {
    assert_eq!(Layout::new(0, 174), Err(LayoutError::ChunkSize(0)));
    assert_eq!(
        Layout::new(MAX_CHUNK_SIZE + 1, 174),
        Err(LayoutError::ChunkSize(MAX_CHUNK_SIZE + 1))
    );
    assert_eq!(Layout::new(1024, 1), Err(LayoutError::MaxLinks(1)));
}

/// Every block the importer emits decodes back into a file DAG that reproduces the input.
fn reassemble(data: &[u8], layout: Layout) -> Vec<u8> {
    let mut imp = Importer::new(layout);
    imp.update(data);
    let mut blocks: Vec<Block> = imp.take_blocks().collect();
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    let mut by_cid = std::collections::HashMap::new();
    for b in &blocks {
        match b {
            Block::Leaf { cid, offset, len } => {
                let bytes = data[*offset as usize..(*offset + *len) as usize].to_vec();
                crate::cid::verify(cid, &bytes).expect("leaf hash");
                by_cid.insert(*cid, bytes);
            }
            Block::Node { cid, bytes } => {
                crate::cid::verify(cid, bytes).expect("node hash");
                by_cid.insert(*cid, bytes.clone());
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![summary.root];
    while let Some(cid) = stack.pop() {
        let bytes = &by_cid[&cid];
        match FileNode::decode(&cid, bytes).expect("decodes") {
            FileNode::Raw => out.extend_from_slice(bytes),
            FileNode::Branch { data, children } => {
                out.extend_from_slice(&data);
                stack.extend(children.iter().rev().map(|(c, _)| *c));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Feeding the same bytes in arbitrary pieces never changes the result.
    #[test]
    fn split_points_do_not_matter(len in 0usize..5000, cuts in proptest::collection::vec(0usize..5000, 0..8),
                                  chunk in 1usize..64, links in 2usize..6) {
        let layout = Layout::new(chunk, links).expect("valid");
        let data = kubo_data("split", len);
        let whole = root(&data, layout);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
        cuts.sort_unstable();
        let mut imp = Importer::new(layout);
        let mut prev = 0;
        for c in cuts.into_iter().chain([len]) {
            imp.update(&data[prev..c]);
            prev = c;
        }
        prop_assert_eq!(imp.finish().1, whole);
    }

    /// The DAG emitted is complete and reads back as the input.
    #[test]
    fn dag_reads_back(len in 0usize..3000, chunk in 1usize..40, links in 2usize..5) {
        let layout = Layout::new(chunk, links).expect("valid");
        let data = kubo_data("readback", len);
        prop_assert_eq!(reassemble(&data, layout), data);
    }
}
