//! The `shub://` flow exactly as Apptainer's shub client runs it (client-protocols.md §2.1):
//! `GET /api/container/<c>/<n>:<t>` (with `@digest` forms), then `GET <image>`; the field
//! types, a `commit` that is never empty and follows the content, `HEAD` without redirects,
//! `Content-Length`, `Range` and `ETag`; plus the shub API's bad-input answers.

use shubnet_tests::TestNode;
use shubnet_tests::data::kubo_bytes;
use shubnet_tests::http::{Response, get, get_range, head, request};

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON: {e}\n{r}"))
}

/// Writes `bytes` to a temp file and pushes it as `reference` through the CLI.
fn push(node: &TestNode, dir: &std::path::Path, reference: &str, bytes: &[u8]) {
    let p = dir.join(reference.replace(['/', ':'], "_"));
    std::fs::write(&p, bytes).expect("write");
    node.cli(&["push", p.to_str().expect("utf8"), reference])
        .ok();
}

/// The path and query of an absolute URL on `node`.
fn local(node: &TestNode, url: &str) -> String {
    let path = url
        .strip_prefix(node.url())
        .unwrap_or_else(|| panic!("image URL {url} is not on the gateway {}", node.url()));
    node.at(path)
}

#[test]
fn shub_flow_manifest_then_image() {
    let node = shubnet_tests::fed::founded_node();
    let tmp = crate::tmpdir();
    let v1 = kubo_bytes("shub-v1", 900_000);
    push(&node, tmp.path(), "lab-a/tools:latest", &v1);

    // Step 1: the manifest, with the types Apptainer's APIResponse and Singularity 2.x decode.
    let r = get(&node.at("/api/container/lab-a/tools:latest"));
    r.expect_status(200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{r}"
    );
    let m = json(&r);
    let sha = shubnet_tests::data::sha256_hex(&v1);
    for (k, want) in [
        ("name", "tools"),
        ("tag", "latest"),
        ("branch", "latest"),
        ("collection", "lab-a"),
    ] {
        assert_eq!(m[k], want, "{k} in {m:#}");
    }
    assert_eq!(m["version"], format!("sha256.{sha}"), "{m:#}");
    assert_eq!(
        m["commit"], sha,
        "commit must be the content's sha256: {m:#}"
    );
    assert_eq!(m["frozen"], false);
    assert!(
        m["metadata"].is_object() && m["add_date"].is_string(),
        "{m:#}"
    );
    let image = m["image"].as_str().expect("image is a string");
    assert!(
        image.starts_with("http://127.0.0.1:"),
        "image must be absolute: {image}"
    );

    // The bare and @digest forms resolve to the same image.
    for path in [
        "lab-a/tools".to_string(),
        format!("lab-a/tools@sha256.{sha}"),
        format!("lab-a/tools:latest@{sha}"),
        "LAB-A/Tools:latest".to_string(),
    ] {
        let r = get(&node.at(&format!("/api/container/{path}")));
        r.expect_status(200);
        assert_eq!(json(&r)["commit"], sha, "{path}");
    }
    // A digest that matches nothing, an md5-style legacy digest, a missing tag: DRF 404.
    for path in [
        format!("lab-a/tools@sha256.{}", "0".repeat(64)),
        format!("lab-a/tools@{}", "a".repeat(32)),
        "lab-a/tools:nope".to_string(),
        "lab-a/none:latest".to_string(),
    ] {
        let r = get(&node.at(&format!("/api/container/{path}")));
        r.expect_status(404);
        assert_eq!(json(&r)["detail"], "Not found.", "{path}");
    }

    // Step 2: the image. HEAD is 200 with no redirect and the exact length.
    let url = local(&node, image);
    let h = head(&url);
    h.expect_status(200);
    assert_eq!(h.content_length(), Some(v1.len() as u64), "{h}");
    assert!(h.header("location").is_none(), "{h}");
    let g = get(&url);
    g.expect_status(200).expect_framed();
    assert!(!g.chunked, "the image must carry a Content-Length\n{g}");
    assert_eq!(g.body, v1, "the image bytes differ");
    let etag = g.header("etag").expect("ETag").to_string();
    let part = get_range(&url, "1000-1999");
    part.expect_status(206);
    assert_eq!(part.body, &v1[1000..2000]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000-1999/{}", v1.len()).as_str())
    );
    let nm = request("GET", &url, &[("If-None-Match", &etag)]);
    nm.expect_status(304);

    // `apptainer pull ipfs://CID` (client-protocols.md §7): plain bytes at /ipfs/<cid>, the CID
    // (quotes stripped) as the ETag.
    let root = m["metadata"]["root"]
        .as_str()
        .expect("root CID in metadata");
    assert!(root.starts_with("bafy"), "a base32 CIDv1: {root}");
    let ip = get(&node.at(&format!("/ipfs/{root}")));
    ip.expect_status(200).expect_framed();
    assert_eq!(
        ip.header("etag").map(|e| e.trim_matches('"')),
        Some(root),
        "{ip}"
    );
    assert_eq!(ip.body, v1, "the /ipfs bytes differ");

    // New content under the same tag: commit and version change, the image follows.
    let v2 = kubo_bytes("shub-v2", 300_000);
    push(&node, tmp.path(), "lab-a/tools:latest", &v2);
    let m2 = json(get(&node.at("/api/container/lab-a/tools:latest")).expect_status(200));
    assert_ne!(m2["commit"], m["commit"]);
    assert_eq!(m2["commit"], shubnet_tests::data::sha256_hex(&v2));
    let g2 = get(&local(&node, m2["image"].as_str().expect("image")));
    g2.expect_status(200);
    assert_eq!(g2.body, v2);

    // A reverse proxy's X-Forwarded-* headers name the public URL.
    let r = request(
        "GET",
        &node.at("/api/container/lab-a/tools:latest"),
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "hub.example.org"),
        ],
    );
    let img = json(r.expect_status(200))["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        img.starts_with("https://hub.example.org/containers/"),
        "{img}"
    );

    // Listings and identity.
    let l = json(get(&node.at("/api/containers/")).expect_status(200));
    assert_eq!(l["count"], 1, "{l:#}");
    assert_eq!(l["results"][0]["uri"], "lab-a/tools:latest", "{l:#}");
    let c = json(get(&node.at("/api/collection/lab-a")).expect_status(200));
    assert_eq!(c["containers"][0]["uri"], "lab-a/tools:latest", "{c:#}");
    let cs = json(get(&node.at("/api/collections/")).expect_status(200));
    assert_eq!(cs["results"][0]["name"], "lab-a", "{cs:#}");
    let s = json(get(&node.at("/api/container/search/name/tool")).expect_status(200));
    assert_eq!(s["containers"][0]["name"], "tools", "{s:#}");
    let id = json(get(&node.at("/api/registry/identity")).expect_status(200));
    assert!(id["id"].is_string() && id["url"].is_string(), "{id:#}");
    get(&node.at("/api/labels/search")).expect_status(200);
}

