//! Helia interop over Bitswap 1.2.0, with the unmodified npm packages in `tests/js-helia`
//! (helia 7.1.15, js-libp2p 3.3.11, @helia/bitswap 4.0.19) on Node 22.
//!
//! Helia is built with the light constructors (TCP + noise + yamux + identify + Bitswap, no
//! bootstrap or routing): it contacts only the address it dials, the node's
//! `/ip4/127.0.0.1/tcp/PORT/p2p/PEERID` from `DATA_DIR/p2p.addrs`.

use crate::{file_in, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::data::{self, CHUNK, LINKS, MIB, assert_same_file};
use shubnet_tests::js::{self, HELIA_FETCH_TIMEOUT, HeliaServe};
use std::path::Path;
use std::time::{Duration, Instant};

/// Helia fetches `cid` from `addr` into `out`; panics with Helia's report unless it succeeds and
/// the bytes are those of `want`.
#[track_caller]
fn helia_cat_matches(addr: &str, cid: &str, out: &Path, want: &Path) {
    let run = js::helia_fetch(addr, cid, out, HELIA_FETCH_TIMEOUT);
    if !run.status.success() {
        panic!("Helia could not fetch {cid} from the node at {addr}\n{run}");
    }
    assert_same_file(out, want);
}

#[test]
fn helia_fetches_an_image_from_a_shubnet_node_over_bitswap() {
    js::helia_node(); // the packages are installed, or a clear hint
    let tmp = tmpdir();
    let mut node = TestNode::start();
    let addr = node.p2p_addr();

    // A 50 MB image: 191 leaves, more than one node's 174 links, so a two-level DAG.
    let big_len = 50_000_000;
    assert_eq!(data::dag_depth(big_len, CHUNK, LINKS), 2);
    let files = [
        ("image-50mb.sif", "helia-50mb", big_len),
        ("one-mib.bin", "helia-1mib", MIB),
        ("empty.bin", "helia-empty", 0),
        // A single chunk: the root is a raw block, not dag-pb.
        ("small.bin", "helia-small", 1000),
    ];
    for (name, seed, len) in files {
        let file = file_in(tmp.path(), name);
        data::kubo_file(&file, seed, len);
        let cid = node.add(&file);
        // The CID Helia asks for is the one IPFS gives these bytes (not just shubnet's view).
        assert_eq!(
            cid,
            js::importer_cid(&file, None),
            "`shubnet add {name}` gave a CID other than ipfs-unixfs-importer's"
        );
        let out = file_in(tmp.path(), &format!("{name}.from-helia"));
        helia_cat_matches(&addr, &cid, &out, &file);
    }
    node.assert_running();
}

#[test]
fn helia_fetch_of_a_cid_the_node_lacks_fails_within_the_timeout() {
    js::helia_node();
    let tmp = tmpdir();
    let mut node = TestNode::start();
    let addr = node.p2p_addr();
    // Something the node holds, so that it has blocks to serve; and a CID it never saw (the
    // known answer for 262144 bytes of kubo's `chunk-v0-seed` data, interop notes §1.6).
    let held = file_in(tmp.path(), "held.bin");
    data::kubo_file(&held, "helia-held", MIB);
    let held_cid = node.add(&held);
    let missing = "bafkreid33n22tcydu7pk2egzkyq4phh5mjwhyf6son6zggnlnlyi3257um";
    let out = file_in(tmp.path(), "missing.out");

    let timeout = Duration::from_secs(10);
    let run = js::helia_fetch(&addr, missing, &out, timeout);
    let run = run.fails().stderr_mentions("timed out");
    // Node startup and dialling come on top of the fetch timeout; a hang would show far more.
    assert!(
        run.elapsed < timeout + Duration::from_secs(20),
        "Helia took {:?} to give up (timeout {timeout:?})\n{run}",
        run.elapsed
    );
    assert!(
        !out.exists(),
        "fetch.mjs left a partial {} behind",
        out.display()
    );
    // And the node is unharmed: the held file still comes through.
    node.assert_running();
    helia_cat_matches(&addr, &held_cid, &file_in(tmp.path(), "held.out"), &held);
}

/// The harness itself, without shubnet: one Helia node serves a file (kubo's
/// `--cid-version=1` layout, so the same CID `shubnet add` gives) and another fetches it.
/// If this fails, the tests above fail for reasons that have nothing to do with shubnet.
#[test]
fn helia_harness_fetches_from_another_helia_node() {
    js::helia_node();
    let tmp = tmpdir();
    let file = file_in(tmp.path(), "two-level.bin");
    // 174 × 256 KiB + 1: 175 leaves, 178 blocks; its CID is a known answer (notes §1.6).
    data::kubo_file(&file, "v0-seed", LINKS * CHUNK + 1);
    let serve = HeliaServe::start::<&str>(&file, &[]);
    assert_eq!(
        serve.cid, "bafybeifr472xiwfk53w5s7bayijk3lq2go6ocqqcfch6ygy5qwza5hkdl4",
        "serve.mjs did not add the file with kubo's --cid-version=1 layout"
    );
    let out = file_in(tmp.path(), "two-level.out");
    helia_cat_matches(&serve.multiaddr, &serve.cid, &out, &file);
    serve.stop();
}

/// Bitswap client: `shubnet fetch` takes a file an unmodified Helia node added, verifying every
/// block, stores and pins it, and `shubnet cat` gives the same bytes. Both shubnet's own layout
/// (kubo's `--cid-version=1`) and Helia's default (1 MiB chunks, 1024 links) import. A CID the
/// Helia node lacks fails with a clear error and leaves nothing behind.
#[test]
fn shubnet_fetches_a_file_from_a_helia_node_over_bitswap() {
    js::helia_node();
    let tmp = tmpdir();
    let node = TestNode::start();
    let len = 3 * MIB + 12_345;
    let layouts: [(&str, &[&str]); 2] = [
        (
            "shubnet-layout",
            &["--chunk-size=262144", "--max-links=174"],
        ),
        (
            "helia-default",
            &["--chunk-size=1048576", "--max-links=1024"],
        ),
    ];
    for (name, args) in layouts {
        let file = file_in(tmp.path(), &format!("{name}.bin"));
        data::kubo_file(&file, name, len);
        let serve = HeliaServe::start(&file, args);
        let run = node
            .cli(&["fetch", &serve.cid, "--peer", &serve.multiaddr])
            .ok();
        assert_eq!(
            run.out(),
            serve.cid,
            "`shubnet fetch` printed another CID\n{run}"
        );
        let out = file_in(tmp.path(), &format!("{name}.out"));
        node.cat_to(&serve.cid, &out);
        assert_same_file(&out, &file);
        assert!(
            node.pins()
                .iter()
                .any(|(c, s)| *c == serve.cid && *s == len),
            "the fetched root is not pinned with its size: {:?}",
            node.pins()
        );
        if name == "shubnet-layout" {
            assert_eq!(serve.cid, node.add(&file), "same layout, same CID");
        }
        serve.stop();
    }

    // A CID the Helia node does not have (the known answer for 262144 bytes of kubo's
    // `chunk-v0-seed` data, interop notes §1.6).
    let held = file_in(tmp.path(), "held.bin");
    data::kubo_file(&held, "held", MIB);
    let serve = HeliaServe::start::<&str>(&held, &[]);
    let blobs_before = node.files_under("blobs");
    let pins_before = node.pins();
    let missing = "bafkreid33n22tcydu7pk2egzkyq4phh5mjwhyf6son6zggnlnlyi3257um";
    let started = Instant::now();
    let run = node
        .cli(&["fetch", missing, "--peer", &serve.multiaddr])
        .fails()
        .stderr_mentions(missing);
    assert!(
        run.stderr.contains("does not have it") || run.stderr.contains("within"),
        "the error does not say why the fetch failed\n{run}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the failed fetch took {:?}\n{run}",
        started.elapsed()
    );
    assert_eq!(
        node.files_under("blobs"),
        blobs_before,
        "a failed fetch left a blob"
    );
    assert_eq!(
        node.files_under("partial"),
        Vec::<String>::new(),
        "a failed fetch left a partial file"
    );
    assert_eq!(node.pins(), pins_before, "a failed fetch changed the pins");
    let out = file_in(tmp.path(), "missing.out");
    node.cli_to_file(&["cat", missing], &out).fails();
    serve.stop();
}
