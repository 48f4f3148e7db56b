//! Privacy as federation state, with real nodes: institution lab-a (node A, whose roster entry
//! names its gateway) owns the private collection `lab-a`; lab-b (node B) is another member and
//! owns the public collection `lab-b`; node C runs outside the federation; an unmodified Helia
//! node is a non-member peer on Bitswap. Every route answers by the owner's signed policy on
//! every member, for every kind of token: none, garbage, a federation token a member signed for
//! a collection it does not own, B's own node-local token, a revoked federation token of A's and
//! a valid one.

use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::fed::{
    create_with, federation_token, join, json_of, push, request, user_token, wait_private_on,
};
use shubnet_tests::http::{Response, request as http};
use shubnet_tests::js;
use shubnet_tests::swarm::wait_head;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The sync interval B runs with; a revocation must reach it within one.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);

struct Image {
    collection: &'static str,
    name: &'static str,
    file: PathBuf,
    root: String,
}

impl Image {
    /// Every route that serves this image's manifest or bytes to a bearer token.
    fn routes(&self) -> Vec<String> {
        let (c, n, r) = (self.collection, self.name, &self.root);
        vec![
            format!("/shubnet/v1/manifests/{c}/{n}/1"),
            format!("/v1/images/{c}/{n}:1?arch=amd64"),
            format!("/v1/imagefile/{c}/{n}:1?arch=amd64"),
            format!("/ipfs/{r}"),
            format!("/ipfs/{r}?format=raw"),
            format!("/ipfs/{r}?format=car"),
        ]
    }
}

struct World {
    _tmp: tempfile::TempDir,
    a: TestNode,
    b: TestNode,
    c: TestNode,
    secret: Image,
    open: Image,
}

fn cid_of(node: &TestNode, file: &std::path::Path) -> String {
    node.cli(&["cid", file.to_str().expect("utf8")])
        .ok()
        .out()
        .trim()
        .to_owned()
}

/// A founds the federation naming its gateway, makes `lab-a` private and pushes a secret into
/// it; B is admitted, joins, bootstraps from A and pushes a public image of its own.
fn world() -> World {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = TestNode::start();
    let mut b = TestNode::start();
    let c = TestNode::start();
    let id = create_with(&a, "Fed", "lab-a", &["--gateway", a.url()]);
    let line = request(&b, "lab-b");
    a.cli(&["federation", "admit", &line]).ok();
    join(&b, &id, a.url());
    let a_addr = a.p2p_addr();
    b.set_serve_args(&["--bootstrap", &a_addr, "--sync-interval", "2"], &[]);
    b.restart();

    a.cli(&["collection", "set-private", "lab-a"]).ok();
    let secret_file = tmp.path().join("secret.sif");
    kubo_file(&secret_file, "private-fed-secret", 700_000);
    let secret_manifest = push(&a, &secret_file, "lab-a/secret:1", false);
    let open_file = tmp.path().join("open.sif");
    kubo_file(&open_file, "private-fed-open", 600_000);
    let open_manifest = push(&b, &open_file, "lab-b/open:1", false);
    wait_private_on(&b, "lab-a");
    let probe = federation_token(&a, "probe", "lab-a");
    wait_manifest(
        &b,
        "/shubnet/v1/manifests/lab-a/secret/1",
        &probe,
        &secret_manifest,
    );
    wait_head(&a, "lab-b/open:1", &open_manifest, Duration::from_secs(30));
    let secret = Image {
        collection: "lab-a",
        name: "secret",
        root: cid_of(&a, &secret_file),
        file: secret_file,
    };
    let open = Image {
        collection: "lab-b",
        name: "open",
        root: cid_of(&b, &open_file),
        file: open_file,
    };
    World {
        _tmp: tmp,
        a,
        b,
        c,
        secret,
        open,
    }
}

/// Waits up to 30 s until `node` serves the manifest at `route` to `token` and it is `cid`. A
/// private tag is listed to nobody, so `tags` cannot tell when it arrived.
#[track_caller]
fn wait_manifest(node: &TestNode, route: &str, token: &str, cid: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = with_token(node, route, Some(token));
        if r.status == 200 && r.header("x-shubnet-manifest-cid") == Some(cid) {
            return;
        }
        assert!(Instant::now() < deadline, "{route} never served {cid}\n{r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn with_token(node: &TestNode, route: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http("GET", &node.at(route), &headers)
}

/// The id `token list` shows for the token of `user`.
fn token_id(node: &TestNode, user: &str) -> String {
    let v = json_of(&node.cli(&["token", "list", "--json"]).ok());
    v.as_array()
        .into_iter()
        .flatten()
        .find(|t| t["user"] == user)
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("no token of {user}: {v:#}"))
        .to_owned()
}

