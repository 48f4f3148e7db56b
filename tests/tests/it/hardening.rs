//! Hardened open ports against a real node (issue 13, findings 4, 5, 6 and 9): caching headers
//! of authorized downloads, bounded metrics labels, bounded library multipart sessions, and
//! owner-only file modes.

use shubnet_tests::TestNode;
use shubnet_tests::data::kubo_file;
use shubnet_tests::fed::{found, founded_node, user_token};
use shubnet_tests::http::{Response, get, request};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const IMMUTABLE: &str = "public, max-age=29030400, immutable";

fn assert_private(r: &Response) {
    r.expect_status(200);
    assert_eq!(
        r.header("cache-control"),
        Some("private, no-store"),
        "{}",
        r.request
    );
    let vary = r.header("vary").unwrap_or_default().to_ascii_lowercase();
    assert!(
        vary.contains("authorization"),
        "{}: Vary {vary:?}",
        r.request
    );
}

fn assert_public(r: &Response) {
    r.expect_status(200);
    assert_eq!(r.header("cache-control"), Some(IMMUTABLE), "{}", r.request);
}

/// Every way a private image's bytes are served to an authorized caller is `private,
/// no-store`: `/ipfs` with a token, `/v1/imagefile` with a token, the signed shub download URL.
/// Public content fetched without credentials stays immutable.
#[test]
fn authorized_downloads_are_not_publicly_cacheable() {
    let node = founded_node();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "caching", 600_000);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/secret:1"])
        .ok();
    let root = node
        .cli(&["cid", image.to_str().expect("utf8")])
        .ok()
        .out()
        .trim()
        .to_owned();
    node.cli(&["collection", "set-private", "lab-a"]).ok();
    let bob = user_token(&node, "bob", "lab-a", "pull");
    let bearer = format!("Bearer {bob}");
    let auth = [("Authorization", bearer.as_str())];

    for path in [
        format!("/ipfs/{root}"),
        format!("/ipfs/{root}?format=car"),
        "/v1/imagefile/lab-a/secret:1".to_owned(),
    ] {
        assert_private(&request("GET", &node.at(&path), &auth));
        assert_private(&request("HEAD", &node.at(&path), &auth));
    }
    // The shub manifest, signed for the sregistry client, hands out a signed download URL.
    let hmac = crate::sregistry::sign("bob", &bob, "pull", ("lab-a", "secret", "1"));
    let r = request(
        "GET",
        &node.at("/api/container/lab-a/secret:1"),
        &[("Authorization", &hmac)],
    );
    r.expect_status(200);
    let m: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON manifest");
    let url = m["image"].as_str().expect("image URL").to_owned();
    assert!(!url.ends_with("/public"), "{url}");
    assert_private(&get(&url));

    // Public: immutable without credentials, private with them.
    node.cli(&["collection", "set-public", "lab-a"]).ok();
    for path in [
        format!("/ipfs/{root}"),
        format!("/containers/{root}/download/public"),
        "/v1/imagefile/lab-a/secret:1".to_owned(),
    ] {
        assert_public(&get(&node.at(&path)));
    }
    assert_private(&request("GET", &node.at(&format!("/ipfs/{root}")), &auth));
    assert_private(&request(
        "GET",
        &node.at("/v1/imagefile/lab-a/secret:1"),
        &auth,
    ));
}

/// Junk HTTP methods are counted as `other`: `/metrics` does not grow with them.
#[test]
fn junk_http_methods_do_not_grow_metrics() {
    let node = TestNode::start();
    let send_junk = |from: usize, n: usize| {
        for i in from..from + n {
            let r = request(&format!("JUNK{i}"), &node.at("/healthz"), &[]);
            assert!(r.status >= 400, "{}: {}", r.request, r.status);
        }
    };
    send_junk(0, 5);
    // A scrape counts itself after answering: the second one holds every series so far.
    get(&node.at("/metrics"));
    let before = get(&node.at("/metrics")).body.len();
    send_junk(5, 400);
    let after = get(&node.at("/metrics"));
    let text = String::from_utf8_lossy(&after.body);
    assert!(!text.contains("JUNK"), "a raw method became a label");
    assert!(
        text.contains("method=\"other\""),
        "junk methods not counted"
    );
    // Counter values may gain digits; series may not be added.
    assert!(
        after.body.len() < before + 256,
        "/metrics grew from {before} to {} bytes",
        after.body.len()
    );
}

