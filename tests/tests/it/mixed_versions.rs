//! Mixed versions: one member runs the previous release ([`shubnet_tests::previous`], built
//! from history), two run this build. Every member pushes and every member serves every image,
//! replication reaches k, sync converges, and the old member logs no misbehaviour of the new
//! ones and drops no connection to them. Then the old member is upgraded in place, on the same
//! data directory, and all of it holds again with nothing lost.

use crate::tmpdir;
use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::kubo_file;
use shubnet_tests::fed::{create_with, join, push, request, status};
use shubnet_tests::http::get;
use shubnet_tests::swarm::heads;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONFIG: &str = "[replication]\ngrace_period_secs = 60\ncheck_interval_secs = 1\n";

/// What the previous release logs (at `shubnet_node=debug`, libp2p's swarm at debug) when a
/// peer misbehaves or a connection fails: none of these may appear while it works beside
/// the new build.
const MISBEHAVIOUR: &[&str] = &[
    "rejected",
    "undecodable",
    "refused",
    "bad sync",
    "the peer answered",
    "sent bad data",
    // `misbehaviour=N` in a warning; fetch reports print `"misbehaviour":0` for every holder.
    "misbehaviour=",
    "Connection closed with error",
];

struct Image {
    tag: String,
    root: String,
    file: PathBuf,
}

fn counts(text: &str) -> Vec<usize> {
    MISBEHAVIOUR
        .iter()
        .map(|p| text.matches(p).count())
        .collect()
}

/// Each node pushes one image under its own namespace; then every node serves every image's
/// bytes, every image has 2 holders, and all three nodes hold the same heads.
fn round(dir: &Path, nodes: &[(&TestNode, &str)], label: &str) -> Vec<Image> {
    let mut images = Vec::new();
    for (i, (node, ns)) in nodes.iter().enumerate() {
        let file = dir.join(format!("{label}-{ns}"));
        kubo_file(
            &file,
            &format!("mixed-{label}-{ns}"),
            1_500_000 + 4099 * i as u64,
        );
        let tag = format!("{ns}/mixed:{label}");
        push(node, &file, &tag, false);
        let root = nodes[0]
            .0
            .cli(&["cid", file.to_str().expect("utf8")])
            .ok()
            .out()
            .trim()
            .to_owned();
        images.push(Image { tag, root, file });
    }
    check(nodes, &images);
    images
}

/// Every node serves every image byte-identical; each has 2 holders; heads converge.
fn check(nodes: &[(&TestNode, &str)], images: &[Image]) {
    for img in images {
        let want = std::fs::read(&img.file).expect("reading the image");
        for (node, ns) in nodes {
            let body = poll_until(
                Duration::from_secs(60),
                &format!("{ns}'s gateway to serve {}", img.tag),
                || {
                    let r = get(&node.at(&format!("/ipfs/{}", img.root)));
                    (r.status == 200).then_some(r.body)
                },
            );
            assert!(
                body == want,
                "{ns}'s gateway served other bytes for {} ({} bytes, want {})",
                img.tag,
                body.len(),
                want.len()
            );
        }
        poll_until(Duration::from_secs(60), "2 holders", || {
            let s = status(nodes[0].0);
            let entry = s["images"].as_array()?.iter().find(|i| {
                i["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == img.tag.as_str()))
            })?;
            (entry["replicas"].as_u64()? >= 2).then_some(())
        });
    }
    poll_until(
        Duration::from_secs(30),
        "every node to hold the same heads",
        || {
            let first = heads(nodes[0].0);
            let same = nodes.iter().all(|(n, _)| heads(n) == first);
            let all = images.iter().all(|i| first.contains_key(&i.tag));
            (same && all).then_some(())
        },
    );
}

#[test]
fn an_old_member_works_beside_new_ones_and_upgrades_in_place() {
    let old = shubnet_tests::previous::binary();
    let tmp = tmpdir();
    let a = TestNode::start_configured(&["--sync-interval", "2"], CONFIG);
    let a_addr = a.p2p_addr();
    let boot = ["--sync-interval", "2", "--bootstrap", &a_addr];
    let b = TestNode::start_configured(&boot, CONFIG);
    let mut old_args = boot.to_vec();
    old_args.extend(["--log", "info,shubnet_node=debug,libp2p_swarm=debug"]);
    let mut o = TestNode::start_configured_on(&old, &old_args, CONFIG);
    let fed = create_with(
        &a,
        "Fed",
        "lab-a",
        &["--storage", "1G", "--replication", "2"],
    );
    for (n, inst) in [(&b, "lab-b"), (&o, "lab-o")] {
        let line = request(n, inst);
        a.cli(&["federation", "admit", &line, "--storage", "1G"])
            .ok();
    }
    join(&b, &fed, a.url());
    join(&o, &fed, a.url());
    // Joining may reset connections made before admission; misbehaviour is counted from here.
    std::thread::sleep(Duration::from_secs(3));
    let before = counts(&o.log_text());

    let nodes = [(&a, "lab-a"), (&b, "lab-b"), (&o, "lab-o")];
    let first = round(tmp.path(), &nodes, "v1");
    let after = counts(&o.log_text());
    for ((p, n0), n1) in MISBEHAVIOUR.iter().zip(&before).zip(&after) {
        assert_eq!(
            n0,
            n1,
            "the previous release logged {:?} beside the new build\n{}",
            p,
            o.log_text()
        );
    }

    // In place: the same data directory, this build.
    o.stop();
    o.set_binary(None);
    o.set_args(&boot);
    o.restart();
    let o_ref = &o;
    let nodes = [(&a, "lab-a"), (&b, "lab-b"), (o_ref, "lab-o")];
    check(&nodes, &first);
    let second = round(tmp.path(), &nodes, "v2");
    check(&nodes, &second);
    let text = o.log_text();
    for p in ["misbehaviour=", "sent bad data", "bad sync", "undecodable"] {
        assert!(
            !text.contains(p),
            "the upgraded member logged {p:?}\n{text}"
        );
    }
}
