//! Placement and repair across three institutions as separate processes:
//! k = 2; a push on A reaches B and C within 5 s and 2 holders; C's gateway serves it; A is
//! killed and its data dir deleted; C still serves it, and placement repairs the image back to
//! 2 live holders within the (short) grace period.

use crate::tmpdir;
use serde_json::Value;
use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::fed::{connected_peers, push, status, strings, three_institutions_k2};
use shubnet_tests::http::get;
use std::time::{Duration, Instant};

/// Seconds a holder may be unreachable before repair, in this test.
const GRACE_SECS: u64 = 6;

fn config() -> String {
    format!("[replication]\ngrace_period_secs = {GRACE_SECS}\ncheck_interval_secs = 1\n")
}

/// The status entry of the image with tag `tag`, if listed.
fn image<'v>(status: &'v Value, tag: &str) -> Option<&'v Value> {
    status["images"].as_array()?.iter().find(|i| {
        i["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == tag))
    })
}

#[test]
fn three_institutions_k2_replicate_serve_survive_a_lost_member_and_repair() {
    let tmp = tmpdir();
    let cfg = config();
    let (mut a, b, c) = three_institutions_k2(&cfg);
    let a_peer = status(&a)["peer_id"].as_str().expect("peer id").to_string();

    // Push images on A until one is placed on A itself, so that losing A needs a real repair.
    let mut pushed = Vec::new();
    let mut repaired = None;
    for i in 0..8 {
        let file = tmp.path().join(format!("img{i}"));
        kubo_file(&file, &format!("replication-{i}"), 3 * 1024 * 1024 + 17 * i);
        let tag = format!("lab-a/img:v{i}");
        let t0 = Instant::now();
        push(&a, &file, &tag, false);
        for n in [&b, &c] {
            poll_until(
                Duration::from_secs(5),
                "the tag to resolve on B and C",
                || {
                    (get(&n.at(&format!("/shubnet/v1/manifests/lab-a/img/v{i}"))).status == 200)
                        .then_some(())
                },
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "B and C resolved {tag} only after {:?}",
            t0.elapsed()
        );
        let placed_on_a =
            strings(&image(&status(&a), &tag).expect("listed")["placed"]).contains(&a_peer);
        pushed.push((tag.clone(), file));
        if placed_on_a {
            repaired = Some(tag);
            break;
        }
    }
    let target = repaired.expect("in 8 images, rendezvous placed none on A (k=2 of 3)");

    // Every image reaches 2 holders.
    for (tag, _) in &pushed {
        poll_until(Duration::from_secs(60), "2 holders", || {
            let s = status(&a);
            (image(&s, tag)?["replicas"].as_u64()? >= 2).then_some(())
        });
    }

    // C's gateway serves the exact bytes, whether or not C holds a copy.
    let out = tmp.path().join("pulled");
    let (tag, file) = pushed.last().expect("pushed");
    c.cli(&[
        "pull".as_ref(),
        tag.as_str().as_ref(),
        "--from".as_ref(),
        c.url().as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    assert_same_file(&out, file);

    // A is lost with its disk.
    a.kill9();
    std::fs::remove_dir_all(a.data_dir()).expect("deleting A's data dir");
    let lost = Instant::now();

    let out2 = tmp.path().join("pulled-after-loss");
    c.cli(&[
        "pull".as_ref(),
        tag.as_str().as_ref(),
        "--from".as_ref(),
        c.url().as_ref(),
        "-o".as_ref(),
        out2.as_os_str(),
    ])
    .ok();
    assert_same_file(&out2, file);

    // Back at 2 live holders, none of them A, within the grace period plus the time to notice
    // and copy (the images are a few MB).
    let limit = Duration::from_secs(GRACE_SECS * 2 + 30);
    let deadline = Instant::now() + limit;
    let holders = loop {
        let s = status(&c);
        if let Some(img) = image(&s, &target) {
            let holders = strings(&img["holders"]);
            if holders.len() >= 2 && !holders.contains(&a_peer) {
                break holders;
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "not repaired to 2 live holders within {limit:?}\nC: {s:#}\nB: {:#}\n{}\n{}",
                status(&b),
                b.log_text(),
                c.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        lost.elapsed() >= Duration::from_secs(GRACE_SECS),
        "C counted 2 live holders without A before A's grace period ended: {holders:?}"
    );
    let b_view = status(&b);
    let b_img = image(&b_view, &target).expect("B lists the image");
    assert!(
        b_img["replicas"].as_u64() >= Some(2),
        "B does not see 2 live replicas: {b_img:#}"
    );
}

#[test]
fn members_bootstrapped_from_the_founder_find_one_another_and_outlive_it() {
    let tmp = tmpdir();
    let cfg = config();
    let (mut a, b, c) = three_institutions_k2(&cfg);
    let peer = |n: &TestNode| status(n)["peer_id"].as_str().expect("peer id").to_string();
    let (b_peer, c_peer) = (peer(&b), peer(&c));

    // B and C were told only A's address; they find each other through the federation.
    poll_until(
        Duration::from_secs(30),
        "B and C connected to each other",
        || {
            (connected_peers(&b).contains(&c_peer) && connected_peers(&c).contains(&b_peer))
                .then_some(())
        },
    );

    // An image held by A and C only: B must read it from C once A is gone.
    let mut chosen = None;
    for i in 0..12 {
        let file = tmp.path().join(format!("mesh{i}"));
        kubo_file(&file, &format!("mesh-{i}"), 2 * 1024 * 1024 + 7 * i);
        let tag = format!("lab-a/mesh:v{i}");
        push(&a, &file, &tag, false);
        let holders = poll_until(Duration::from_secs(60), "2 holders", || {
            let s = status(&a);
            let h = strings(&image(&s, &tag)?["holders"]);
            (h.len() >= 2).then_some(h)
        });
        if holders.contains(&c_peer) && !holders.contains(&b_peer) {
            chosen = Some((tag, file));
            break;
        }
    }
    let (tag, file) = chosen.expect("in 12 images, none was placed on A and C (k=2 of 3)");

    a.kill9();
    let out = tmp.path().join("from-b");
    let pull = |out: &std::path::Path| {
        b.cli(&[
            "pull".as_ref(),
            tag.as_str().as_ref(),
            "--from".as_ref(),
            b.url().as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
    };
    // At most one retry, as a client would make.
    let first = pull(&out);
    if first.status.success() {
        assert_same_file(&out, &file);
    } else {
        pull(&out).ok();
        assert_same_file(&out, &file);
    }
}
