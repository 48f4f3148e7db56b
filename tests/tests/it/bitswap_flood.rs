//! Bitswap within budgets, against a real node: a hostile non-member js-libp2p peer
//! (`tests/js-helia/probe.mjs`, Helia's libp2p stack) opens 10 Bitswap streams at once, each one
//! message wanting one public leaf 1024 times, while an unmodified Helia node fetches an image
//! from the same node. The node's resident memory (VmRSS in `/proc/PID/status`, sampled every
//! 10 ms) grows by at most 64 MiB, the flood gets each block about once per message, and
//! Helia's fetch completes with the exact bytes.

use crate::{file_in, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::data::{self, CHUNK, MIB, assert_same_file};
use shubnet_tests::js::{self, HELIA_FETCH_TIMEOUT};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The most the node's resident memory may grow under the flood.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_flood_of_duplicate_wants_stays_within_budget_and_honest_fetches_complete() {
    js::helia_node();
    let tmp = tmpdir();
    let mut node = TestNode::start();
    let pid = node.pid().expect("the node runs");
    let addr = node.p2p_addr();
    // One leaf (a single-chunk file is one raw block) and a 30 MB image, both public.
    let leaf_file = file_in(tmp.path(), "leaf.bin");
    data::kubo_file(&leaf_file, "flood-leaf", CHUNK);
    let leaf = node.add(&leaf_file);
    assert!(leaf.starts_with("bafkrei"), "{leaf} is not a raw leaf");
    let image = file_in(tmp.path(), "image.sif");
    data::kubo_file(&image, "flood-image", 30 * MIB);
    let image_cid = node.add(&image);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kib(pid).expect("reading VmRSS");

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let flood = {
        let (addr, leaf) = (addr.clone(), leaf.clone());
        std::thread::spawn(move || {
            js::helia_probe(
                &[
                    "bitswap-flood",
                    &addr,
                    &leaf,
                    "--streams=10",
                    "--wants=1024",
                ],
                Duration::from_secs(300),
            )
        })
    };
    let out = file_in(tmp.path(), "image.from-helia");
    let honest = js::helia_fetch(&addr, &image_cid, &out, HELIA_FETCH_TIMEOUT);
    let report = flood.join().expect("the flood thread");
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    println!(
        "bitswap flood: node VmRSS baseline {} MiB, peak {} MiB, growth {} MiB (limit {} MiB); \
         flood {report}; honest fetch {:?} in {:?}",
        baseline / 1024,
        peak / 1024,
        growth / 1024,
        MAX_GROWTH_KIB / 1024,
        honest.status,
        honest.elapsed
    );
    node.assert_running();
    assert!(
        growth <= MAX_GROWTH_KIB,
        "the node's VmRSS grew by {} MiB under the flood (from {} MiB to {} MiB); {report}",
        growth / 1024,
        baseline / 1024,
        peak / 1024
    );
    // Each message's 1024 wants name one block: about one block back per message.
    let answered = report["answerBytes"].as_u64().unwrap_or(u64::MAX);
    assert!(
        answered <= 10 * 2 * CHUNK,
        "the flood's 10 messages got {answered} bytes back: {report}"
    );
    assert!(
        honest.status.success(),
        "Helia's fetch did not complete under the flood\n{honest}"
    );
    assert_same_file(&out, &image);
}
