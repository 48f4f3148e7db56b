//! The real `sregistry` client (PyPI, `SREGISTRY_CLIENT=registry`) against a real node: push,
//! pull, private pulls with and without the right token, delete, and refused pushes that store
//! nothing (client-protocols.md §1.3, §1.4, §3).

use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::http::request;
use shubnet_tests::sregistry::Client;

use shubnet_tests::fed::{founded_node as node, user_token as token};

fn manifest(node: &TestNode, path: &str) -> serde_json::Value {
    let r = request("GET", &node.at(&format!("/api/container/{path}")), &[]);
    r.expect_status(200);
    serde_json::from_slice(&r.body).expect("JSON manifest")
}

#[test]
fn sregistry_push_pull_delete() {
    let node = node();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "sregistry-push", 1_300_000);
    let alice = token(&node, "alice", "lab-a", "pull,push,delete");
    let client = Client::new(node.url()).with_user("alice", &alice);

    client
        .run(&[
            "push",
            "--name",
            "lab-a/tools",
            "--tag",
            "v1",
            image.to_str().expect("utf8"),
        ])
        .ok();
    let m = manifest(&node, "lab-a/tools:v1");
    assert_eq!(m["metadata"]["pushed_by"], "alice", "{m:#}");
    assert_eq!(m["size"], 1_300_000, "{m:#}");

    // An anonymous client pulls the exact bytes of a public image.
    let anon = Client::new(node.url());
    let (run, file) = anon.pull("lab-a/tools:v1");
    let run = run.ok();
    let file = file.unwrap_or_else(|| panic!("sregistry pull wrote no .sif\n{run}"));
    assert_same_file(&file, &image);

    // Delete publishes a tombstone: the tag is gone for every client.
    client.run(&["delete", "--force", "lab-a/tools:v1"]).ok();
    let r = request("GET", &node.at("/api/container/lab-a/tools:v1"), &[]);
    r.expect_status(404);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["detail"],
        "Not found."
    );
    let (_, file) = anon.pull("lab-a/tools:v1");
    assert!(file.is_none(), "a deleted tag was pulled");
}

#[test]
fn sregistry_private_pull_needs_the_right_token() {
    let node = node();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "sregistry-private", 600_000);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/secret:v2"])
        .ok();
    node.cli(&["collection", "set-private", "lab-a"]).ok();

    // The manifest answers 403 (never 401, or the client would not retry with its HMAC).
    let r = request("GET", &node.at("/api/container/lab-a/secret:v2"), &[]);
    r.expect_status(403);
    // Not listed either.
    let r = request("GET", &node.at("/api/containers/"), &[]);
    r.expect_status(200);
    assert!(!String::from_utf8_lossy(&r.body).contains("secret"), "{r}");

    let (run, file) = Client::new(node.url()).pull("lab-a/secret:v2");
    assert!(file.is_none(), "anonymous pull of a private image\n{run}");

    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let (run, file) = Client::new(node.url())
        .with_user("bob", wrong)
        .pull("lab-a/secret:v2");
    assert!(file.is_none(), "pull with a wrong token\n{run}");

    let other = token(&node, "bob", "lab-b", "pull");
    let (run, file) = Client::new(node.url())
        .with_user("bob", &other)
        .pull("lab-a/secret:v2");
    assert!(
        file.is_none(),
        "pull with a token for another collection\n{run}"
    );

    let bob = token(&node, "bob", "lab-a", "pull");
    // Keep the client: its directory holds the pulled file.
    let client = Client::new(node.url()).with_user("bob", &bob);
    let (run, file) = client.pull("lab-a/secret:v2");
    let run = run.ok();
    let file = file.unwrap_or_else(|| panic!("no file from a pull with the right token\n{run}"));
    assert_same_file(&file, &image);
}

