//! The federation swarm: gossip of manifests and rosters, `/shubnet/sync/1` catch-up with gossip
//! off, gating to roster members, reconnecting from persisted peers, and refusal of
//! conflicting manifests arriving over sync. Real `shubnet serve` processes on 127.0.0.1.

use shubnet_tests::TestNode;
use shubnet_tests::fed::push;
use shubnet_tests::swarm::{federate, heads, p2p_addr, roster_version, small_files, wait_head};
use std::time::{Duration, Instant};

/// Push on A; B and C resolve the tag within 5 s. Sync runs only hourly here, and its one round
/// at join time happens before the push, so gossip is what carries it. Then the same from B.
#[test]
fn gossip_reaches_three_institutions_within_5s() {
    let a = TestNode::start_with(&["--sync-interval", "3600"]);
    let addr = p2p_addr(&a);
    let b = TestNode::start_with(&["--sync-interval", "3600", "--bootstrap", &addr]);
    let c = TestNode::start_with(&["--sync-interval", "3600", "--bootstrap", &addr]);
    federate(&a, &[], &[(&b, "lab-b", &[]), (&c, "lab-c", &[])]);
    // Let the gossip subscriptions (sent when each node joined) settle.
    std::thread::sleep(Duration::from_secs(2));
    let tmp = tempfile::tempdir().expect("tmp");
    let files = small_files(tmp.path(), "gossip", 2);
    let m = push(&a, &files[0], "lab-a/tool:1", false);
    let t = Instant::now();
    wait_head(&b, "lab-a/tool:1", &m, Duration::from_secs(5));
    wait_head(&c, "lab-a/tool:1", &m, Duration::from_secs(5));
    eprintln!("gossip A → B, C took {:?}", t.elapsed());
    // The node logs the acceptance just after the head becomes visible: wait for the line, and
    // fail if the manifest came another way (sync runs only hourly here).
    for n in [&b, &c] {
        shubnet_tests::cmd::poll_until(
            Duration::from_secs(5),
            "the manifest to come by gossip",
            || {
                n.log_text()
                    .contains("manifest accepted from gossip")
                    .then_some(())
            },
        );
    }
    let m = push(&b, &files[1], "lab-b/tool:1", false);
    wait_head(&a, "lab-b/tool:1", &m, Duration::from_secs(5));
    wait_head(&c, "lab-b/tool:1", &m, Duration::from_secs(5));
}

/// Gossip off everywhere: a node stopped while 50 manifests and a roster version were made
/// elsewhere has all of them within 30 s of starting again, by sync alone.
#[test]
fn catch_up_by_sync_alone() {
    let a = TestNode::start_with(&["--no-gossip", "--sync-interval", "1"]);
    let addr = p2p_addr(&a);
    let mut b =
        TestNode::start_with(&["--no-gossip", "--sync-interval", "1", "--bootstrap", &addr]);
    federate(&a, &[], &[(&b, "lab-b", &[])]);
    let tmp = tempfile::tempdir().expect("tmp");
    let files = small_files(tmp.path(), "catch-up", 51);
    let first = push(&a, &files[50], "lab-a/first:1", false);
    wait_head(&b, "lab-a/first:1", &first, Duration::from_secs(30));

    b.stop();
    let c = TestNode::start();
    let line = c
        .cli(&["federation", "request", "--institution", "lab-c"])
        .ok()
        .out();
    a.cli(&["federation", "admit", &line]).ok();
    assert_eq!(roster_version(&a), 3);
    let want: Vec<(String, String)> = files[..50]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let r = format!("lab-a/img{i}:1");
            let m = push(&a, f, &r, false);
            (r, m)
        })
        .collect();

    b.restart();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(30);
    loop {
        let have = heads(&b);
        let missing: Vec<_> = want
            .iter()
            .filter(|(r, m)| have.get(r) != Some(m))
            .collect();
        let v = roster_version(&b);
        if missing.is_empty() && v == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s B still lacks {} of 50 manifests (roster version {v}, want 3)\n{}",
            missing.len(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "catch-up of 50 manifests and 1 roster version took {:?}",
        t.elapsed()
    );
}

