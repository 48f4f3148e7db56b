//! `/shubnet/fetch/1` between real nodes of one federation: exact bytes, gating to roster
//! members, a malicious holder dropped and counted, on-demand gateway reads (ranges fetch only
//! the leaves they cover), rate limits, and resumption after dropped connections and kill -9.
//!
//! Nodes join the federation over HTTP first, then restart with `--bootstrap` to the holders.
//! The fetching node's log carries a structured line `fetch report: {json}` per transfer
//! (leaves fetched, bytes received, each holder's misbehaviour count); tests read it.

use crate::{file_in, tmpdir};
use serde_json::Value;
use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, run_cmd_with};
use shubnet_tests::data::{self, assert_same_file};
use shubnet_tests::fed::{self, TwoMembers};
use shubnet_tests::http::{get, get_range};
use shubnet_tests::proxy::Proxy;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const P2P_TIMEOUT: Duration = Duration::from_secs(30);
/// Logs p2p connections, which the tests wait for.
const LOG: &str = "info,shubnet_node::p2p=debug";

/// The node's `/ip4/127.0.0.1/tcp/PORT/p2p/ID` address.
#[track_caller]
pub(crate) fn p2p_addr(node: &TestNode) -> String {
    let path = node.data_dir().join("p2p.addrs");
    poll_until(P2P_TIMEOUT, "the node's p2p address", || {
        std::fs::read_to_string(&path).ok().and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| l.starts_with("/ip4/127.0.0.1/tcp/") && l.contains("/p2p/"))
                .map(str::to_string)
        })
    })
}

pub(crate) fn tcp_of(addr: &str) -> SocketAddr {
    let port = addr
        .split('/')
        .nth(4)
        .expect("a port")
        .parse::<u16>()
        .expect("a port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn peer_of(addr: &str) -> String {
    addr.rsplit('/').next().expect("a peer id").to_string()
}

/// Restarts `node` dialling `peers` at start, with extra args and env.
pub(crate) fn reboot(node: &mut TestNode, peers: &[String], args: &[&str], env: &[(&str, &str)]) {
    let mut all: Vec<&str> = vec!["--log", LOG];
    for p in peers {
        all.push("--bootstrap");
        all.push(p);
    }
    all.extend_from_slice(args);
    node.set_serve_args(&all, env);
    node.restart();
}

/// A TCP multiaddr on 127.0.0.1 where nothing listens (bound, then released).
pub(crate) fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = l.local_addr().expect("local address").port();
    format!("/ip4/127.0.0.1/tcp/{port}")
}

/// Waits until the node has `n` peers connected now (its status, not a log line: a connection
/// that opened and closed again must not count).
#[track_caller]
pub(crate) fn wait_connected(node: &TestNode, n: usize) {
    poll_until(P2P_TIMEOUT, "p2p connections", || {
        (fed::connected_peers(node).len() >= n).then_some(())
    });
}