#[test]
fn sregistry_refused_pushes_store_nothing() {
    let node = node();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "sregistry-refused", 400_000);
    let img = image.to_str().expect("utf8");
    let pins_before = node.pins();

    // Another member's namespace, with a token that covers it.
    let eve = token(&node, "eve", "lab-b", "push");
    let r = Client::new(node.url())
        .with_user("eve", &eve)
        .run(&["push", "--name", "lab-b/x", "--tag", "v1", img]);
    assert!(
        !r.status.success(),
        "push outside the namespace succeeded\n{r}"
    );
    // A wrong token.
    let r = Client::new(node.url())
        .with_user("alice", "0123456789abcdef0123456789abcdef01234567")
        .run(&["push", "--name", "lab-a/x", "--tag", "v1", img]);
    assert!(
        !r.status.success(),
        "push with a wrong token succeeded\n{r}"
    );
    // A token without the push right.
    let puller = token(&node, "carol", "lab-a", "pull");
    let r = Client::new(node.url())
        .with_user("carol", &puller)
        .run(&["push", "--name", "lab-a/x", "--tag", "v1", img]);
    assert!(
        !r.status.success(),
        "push without the push right succeeded\n{r}"
    );

    assert_eq!(
        node.pins(),
        pins_before,
        "a refused push left content pinned"
    );
    let tags = node.cli(&["tags", "--json"]).ok().out();
    assert_eq!(tags.trim(), "[]", "a refused push published a tag");
}

/// HMAC-SHA256, hex (RFC 2104), independent of the code under test.
fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k0 = [0u8; 64];
    k0[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k0.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k0.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(&opad)
            .chain_update(inner)
            .finalize(),
    )
}

/// The `Authorization` header the sregistry client would send for `kind` on `c/n:t`.
pub(crate) fn sign(user: &str, token: &str, kind: &str, r: (&str, &str, &str)) -> String {
    sign_at(user, token, kind, r, "now")
}

/// [`sign`] with the timestamp of `when` (a `date -d` expression).
fn sign_at(
    user: &str,
    token: &str,
    kind: &str,
    (c, n, t): (&str, &str, &str),
    when: &str,
) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", when, "+%Y%m%dT%HZ"])
        .output()
        .expect("date");
    let ts = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let sig = hmac_hex(
        token.as_bytes(),
        format!("{kind}|{c}|{ts}|{n}|{t}|").as_bytes(),
    );
    let user64 = {
        // base64 of a short ASCII user, standard alphabet with padding.
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = user.as_bytes();
        let mut s = String::new();
        for ch in b.chunks(3) {
            let n = (u32::from(ch[0]) << 16)
                | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
                | u32::from(*ch.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= ch.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    };
    format!("SREGISTRY-HMAC-SHA256 Credential={kind}/{user64}/{ts},Signature={sig}")
}

/// Sends a multipart `/upload` whose declared length is `declared` and writes `body`; if
/// `leave`, then closes the write side as a client that went away; returns the status line the
/// node answered (if any).
fn raw_upload(node: &TestNode, auth: &str, declared: u64, body: &[u8], leave: bool) -> String {
    shubnet_tests::http::raw_post(
        &node.at("/upload"),
        &[
            ("Authorization", auth),
            ("Content-Type", "multipart/form-data; boundary=XyZ"),
        ],
        declared,
        body,
        leave,
    )
}

fn multipart(collection: &str, name: &str, tag: &str, file: &[u8], close: bool) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in [("name", name), ("collection", collection), ("tag", tag)] {
        b.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file1\"; filename=\"x.sif\"\r\n\
          Content-Type: text/plain\r\n\r\n",
    );
    b.extend_from_slice(file);
    if close {
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
    }
    b
}