/// A node that copied the roster but was never admitted is refused by sync and gets nothing,
/// by sync or by gossip.
#[test]
fn non_member_is_refused() {
    let a = TestNode::start_with(&["--sync-interval", "1"]);
    let id = federate(&a, &[], &[]);
    let tmp = tempfile::tempdir().expect("tmp");
    let files = small_files(tmp.path(), "gate", 2);
    push(&a, &files[0], "lab-a/tool:1", false);
    let addr = p2p_addr(&a);
    let x = TestNode::start_with(&["--sync-interval", "1", "--bootstrap", &addr]);
    shubnet_tests::fed::join(&x, &id, a.url());
    shubnet_tests::cmd::poll_until(Duration::from_secs(20), "A refusing X's sync", || {
        a.log_text()
            .contains("sync refused: not a member")
            .then_some(())
    });
    // X logs the refusal just after A sends it: wait for it too, not for A's line alone.
    shubnet_tests::cmd::poll_until(Duration::from_secs(20), "X reporting the refusal", || {
        x.log_text()
            .contains("the peer refused to sync")
            .then_some(())
    });
    push(&a, &files[1], "lab-a/tool:2", false);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        heads(&x).is_empty(),
        "a non-member got manifests: {:#?}",
        heads(&x)
    );
}

/// A member restarted without `--bootstrap` dials the federation from `p2p.peers` and catches up.
#[test]
fn reconnects_from_persisted_peers() {
    let a = TestNode::start_with(&["--sync-interval", "1"]);
    let addr = p2p_addr(&a);
    let mut b = TestNode::start_with(&["--sync-interval", "1", "--bootstrap", &addr]);
    federate(&a, &[], &[(&b, "lab-b", &[])]);
    let tmp = tempfile::tempdir().expect("tmp");
    let files = small_files(tmp.path(), "reconnect", 2);
    let m = push(&a, &files[0], "lab-a/tool:1", false);
    wait_head(&b, "lab-a/tool:1", &m, Duration::from_secs(30));
    let a_peer = addr.rsplit('/').next().expect("peer id").to_string();
    shubnet_tests::cmd::poll_until(Duration::from_secs(10), "A in B's p2p.peers", || {
        std::fs::read_to_string(b.data_dir().join("p2p.peers"))
            .ok()
            .filter(|t| t.contains(&a_peer))
    });
    let status = |n: &TestNode| shubnet_tests::fed::json_of(&n.cli(&["status", "--json"]).ok());
    let b_peer = status(&b)["peer_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    b.stop();
    b.set_args(&["--sync-interval", "1"]);
    let m = push(&a, &files[1], "lab-a/tool:2", false);
    b.restart();
    assert_eq!(
        status(&b)["peer_id"].as_str(),
        Some(b_peer.as_str()),
        "the restart changed B's peer id"
    );
    wait_head(&b, "lab-a/tool:2", &m, Duration::from_secs(30));
    // Rejoined on its own: A sees B connected again, under the same peer id.
    shubnet_tests::cmd::poll_until(Duration::from_secs(30), "A connected to B again", || {
        status(&a)["connected_peers"]
            .as_array()?
            .iter()
            .any(|p| p.as_str() == Some(b_peer.as_str()))
            .then_some(())
    });
}

/// A member that equivocates: a copy of A's data directory (same keys) publishes a different
/// `seq 1` for a tag B already has from A. When B syncs with the copy, it refuses that manifest
/// (the registry's succession check, over the wire) and keeps A's.
#[test]
fn conflicting_manifest_over_sync_is_refused() {
    let mut a = TestNode::start_with(&["--no-gossip", "--sync-interval", "1"]);
    let addr = p2p_addr(&a);
    let mut b =
        TestNode::start_with(&["--no-gossip", "--sync-interval", "1", "--bootstrap", &addr]);
    federate(&a, &[], &[(&b, "lab-b", &[])]);
    b.stop();
    a.stop();
    let tmp = tempfile::tempdir().expect("tmp");
    let copy = tmp.path().join("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(a.data_dir())
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let files = small_files(tmp.path(), "conflict", 3);
    a.restart();
    let ma = push(&a, &files[0], "lab-a/img:1", false);
    let ok = push(&a, &files[1], "lab-a/ok:1", false);
    a.stop();
    let twin = TestNode::start_at(&copy, &tmp.path().join("twin-logs"));
    let mt = push(&twin, &files[2], "lab-a/img:1", false);
    assert_ne!(ma, mt);
    drop(twin);
    a.restart();
    let addr = p2p_addr(&a);
    b.set_args(&["--no-gossip", "--sync-interval", "1", "--bootstrap", &addr]);
    b.restart();
    wait_head(&b, "lab-a/ok:1", &ok, Duration::from_secs(30));
    wait_head(&b, "lab-a/img:1", &ma, Duration::from_secs(5));
    b.stop();
    drop(a);
    let twin = TestNode::start_at(&copy, &tmp.path().join("twin-logs"));
    let addr = p2p_addr(&twin);
    b.set_args(&["--no-gossip", "--sync-interval", "1", "--bootstrap", &addr]);
    b.restart();
    shubnet_tests::cmd::poll_until(
        Duration::from_secs(30),
        "B refusing the twin's conflicting manifest",
        || {
            b.log_text()
                .contains("synced manifest refused")
                .then_some(())
        },
    );
    assert_eq!(heads(&b).get("lab-a/img:1"), Some(&ma), "{}", b.log_text());
    assert_eq!(heads(&twin).get("lab-a/img:1"), Some(&mt));
}

/// A non-member that opens `/shubnet/sync/1` and announces a 20 MiB frame is refused before the
/// node reads its body: yamux stops taking bytes (the node gives no more window and resets the
/// stream) long before the 20 MiB are through, and the refusal comes back.
#[test]
fn non_member_is_refused_before_its_frame_is_read() {
    shubnet_tests::js::helia_node();
    let a = TestNode::start_with(&["--sync-interval", "3600"]);
    federate(&a, &[], &[]);
    let report = shubnet_tests::js::helia_probe(
        &["sync-frame", &p2p_addr(&a), "--mib=20"],
        Duration::from_secs(120),
    );
    let sent = report["sent"].as_u64().unwrap_or(u64::MAX);
    let announced = report["announced"].as_u64().unwrap_or_default();
    assert_eq!(announced, 20 * 1024 * 1024, "{report}");
    assert!(
        sent < 4 * 1024 * 1024,
        "the node took {sent} of the {announced} bytes a non-member announced before refusing \
         it: {report}\n{}",
        a.log_text()
    );
    assert!(
        report["response"]
            .as_str()
            .is_some_and(|r| r.contains("not a member")),
        "no refusal came back: {report}"
    );
    assert!(
        a.log_text().contains("sync refused: not a member"),
        "{}",
        a.log_text()
    );
}

/// Gossip and Kademlia are members-only like sync, and refused earlier still: a non-member
/// js-libp2p peer cannot even negotiate them, so nothing it sends on them is read, while the
/// same connection still negotiates Bitswap.
#[test]
fn non_member_cannot_negotiate_gossip_or_kademlia() {
    shubnet_tests::js::helia_node();
    let a = TestNode::start_with(&["--sync-interval", "3600"]);
    let id = federate(&a, &[], &[]);
    let kad_fed = format!("/shubnet/{id}/kad/1.0.0");
    let members_only = [
        "/meshsub/1.1.0",
        "/meshsub/1.0.0",
        "/shubnet/kad/1.0.0",
        &kad_fed,
    ];
    let open = "/ipfs/bitswap/1.2.0";
    let addr = p2p_addr(&a);
    let mut args = vec!["protocols", addr.as_str(), open];
    args.extend(members_only);
    let report = shubnet_tests::js::helia_probe(&args, Duration::from_secs(60));
    assert_eq!(
        report[open], "accepted",
        "Bitswap must stay open to anyone: {report}"
    );
    for p in members_only {
        let answer = report[p].as_str().unwrap_or_default();
        assert!(
            answer.starts_with("refused"),
            "a non-member negotiated {p}: {report}\n{}",
            a.log_text()
        );
    }
}
