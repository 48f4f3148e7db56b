//! Bad input to the client APIs, beyond the per-client tests: a traversal attempt in
//! every path segment of every route that takes one, and library uploads that are truncated or
//! oversized. Each gets the documented status in the API's own JSON (DRF `{"detail"}` for shub,
//! `{"error":{"code","message"}}` for library) and stores nothing: no pin, blob, partial file,
//! upload record or tag.

use crate::holdings;
use shubnet_tests::TestNode;
use shubnet_tests::data::{kubo_bytes, sha256_hex};
use shubnet_tests::fed::{found, user_token};
use shubnet_tests::http::{Response, raw_post, request};
use std::time::Duration;

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON: {e}\n{r}"))
}

/// Which JSON error shape a route answers in.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Drf,
    Library,
    /// The IPFS gateway and download routes: the status alone.
    Any,
}

#[test]
fn traversal_in_any_path_segment_is_refused_and_stores_nothing() {
    let node = TestNode::start();
    found(&node);
    let token = user_token(&node, "alice", "lab-a", "pull,push,delete");
    let auth = format!("Bearer {token}");
    let before = holdings(&node);
    let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let dots = [
        "..",
        "%2e%2e",
        "..%2f..%2fetc",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ];
    let mut cases: Vec<(&str, String, Shape)> = Vec::new();
    for d in dots {
        for path in [
            format!("/api/container/{d}/tools:latest"),
            format!("/api/container/lab-a/{d}:latest"),
            format!("/api/container/lab-a/tools:{d}"),
            format!("/api/container/lab-a/tools:latest@{d}"),
            format!("/api/collection/{d}"),
        ] {
            cases.push(("GET", path.clone(), Shape::Drf));
            cases.push(("DELETE", path, Shape::Drf));
        }
        cases.push((
            "GET",
            format!("/containers/{d}/download/public"),
            Shape::Drf,
        ));
        cases.push(("GET", format!("/containers/{cid}/download/{d}"), Shape::Drf));
        for path in [
            format!("/v1/images/{d}/lab-a/tool:latest"),
            format!("/v1/images/lab-a/{d}:latest"),
            format!("/v1/imagefile/lab-a/tool:{d}"),
            format!("/v1/collections/{d}"),
            format!("/v1/tags/{d}"),
            format!("/v2/tags/lab-a_{d}"),
        ] {
            cases.push(("GET", path, Shape::Library));
        }
        for path in [
            format!("/v1/imagefile/{d}"),
            format!("/v1/imagefile/lab-a_{d}_{}", "0".repeat(64)),
            format!("/v2/imagefile/{d}"),
            format!("/v2/imagefile/{d}/_multipart"),
            format!("/v1/tags/{d}"),
        ] {
            cases.push(("POST", path, Shape::Library));
        }
        for path in [
            format!("/v2/upload/{d}/secret"),
            format!("/v2/upload/lab-a_tool_{}/{d}", "0".repeat(64)),
            format!("/v2/part/{d}/1/secret"),
            format!("/v2/imagefile/{d}/_complete"),
        ] {
            cases.push(("PUT", path, Shape::Library));
        }
        cases.push(("GET", format!("/ipfs/{d}"), Shape::Any));
        cases.push(("GET", format!("/ipfs/{cid}/{d}"), Shape::Any));
    }
    for (method, path, shape) in &cases {
        let r = request(
            method,
            &node.at(path),
            &[("Authorization", &auth), ("Content-Length", "0")],
        );
        // The IPFS gateway answers paths below a CID with 501 (it serves whole files only).
        let ipfs_subpath = matches!(shape, Shape::Any) && r.status == 501;
        assert!(
            matches!(r.status, 400 | 403 | 404 | 405) || ipfs_subpath,
            "{method} {path}: want 400/403/404/405\n{r}"
        );
        if r.status == 405 {
            continue;
        }
        match shape {
            Shape::Drf => assert!(json(&r)["detail"].is_string(), "{method} {path}\n{r}"),
            Shape::Library => {
                assert_eq!(json(&r)["error"]["code"], r.status, "{method} {path}\n{r}")
            }
            Shape::Any => {}
        }
    }
    assert_eq!(
        holdings(&node),
        before,
        "a refused request changed the store"
    );
    assert!(node.files_under("uploads").is_empty());
    assert_eq!(node.cli(&["tags", "--json"]).ok().out().trim(), "[]");
}

/// `POST path` with a bearer token, declaring `declared` bytes and sending `body`, then
/// leaving; the status line.
fn post_raw(node: &TestNode, path: &str, token: &str, declared: usize, body: &[u8]) -> String {
    let auth = format!("Bearer {token}");
    raw_post(
        &node.at(path),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        declared as u64,
        body,
        true,
    )
}

#[test]
fn library_truncated_and_oversized_uploads_store_nothing() {
    let node = TestNode::start_with(&["--max-upload", "2000000"]);
    found(&node);
    let token = user_token(&node, "alice", "lab-a", "push");
    let before = holdings(&node);

    // Truncated: 1 MB promised, 400 kB sent, then the client goes away.
    let file = kubo_bytes("lib-truncated", 1_000_000);
    let id = format!("lab-a_cut_{}", sha256_hex(&file));
    let status = post_raw(
        &node,
        &format!("/v1/imagefile/{id}"),
        &token,
        file.len(),
        &file[..400_000],
    );
    assert!(
        !status.contains(" 200 "),
        "a truncated upload was accepted: {status}"
    );

    // Oversized: the v1 body is cut at the limit; the v2 and multipart requests declare it.
    let big = kubo_bytes("lib-big", 2_500_000);
    let big_id = format!("lab-a_big_{}", sha256_hex(&big));
    let status = post_raw(
        &node,
        &format!("/v1/imagefile/{big_id}"),
        &token,
        big.len(),
        &big[..1000],
    );
    assert!(status.contains(" 413 "), "want 413, got {status:?}");
    for path in [
        format!("/v2/imagefile/{big_id}"),
        format!("/v2/imagefile/{big_id}/_multipart"),
    ] {
        // A complete request (the client waits for the answer without half-closing, as real
        // clients do: hyper closes a connection whose reader sees EOF before it answered).
        let body = format!("{{\"filesize\": {}}}", big.len());
        let auth = format!("Bearer {token}");
        let status = raw_post(
            &node.at(&path),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.len() as u64,
            body.as_bytes(),
            false,
        );
        assert!(status.contains(" 413 "), "{path}: want 413, got {status:?}");
    }

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        holdings(&node),
        before,
        "a refused upload changed the store"
    );
    assert!(node.files_under("uploads").is_empty());
    assert_eq!(node.cli(&["tags", "--json"]).ok().out().trim(), "[]");
}
