//! `/shubnet/fetch/1` across emulated long, fat links (the delay proxy,
//! [`shubnet_tests::delay`]): a member fetching from another at 40 ms RTT must keep most of
//! the speed of the same fetch with no delay, and so must a client reading through the gateway
//! of a member that does not hold the image; two holders at 10 and 80 ms RTT share a fetch,
//! the near one giving most bytes; and resumption after drops, a corrupting holder and the
//! download limit behave over delayed links as they do on loopback. Fails when bytes in flight
//! are capped (yamux windows shared across thousands of streams, too few requests at once, a
//! new stream per request ramping its window again). The full measurement, with scp as a
//! baseline, is `bench/wan.sh`.

use crate::fetch::{dead_addr, p2p_addr, peer_of, reports, tcp_of, wait_connected};
use crate::{file_in, tmpdir};
use serde_json::Value;
use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, run_cmd_with};
use shubnet_tests::data::{self, assert_same_file};
use shubnet_tests::delay::{DelayProxy, Link};
use shubnet_tests::fed::{self, TwoMembers};
use shubnet_tests::http::get;
use shubnet_tests::proxy::Proxy;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Image size: long enough that a transfer's start-up (connection, `Have`, the DAG) is small
/// next to it, short enough for a debug build on a loaded machine.
const LEN: u64 = 128 << 20;
/// Fetch throughput at 40 ms RTT over throughput with no delay must reach this. Before the
/// fix it was 0.13 at this size (about 0.5 MiB in flight); after it, 0.78–1.02 with a debug
/// build on two loaded cores (0.45–0.8 at 64 MiB, where the round trips before the first leaf
/// weigh more).
const MIN_RATIO: f64 = 0.3;

/// Restarts `node` dialling only `peer`, announcing a dead address so nobody dials it around
/// the path given.
fn reboot_via(node: &mut TestNode, peer: &str) {
    let dead = dead_addr();
    node.set_serve_args(&["--bootstrap", peer, "--announce", &dead], &[]);
    node.restart();
    poll_until(Duration::from_secs(30), "a p2p connection", || {
        (!fed::connected_peers(node).is_empty()).then_some(())
    });
}

/// Seconds `node` takes to fetch `cid`, checked.
fn timed_fetch(node: &TestNode, cid: &str) -> f64 {
    let t = Instant::now();
    let r = run_cmd_with(
        &mut node.command(&["fetch", cid]),
        None,
        Duration::from_secs(300),
    )
    .ok();
    assert_eq!(r.out(), cid, "{r}");
    t.elapsed().as_secs_f64()
}

#[test]
fn fetch_at_40ms_rtt_keeps_most_of_the_loopback_speed() {
    let tmp = tmpdir();
    let TwoMembers { mut a, mut b, .. } = TwoMembers::start();
    let (near, far) = (
        file_in(tmp.path(), "near.sif"),
        file_in(tmp.path(), "far.sif"),
    );
    data::kubo_file(&near, "wan-near", LEN);
    data::kubo_file(&far, "wan-far", LEN);
    let (near_cid, far_cid) = (a.add(&near), a.add(&far));
    let a_addr = p2p_addr(&a);
    // A announces a dead address too, so B reaches it only through the path B dials.
    let dead = dead_addr();
    a.set_serve_args(&["--announce", &dead], &[]);
    a.restart();
    let a_addr_now = p2p_addr(&a);
    assert_eq!(
        a_addr_now.rsplit('/').next(),
        a_addr.rsplit('/').next(),
        "same peer id"
    );

    reboot_via(&mut b, &a_addr_now);
    let direct = timed_fetch(&b, &near_cid);

    let port: u16 = a_addr_now.split('/').nth(4).unwrap().parse().unwrap();
    let proxy = DelayProxy::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Link::rtt(Duration::from_millis(40)),
    );
    let peer = a_addr_now.rsplit('/').next().unwrap();
    reboot_via(
        &mut b,
        &format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", proxy.addr().port()),
    );
    let delayed = timed_fetch(&b, &far_cid);
    assert!(
        proxy.downstream_bytes() >= LEN,
        "only {} bytes came through the proxy: the fetch went around it",
        proxy.downstream_bytes()
    );
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&far_cid, &out);
    assert_same_file(&out, &far);

    let ratio = direct / delayed;
    eprintln!(
        "128 MiB fetch: {:.0} MB/s direct, {:.0} MB/s at 40 ms RTT, ratio {ratio:.2}",
        LEN as f64 / direct / 1e6,
        LEN as f64 / delayed / 1e6
    );
    assert!(
        ratio >= MIN_RATIO,
        "at 40 ms RTT the fetch ran at {ratio:.2}x its speed with no delay \
         ({direct:.1} s direct, {delayed:.1} s delayed); want >= {MIN_RATIO}"
    );
}

