//! Damage to a stored blob after it was verified: holders serve verified blobs without hashing
//! them again, so a bit flipped on disk is found by `shubnet scrub` or by a fetcher's bad-leaf
//! report. Either way the holder quarantines the blob (no longer served nor held) and fetches a
//! good copy from another member, and the fetcher never keeps the bad leaf.

use crate::fetch::{fetch_ok, p2p_addr, peer_of, reboot, reports, wait_connected};
use crate::{file_in, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::{self, assert_same_file};
use shubnet_tests::fed;
use shubnet_tests::http::get;
use std::path::Path;
use std::time::Duration;

/// Three members of one federation: `a` and `c` hold the same image (added on each), `b` holds
/// nothing. Returns the nodes, the image's CID and its file.
fn three_members(dir: &Path, seed: &str, len: u64) -> (TestNode, TestNode, TestNode, String) {
    let a = TestNode::start();
    let b = TestNode::start();
    let c = TestNode::start();
    let id = fed::create(&a, "Fed", "lab-a");
    for (n, inst) in [(&b, "lab-b"), (&c, "lab-c")] {
        let line = fed::request(n, inst);
        a.cli(&["federation", "admit", &line]).ok();
        fed::join(n, &id, a.url());
    }
    let file = file_in(dir, "img.sif");
    data::kubo_file(&file, seed, len);
    let cid = a.add(&file);
    assert_eq!(c.add(&file), cid);
    (a, b, c, cid)
}

/// Flips one bit of `node`'s blob of `cid` at each of `offsets`.
fn flip_bits(node: &TestNode, cid: &str, offsets: &[u64]) {
    let blob = node.data_dir().join("blobs").join(cid);
    let mut bytes = std::fs::read(&blob).expect("reading the blob");
    for &at in offsets {
        bytes[at as usize] ^= 0x10;
    }
    std::fs::write(&blob, &bytes).expect("writing the blob");
}

/// The value of a counter line of `/metrics` (0 if absent).
fn metric(node: &TestNode, line_start: &str) -> u64 {
    let body = get(&node.at("/metrics")).body;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits until `node`'s blob of `cid` is back with the original bytes.
#[track_caller]
fn wait_good_copy(node: &TestNode, cid: &str, original: &Path) {
    let blob = node.data_dir().join("blobs").join(cid);
    let want = std::fs::read(original).expect("reading the image");
    poll_until(Duration::from_secs(60), "a good copy fetched again", || {
        (std::fs::read(&blob).ok()? == want).then_some(())
    });
}

/// `shubnet scrub` finds a bit flipped in a holder's blob (which reads no longer hash), moves
/// the blob to quarantine/, fetches the image again from the other holder, and keeps the pin.
#[test]
fn scrub_finds_a_flipped_bit_and_fetches_the_image_again() {
    let tmp = tmpdir();
    let (mut a, _b, mut c, cid) = three_members(tmp.path(), "scrub-cli", 3_000_000);
    let file = tmp.path().join("img.sif");
    reboot(&mut c, &[], &[], &[]);
    reboot(&mut a, &[p2p_addr(&c)], &[], &[]);
    wait_connected(&a, 1);
    let clean = a.cli(&["scrub"]).ok();
    assert!(clean.out().contains("scrub: no damage"), "{clean}");
    assert!(clean.out().contains("checked 1 blob(s)"), "{clean}");

    flip_bits(&a, &cid, &[1_500_000]);
    let r = a.cli(&["scrub"]).fails();
    assert!(r.out().contains(&format!("damaged {cid}")), "{r}");
    assert!(
        r.out().contains(&format!("refetched {cid}")),
        "the image was not fetched again\n{r}\n{}",
        a.log_text()
    );
    assert_eq!(a.files_under("quarantine").len(), 1, "{r}");
    wait_good_copy(&a, &cid, &file);
    assert!(
        a.pins().iter().any(|(p, _)| p == &cid),
        "the pin was lost: {:?}",
        a.pins()
    );
    let out = file_in(tmp.path(), "out.sif");
    a.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    assert_eq!(metric(&a, "shubnet_quarantined_blobs_total "), 1);
    assert_eq!(
        metric(&a, "shubnet_corrupt_blocks_found_total{by=\"scrub\"} "),
        1
    );
    assert!(metric(&a, "shubnet_scrub_blocks_total ") >= 12);
    let again = a.cli(&["scrub"]).ok();
    assert!(again.out().contains("scrub: no damage"), "{again}");
}

/// A holder whose blob has bits flipped serves them (it does not hash verified blobs); the
/// fetcher refuses each bad leaf, completes from the other holder, and reports the leaf; the
/// holder re-checks it, quarantines the blob and fetches a good copy.
#[test]
fn a_fetchers_report_makes_the_holder_quarantine_its_damaged_copy() {
    let tmp = tmpdir();
    let len = 30_000_000u64;
    let (mut a, mut b, mut c, cid) = three_members(tmp.path(), "scrub-report", len);
    let file = tmp.path().join("img.sif");
    // One bit in every leaf, so whatever `a` is asked for is damaged.
    let offsets: Vec<u64> = (0..len).step_by(262_144).map(|o| o + 1000).collect();
    flip_bits(&a, &cid, &offsets);
    reboot(&mut a, &[], &[], &[]);
    reboot(&mut c, &[], &[], &[]);
    let (a_addr, c_addr) = (p2p_addr(&a), p2p_addr(&c));
    reboot(&mut b, &[a_addr.clone(), c_addr], &[], &[]);
    wait_connected(&b, 2);
    fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    let last = reports(&b).pop().expect("a fetch report");
    let bad = peer_of(&a_addr);
    let holders = last["holders"].as_array().expect("holders");
    let ah = holders
        .iter()
        .find(|h| h["peer"] == bad.as_str())
        .unwrap_or_else(|| panic!("the damaged holder was never asked: {last:#}"));
    assert!(ah["misbehaviour"].as_u64().unwrap_or(0) >= 1, "{last:#}");
    assert_eq!(ah["leaves"], 0, "a damaged leaf was kept: {last:#}");

    poll_until(Duration::from_secs(30), "the holder quarantines", || {
        (a.files_under("quarantine").len() == 1).then_some(())
    });
    assert!(metric(&a, "shubnet_badleaf_reports_total{outcome=\"damaged\"} ") >= 1);
    assert_eq!(
        metric(&a, "shubnet_corrupt_blocks_found_total{by=\"report\"} "),
        1
    );
    assert_eq!(metric(&a, "shubnet_quarantined_blobs_total "), 1);
    wait_good_copy(&a, &cid, &file);
    assert!(a.pins().iter().any(|(p, _)| p == &cid));
    let r = a.cli(&["scrub"]).ok();
    assert!(r.out().contains("scrub: no damage"), "{r}");
}
