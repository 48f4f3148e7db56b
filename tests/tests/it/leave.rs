//! `shubnet leave` with three institutions as separate processes, k = 2: the leaving node
//! holds images (its own and ones placed on it); after `leave` every image has 2 live holders
//! among the others, the admin's `federation remove-node` takes it out of the roster, and once
//! the node is killed and its data directory deleted, pulls from the others still verify.

use crate::tmpdir;
use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::fed::{member_ids, push, show, status, strings, three_institutions_k2};
use std::path::PathBuf;
use std::time::Duration;

/// Each listed image's tag and live holders, as `node` sees them.
fn holders(node: &TestNode) -> Vec<(String, Vec<String>)> {
    status(node)["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| (strings(&i["tags"]).join(","), strings(&i["holders"])))
        .collect()
}

#[test]
fn leave_hands_every_image_to_k_other_holders_then_the_node_can_go() {
    let tmp = tmpdir();
    // A long grace: the hand-over must not rely on repair noticing a dead node.
    let cfg = "[replication]\ngrace_period_secs = 600\ncheck_interval_secs = 1\n";
    let (a, b, mut c) = three_institutions_k2(cfg);
    let c_peer = status(&c)["peer_id"].as_str().expect("peer id").to_string();

    // One image C publishes itself, then images from A until one is placed on A and C only,
    // so that C's leaving needs a real hand-over (B must copy it). Rendezvous puts each of A's
    // images on {A, C} with probability 1/3; 14 tries leave a 0.3 % chance of never seeing it.
    let mut pushed: Vec<(String, PathBuf)> = Vec::new();
    let file = tmp.path().join("c0");
    kubo_file(&file, "leave-c-0", 3 * 1024 * 1024 + 5);
    push(&c, &file, "lab-c/own:1", false);
    pushed.push(("lab-c/own:1".into(), file));
    let mut needs_handover = 0;
    for i in 0..14u64 {
        let file = tmp.path().join(format!("a{i}"));
        kubo_file(&file, &format!("leave-a-{i}"), 2 * 1024 * 1024 + 11 * i);
        let tag = format!("lab-a/tool:v{i}");
        push(&a, &file, &tag, false);
        pushed.push((tag, file));
        // Everything replicated, as A sees it.
        let h = poll_until(Duration::from_secs(60), "every image on 2 holders", || {
            let h = holders(&a);
            (h.len() == pushed.len() && h.iter().all(|(_, hs)| hs.len() >= 2)).then_some(h)
        });
        needs_handover = h
            .iter()
            .filter(|(_, hs)| {
                hs.contains(&c_peer) && hs.iter().filter(|p| **p != c_peer).count() < 2
            })
            .count();
        if needs_handover > 0 {
            break;
        }
    }
    assert!(
        needs_handover > 0,
        "C holds no image that lacks a second holder elsewhere; the test proves nothing\n{:#}",
        status(&a)
    );

    // Leave: C is not an admin, so it prints the command for one, then stops.
    let run = c.cli(&["leave", "--timeout", "90s"]).ok();
    let line = run.out();
    let cmd = line.lines().last().unwrap_or_default().to_string();
    assert_eq!(
        cmd,
        format!("shubnet federation remove-node {c_peer}"),
        "leave printed no admin command\n{run}"
    );
    assert!(
        run.stderr.contains("holders on other nodes"),
        "no progress output\n{run}"
    );
    let exit = c.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "C exited with {exit}\n{}", c.log_text());

    // Every image has 2 holders without C, as both A and B see it.
    for n in [&a, &b] {
        for (tag, hs) in holders(n) {
            let others = hs.iter().filter(|p| **p != c_peer).count();
            assert!(others >= 2, "{tag} has {others} holders besides C: {hs:?}");
        }
    }

    // The admin removes C from the roster; lab-c stays a member (its images stay valid).
    let before = show(&a)["version"].as_u64().expect("version");
    a.cli(&["federation", "remove-node", &c_peer]).ok();
    let roster = show(&a);
    assert_eq!(roster["version"].as_u64(), Some(before + 1));
    assert!(member_ids(&roster).contains(&"lab-c".to_string()));
    assert!(
        !roster.to_string().contains(&c_peer),
        "C's peer id is still in the roster: {roster:#}"
    );

    // C's disk is gone; A and B serve every image, verified.
    std::fs::remove_dir_all(c.data_dir()).expect("deleting C's data dir");
    for (i, (tag, file)) in pushed.iter().enumerate() {
        for n in [&a, &b] {
            let out = tmp.path().join(format!("pulled-{i}-{}", n.url().len()));
            n.cli(&[
                "pull".as_ref(),
                tag.as_str().as_ref(),
                "--from".as_ref(),
                n.url().as_ref(),
                "-o".as_ref(),
                out.as_os_str(),
            ])
            .ok();
            assert_same_file(&out, file);
        }
    }
}
