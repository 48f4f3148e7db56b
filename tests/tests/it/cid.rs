//! `shubnet cid` must give the root CID of kubo's `ipfs add --cid-version=1`. The reference is
//! `ipfs-unixfs-importer@17.1.1` with the same settings (it reproduces kubo's own fixtures;
//! `shared/reference/ipfs-interop.md` §1.5–1.6), plus the known-answer vectors themselves.

use crate::{shubnet_cid, tmpdir};
use shubnet_tests::data::{CHUNK, LINKS, MIB, Rng, dag_depth, kubo_file};
use shubnet_tests::js::importer_cid;

/// Seed of the random sizes; change it to explore, keep it fixed in the suite.
const SIZE_SEED: u64 = 0x5348_5542_4e45_5431;

/// Sizes where the DAG changes shape: empty, one byte, around one chunk, around a full
/// 174-link node (depth 1 → 2).
const BOUNDARY_SIZES: &[u64] = &[
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    LINKS * CHUNK,
    LINKS * CHUNK + 1,
    2 * LINKS * CHUNK + CHUNK - 1,
    100 * MIB,
    100_000_000,
];

#[test]
fn known_answer_vectors() {
    // (seed, length, layout, CID) from ipfs-interop.md §1.6; "" means a literal, not kubo data.
    type Layout = Option<(u64, u64)>;
    let vectors: &[(&str, u64, Layout, &str)] = &[
        (
            "",
            0,
            None,
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        ),
        (
            "chunk-v0-seed",
            262_144,
            None,
            "bafkreid33n22tcydu7pk2egzkyq4phh5mjwhyf6son6zggnlnlyi3257um",
        ),
        (
            "chunk-v0-seed",
            262_145,
            None,
            "bafybeibyui7o3sbw3yifnewshhrbnuntcehluzvbkwgi5vmtsdobnc2c6y",
        ),
        (
            "v0-seed",
            174 * CHUNK,
            None,
            "bafybeidajp2ewrtxcagm2u3qstbk2kw5srzbu7g7oraqepajpgumviz3z4",
        ),
        (
            "v0-seed",
            174 * CHUNK + 1,
            None,
            "bafybeifr472xiwfk53w5s7bayijk3lq2go6ocqqcfch6ygy5qwza5hkdl4",
        ),
        (
            "chunk-v1-seed",
            MIB,
            None,
            "bafybeic2h5iy3qr6kenis5u6o7rhjxlv4iopgfxhnkaohxn7qo7nkwdlbm",
        ),
        (
            "chunk-v1-seed",
            MIB + 1,
            None,
            "bafybeidggqjmlziefwt6c7hqzfqxkvmibsjdcyufxrw2uxytriwjhglceu",
        ),
        (
            "deep",
            1000,
            Some((16, 3)),
            "bafybeigf3vhvg3f4jcbfxbkwuni2j4vlrqy6kw6y6gpaqlnspgobaggvay",
        ),
    ];
    let dir = tmpdir();
    let hello = dir.path().join("hello");
    std::fs::write(&hello, b"hello world").expect("write");
    let want_hello = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let mut wrong = Vec::new();
    let mut check = |what: String, file: &std::path::Path, layout, want: &str| {
        let ours = shubnet_cid(file, layout);
        let theirs = importer_cid(file, layout);
        if ours != want || theirs != want {
            wrong.push(format!(
                "{what}: want {want}\n    shubnet  {ours}\n    importer {theirs}"
            ));
        }
    };
    check("\"hello world\"".into(), &hello, None, want_hello);
    for (i, &(seed, len, layout, want)) in vectors.iter().enumerate() {
        let f = dir.path().join(format!("kat-{i}"));
        kubo_file(&f, seed, len);
        check(
            format!("{len} bytes of seed {seed:?} layout {layout:?}"),
            &f,
            layout,
            want,
        );
        std::fs::remove_file(&f).expect("rm");
    }
    assert!(
        wrong.is_empty(),
        "known-answer mismatches:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn cid_matches_importer_on_many_sizes() {
    let mut rng = Rng::new(SIZE_SEED);
    let mut sizes: Vec<u64> = BOUNDARY_SIZES.to_vec();
    sizes.extend((0..6).map(|_| rng.range(2, 3 * CHUNK)));
    sizes.extend((0..5).map(|_| rng.range(MIB, 50 * MIB)));
    sizes.extend((0..3).map(|_| rng.range(50 * MIB, 100 * MIB)));
    assert!(sizes.len() >= 20);

    let dir = tmpdir();
    let mut wrong = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let f = dir.path().join(format!("f{i}"));
        let seed = format!("cross-{i}");
        kubo_file(&f, &seed, len);
        let ours = shubnet_cid(&f, None);
        let theirs = importer_cid(&f, None);
        if ours != theirs {
            wrong.push(format!(
                "{len} bytes (seed {seed:?}): shubnet {ours}, importer {theirs}"
            ));
        }
        std::fs::remove_file(&f).expect("rm");
    }
    assert!(
        wrong.is_empty(),
        "shubnet cid differs from ipfs-unixfs-importer (size seed {SIZE_SEED:#x}):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn deep_trees_match_importer() {
    // (chunk size, links per node, file sizes); each must make a DAG at least 4 levels deep.
    let cases: &[(u64, u64, &[u64])] = &[
        (16, 3, &[16 * 27 + 1, 1000, 16 * 81, 16 * 81 + 1, 20_000]),
        (7, 2, &[7 * 8 + 1, 113, 5000, 7 * 1024 + 3]),
        (1, 5, &[626, 3125, 3126]),
    ];
    let dir = tmpdir();
    let mut wrong = Vec::new();
    for &(chunk, links, lens) in cases {
        for &len in lens {
            let depth = dag_depth(len, chunk, links);
            assert!(
                depth >= 4,
                "test data: {len} bytes at {chunk}/{links} is only depth {depth}"
            );
            let f = dir.path().join(format!("deep-{chunk}-{links}-{len}"));
            kubo_file(&f, &format!("deep-{len}"), len);
            let ours = shubnet_cid(&f, Some((chunk, links)));
            let theirs = importer_cid(&f, Some((chunk, links)));
            if ours != theirs {
                wrong.push(format!(
                    "{len} bytes, chunk {chunk}, {links} links (depth {depth}): shubnet {ours}, importer {theirs}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "deep layouts differ:\n{}",
        wrong.join("\n")
    );
}
