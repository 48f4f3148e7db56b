//! Readiness that means ready: `/readyz` fails, with the reason, while a member of a federation
//! with other members is connected to none of them, and `status` and the federation page say
//! why; `/healthz` stays liveness only. `/shubnet/v1/federation` lists the members readably.

use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::fed::{TwoMembers, status};
use shubnet_tests::http::get;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn readyz(node: &TestNode) -> (u16, String) {
    let r = get(&node.at("/readyz"));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn a_member_with_no_member_connected_is_not_ready_and_says_why() {
    let TwoMembers { mut a, b, .. } = TwoMembers::connected();
    // Connected first: B reports ready before its first dial too, and A can redial B after its
    // restart only once it has learnt B's address from a connection.
    let a_peer = shubnet_tests::fed::keys(&a).peer_id;
    poll_until(WAIT, "B connected to A", || {
        shubnet_tests::fed::connected_peers(&b)
            .contains(&a_peer)
            .then_some(())
    });
    poll_until(WAIT, "B ready while connected to A", || {
        (readyz(&b).0 == 200).then_some(())
    });
    let st = status(&b);
    assert!(st["not_ready"].is_null(), "{st:#}");

    a.stop();
    let body = poll_until(WAIT, "B not ready once A is gone", || {
        let (code, body) = readyz(&b);
        (code == 503).then_some(body)
    });
    assert!(body.contains("isolated"), "{body}");
    assert!(body.contains("1 other member"), "{body}");
    // Liveness is unaffected.
    get(&b.at("/healthz")).expect_status(200);
    let st = status(&b);
    assert!(
        st["not_ready"]
            .as_str()
            .is_some_and(|s| s.contains("isolated")),
        "{st:#}"
    );
    let text = b.cli(&["status"]).ok().out();
    assert!(text.contains("ready:       NO: isolated"), "{text}");
    let page = get(&b.at("/ui/federation"));
    page.expect_status(200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("Not ready: "), "{html}");

    // A comes back; B redials it and is ready again.
    a.restart();
    poll_until(WAIT, "B ready again after A restarted", || {
        (readyz(&b).0 == 200).then_some(())
    });
}

#[test]
fn a_lone_node_and_a_sole_member_are_ready() {
    let node = TestNode::start();
    assert_eq!(readyz(&node), (200, "ready\n".to_string()));
    let id = shubnet_tests::fed::create(&node, "Solo", "lab-a");
    assert!(!id.is_empty());
    assert_eq!(readyz(&node), (200, "ready\n".to_string()));
}

#[test]
fn the_federation_document_lists_members_readably() {
    let fed = TwoMembers::start();
    let r = get(&fed.b.at("/shubnet/v1/federation"));
    r.expect_status(200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v["id"].as_str(), Some(fed.id.as_str()), "{v:#}");
    assert_eq!(v["version"].as_u64(), Some(2), "{v:#}");
    assert_eq!(v["name"].as_str(), Some("Fed"), "{v:#}");
    let ids: Vec<&str> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["lab-a", "lab-b"], "{v:#}");
    let a_peer = status(&fed.a)["peer_id"]
        .as_str()
        .expect("peer id")
        .to_string();
    assert_eq!(
        v["members"][0]["peer_ids"][0].as_str(),
        Some(a_peer.as_str())
    );
    // The signed rosters are still there for verifiers.
    assert_eq!(v["rosters"].as_array().map(Vec::len), Some(2), "{v:#}");
}