/// Restarts `node` announcing only a dead address (so peers reach it only through the proxy
/// they are given) and returns its p2p address.
fn hide(node: &mut TestNode, args: &[&str], env: &[(&str, &str)]) -> String {
    let dead = dead_addr();
    let mut all = vec!["--announce", dead.as_str()];
    all.extend_from_slice(args);
    node.set_serve_args(&all, env);
    node.restart();
    p2p_addr(node)
}

/// A delay proxy of `rtt` in front of `upstream`, and the multiaddr of `peer` through it.
fn delayed(upstream: SocketAddr, peer: &str, rtt_ms: u64) -> (DelayProxy, String) {
    let proxy = DelayProxy::start(upstream, Link::rtt(Duration::from_millis(rtt_ms)));
    let via = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", proxy.addr().port());
    (proxy, via)
}

/// Restarts `node` dialling only `peers`, with extra args and env, announcing a dead address.
fn reboot_via_all(node: &mut TestNode, peers: &[String], args: &[&str], env: &[(&str, &str)]) {
    let dead = dead_addr();
    let mut all: Vec<&str> = vec!["--announce", &dead];
    for p in peers {
        all.push("--bootstrap");
        all.push(p);
    }
    all.extend_from_slice(args);
    node.set_serve_args(&all, env);
    node.restart();
    wait_connected(node, peers.len());
}

/// The last fetch report of `node` for `cid`.
fn report_for(node: &TestNode, cid: &str) -> Value {
    reports(node)
        .into_iter()
        .rev()
        .find(|r| r["root"] == cid)
        .unwrap_or_else(|| panic!("no fetch report for {cid}"))
}

/// A holder's entry in a fetch report.
fn holder_entry<'a>(report: &'a Value, peer: &str) -> &'a Value {
    report["holders"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["peer"] == peer))
        .unwrap_or_else(|| panic!("{peer} is not in the report: {report:#}"))
}

/// Drops on a 40 ms link: a proxy that cuts the connection every 16 MB behind a 40 ms delay
/// proxy. The transfer completes with exact bytes and fetches little twice.
#[test]
fn transfers_resume_after_drops_on_a_40ms_link() {
    let tmp = tmpdir();
    let TwoMembers { mut a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 64_000_000u64;
    data::kubo_file(&file, "wan-resume", len);
    let cid = a.add(&file);
    let a_addr = hide(&mut a, &[], &[]);
    let cut = Proxy::start(tcp_of(&a_addr), 16_000_000);
    let (_delay, via) = delayed(cut.addr(), &peer_of(&a_addr), 40);
    reboot_via_all(&mut b, &[via], &[], &[]);
    crate::fetch::fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    let got = cut.downstream_bytes();
    assert!(cut.cuts() >= 3, "only {} cuts", cut.cuts());
    assert!(
        got <= len + len / 2,
        "{got} bytes received for a {len}-byte image"
    );
}

/// Two holders behind 40 ms links, one of which corrupts every leaf it sends: it is dropped
/// and counted, none of its leaves is kept, and the image arrives exact from the other.
#[test]
fn a_corrupting_holder_is_dropped_on_delayed_links() {
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
    data::kubo_file(&file, "wan-malicious", 24_000_000);
    let cid = a.add(&file);
    assert_eq!(m.add(&file), cid);
    let a_addr = hide(&mut a, &[], &[]);
    let m_addr = hide(&mut m, &[], &[("SHUBNET_FAULT_CORRUPT_FETCH", "1")]);
    let (_pa, via_a) = delayed(tcp_of(&a_addr), &peer_of(&a_addr), 40);
    let (_pm, via_m) = delayed(tcp_of(&m_addr), &peer_of(&m_addr), 40);
    reboot_via_all(&mut b, &[via_a, via_m], &[], &[]);
    crate::fetch::fetch_ok(&b, &cid);
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cid, &out);
    assert_same_file(&out, &file);
    let last = report_for(&b, &cid);
    let bad = holder_entry(&last, &peer_of(&m_addr));
    assert!(bad["misbehaviour"].as_u64().unwrap_or(0) >= 1, "{last:#}");
    assert!(bad["dropped"].is_string(), "{last:#}");
    assert_eq!(
        bad["leaves"], 0,
        "leaves from the corrupting holder were kept: {last:#}"
    );
}