#[test]
fn shub_bad_input() {
    let node = shubnet_tests::fed::founded_node();
    // Bad names and traversal attempts in every segment: 400 with a DRF detail.
    for path in [
        "lab_a/tools:latest",
        "lab-a/to%20ols:latest",
        "lab-a/tools:sha256abc",
        "../tools:latest",
        "lab-a/..:latest",
        "lab-a/tools:..",
        "lab-a/%2e%2e/tools:latest",
        "lab-a/x/y/z:latest",
    ] {
        let r = get(&node.at(&format!("/api/container/{path}")));
        assert!(
            r.status == 400 || r.status == 404,
            "{path}: want 400/404\n{r}"
        );
        assert!(json(&r)["detail"].is_string(), "{path}: no detail\n{r}");
    }
    // Download URLs with a bad CID or a forged secret.
    get(&node.at("/containers/notacid/download/public")).expect_status(404);
    let tmp = crate::tmpdir();
    let bytes = kubo_bytes("shub-bad", 100_000);
    push(&node, tmp.path(), "lab-a/p:1", &bytes);
    let m = json(get(&node.at("/api/container/lab-a/p:1")).expect_status(200));
    let url = local(&node, m["image"].as_str().expect("image"));
    node.cli(&["collection", "set-private", "lab-a"]).ok();
    // Once private, the public URL no longer serves, and a forged secret is refused.
    get(&url).expect_status(403);
    let forged = url.replace("/public", &format!("/9999999999.{}", "0".repeat(64)));
    get(&forged).expect_status(404);
    // Delete without credentials is refused, and the tag stays.
    request("DELETE", &node.at("/api/container/lab-a/p:1"), &[]).expect_status(403);
    // A wrong HMAC and an expired one.
    let bad = "SREGISTRY-HMAC-SHA256 Credential=delete/YWxpY2U=/20200101T00Z,Signature="
        .to_string()
        + &"0".repeat(64);
    request(
        "DELETE",
        &node.at("/api/container/lab-a/p:1"),
        &[("Authorization", &bad)],
    )
    .expect_status(403);
    node.cli(&["collection", "set-public", "lab-a"]).ok();
    get(&node.at("/api/container/lab-a/p:1")).expect_status(200);
}
