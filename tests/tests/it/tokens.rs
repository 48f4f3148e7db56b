//! User tokens and private collections through the real binary: `shubnet token` and
//! `shubnet collection` against a running node, and the admin API's `/tokens/check`, which
//! answers what a client API will answer a token (no client API consumes tokens yet).

use shubnet_tests::TestNode;
use shubnet_tests::http::{Response, request};

/// `GET /admin/v1/tokens/check` with the user token in `X-Shubnet-Token`.
fn check(node: &TestNode, token: &str, collection: &str, right: &str) -> Response {
    let url = node.at(&format!(
        "/admin/v1/tokens/check?collection={collection}&right={right}"
    ));
    let admin = format!("Bearer {}", node.token());
    request(
        "GET",
        &url,
        &[("Authorization", &admin), ("X-Shubnet-Token", token)],
    )
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON: {e}\n{r}"))
}

/// Asserts a 403 whose `reason` is `reason`.
#[track_caller]
fn denied(r: &Response, reason: &str) {
    r.expect_status(403);
    let v = json(r);
    assert_eq!(v["reason"], reason, "{r}");
    assert_eq!(v["allowed"], false, "{r}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "403 without a message\n{r}"
    );
}

fn list_json(node: &TestNode) -> (String, Vec<serde_json::Value>) {
    let r = node.cli(&["token", "list", "--json"]).ok();
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`token list --json` printed no JSON: {e}\n{r}"));
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array\n{r}"))
        .clone();
    (text, list)
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn create_list_check_restart_revoke() {
    let mut node = TestNode::start();
    let r = node
        .cli(&[
            "token",
            "create",
            "--user",
            "alice",
            "--collection",
            "lab-a/*",
            "--rights",
            "pull",
        ])
        .ok();
    let token = r.out();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("{token}\n"),
        "create must print only the token\n{r}"
    );
    assert!(
        token.len() == 40
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not 40 lowercase hex digits: {token:?}\n{r}"
    );

    // Listed, without the secret.
    let (text, list) = list_json(&node);
    assert!(
        !text.contains(&token),
        "`token list --json` shows the secret"
    );
    assert_eq!(list.len(), 1, "{text}");
    let t = &list[0];
    assert_eq!(t["user"], "alice", "{text}");
    assert_eq!(t["collections"], serde_json::json!(["lab-a/*"]), "{text}");
    assert_eq!(t["rights"], serde_json::json!(["pull"]), "{text}");
    assert!(t["revoked"].is_null(), "{text}");
    let id = t["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 8, "{text}");
    let r = node.cli(&["token", "list"]).ok();
    let table = r.out();
    assert!(
        !table.contains(&token),
        "`token list` shows the secret\n{r}"
    );
    for want in [id.as_str(), "alice", "lab-a/*", "pull", "active"] {
        assert!(table.contains(want), "`token list` lacks {want:?}\n{r}");
    }

    // What the token allows.
    let r = check(&node, &token, "lab-a", "pull");
    r.expect_status(200);
    assert_eq!(json(&r)["token"]["id"], id.as_str(), "{r}");
    denied(&check(&node, &token, "lab-b", "pull"), "wrong_collection");
    denied(&check(&node, &token, "lab-ab", "pull"), "wrong_collection");
    denied(&check(&node, &token, "lab-a", "push"), "missing_right");
    denied(&check(&node, &token, "lab-a", "delete"), "missing_right");
    denied(&check(&node, &"0".repeat(40), "lab-a", "pull"), "unknown");
    // The check is admin API: no admin token, no answer about user tokens.
    let url = node.at("/admin/v1/tokens/check?collection=lab-a&right=pull");
    request("GET", &url, &[("X-Shubnet-Token", &token)]).expect_status(401);

    // The secret is nowhere in the data directory: not in the index, not in a key file.
    let raw = hex::decode(&token).expect("hex");
    let mut all = Vec::new();
    files(node.data_dir(), &mut all);
    assert!(
        all.iter()
            .any(|p| p.starts_with(node.data_dir().join("index")))
    );
    for p in &all {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        assert!(
            !contains(&bytes, token.as_bytes()),
            "the token's hex is in {}",
            p.display()
        );
        assert!(
            !contains(&bytes, &raw),
            "the token's bytes are in {}",
            p.display()
        );
    }

    // Still valid after a restart.
    node.restart();
    check(&node, &token, "lab-a", "pull").expect_status(200);

    // Revoked: refused as revoked, still listed.
    let r = node.cli(&["token", "revoke", &id]).ok();
    assert!(r.out().contains(&format!("revoked token {id}")), "{r}");
    denied(&check(&node, &token, "lab-a", "pull"), "revoked");
    let (_, list) = list_json(&node);
    assert!(list[0]["revoked"].is_u64(), "{list:?}");
    // Revoking again is fine; an unknown id is not.
    node.cli(&["token", "revoke", &id.to_uppercase()]).ok();
    node.cli(&["token", "revoke", "abcdef01"])
        .fails()
        .stderr_mentions("no token with id");
    node.restart();
    denied(&check(&node, &token, "lab-a", "pull"), "revoked");
}

#[test]
fn bad_requests_fail_with_reasons_and_store_nothing() {
    let node = TestNode::start();
    let create = |user: &str, coll: &str, rights: &str| {
        node.cli(&[
            "token",
            "create",
            "--user",
            user,
            "--collection",
            coll,
            "--rights",
            rights,
        ])
    };
    create("alice", "lab-a", "pull,fly")
        .fails()
        .stderr_mentions("valid rights are pull, push, delete");
    create("alice", "lab-a", "")
        .fails()
        .stderr_mentions("at least one right");
    for pattern in ["Lab_A", "lab-a/b", "lab-a/", "a*b", "../etc"] {
        create("alice", pattern, "pull")
            .fails()
            .stderr_mentions("invalid collection pattern");
    }
    create("Alice", "lab-a", "pull")
        .fails()
        .stderr_mentions("invalid user name");
    node.cli(&["token", "revoke", "0123456789abcdef"])
        .fails()
        .stderr_mentions("invalid token id");
    let (_, list) = list_json(&node);
    assert!(list.is_empty(), "{list:?}");

    // Several patterns and rights in one token.
    let r = node
        .cli(&[
            "token",
            "create",
            "--user",
            "bob",
            "--collection",
            "lab-*,shared",
            "--collection",
            "*",
            "--rights",
            "push,pull",
        ])
        .ok();
    let token = r.out();
    let (_, list) = list_json(&node);
    assert_eq!(
        list[0]["collections"],
        serde_json::json!(["lab-*", "shared", "*"])
    );
    assert_eq!(list[0]["rights"], serde_json::json!(["pull", "push"]));
    check(&node, &token, "anything", "push").expect_status(200);
    denied(&check(&node, &token, "anything", "delete"), "missing_right");
}

#[test]
fn collections_turn_private_and_public() {
    let node = TestNode::start();
    let get = |name: &str| {
        let admin = format!("Bearer {}", node.token());
        let r = request(
            "GET",
            &node.at(&format!("/admin/v1/collections/{name}")),
            &[("Authorization", &admin)],
        );
        r.expect_status(200);
        json(&r)["private"].as_bool().expect("private flag")
    };
    assert!(!get("lab-a"), "collections start public");
    let r = node.cli(&["collection", "set-private", "lab-a"]).ok();
    assert_eq!(r.out(), "lab-a: private", "{r}");
    assert!(get("lab-a"));
    assert!(!get("lab-b"));
    let r = node.cli(&["collection", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!([{"name": "lab-a", "private": true}]),
        "{r}"
    );
    let r = node.cli(&["collection", "set-public", "lab-a"]).ok();
    assert_eq!(r.out(), "lab-a: public", "{r}");
    assert!(!get("lab-a"));
    node.cli(&["collection", "set-private", "Bad_Name"])
        .fails()
        .stderr_mentions("invalid collection");
}