#[test]
fn sregistry_truncated_and_oversized_uploads_store_nothing() {
    let node = node();
    let alice = token(&node, "alice", "lab-a", "push");
    let auth = sign("alice", &alice, "upload", ("lab-a", "cut", "v1"));
    let pins = node.pins();
    let file = shubnet_tests::data::kubo_bytes("sregistry-cut", 1_000_000);

    // Truncated: the client promises more than it sends, then goes away mid-file.
    let partial = multipart("lab-a", "cut", "v1", &file[..600_000], false);
    let status = raw_upload(&node, &auth, partial.len() as u64 + 500_000, &partial, true);
    assert!(
        !status.contains(" 200 "),
        "a truncated upload was accepted: {status}"
    );
    // Oversized: a declared length beyond --max-upload is refused before the body is read.
    let status = raw_upload(&node, &auth, 1 << 40, &partial[..1000], false);
    assert!(
        status.contains(" 413 "),
        "want 413 for an oversized upload: {status}"
    );
    // A wrong signature on an otherwise complete upload.
    let whole = multipart("lab-a", "cut", "v1", &file, true);
    let forged = sign(
        "alice",
        "0123456789abcdef0123456789abcdef01234567",
        "upload",
        ("lab-a", "cut", "v1"),
    );
    let status = raw_upload(&node, &forged, whole.len() as u64, &whole, false);
    assert!(
        status.contains(" 403 "),
        "want 403 for a wrong HMAC: {status}"
    );
    // A correct signature, but three hours old (only this hour and the last are accepted).
    let expired = sign_at(
        "alice",
        &alice,
        "upload",
        ("lab-a", "cut", "v1"),
        "3 hours ago",
    );
    let status = raw_upload(&node, &expired, whole.len() as u64, &whole, false);
    assert!(
        status.contains(" 403 "),
        "want 403 for an expired HMAC: {status}"
    );
    // A bad name (sregistry lowercases, but `_` is never allowed in a collection).
    let bad = multipart("Lab_A", "cut", "v1", &file, true);
    let status = raw_upload(&node, &auth, bad.len() as u64, &bad, false);
    assert!(
        status.contains(" 400 "),
        "want 400 for a bad name: {status}"
    );
    // A push signature presented for the upload step.
    let push_sig = sign("alice", &alice, "push", ("lab-a", "cut", "v1"));
    let status = raw_upload(&node, &push_sig, whole.len() as u64, &whole, false);
    assert!(
        status.contains(" 403 "),
        "want 403 for the wrong HMAC kind: {status}"
    );

    assert_eq!(node.pins(), pins, "a failed upload left content pinned");
    assert!(
        node.files_under("partial").is_empty(),
        "partial files left behind"
    );
    get_404(&node, "lab-a/cut:v1");

    // The same upload, complete and correctly signed, is accepted: the checks above can fail.
    let status = raw_upload(&node, &auth, whole.len() as u64, &whole, false);
    assert!(
        status.contains(" 200 "),
        "a good upload was refused: {status}"
    );
    let m = manifest(&node, "lab-a/cut:v1");
    assert_eq!(m["size"], 1_000_000, "{m:#}");
}

fn get_404(node: &TestNode, path: &str) {
    request("GET", &node.at(&format!("/api/container/{path}")), &[]).expect_status(404);
}

/// A signature authorizes one push check, upload or delete: the same `Authorization` header
/// sent again within its acceptance window is refused with 403 `{"detail": ...}` (what the
/// client reports); a newly signed request still works, and a failed request does not spend
/// its signature (see `sregistry_truncated_and_oversized_uploads_store_nothing`).
#[test]
fn sregistry_replayed_signatures_are_refused() {
    let node = node();
    // Push check, upload and delete.
    let alice = token(&node, "alice", "lab-a", "push,delete");
    let check = sign("alice", &alice, "push", ("lab-a", "again", "v1"));
    let intent = r#"{"collection":"lab-a","name":"again","tag":"v1"}"#;
    for want in [" 200 ", " 403 "] {
        let status = shubnet_tests::http::raw_post(
            &node.at("/api/upload/chunked_upload"),
            &[
                ("Authorization", &check),
                ("Content-Type", "application/json"),
            ],
            intent.len() as u64,
            intent.as_bytes(),
            false,
        );
        assert!(status.contains(want), "push check: want{want}got {status}");
    }
    let file = shubnet_tests::data::kubo_bytes("sregistry-replay-upload", 300_000);
    let whole = multipart("lab-a", "again", "v1", &file, true);
    let upload = sign("alice", &alice, "upload", ("lab-a", "again", "v1"));
    let status = raw_upload(&node, &upload, whole.len() as u64, &whole, false);
    assert!(status.contains(" 200 "), "first upload: {status}");
    let status = raw_upload(&node, &upload, whole.len() as u64, &whole, false);
    assert!(status.contains(" 403 "), "replayed upload: {status}");
    // The previous hour's signature is another signature: accepted once.
    let older = sign_at(
        "alice",
        &alice,
        "upload",
        ("lab-a", "again", "v1"),
        "1 hour ago",
    );
    for want in [" 200 ", " 403 "] {
        let status = raw_upload(&node, &older, whole.len() as u64, &whole, false);
        assert!(
            status.contains(want),
            "older upload: want{want}got {status}"
        );
    }
    let delete = sign("alice", &alice, "delete", ("lab-a", "again", "v1"));
    let del = node.at("/api/container/lab-a/again:v1");
    request("DELETE", &del, &[("Authorization", &delete)]).expect_status(204);
    request("DELETE", &del, &[("Authorization", &delete)]).expect_status(403);
}
