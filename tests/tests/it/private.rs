//! Private collections through the real binary: manifests and tag listings of a private
//! collection are served only to a user token with the pull right, and `shubnet pull` needs one.

use shubnet_tests::TestNode;
use shubnet_tests::http::request;

/// Writes the image's first 256 KiB chunk to its own file, whose CID is the first leaf's.
fn leaf_file(dir: &tempfile::TempDir, image: &std::path::Path) -> std::path::PathBuf {
    let bytes = std::fs::read(image).expect("read");
    let p = dir.path().join("leaf0");
    std::fs::write(&p, &bytes[..262_144]).expect("write");
    p
}

#[test]
fn private_collections_need_a_pull_token() {
    let node = TestNode::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image.sif");
    std::fs::write(&image, shubnet_tests::data::kubo_bytes("private", 700_000)).expect("write");
    shubnet_tests::fed::found(&node);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/secret:1"])
        .ok();
    node.cli(&["collection", "set-private", "lab-a"]).ok();

    // Without a token: 403 on the manifest and on the content (whole file, a raw leaf inside
    // it, a CAR), nothing listed, pull refused with no output file.
    request("GET", &node.at("/shubnet/v1/manifests/lab-a/secret/1"), &[]).expect_status(403);
    let img = image.to_str().expect("utf8");
    let root = node.cli(&["cid", img]).ok().out().trim().to_owned();
    let leaf_path = leaf_file(&dir, &image);
    let leaf = node
        .cli(&["cid", leaf_path.to_str().expect("utf8")])
        .ok()
        .out()
        .trim()
        .to_owned();
    for path in [
        format!("/ipfs/{root}"),
        format!("/ipfs/{leaf}?format=raw"),
        format!("/ipfs/{root}?format=car"),
    ] {
        request("GET", &node.at(&path), &[]).expect_status(403);
        request("HEAD", &node.at(&path), &[]).expect_status(403);
    }
    let listed = node.cli(&["tags", "--json"]).ok();
    assert_eq!(
        listed.out().trim(),
        "[]",
        "a private tag was listed without a token"
    );
    let out = dir.path().join("pulled.sif");
    let o = out.to_str().expect("utf8");
    node.cli(&["pull", "lab-a/secret:1", "-o", o])
        .fails()
        .stderr_mentions("private");
    assert!(!out.exists());

    // A token for another collection, or without the pull right, does not open it.
    let other = shubnet_tests::fed::user_token(&node, "eve", "lab-b", "pull");
    node.cli(&[
        "pull",
        "lab-a/secret:1",
        "-o",
        o,
        "--pull-token",
        other.trim(),
    ])
    .fails()
    .stderr_mentions("does not cover");
    let push_only = shubnet_tests::fed::user_token(&node, "eve", "lab-a", "push");
    node.cli(&[
        "pull",
        "lab-a/secret:1",
        "-o",
        o,
        "--pull-token",
        push_only.trim(),
    ])
    .fails()
    .stderr_mentions("pull");
    assert!(!out.exists());

    // The right token pulls the exact bytes.
    let bob = shubnet_tests::fed::user_token(&node, "bob", "lab-a", "pull");
    node.cli(&[
        "pull",
        "lab-a/secret:1",
        "-o",
        o,
        "--pull-token",
        bob.trim(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(&image).expect("read")
    );
    let auth = format!("Bearer {}", bob.trim());
    request(
        "GET",
        &node.at("/shubnet/v1/manifests/lab-a/secret/1"),
        &[("Authorization", &auth)],
    )
    .expect_status(200);
    let got = request(
        "GET",
        &node.at(&format!("/ipfs/{root}")),
        &[("Authorization", &auth)],
    );
    got.expect_status(200);
    assert_eq!(got.body, std::fs::read(&image).expect("read"));
    request(
        "GET",
        &node.at(&format!("/ipfs/{leaf}?format=raw")),
        &[("Authorization", &auth)],
    )
    .expect_status(200);
    // Making the collection public opens the content to everyone.
    node.cli(&["collection", "set-public", "lab-a"]).ok();
    request("GET", &node.at(&format!("/ipfs/{root}")), &[]).expect_status(200);
    node.cli(&["collection", "set-private", "lab-a"]).ok();

    // Revoked: refused again.
    let list = node.cli(&["token", "list", "--json"]).ok().out();
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    let id = v
        .as_array()
        .and_then(|a| a.iter().find(|t| t["user"] == "bob"))
        .and_then(|t| t["id"].as_str())
        .expect("bob's token listed")
        .to_owned();
    node.cli(&["token", "revoke", &id]).ok();
    std::fs::remove_file(&out).expect("rm");
    node.cli(&[
        "pull",
        "lab-a/secret:1",
        "-o",
        o,
        "--pull-token",
        bob.trim(),
    ])
    .fails()
    .stderr_mentions("revoked");
    assert!(!out.exists());
}

/// Tokens and collection settings are not derived state: deleting `index/` (which repair
/// rebuilds from blobs/ and log/) loses neither.
#[test]
fn tokens_and_privacy_survive_the_loss_of_the_index() {
    let mut node = TestNode::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image.sif");
    std::fs::write(
        &image,
        shubnet_tests::data::kubo_bytes("private-2", 300_000),
    )
    .expect("write");
    shubnet_tests::fed::found(&node);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/secret:1"])
        .ok();
    node.cli(&["collection", "set-private", "lab-a"]).ok();
    let bob = shubnet_tests::fed::user_token(&node, "bob", "lab-a", "pull");
    node.stop();
    std::fs::remove_dir_all(node.data_dir().join("index")).expect("rm index");
    node.restart();
    let auth = format!("Bearer {}", bob.trim());
    let url = node.at("/shubnet/v1/manifests/lab-a/secret/1");
    request("GET", &url, &[]).expect_status(403);
    request("GET", &url, &[("Authorization", &auth)]).expect_status(200);
    let out = dir.path().join("pulled.sif");
    node.cli(&[
        "pull",
        "lab-a/secret:1",
        "-o",
        out.to_str().expect("utf8"),
        "--pull-token",
        bob.trim(),
    ])
    .ok();
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(&image).expect("read")
    );
}
