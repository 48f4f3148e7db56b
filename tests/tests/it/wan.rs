//! `/shubnet/fetch/1` across an emulated long, fat link: a member fetches from another through
//! the delay proxy ([`shubnet_tests::delay`]) at 40 ms RTT and must keep most of the speed of
//! the same fetch with no delay. Fails when bytes in flight are capped (yamux windows shared
//! across thousands of streams, too few requests at once), which made a 40 ms link a tenth as
//! fast as loopback. The full measurement, with scp as a baseline, is `bench/wan.sh`.

use crate::{file_in, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, run_cmd_with};
use shubnet_tests::data::{self, assert_same_file};
use shubnet_tests::delay::{DelayProxy, Link};
use shubnet_tests::fed::{self, TwoMembers};
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

fn p2p_addr(node: &TestNode) -> String {
    let path = node.data_dir().join("p2p.addrs");
    poll_until(Duration::from_secs(30), "the node's p2p address", || {
        std::fs::read_to_string(&path).ok().and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| l.starts_with("/ip4/127.0.0.1/tcp/") && l.contains("/p2p/"))
                .map(str::to_string)
        })
    })
}

/// A TCP multiaddr on 127.0.0.1 where nothing listens (bound, then released).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = l.local_addr().expect("local address").port();
    format!("/ip4/127.0.0.1/tcp/{port}")
}

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
