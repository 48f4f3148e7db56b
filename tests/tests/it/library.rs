//! The library API with Apptainer's real library client (Go, Debian's 1.2.2): UploadImage,
//! GetImage, DownloadImage and ConcurrentDownloadImage against a real node; cross-checks with
//! the sregistry client both ways; discovery endpoints, path forms and bad input (issue 5,
//! client-protocols.md §1.5, §2.2, §2.3, §4).

use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file, sha256_file};
use shubnet_tests::golib;
use shubnet_tests::http::{get, request};
use shubnet_tests::sregistry::Client;

fn node_with_token() -> (TestNode, String) {
    let node = shubnet_tests::fed::founded_node();
    let token = shubnet_tests::fed::user_token(&node, "alice", "lab-a", "pull,push");
    (node, token)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON: {e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn library_client_push_and_pull() {
    let (node, token) = node_with_token();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "library-push", 2_500_000);
    let img = image.to_str().expect("utf8");
    let (sha, size) = sha256_file(&image);

    golib::run(
        node.url(),
        &token,
        &["upload", img, "alice/lab-a/tool", "v1"],
    )
    .ok();

    // GetImage: hash and size as the client reads them.
    let r = golib::run(node.url(), "", &["get", "alice/lab-a/tool:v1"]).ok();
    let v = json(&r.stdout);
    assert_eq!(v["hash"], format!("sha256.{sha}"), "{v:#}");
    assert_eq!(v["size"], size, "{v:#}");
    assert_eq!(v["uploaded"], true, "{v:#}");
    // Pushing is not a download (the tag call re-reads the content inside the node).
    assert_eq!(v["containerDownloads"], 0, "{v:#}");

    // Both download paths give the exact bytes.
    for cmd in ["download", "cdownload"] {
        let out = tmp.path().join(format!("{cmd}.sif"));
        golib::run(
            node.url(),
            "",
            &[cmd, "alice/lab-a/tool", "v1", out.to_str().expect("utf8")],
        )
        .ok();
        assert_same_file(&out, &image);
    }
    // The manifest records the token's user.
    let m = json(
        &get(&node.at("/api/container/lab-a/tool:v1"))
            .expect_status(200)
            .body,
    );
    assert_eq!(m["metadata"]["pushed_by"], "alice", "{m:#}");

    // Cross-check: what the library client pushed, the sregistry client pulls...
    let anon = Client::new(node.url());
    let (run, file) = anon.pull("lab-a/tool:v1");
    let file = file.unwrap_or_else(|| panic!("sregistry pulled nothing\n{run}"));
    assert_same_file(&file, &image);

    // ...and what the sregistry client pushed, the library client pulls.
    let other = tmp.path().join("other.sif");
    kubo_file(&other, "library-cross", 700_000);
    Client::new(node.url())
        .with_user("alice", &token)
        .run(&[
            "push",
            "--name",
            "lab-a/other",
            "--tag",
            "v2",
            other.to_str().expect("utf8"),
        ])
        .ok();
    let out = tmp.path().join("other-pulled.sif");
    golib::run(
        node.url(),
        "",
        &["download", "lab-a/other", "v2", out.to_str().expect("utf8")],
    )
    .ok();
    assert_same_file(&out, &other);

    // Pushing the same bytes again under another tag uploads nothing and tags the image.
    golib::run(
        node.url(),
        &token,
        &["upload", img, "alice/lab-a/tool", "v3"],
    )
    .ok();
    let v = json(
        &golib::run(node.url(), "", &["get", "lab-a/tool:v3"])
            .ok()
            .stdout,
    );
    assert_eq!(v["hash"], format!("sha256.{sha}"), "{v:#}");
    // v3 names the same bytes: the downloads above count for it (download, cdownload and the
    // sregistry pull each fetched byte 0 once), and its tag call added none.
    assert_eq!(v["containerDownloads"], 3, "{v:#}");
}

#[test]
fn library_discovery_and_paths() {
    let (node, token) = node_with_token();
    let cfg = json(
        &get(&node.at("/assets/config/config.prod.json"))
            .expect_status(200)
            .body,
    );
    for (k, v) in cfg.as_object().expect("object") {
        assert!(
            v.is_object(),
            "config.prod.json {k} is not an object: {cfg:#}"
        );
    }
    assert_eq!(cfg["libraryAPI"]["uri"], node.url(), "{cfg:#}");
    assert!(cfg["keystoreAPI"]["uri"].is_string() && cfg["tokenAPI"]["uri"].is_string());
    let v = json(&get(&node.at("/version")).expect_status(200).body);
    assert!(v["data"]["apiVersion"].is_string(), "{v:#}");
    let r = get(&node.at("/v1/oci-redirect?accessTypes=pull&mapped=1&namespace=a%2Fb%2Fc"));
    r.expect_status(404);
    assert_eq!(json(&r.body)["error"]["code"], 404);
    for scheme in ["Bearer", "BEARER", "bearer"] {
        request(
            "GET",
            &node.at("/v1/token-status"),
            &[("Authorization", &format!("{scheme} {token}"))],
        )
        .expect_status(200);
    }
    request(
        "GET",
        &node.at("/v1/token-status"),
        &[(
            "Authorization",
            "Bearer 0123456789abcdef0123456789abcdef01234567",
        )],
    )
    .expect_status(404);

    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "library-paths", 300_000);
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/tool:latest"])
        .ok();
    let bytes = std::fs::read(&image).expect("read");
    // 1, 2 and 3 components, leading and doubled slashes; the entity is ignored.
    for path in [
        "lab-a/tool:latest",
        "lab-a/tool",
        "anyone/lab-a/tool:latest",
        "/lab-a/tool:latest",
        "//lab-a/tool:latest",
        "anyone//lab-a/tool:latest",
    ] {
        let r = get(&node.at(&format!("/v1/images/{path}?arch=amd64")));
        r.expect_status(200);
        assert_eq!(json(&r.body)["data"]["size"], 300_000, "{path}");
        let f = get(&node.at(&format!("/v1/imagefile/{path}?arch=amd64")));
        f.expect_status(200);
        assert!(f.body == bytes, "{path}: wrong bytes");
    }
    // A tombstoned tag is gone for the library API too.
    node.cli(&["push", image.to_str().expect("utf8"), "lab-a/gone:v1"])
        .ok();
    get(&node.at("/v1/images/lab-a/gone:v1")).expect_status(200);
    node.cli(&["delete", "lab-a/gone:v1"]).ok();
    for path in ["/v1/images/lab-a/gone:v1", "/v1/imagefile/lab-a/gone:v1"] {
        let r = get(&node.at(path));
        r.expect_status(404);
        assert_eq!(json(&r.body)["error"]["code"], 404, "{path}");
    }

    // Bad names, traversal, unknown images: JSON errors with the documented codes.
    for (path, want) in [
        ("lab-a/Tool_:latest", 400),
        ("lab-a/../tool:latest", 400),
        ("lab-a/tool:nope", 404),
        ("lab-a/none:latest", 404),
    ] {
        let r = get(&node.at(&format!("/v1/images/{path}")));
        r.expect_status(want);
        assert_eq!(json(&r.body)["error"]["code"], want, "{path}");
    }
}