/// The `fetch report` JSON lines in the node's log, oldest first.
pub(crate) fn reports(node: &TestNode) -> Vec<Value> {
    node.log_text()
        .lines()
        .filter_map(|l| l.split_once("fetch report: ").map(|(_, j)| j))
        .filter_map(|j| {
            serde_json::Deserializer::from_str(j)
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
        .collect()
}

#[track_caller]
pub(crate) fn fetch_ok(node: &TestNode, cid: &str) {
    let r = run_cmd_with(
        &mut node.command(&["fetch", cid]),
        None,
        Duration::from_secs(600),
    )
    .ok();
    assert_eq!(r.out(), cid, "{r}");
}

#[track_caller]
fn repair_clean(node: &TestNode) {
    let r = node.cli(&["repair"]).ok();
    assert!(
        r.out().lines().any(|l| l.trim() == "repair: no damage"),
        "repair found damage\n{r}"
    );
}

/// A member fetches from another with exact bytes; a node outside the roster is refused.
#[test]
fn members_fetch_and_outsiders_are_refused() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    data::kubo_file(&file, "fetch-basic", 20_000_000);
    let cid = a.add(&file);
    let a_addr = p2p_addr(&a);
    reboot(&mut b, std::slice::from_ref(&a_addr), &[], &[]);
    wait_connected(&b, 1);
    fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    assert!(b.pins().iter().any(|(c, _)| *c == cid), "not pinned on B");
    let rep = reports(&b);
    let last = rep.last().expect("a fetch report");
    assert_eq!(last["fetched_leaves"], last["leaves"], "{last:#}");
    repair_clean(&b);

    // Outside the roster: refused, and nothing stored.
    let mut outsider = TestNode::start();
    reboot(&mut outsider, &[a_addr], &[], &[]);
    wait_connected(&outsider, 1);
    outsider
        .cli(&["fetch", &cid])
        .fails()
        .stderr_mentions("roster members");
    assert!(outsider.pins().is_empty());
    assert!(
        !outsider
            .files_under("blobs")
            .iter()
            .any(|f| f.contains(&cid)),
        "the outsider stored the image"
    );
    // Private blocks over Bitswap are gated too: see private.rs (session 1) for /ipfs and
    // bitswap.rs's `visible` check.
}

/// One honest and one corrupting holder: the fetch completes with exact bytes from the honest
/// one, the corrupting one is dropped and its misbehaviour counted, and nothing corrupt is kept.
#[test]
fn a_corrupting_holder_is_dropped_and_counted() {
    let tmp = tmpdir();
    let mut a = TestNode::start();
    let mut m = TestNode::start();
    let mut b = TestNode::start();
    let id = fed::create(&a, "Fed", "lab-a");
    for (n, inst) in [(&b, "lab-b"), (&m, "lab-m")] {
        let line = fed::request(n, inst);
        a.cli(&["federation", "admit", &line]).ok();
        fed::join(n, &id, a.url());
    }
    let file = file_in(tmp.path(), "img.sif");
    data::kubo_file(&file, "fetch-malicious", 30_000_000);
    let cid = a.add(&file);
    assert_eq!(m.add(&file), cid);
    reboot(&mut a, &[], &[], &[]);
    reboot(&mut m, &[], &[], &[("SHUBNET_FAULT_CORRUPT_FETCH", "1")]);
    let (a_addr, m_addr) = (p2p_addr(&a), p2p_addr(&m));
    reboot(&mut b, &[a_addr, m_addr.clone()], &[], &[]);
    wait_connected(&b, 2);
    fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    let r = get(&b.at(&format!("/ipfs/{cid}")));
    r.expect_status(200);
    assert_eq!(data::sha256_hex(&r.body), data::sha256_file(&file).0);
    repair_clean(&b);
    let rep = reports(&b);
    let last = rep.last().expect("a fetch report");
    let bad = peer_of(&m_addr);
    let holders = last["holders"].as_array().expect("holders");
    let mh = holders
        .iter()
        .find(|h| h["peer"] == bad.as_str())
        .unwrap_or_else(|| panic!("the corrupting holder was never asked: {last:#}"));
    assert!(mh["misbehaviour"].as_u64().unwrap_or(0) >= 1, "{last:#}");
    assert!(mh["dropped"].is_string(), "{last:#}");
    assert_eq!(
        mh["leaves"], 0,
        "leaves from the corrupting holder were kept: {last:#}"
    );
}

/// A member that does not hold an image serves it over `/ipfs` by fetching it: a Range request
/// fetches only the covered leaves; a full read keeps the copy.
#[test]
fn gateway_reads_images_held_elsewhere() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 40_000_000u64;
    data::kubo_file(&file, "fetch-ondemand", len);
    let bytes = std::fs::read(&file).expect("reading the image");
    let cid = a.add(&file);
    reboot(&mut b, &[p2p_addr(&a)], &[], &[]);
    wait_connected(&b, 1);

    let (from, to) = (10_000_000usize, 10_000_999usize);
    let r = get_range(&b.at(&format!("/ipfs/{cid}")), &format!("{from}-{to}"));
    r.expect_status(206);
    assert_eq!(r.body, &bytes[from..=to]);
    // Only the covered leaves arrived: the image is not stored yet, its partial download is.
    assert!(!b.files_under("blobs").iter().any(|f| f.contains(&cid)));
    let data_file = b.data_dir().join(format!("partial/fetch/{cid}/data"));
    let allocated = std::process::Command::new("du")
        .args(["-k", "--"])
        .arg(&data_file)
        .output()
        .expect("du");
    let kib: u64 = String::from_utf8_lossy(&allocated.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du output");
    assert!(
        kib < 4 * 1024,
        "a 1000-byte range allocated {kib} KiB of {len} bytes"
    );

    let r = get(&b.at(&format!("/ipfs/{cid}")));
    r.expect_status(200);
    assert!(r.body == bytes, "full on-demand read differs");
    poll_until(Duration::from_secs(30), "the copy to be stored", || {
        b.files_under("blobs")
            .iter()
            .any(|f| f == &cid)
            .then_some(())
    });
    repair_clean(&b);
}

/// Images of one block (a file no larger than one leaf, whose root CID is the raw leaf itself,
/// and the empty file) held only by A: B's gateway serves them on demand, whole and as a Range,
/// keeps the copy, and `shubnet fetch` on B stores and pins them.
#[test]
fn single_block_images_are_read_and_fetched_from_members() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, .. } = TwoMembers::start();
    let mut images = Vec::new();
    for (name, len) in [("tiny.sif", 100_000u64), ("empty.sif", 0)] {
        let file = file_in(tmp.path(), name);
        data::kubo_file(&file, name, len);
        let cid = a.add(&file);
        assert!(
            cid.starts_with("bafkrei"),
            "a one-leaf file should have a raw root: {cid}"
        );
        images.push((cid, std::fs::read(&file).expect("reading the image")));
    }
    reboot(&mut b, &[p2p_addr(&a)], &[], &[]);
    wait_connected(&b, 1);

    let (tiny, bytes) = &images[0];
    let r = get_range(&b.at(&format!("/ipfs/{tiny}")), "1000-1999");
    r.expect_status(206);
    assert_eq!(r.body, &bytes[1000..2000]);
    let r = get(&b.at(&format!("/ipfs/{tiny}")));
    r.expect_status(200);
    assert!(
        r.body == *bytes,
        "on-demand read of a one-block image differs"
    );
    assert!(
        b.files_under("blobs").iter().any(|f| f == tiny),
        "the on-demand copy was not kept"
    );
    let (empty, _) = &images[1];
    let r = get(&b.at(&format!("/ipfs/{empty}")));
    r.expect_status(200);
    assert!(r.body.is_empty());

    for (cid, _) in &images {
        fetch_ok(&b, cid);
        assert!(
            b.pins().iter().any(|(c, _)| c == cid),
            "{cid} not pinned on B"
        );
    }
    let rep = reports(&b);
    assert!(
        rep.iter()
            .any(|r| r["root"] == tiny.as_str() && r["fetched_leaves"] == 1),
        "no fetch report for {tiny}: {rep:#?}"
    );
    repair_clean(&b);
}