/// `--download-limit` holds on a 40 ms link: 12 MB at 3 MB/s takes at least about
/// size / limit (less the 2 MiB burst), and not much more.
#[test]
fn a_download_limit_holds_on_a_40ms_link() {
    let tmp = tmpdir();
    let TwoMembers { mut a, mut b, .. } = TwoMembers::start();
    let file = file_in(tmp.path(), "img.sif");
    let len = 12_000_000u64;
    data::kubo_file(&file, "wan-limit", len);
    let cid = a.add(&file);
    let a_addr = hide(&mut a, &[], &[]);
    let (_delay, via) = delayed(tcp_of(&a_addr), &peer_of(&a_addr), 40);
    let limit = 3_000_000u64;
    reboot_via_all(
        &mut b,
        &[via],
        &["--download-limit", &limit.to_string()],
        &[],
    );
    let took = timed_fetch(&b, &cid);
    assert!(
        took >= 3.0,
        "{len} bytes at {limit} B/s over 40 ms took only {took:.1} s"
    );
    assert!(
        took <= 12.0,
        "{len} bytes at {limit} B/s over 40 ms took {took:.1} s: the link, not the limit, set the pace"
    );
}

/// Bytes per second of `len` bytes in `secs`.
fn rate(len: u64, secs: f64) -> f64 {
    len as f64 / secs
}

/// Through the gateway of a member 40 ms from the only holder, which fetches on demand as it
/// streams: `/ipfs/CID` and the shub `image` URL both keep most of the direct fetch's
/// throughput, with exact bytes.
#[test]
fn a_far_members_gateway_streams_images_it_does_not_hold() {
    let tmp = tmpdir();
    let TwoMembers { mut a, mut b, .. } = TwoMembers::start();
    let len = 48u64 << 20;
    let (direct_f, ipfs_f, shub_f) = (
        file_in(tmp.path(), "direct.sif"),
        file_in(tmp.path(), "ipfs.sif"),
        file_in(tmp.path(), "shub.sif"),
    );
    data::kubo_file(&direct_f, "wan-gw-direct", len);
    data::kubo_file(&ipfs_f, "wan-gw-ipfs", len);
    data::kubo_file(&shub_f, "wan-gw-shub", len);
    let direct_cid = a.add(&direct_f);
    let ipfs_cid = a.add(&ipfs_f);
    fed::push(&a, &shub_f, "lab-a/wan:latest", false);
    let a_addr = hide(&mut a, &[], &[]);
    let (proxy, via) = delayed(tcp_of(&a_addr), &peer_of(&a_addr), 40);
    reboot_via_all(&mut b, &[via], &[], &[]);
    // The tag reaches B by sync; its image stays on A.
    let manifest = poll_until(Duration::from_secs(30), "the tag on B", || {
        let r = get(&b.at("/api/container/lab-a/wan:latest"));
        (r.status == 200)
            .then(|| serde_json::from_slice::<Value>(&r.body).ok())
            .flatten()
    });
    let image = manifest["image"]
        .as_str()
        .expect("an image URL")
        .to_string();
    let path = image
        .strip_prefix(b.url())
        .unwrap_or_else(|| panic!("image URL {image} is not on B's gateway {}", b.url()));

    let direct = rate(len, timed_fetch(&b, &direct_cid));
    let t = Instant::now();
    let r = get(&b.at(&format!("/ipfs/{ipfs_cid}")));
    let ipfs = rate(len, t.elapsed().as_secs_f64());
    r.expect_status(200);
    assert!(
        r.body == std::fs::read(&ipfs_f).expect("reading"),
        "/ipfs bytes differ"
    );
    let t = Instant::now();
    let r = get(&b.at(path));
    let shub = rate(len, t.elapsed().as_secs_f64());
    r.expect_status(200);
    assert!(
        r.body == std::fs::read(&shub_f).expect("reading"),
        "shub image bytes differ"
    );
    assert!(
        proxy.downstream_bytes() >= 3 * len,
        "only {} bytes came through the proxy: a read went around it",
        proxy.downstream_bytes()
    );
    let (ri, rs) = (ipfs / direct, shub / direct);
    eprintln!(
        "48 MiB at 40 ms RTT: fetch {:.0} MB/s, gateway /ipfs {:.0} MB/s ({ri:.2}), shub image {:.0} MB/s ({rs:.2})",
        direct / 1e6,
        ipfs / 1e6,
        shub / 1e6
    );
    for (what, r) in [("/ipfs", ri), ("the shub image URL", rs)] {
        assert!(
            r >= MIN_GATEWAY_RATIO,
            "{what} through a far member's gateway ran at {r:.2}x the direct fetch; want >= {MIN_GATEWAY_RATIO}"
        );
    }
}