/// POSTs `body` to `url` with curl; returns (status, body).
fn curl_post(url: &str, token: &str, body: &std::path::Path) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/octet-stream"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn library_bad_uploads_store_nothing() {
    let (node, token) = node_with_token();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("image.sif");
    kubo_file(&image, "library-bad", 400_000);
    let pins = node.pins();

    // A declared sha256 that the bytes do not have.
    let wrong = format!("lab-a_tool_{}", "ab".repeat(32));
    let (code, body) = curl_post(&node.at(&format!("/v1/imagefile/{wrong}")), &token, &image);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("sha256"), "{body}");
    // A token without the push right, and no token.
    let (sha, _) = sha256_file(&image);
    let id = format!("lab-a_tool_{sha}");
    let puller = shubnet_tests::fed::user_token(&node, "p", "lab-a", "pull");
    let (code, _) = curl_post(
        &node.at(&format!("/v1/imagefile/{id}")),
        puller.trim(),
        &image,
    );
    assert_eq!(code, 403);
    let (code, _) = curl_post(&node.at(&format!("/v1/imagefile/{id}")), "", &image);
    assert_eq!(code, 401);
    // Through the real client: a wrong token and another member's namespace fail.
    let img = image.to_str().expect("utf8");
    let r = golib::run(
        node.url(),
        "0123456789abcdef0123456789abcdef01234567",
        &["upload", img, "alice/lab-a/tool", "v1"],
    );
    assert!(
        !r.status.success(),
        "upload with a wrong token succeeded\n{r}"
    );
    let eve = shubnet_tests::fed::user_token(&node, "eve", "lab-b", "push");
    let r = golib::run(
        node.url(),
        eve.trim(),
        &["upload", img, "eve/lab-b/tool", "v1"],
    );
    assert!(
        !r.status.success(),
        "upload into another namespace succeeded\n{r}"
    );

    assert_eq!(node.pins(), pins, "a refused upload left content pinned");
    let tags = node.cli(&["tags", "--json"]).ok().out();
    assert_eq!(tags.trim(), "[]", "a refused upload published a tag");
}