/// With `--download-limit`, a transfer takes at least about size / limit.
#[test]
fn a_download_limit_slows_the_transfer() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 24_000_000u64;
    data::kubo_file(&file, "fetch-limit", len);
    let cid = a.add(&file);
    let limit = 6_000_000u64;
    reboot(
        &mut b,
        &[p2p_addr(&a)],
        &["--download-limit", &limit.to_string()],
        &[],
    );
    wait_connected(&b, 1);
    let t = Instant::now();
    fetch_ok(&b, &cid);
    let took = t.elapsed();
    // 4 s at the limit, less the 2 MiB burst.
    assert!(
        took >= Duration::from_secs(3),
        "{len} bytes at {limit} B/s took only {took:?}"
    );
}

/// `--upload-limit` caps Bitswap as well as fetch/1: another node's Bitswap fetch (`shubnet
/// fetch --peer`, no federation needed for a public image) from a node limited to 2 MB/s takes
/// at least about size / limit, and the bytes are exact.
#[test]
fn an_upload_limit_caps_bitswap_too() {
    let tmp = tmpdir();
    let limit = 2_000_000u64;
    let a = TestNode::start_with(&["--upload-limit", &limit.to_string()]);
    let b = TestNode::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 16_000_000u64;
    data::kubo_file(&file, "bitswap-limit", len);
    let cid = a.add(&file);
    let t = Instant::now();
    let r = run_cmd_with(
        &mut b.command(&["fetch", &cid, "--peer", &a.p2p_addr()]),
        None,
        Duration::from_secs(120),
    )
    .ok();
    let took = t.elapsed();
    assert_eq!(r.out(), cid, "{r}");
    // 8 s at the limit, less the 2 MiB burst: at least 6.9 s. Unlimited, it takes under 2 s.
    assert!(
        took >= Duration::from_secs(6),
        "{len} bytes over Bitswap from a node limited to {limit} B/s took only {took:?}"
    );
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
}

