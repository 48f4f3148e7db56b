//! Helpers for federation tests over the p2p network: a node's dialable address, tag heads
//! read over HTTP, and waiting for them with deadlines.

use crate::TestNode;
use crate::cmd::poll_until;
use crate::http::get;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The node's TCP address on 127.0.0.1 with `/p2p/PEER_ID`, from `DATA_DIR/p2p.addrs`.
#[track_caller]
pub fn p2p_addr(node: &TestNode) -> String {
    node.p2p_addr()
}

/// Tag heads the node's gateway lists: reference → manifest CID.
#[track_caller]
pub fn heads(node: &TestNode) -> BTreeMap<String, String> {
    let r = get(&node.at("/shubnet/v1/tags"));
    r.expect_status(200);
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON: {e}\n{r}"));
    v.as_array()
        .unwrap_or_else(|| panic!("tags are not a JSON array: {v:#}"))
        .iter()
        .map(|t| {
            (
                t["reference"].as_str().unwrap_or_default().to_string(),
                t["manifest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The roster version the node's gateway serves.
#[track_caller]
pub fn roster_version(node: &TestNode) -> u64 {
    crate::fed::version(&crate::fed::show(node))
}

/// Waits until `node` resolves `reference` to `manifest`; panics with its log after `timeout`.
#[track_caller]
pub fn wait_head(node: &TestNode, reference: &str, manifest: &str, timeout: Duration) {
    let what = format!("{reference} → {manifest} on {}", node.url());
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_until(timeout, &what, || {
            (heads(node).get(reference).map(String::as_str) == Some(manifest)).then_some(())
        })
    }));
    if found.is_err() {
        panic!(
            "{what} did not arrive within {timeout:?}; the node has {:#?}\n{}",
            heads(node),
            node.log_text()
        );
    }
}

/// Founds federation `Fed` on `founder` (institution `lab-a`, owning `namespaces`, or `lab-a`
/// if empty), admits every other node as `(institution, namespaces)` first and then has each
/// join from the founder's gateway, so all end on the same, newest roster. Returns the id.
#[track_caller]
pub fn federate(
    founder: &TestNode,
    founder_ns: &[&str],
    others: &[(&TestNode, &str, &[&str])],
) -> String {
    let mut args = vec![
        "federation",
        "create",
        "--name",
        "Fed",
        "--institution",
        "lab-a",
    ];
    for ns in founder_ns {
        args.extend(["--namespace", ns]);
    }
    let id = founder.cli(&args).ok().out();
    for (node, inst, ns) in others {
        let mut args = vec!["federation", "request", "--institution", inst];
        for n in *ns {
            args.extend(["--namespace", n]);
        }
        let line = node.cli(&args).ok().out();
        founder.cli(&["federation", "admit", &line]).ok();
    }
    for (node, _, _) in others {
        crate::fed::join(node, &id, founder.url());
    }
    id
}

/// Writes `n` distinct small files under `dir`, named `f0`, `f1`, …
pub fn small_files(dir: &std::path::Path, seed: &str, n: usize) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, format!("{seed} file {i}\n").repeat(100)).expect("writing a file");
            p
        })
        .collect()
}