/// Gateway throughput over direct fetch throughput at 40 ms that the test wants; loose, since
/// a debug build on a loaded machine swings (the bench asks 0.8 of a release build).
const MIN_GATEWAY_RATIO: f64 = 0.4;

/// Two holders, 10 ms and 80 ms away: the fetch from both is faster than from the far one
/// alone, and the near one gives most bytes (more than twice the far one's). The time from the
/// near one alone is printed, not checked: the fetch from both still waits for the last runs
/// asked of the far one.
#[test]
fn two_holders_at_10_and_80ms_share_a_fetch_and_the_near_one_gives_most() {
    let tmp = tmpdir();
    let mut near = TestNode::start();
    let mut far = TestNode::start();
    let mut b = TestNode::start();
    let id = fed::create(&near, "Fed", "lab-near");
    for (n, inst) in [(&b, "lab-b"), (&far, "lab-far")] {
        let line = fed::request(n, inst);
        near.cli(&["federation", "admit", &line]).ok();
        fed::join(n, &id, near.url());
    }
    let len = 32u64 << 20;
    let mut cids = Vec::new();
    for name in ["far-alone", "both", "near-alone"] {
        let f = file_in(tmp.path(), &format!("{name}.sif"));
        data::kubo_file(&f, &format!("wan-swarm-{name}"), len);
        let cid = near.add(&f);
        assert_eq!(far.add(&f), cid);
        cids.push((cid, f));
    }
    let near_addr = hide(&mut near, &[], &[]);
    let far_addr = hide(&mut far, &[], &[]);
    let (near_peer, far_peer) = (peer_of(&near_addr), peer_of(&far_addr));
    let (_pf, via_far) = delayed(tcp_of(&far_addr), &far_peer, 80);

    // The far holder alone.
    reboot_via_all(&mut b, std::slice::from_ref(&via_far), &[], &[]);
    let far_alone = timed_fetch(&b, &cids[0].0);
    let rep = report_for(&b, &cids[0].0);
    assert_eq!(
        holder_entry(&rep, &far_peer)["bytes"].as_u64(),
        Some(rep["bytes_received"].as_u64().unwrap_or(0)),
        "another holder was reached: {rep:#}"
    );

    // Both.
    let (_pn, via_near) = delayed(tcp_of(&near_addr), &near_peer, 10);
    reboot_via_all(&mut b, &[via_near, via_far], &[], &[]);
    let both = timed_fetch(&b, &cids[1].0);
    let rep = report_for(&b, &cids[1].0);
    let bytes = |p: &str| holder_entry(&rep, p)["bytes"].as_u64().unwrap_or(0);
    let (from_near, from_far) = (bytes(&near_peer), bytes(&far_peer));
    let out = file_in(tmp.path(), "out.sif");
    b.cat_to(&cids[1].0, &out);
    assert_same_file(&out, &cids[1].1);

    // The near holder alone: the far one is gone.
    far.kill9();
    let near_alone = timed_fetch(&b, &cids[2].0);
    eprintln!(
        "32 MiB: far (80 ms) alone {far_alone:.2} s, near (10 ms) alone {near_alone:.2} s, \
         both {both:.2} s with {from_near} bytes from the near one and {from_far} from the far one"
    );
    assert!(
        from_near > 2 * from_far,
        "the near holder gave {from_near} bytes, the far one {from_far}"
    );
    assert!(
        both < far_alone,
        "both holders took {both:.2} s, the far one alone {far_alone:.2} s"
    );
}