/// 500 MB through a proxy that cuts the connection every 50 MB: the transfer completes, exact,
/// with at most 10 % more bytes than the image. Then kill -9 of the fetching node mid-transfer:
/// after a restart it continues without fetching verified leaves again.
#[test]
fn transfers_resume_after_drops_and_kill9() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 500_000_000u64;
    data::kubo_file(&file, "fetch-resume", len);
    let cid = a.add(&file);
    let a_addr = p2p_addr(&a);
    let proxy = Proxy::start(tcp_of(&a_addr), 50_000_000);
    let via = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        proxy.addr().port(),
        peer_of(&a_addr)
    );
    // B announces only a dead address, so A cannot dial around the proxy after a cut.
    let dead = dead_addr();
    reboot(
        &mut b,
        std::slice::from_ref(&via),
        &["--announce", &dead],
        &[],
    );
    wait_connected(&b, 1);
    fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    let got = proxy.downstream_bytes();
    assert!(proxy.cuts() >= 9, "only {} cuts", proxy.cuts());
    assert!(
        got <= len + len / 10,
        "{got} bytes received for a {len}-byte image"
    );

    // kill -9 mid-transfer of a second image, restart, finish.
    let file2 = file_in(tmp.path(), "img2.sif");
    data::kubo_file(&file2, "fetch-resume-2", 200_000_000);
    let cid2 = a.add(&file2);
    let proxy2 = Proxy::start(tcp_of(&a_addr), 0);
    let via2 = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        proxy2.addr().port(),
        peer_of(&a_addr)
    );
    reboot(
        &mut b,
        std::slice::from_ref(&via2),
        &["--download-limit", "40000000", "--announce", &dead],
        &[],
    );
    wait_connected(&b, 1);
    let mut child = b
        .command(&["fetch", &cid2])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the fetch");
    poll_until(Duration::from_secs(60), "100 MB to arrive", || {
        (proxy2.downstream_bytes() > 100_000_000).then_some(())
    });
    b.kill9();
    let _ = child.kill();
    let _ = child.wait();
    let before = proxy2.downstream_bytes();
    reboot(&mut b, &[via2], &["--announce", &dead], &[]);
    wait_connected(&b, 1);
    fetch_ok(&b, &cid2);
    let rep = reports(&b);
    let last = rep.last().expect("a fetch report");
    let already = last["already_verified"].as_u64().expect("already_verified");
    let fetched = last["fetched_leaves"].as_u64().expect("fetched_leaves");
    assert!(already > 0, "nothing was kept across kill -9: {last:#}");
    assert_eq!(
        already + fetched,
        last["leaves"].as_u64().expect("leaves"),
        "{last:#}"
    );
    let after = proxy2.downstream_bytes() - before;
    assert!(
        before + after <= 200_000_000 + 20_000_000,
        "{before} + {after} bytes for a 200 MB image"
    );
    let out2 = file_in(tmp.path(), "out2.sif");
    b.cat_to(&cid2, &out2);
    assert_same_file(&out2, &file2);
}
