//! The real `sregistry` client (PyPI, `SREGISTRY_CLIENT=registry`) against a real node: push,
//! pull, private pulls with and without the right token, delete, and refused pushes that store
//! nothing (issue 5, client-protocols.md §1.3, §1.4, §3).

use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::http::request;
use shubnet_tests::sregistry::Client;

/// A node that founded a federation as `lab-a` (namespace `lab-a`).
fn node() -> TestNode {
    let node = TestNode::start();
    node.cli(&[
        "federation",
        "create",
        "--name",
        "Fed",
        "--institution",
        "lab-a",
    ])
    .ok();
    node
}

fn token(node: &TestNode, user: &str, collection: &str, rights: &str) -> String {
    node.cli(&[
        "token",
        "create",
        "--user",
        user,
        "--collection",
        collection,
        "--rights",
        rights,
    ])
    .ok()
    .out()
    .trim()
    .to_owned()
}

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