/// `curl -X METHOD` with an optional bearer token and body; (status, body).
fn curl(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    cmd.args(["-H", "Content-Type: application/octet-stream"])
        .args(["--data-binary", "@-", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("curl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write body");
    let out = child.wait_with_output().expect("curl ends");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A library image id for `lab-a/tool` (the hash is checked only at the end).
const IMAGE_ID: &str =
    "lab-a_tool_0000000000000000000000000000000000000000000000000000000000000001";

/// Starts a two-part multipart upload; (status, upload id).
fn start(node: &TestNode, token: &str) -> (u16, String) {
    let url = node.at(&format!("/v2/imagefile/{IMAGE_ID}/_multipart"));
    let (status, body) = curl("POST", &url, Some(token), br#"{"filesize": 70000000}"#);
    let uid = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["uploadID"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, uid)
}

/// The presigned URL of part `n`, or the status that refused it.
fn part_url(node: &TestNode, token: &str, uid: &str, n: u64) -> Result<String, u16> {
    let url = node.at(&format!("/v2/imagefile/{IMAGE_ID}/_multipart"));
    let body = format!(r#"{{"uploadID": "{uid}", "partNumber": {n}}}"#);
    let (status, text) = curl("PUT", &url, Some(token), body.as_bytes());
    if status != 200 {
        return Err(status);
    }
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    Ok(v["data"]["presignedURL"]
        .as_str()
        .expect("presignedURL")
        .to_owned())
}

fn poll(what: &str, node: &TestNode, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Multipart sessions are capped per token (one token cannot take the slots of others), expire
/// after the body-idle timeout, and end with their token's revocation; ended sessions leave no
/// partial file.
#[test]
fn multipart_sessions_are_bounded() {
    let node = TestNode::start_with(&["--body-idle-timeout", "3"]);
    found(&node);
    let alice = user_token(&node, "alice", "lab-a", "push");
    let bob = user_token(&node, "bob", "lab-a", "push");

    // Alice tries to take every slot; she gets a few, and Bob still gets one.
    let mut alices = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..70 {
        let (status, uid) = start(&node, &alice);
        if status == 200 {
            alices.push(uid);
        } else {
            refused.push(status);
        }
    }
    assert!(
        alices.len() <= 8,
        "one token holds {} uploads",
        alices.len()
    );
    assert!(refused.iter().all(|s| *s == 429), "refusals: {refused:?}");
    let alices_files = node.files_under("partial");
    let (status, bobs) = start(&node, &bob);
    assert_eq!(status, 200, "another token was locked out");

    // Revoking Bob's token ends his upload and removes its partial file.
    let part1 = part_url(&node, &bob, &bobs, 1).expect("part 1 URL");
    let part2 = part_url(&node, &bob, &bobs, 2).expect("part 2 URL");
    let data = shubnet_tests::data::kubo_bytes("multipart-bounded", 600_000);
    let (status, _) = curl("PUT", &part1, None, &data);
    assert_eq!(status, 200, "part 1");
    assert_ne!(
        node.files_under("partial"),
        alices_files,
        "Bob's upload left no partial file to clean up"
    );
    let list = node.cli(&["token", "list", "--json"]).ok();
    let tokens: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    let bob_id = tokens
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["user"] == "bob")
        .and_then(|t| t["id"].as_str())
        .expect("bob's token")
        .to_owned();
    node.cli(&["token", "revoke", &bob_id]).ok();
    let (status, _) = curl("PUT", &part2, None, &data);
    assert_eq!(status, 404, "part 2 of a revoked token's upload");
    assert_eq!(
        node.files_under("partial"),
        alices_files,
        "partial files after revocation"
    );

    // Idle sessions expire: Alice's slots come back, and an idle upload leaves no partial file.
    let mut fresh = String::new();
    poll("alice's idle uploads expiring", &node, || {
        let (status, uid) = start(&node, &alice);
        fresh = uid;
        status == 200
    });
    assert_eq!(part_url(&node, &alice, &alices[0], 1), Err(404));
    let part1 = part_url(&node, &alice, &fresh, 1).expect("part 1 URL");
    let (status, _) = curl("PUT", &part1, None, &data);
    assert_eq!(status, 200, "part 1");
    assert!(!node.files_under("partial").is_empty());
    poll("the idle upload's partial file going", &node, || {
        node.files_under("partial").is_empty()
    });
    assert_eq!(part_url(&node, &alice, &fresh, 2), Err(404));
    assert!(node.log_text().contains("multipart upload expired"));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `serve` run by hand on a fresh directory makes it 0700 and writes blobs and secrets that no
/// other user can read; a directory left 0755 by an older version is tightened at start, with a
/// log line.
#[test]
fn data_dir_is_owner_only() {
    let node = founded_node();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "modes", 300_000);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/m:1"])
        .ok();
    let data = node.data_dir().to_path_buf();
    assert_eq!(mode(&data), 0o700, "DATA_DIR");
    for sub in ["blobs", "keys", "index", "accounts"] {
        assert_eq!(mode(&data.join(sub)) & 0o077, 0, "{sub}/");
    }
    let blobs = node.files_under("blobs");
    assert!(!blobs.is_empty());
    for b in &blobs {
        assert_eq!(mode(&data.join("blobs").join(b)) & 0o077, 0, "blob {b}");
    }
    for f in node.files_under("keys") {
        assert_eq!(mode(&data.join("keys").join(&f)) & 0o077, 0, "key {f}");
    }
    drop(node);

    // A directory as an older version left it: 0755, blobs/ too.
    let old = tmp.path().join("old");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(old.join("blobs")).expect("mkdir");
    for p in [old.clone(), old.join("blobs")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let node = TestNode::start_at(&old, &logs);
    assert_eq!(mode(&old), 0o700, "DATA_DIR was not tightened");
    assert_eq!(mode(&old.join("blobs")), 0o700, "blobs/ was not tightened");
    assert!(
        node.log_text().contains("tightened the permissions"),
        "no log line says the directory was tightened\n{}",
        node.log_text()
    );
}