#[test]
fn every_route_on_every_node_follows_the_owners_policy_for_every_token() {
    js::helia_node();
    let w = world();
    let (a, b, c) = (&w.a, &w.b, &w.c);
    let valid = federation_token(a, "alice", "lab-a");
    let revoked = federation_token(a, "rob", "lab-a");
    a.cli(&["token", "revoke", &token_id(a, "rob")]).ok();
    // B signs a federation token for A's collection: it verifies, but B owns nothing there.
    let forged = federation_token(b, "mallory", "lab-a");
    // B's own node-local token for A's collection: only the owner authorises readers.
    let b_local = user_token(b, "bob", "lab-a", "pull");
    let garbage = "0123456789abcdef0123456789abcdef01234567".to_owned();
    let tokens: [(&str, Option<&str>); 6] = [
        ("no token", None),
        ("garbage", Some(&garbage)),
        ("forged by B", Some(&forged)),
        ("B's local token", Some(&b_local)),
        ("revoked", Some(&revoked)),
        ("valid", Some(&valid)),
    ];
    // The revocation reached B (pushed at once; pulled every round otherwise).
    let deadline = Instant::now() + SYNC_INTERVAL * 2;
    while with_token(b, &w.secret.routes()[0], Some(&revoked)).status != 403 {
        assert!(Instant::now() < deadline, "B still accepts a revoked token");
        std::thread::sleep(Duration::from_millis(100));
    }

    let secret_bytes = std::fs::read(&w.secret.file).expect("read");
    for (node_name, node) in [("A (owner)", a), ("B (member)", b)] {
        for route in w.secret.routes() {
            for (kind, token) in tokens {
                let r = with_token(node, &route, token);
                let what = format!("{node_name} GET {route} with {kind}");
                if kind == "valid" {
                    assert_eq!(r.status, 200, "{what}\n{r}");
                    let metadata = route.starts_with("/v1/images/");
                    assert!(
                        metadata
                            || r.header("cache-control")
                                .is_some_and(|v| v.contains("no-store")),
                        "{what}: private content must not be cached publicly\n{r}"
                    );
                    if route == format!("/ipfs/{}", w.secret.root) {
                        assert!(r.body == secret_bytes, "{what}: bytes differ");
                    }
                } else {
                    assert_eq!(r.status, 403, "{what}\n{r}");
                    let body = String::from_utf8_lossy(&r.body);
                    let hinted = body.contains(a.url());
                    assert_eq!(
                        hinted,
                        node_name.starts_with('B'),
                        "{what}: a member names the owner's gateway, the owner does not\n{r}"
                    );
                }
            }
        }
        for route in w.open.routes() {
            for (kind, token) in tokens {
                let r = with_token(node, &route, token);
                assert_eq!(
                    r.status, 200,
                    "{node_name} GET {route} (public) with {kind}\n{r}"
                );
            }
        }
        // Routes without bearer tokens: shub, the UI, listings and search.
        for (route, want) in [
            ("/api/container/lab-a/secret:1".to_owned(), 403),
            ("/api/container/lab-b/open:1".to_owned(), 200),
        ] {
            let r = with_token(node, &route, None);
            assert_eq!(r.status, want, "{node_name} GET {route}\n{r}");
        }
        let ui = with_token(node, "/ui/images/lab-a/secret/1", None);
        assert!(ui.status == 403 || ui.status == 404, "{node_name} UI\n{ui}");
        for route in [
            "/v1/search?value=secret",
            "/api/container/search/secret",
            "/api/collection/search/secret",
            "/ui/search?q=secret",
            "/shubnet/v1/tags",
            "/api/containers",
        ] {
            let r = with_token(node, route, None);
            let body = String::from_utf8_lossy(&r.body);
            let named = [
                "lab-a/secret",
                "lab-a_secret",
                "secret:1",
                w.secret.root.as_str(),
            ]
            .iter()
            .any(|s| body.contains(s));
            assert!(!named, "{node_name} {route} names the private image\n{r}");
        }
        let r = with_token(node, "/shubnet/v1/tags", None);
        assert!(
            String::from_utf8_lossy(&r.body).contains("lab-b/open"),
            "{node_name} lists no public tag either\n{r}"
        );
    }

    // C, outside the federation, has nothing to give, whatever the token.
    for route in w.secret.routes() {
        for (kind, token) in tokens {
            let r = with_token(c, &route, token);
            assert_ne!(r.status, 200, "C GET {route} with {kind}\n{r}");
        }
    }

    // B now holds the secret (it fetched it for the valid token). A non-member Helia peer gets
    // it from neither member over Bitswap, while B's public image comes through.
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, node) in [("A", a), ("B", b)] {
        let out = tmp.path().join(format!("secret-from-{name}"));
        let run = js::helia_fetch(
            &node.p2p_addr(),
            &w.secret.root,
            &out,
            Duration::from_secs(8),
        );
        assert!(
            !run.status.success(),
            "a non-member fetched the secret from {name} over Bitswap\n{run}"
        );
    }
    let out = tmp.path().join("open-from-b");
    let run = js::helia_fetch(&b.p2p_addr(), &w.open.root, &out, js::HELIA_FETCH_TIMEOUT);
    assert!(
        run.status.success(),
        "Helia could not fetch the public image\n{run}"
    );
    assert_same_file(&out, &w.open.file);
}