#[test]
fn library_client_multipart_upload() {
    // Above the client's 64 MiB threshold it asks for a multipart upload: two parts here.
    let (node, token) = node_with_token();
    let tmp = crate::tmpdir();
    let image = tmp.path().join("big.sif");
    kubo_file(&image, "library-multipart", 70 * 1024 * 1024 + 123);
    let img = image.to_str().expect("utf8");
    let r = golib::run(
        node.url(),
        &token,
        &["upload", img, "alice/lab-a/big", "v1"],
    )
    .ok();
    let out = tmp.path().join("big-pulled.sif");
    golib::run(
        node.url(),
        "",
        &[
            "download",
            "alice/lab-a/big",
            "v1",
            out.to_str().expect("utf8"),
        ],
    )
    .ok();
    assert_same_file(&out, &image);
    // The node really took the multipart path.
    assert!(
        node.log_text().contains("multipart upload started parts=2")
            || node.log_text().contains("parts=2"),
        "the client did not use the multipart upload\n{r}\n{}",
        node.log_text()
    );
    let m = json(
        &get(&node.at("/api/container/lab-a/big:v1"))
            .expect_status(200)
            .body,
    );
    assert_eq!(m["size"], 70 * 1024 * 1024 + 123);
}

fn vm_hwm_kib(node: &TestNode) -> u64 {
    let pid = node.pid().expect("the node runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// A 290 KB SIF whose squashfs inode table is eight 32 KiB zlib blocks, each inflating to
/// 33 MB (the fuzz corpus keeps it: `protocol/fuzz/seeds/sif_squashfs/squashfs-bomb.sif`),
/// pushed with the real library client. The SIF itself is sound, so it is stored and tagged,
/// without metadata (the squashfs fallback stops at its decompression budget), and the node's
/// peak memory (VmHWM) grows by less than 100 MiB.
#[test]
fn a_squashfs_bomb_is_stored_without_metadata_and_within_memory() {
    let (node, token) = node_with_token();
    let tmp = crate::tmpdir();
    let bomb = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/fuzz/seeds/sif_squashfs/squashfs-bomb.sif");
    let (sha, _) = sha256_file(&bomb);
    let before = vm_hwm_kib(&node);
    let r = golib::run(
        node.url(),
        &token,
        &[
            "upload",
            bomb.to_str().expect("utf8"),
            "alice/lab-a/bomb",
            "v1",
        ],
    );
    let after = vm_hwm_kib(&node);
    println!(
        "squashfs bomb: node VmHWM {} MiB before the upload, {} MiB after (growth {} MiB)",
        before / 1024,
        after / 1024,
        (after - before) / 1024
    );
    assert!(
        after - before < 100 * 1024,
        "the node's VmHWM grew from {} MiB to {} MiB for a 290 KB upload",
        before / 1024,
        after / 1024
    );
    let r = r.ok();
    // Stored and tagged, byte for byte.
    let v = json(
        &golib::run(node.url(), "", &["get", "alice/lab-a/bomb:v1"])
            .ok()
            .stdout,
    );
    assert_eq!(v["hash"], format!("sha256.{sha}"), "{v:#}\n{r}");
    let out = tmp.path().join("bomb.out");
    golib::run(
        node.url(),
        "",
        &[
            "download",
            "alice/lab-a/bomb",
            "v1",
            out.to_str().expect("utf8"),
        ],
    )
    .ok();
    assert_same_file(&out, &bomb);
    // Without metadata, and the log says why.
    let m = shubnet_tests::fed::json_of(&node.cli(&["inspect", "lab-a/bomb:v1", "--json"]).ok());
    assert_eq!(m["sif"], true, "{m:#}");
    assert_eq!(m["labels"], serde_json::json!({}), "{m:#}");
    let log = node.log_text();
    assert!(
        log.contains("no metadata from the squashfs partition")
            && log.contains("inflates to more than"),
        "{log}"
    );
}