#[test]
fn only_the_owner_changes_visibility_and_revocations_reach_members_within_a_sync_interval() {
    let mut w = world();
    let (a, b) = (&w.a, &w.b);
    let route = &w.secret.routes()[0];

    // B cannot make A's collection public, for itself or anyone.
    b.cli(&["collection", "set-public", "lab-a"])
        .fails()
        .stderr_mentions("belongs to institution lab-a");
    assert_eq!(with_token(b, route, None).status, 403);

    // A revokes a token B accepts: B refuses it within one sync interval.
    let t = federation_token(a, "dora", "lab-a");
    assert_eq!(with_token(b, route, Some(&t)).status, 200);
    let id = token_id(a, "dora");
    let started = Instant::now();
    a.cli(&["token", "revoke", &id]).ok();
    while with_token(b, route, Some(&t)).status != 403 {
        assert!(
            started.elapsed() < SYNC_INTERVAL,
            "B still accepted a revoked token after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("revocation reached B after {:?}", started.elapsed());

    // B is down when A revokes another token, so A's push misses it: B pulls the revocation in
    // its first sync round after it is back.
    let t = federation_token(a, "erin", "lab-a");
    assert_eq!(with_token(b, route, Some(&t)).status, 200);
    w.b.stop();
    a.cli(&["token", "revoke", &token_id(a, "erin")]).ok();
    w.b.restart();
    let b = &w.b;
    let back = Instant::now();
    while with_token(b, route, Some(&t)).status != 403 {
        assert!(
            back.elapsed() < SYNC_INTERVAL * 2,
            "B still accepted a token revoked while it was down, {:?} after it came back\n{}",
            back.elapsed(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "a revocation missed while down reached B {:?} after it came back",
        back.elapsed()
    );

    // The owner makes it public: every member serves it anonymously; private again: refused.
    a.cli(&["collection", "set-public", "lab-a"]).ok();
    let deadline = Instant::now() + SYNC_INTERVAL * 2;
    while with_token(b, route, None).status != 200 {
        assert!(Instant::now() < deadline, "B never followed set-public");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.cli(&["collection", "set-private", "lab-a"]).ok();
    wait_private_on(b, "lab-a");
    assert_eq!(with_token(b, route, None).status, 403);
}

#[test]
fn a_flag_set_before_the_federation_existed_becomes_its_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = TestNode::start();
    let mut b = TestNode::start();
    // Set while A was on its own: a per-node flag, as every node before federation-wide
    // privacy kept it.
    a.cli(&["collection", "set-private", "lab-a"]).ok();
    let id = create_with(&a, "Fed", "lab-a", &[]);
    let file = tmp.path().join("old-secret.sif");
    kubo_file(&file, "private-fed-old", 400_000);
    let manifest = push(&a, &file, "lab-a/old:1", false);
    let line = request(&b, "lab-b");
    a.cli(&["federation", "admit", &line]).ok();
    join(&b, &id, a.url());
    let a_addr = a.p2p_addr();
    b.set_serve_args(&["--bootstrap", &a_addr, "--sync-interval", "2"], &[]);
    b.restart();
    // B holds the manifest, and never serves it without a token.
    wait_private_on(&b, "lab-a");
    let probe = federation_token(&a, "probe", "lab-a");
    wait_manifest(&b, "/shubnet/v1/manifests/lab-a/old/1", &probe, &manifest);
    http("GET", &b.at("/shubnet/v1/manifests/lab-a/old/1"), &[]).expect_status(403);
    let root = cid_of(&a, &file);
    http("GET", &b.at(&format!("/ipfs/{root}")), &[]).expect_status(403);
}
