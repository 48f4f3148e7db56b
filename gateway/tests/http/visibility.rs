//! The visibility guarantee: every route the gateway registers is classified here, and every
//! route that serves an image's bytes is requested for content of a private collection, without
//! credentials (refused with the status its client expects) and with a pull token (served).
//! A route added to any router without a classification fails `every_route_is_classified`.

use crate::mem::{MemBackend, PULL_TOKEN};
use crate::{Reply, app, deep_file, request, send};
use axum::http::StatusCode;
use shubnet_protocol::Cid;
use std::path::{Path, PathBuf};

/// What a route can reveal of an image, and so how privacy reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Serves content by CID; asks `visibility::may_read_content`. Walked live below.
    Content,
    /// Serves content by CID only behind a signed or public download secret; the public secret
    /// asks `visibility::may_read_content`. Walked live below.
    SignedDownload,
    /// Resolves an image through the registry (manifests, tags, listings, search) and asks the
    /// visibility checks of its API before answering with or about a private collection.
    Registry,
    /// Behind the admin token: the operator sees everything.
    Admin,
    /// Reveals nothing of any image: health, versions, static files, refusals, upload intake.
    NoImage,
}

use Class::*;

/// Every route template in `gateway/src`, by the file that registers it (nested prefixes such as
/// `/admin/v1` and `/shubnet/v1` are added by `lib.rs`, so the file names the router).
const ROUTES: &[(&str, &str, Class)] = &[
    ("admin.rs", "/add", Admin),
    ("admin.rs", "/car/import", Admin),
    ("admin.rs", "/fetch", Admin),
    ("admin.rs", "/pins", Admin),
    ("admin.rs", "/pins/{cid}", Admin),
    ("admin.rs", "/scrub", Admin),
    ("admin.rs", "/gc", Admin),
    ("admin.rs", "/repair", Admin),
    ("admin.rs", "/status", Admin),
    ("admin.rs", "/backup", Admin),
    ("admin.rs", "/leave", Admin),
    ("admin.rs", "/shutdown", Admin),
    ("health.rs", "/healthz", NoImage),
    ("health.rs", "/readyz", NoImage),
    ("ipfs.rs", "/ipfs/{cid}", Content),
    ("ipfs.rs", "/ipfs/{cid}/", Content),
    ("ipfs.rs", "/ipfs/{cid}/{*path}", NoImage),
    ("lib.rs", "/metrics", NoImage),
    ("library/mod.rs", "/assets/config/config.prod.json", NoImage),
    ("library/mod.rs", "/version", NoImage),
    ("library/mod.rs", "/v1/", NoImage),
    ("library/mod.rs", "/v1/token-status", NoImage),
    ("library/mod.rs", "/v1/oci-redirect", NoImage),
    ("library/mod.rs", "/v1/entities/{*name}", NoImage),
    ("library/mod.rs", "/v1/entities", NoImage),
    ("library/mod.rs", "/v1/collections/{*path}", Registry),
    ("library/mod.rs", "/v1/collections", Registry),
    ("library/mod.rs", "/v1/containers/{*path}", NoImage),
    ("library/mod.rs", "/v1/containers", NoImage),
    ("library/mod.rs", "/v1/images/{*path}", Registry),
    ("library/mod.rs", "/v1/images", Registry),
    ("library/mod.rs", "/v1/imagefile/{*path}", Registry),
    ("library/mod.rs", "/v2/imagefile/{id}", NoImage),
    ("library/mod.rs", "/v2/imagefile/{id}/_multipart", NoImage),
    (
        "library/mod.rs",
        "/v2/imagefile/{id}/_multipart_complete",
        NoImage,
    ),
    (
        "library/mod.rs",
        "/v2/imagefile/{id}/_multipart_abort",
        NoImage,
    ),
    ("library/mod.rs", "/v2/imagefile/{id}/_complete", NoImage),
    ("library/mod.rs", "/v2/part/{uid}/{part}/{secret}", NoImage),
    ("library/mod.rs", "/v2/upload/{id}/{secret}", NoImage),
    ("library/mod.rs", "/v1/tags/{id}", Registry),
    ("library/mod.rs", "/v2/tags/{id}", Registry),
    ("oci/mod.rs", "/v2/", NoImage),
    ("oci/mod.rs", "/v2/token", NoImage),
    ("oci/mod.rs", "/v2/_catalog", Registry),
    ("oci/mod.rs", "/v2/{c}/{n}/tags/list", Registry),
    ("oci/mod.rs", "/v2/{c}/{n}/manifests/{reference}", Registry),
    ("oci/mod.rs", "/v2/{c}/{n}/blobs/{digest}", Registry),
    ("oci/mod.rs", "/v2/{c}/{n}/blobs/uploads/", NoImage),
    ("oci/mod.rs", "/v2/{c}/{n}/blobs/uploads/{id}", NoImage),
    ("publish.rs", "/federation", Admin),
    ("publish.rs", "/push", Admin),
    ("publish.rs", "/delete", Admin),
    ("shub/listing.rs", "/api/containers", Registry),
    ("shub/listing.rs", "/api/containers/", Registry),
    ("shub/listing.rs", "/api/collections", Registry),
    ("shub/listing.rs", "/api/collections/", Registry),
    ("shub/listing.rs", "/api/collection/search/{q}", Registry),
    ("shub/listing.rs", "/api/collection/{name}", Registry),
    ("shub/listing.rs", "/api/labels/search", Registry),
    ("shub/listing.rs", "/api/labels/search/{k}/key", Registry),
    (
        "shub/listing.rs",
        "/api/labels/search/{k}/key/{v}/value",
        Registry,
    ),
    ("shub/listing.rs", "/api/labels/search/{v}/value", Registry),
    ("shub/listing.rs", "/api/registry/identity", NoImage),
    ("shub/mod.rs", "/api/container/{*rest}", Registry),
    (
        "shub/mod.rs",
        "/containers/{cid}/download/{secret}",
        SignedDownload,
    ),
    ("shub/mod.rs", "/api/upload/chunked_upload", NoImage),
    ("shub/mod.rs", "/upload/chunked_upload", NoImage),
    ("shub/mod.rs", "/upload", NoImage),
    ("tokens/routes.rs", "/tokens", Admin),
    ("tokens/routes.rs", "/tokens/check", Admin),
    ("tokens/routes.rs", "/tokens/{id}", Admin),
    ("tokens/routes.rs", "/collections", Admin),
    ("tokens/routes.rs", "/collections/{name}", Admin),
    ("tokens/routes.rs", "/collections/{name}/private", Admin),
    ("ui/mod.rs", "/", Registry),
    ("ui/mod.rs", "/ui", Registry),
    ("ui/mod.rs", "/ui/", Registry),
    ("ui/mod.rs", "/ui/style.css", NoImage),
    ("ui/mod.rs", "/ui/search", Registry),
    ("ui/mod.rs", "/ui/federation", Registry),
    ("ui/mod.rs", "/ui/collections/{c}", Registry),
    ("ui/mod.rs", "/ui/images/{c}/{n}/{t}", Registry),
    ("ui/mod.rs", "/ui/images/{c}/{n}/{t}/star", Registry),
    ("verify.rs", "/federation", Registry),
    (
        "verify.rs",
        "/manifests/{collection}/{name}/{tag}",
        Registry,
    ),
    ("verify.rs", "/manifest/{cid}", Registry),
    ("verify.rs", "/tags", Registry),
];

/// Every `.route("template"` in the gateway's production sources, as (file, template).
fn registered_routes() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("readable source dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let file = path
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            // Unit tests build their own routers; they serve nothing in production.
            if file.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            for (at, _) in text.match_indices(".route(") {
                let rest = text[at + ".route(".len()..].trim_start();
                let template = rest
                    .strip_prefix('"')
                    .and_then(|r| r.split_once('"'))
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_else(|| panic!("{file}: a .route( whose path is not a literal"));
                out.push((file.clone(), template));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

#[test]
fn every_route_is_classified() {
    let registered = registered_routes();
    let unclassified: Vec<_> = registered
        .iter()
        .filter(|(f, t)| !ROUTES.iter().any(|(rf, rt, _)| rf == f && rt == t))
        .collect();
    assert!(
        unclassified.is_empty(),
        "routes with no visibility classification in tests/http/visibility.rs: {unclassified:?}"
    );
    let stale: Vec<_> = ROUTES
        .iter()
        .filter(|(f, t, _)| !registered.iter().any(|(rf, rt)| rf == f && rt == t))
        .collect();
    assert!(
        stale.is_empty(),
        "classified routes that no router registers: {stale:?}"
    );
}

/// A deep file whose root and every block belong to the private collection `priv`.
fn private_file() -> (MemBackend, crate::mem::File, Cid) {
    let (backend, file) = deep_file();
    let mut cids = vec![file.root];
    cids.extend(file.leaves.iter().map(|(c, _, _)| *c));
    cids.extend(file.nodes.iter().map(|(c, _)| *c));
    backend.file_in(&cids, "priv");
    backend.mark_private("priv");
    let leaf = file.leaves[0].0;
    (backend, file, leaf)
}

fn bearer() -> String {
    format!("Bearer {PULL_TOKEN}")
}

/// A request as clients send it: with a `Host` (shub listings build URLs from it) and, when
/// given, an `Authorization` header.
async fn call(backend: &MemBackend, method: &str, uri: &str, auth: Option<&str>) -> Reply {
    let mut headers = vec![("host", "gateway.test")];
    headers.extend(auth.map(|a| ("authorization", a)));
    send(app(backend), request(method, uri, &headers)).await
}

/// Every way `/ipfs/{cid}[/]` serves content, with the body a served reply must carry.
fn content_requests(file: &crate::mem::File, leaf: &Cid) -> Vec<(&'static str, String)> {
    let root = file.root;
    vec![
        ("GET", format!("/ipfs/{root}")),
        ("GET", format!("/ipfs/{root}/")),
        ("HEAD", format!("/ipfs/{root}")),
        ("GET", format!("/ipfs/{root}?format=raw")),
        ("GET", format!("/ipfs/{leaf}?format=raw")),
        ("GET", format!("/ipfs/{root}?format=car")),
        ("GET", format!("/ipfs/{leaf}?format=car")),
    ]
}

#[tokio::test]
async fn content_routes_refuse_private_content_without_a_token() {
    let (backend, file, leaf) = private_file();
    for (method, uri) in content_requests(&file, &leaf) {
        for auth in [None, Some("Bearer not-a-token"), Some("Bearer ")] {
            let r = call(&backend, method, &uri, auth).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {uri} with {auth:?}"
            );
            if method == "GET" {
                assert!(
                    r.error().contains("private") || r.error().contains("not valid"),
                    "{method} {uri}: {}",
                    r.error()
                );
            }
            assert!(
                !r.body
                    .windows(file.data.len().min(16))
                    .any(|w| file.data.starts_with(w)),
                "{method} {uri} leaked file bytes"
            );
        }
    }
    assert!(
        backend.read_calls().is_empty() && backend.block_requests().is_empty(),
        "a refused request read content"
    );
}

#[tokio::test]
async fn content_routes_serve_private_content_with_a_pull_token() {
    let bearer = bearer();
    let (backend, file, leaf) = private_file();
    for (method, uri) in content_requests(&file, &leaf) {
        let r = call(&backend, method, &uri, Some(bearer.as_str())).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {uri}");
        if method == "HEAD" {
            assert!(r.body.is_empty());
        } else {
            assert!(!r.body.is_empty(), "{method} {uri} served nothing");
        }
    }
    let r = call(
        &backend,
        "GET",
        &format!("/ipfs/{}", file.root),
        Some(bearer.as_str()),
    )
    .await;
    assert_eq!(r.body.as_ref(), file.data.as_slice());
}

#[tokio::test]
async fn public_download_urls_refuse_private_content() {
    let bearer = bearer();
    let (backend, file, _) = private_file();
    for method in ["GET", "HEAD"] {
        for auth in [None, Some(bearer.as_str())] {
            let uri = format!("/containers/{}/download/public", file.root);
            let r = call(&backend, method, &uri, auth).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri} {auth:?}");
        }
        // A forged secret is not a signed URL.
        let uri = format!("/containers/{}/download/0-deadbeef", file.root);
        let r = call(&backend, method, &uri, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    assert!(backend.read_calls().is_empty() && backend.block_requests().is_empty());
}

/// The same routes serve the same file once its collection is public: the refusals above are
/// the privacy check, not a failure to serve.
#[tokio::test]
async fn the_same_routes_serve_public_content_without_a_token() {
    let (backend, file) = deep_file();
    backend.file_in(&[file.root], "pub");
    let leaf = file.leaves[0].0;
    for (method, uri) in content_requests(&file, &leaf) {
        let r = call(&backend, method, &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {uri}");
    }
    let uri = format!("/containers/{}/download/public", file.root);
    let r = call(&backend, "GET", &uri, None).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}");
    assert_eq!(r.body.as_ref(), file.data.as_slice());
}

/// Routes that resolve an image through the registry ask visibility before resolving it: without
/// a token they refuse `priv` with 403 (401/403 for shub's HMAC, a 403 page for the UI), and with
/// a pull token the manifest routes serve the private image.
#[tokio::test]
async fn registry_routes_ask_visibility_before_resolving() {
    let (backend, file, _) = private_file();
    let m = backend.publish("priv/img:latest", &file);
    let bearer = bearer();
    let manifest_cid = m.cid().to_string();
    let with_token_passes = [
        "/shubnet/v1/manifests/priv/img/latest".to_string(),
        format!("/shubnet/v1/manifest/{manifest_cid}"),
        "/v1/images/priv/img:latest".to_string(),
        "/v1/imagefile/priv/img:latest".to_string(),
    ];
    for uri in &with_token_passes {
        for auth in [None, Some("Bearer not-a-token")] {
            let r = call(&backend, "GET", uri, auth).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "GET {uri} {auth:?}");
            assert!(
                !String::from_utf8_lossy(&r.body).contains(&file.root.to_string()),
                "GET {uri} named the private root"
            );
        }
        let r = call(&backend, "GET", uri, Some(bearer.as_str())).await;
        assert_eq!(r.status, StatusCode::OK, "GET {uri} with a pull token");
    }
    let r = call(
        &backend,
        "GET",
        "/v1/imagefile/priv/img:latest",
        Some(bearer.as_str()),
    )
    .await;
    assert_eq!(r.body.as_ref(), file.data.as_slice());
    for uri in [
        "/api/container/priv/img:latest",
        "/ui/images/priv/img/latest",
    ] {
        let r = call(&backend, "GET", uri, None).await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNAUTHORIZED,
            "GET {uri}: {}",
            r.status
        );
        assert!(!String::from_utf8_lossy(&r.body).contains(&file.root.to_string()));
    }
    // The OCI API challenges an anonymous client (401, so it fetches a token), refuses a bad
    // token, and serves the manifest, tags and layer to a pull token.
    let oci = [
        "/v2/priv/img/manifests/latest".to_string(),
        "/v2/priv/img/tags/list".to_string(),
        format!("/v2/priv/img/blobs/sha256:{}", hex::encode(m.body.sha256)),
    ];
    for uri in &oci {
        let r = call(&backend, "GET", uri, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "GET {uri}");
        let r = call(&backend, "GET", uri, Some("Bearer not-a-token")).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "GET {uri} with a bad token"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("latest\""));
        let r = call(&backend, "GET", uri, Some(bearer.as_str())).await;
        assert_eq!(r.status, StatusCode::OK, "GET {uri} with a pull token");
    }
    let r = call(&backend, "GET", &oci[2], Some(bearer.as_str())).await;
    assert_eq!(r.body.as_ref(), file.data.as_slice());
}

/// Every listing and search, shub, library, verification and UI, leaves a private collection
/// out, even though this backend's index and tag list name it (a backend that forgot privacy):
/// the gateway asks visibility for each collection it lists. The public image beside it is
/// listed, so an empty answer cannot pass.
#[tokio::test]
async fn listings_and_search_leave_private_collections_out() {
    let (backend, secret, _) = private_file();
    backend.publish("priv/secretimg:1", &secret);
    let open = backend.import(&crate::distinct_data(3000));
    backend.publish("pub/openimg:1", &open);
    let secret_root = secret.root.to_string();
    // (route, whether the public image must appear in it)
    let listings = [
        ("/api/containers", true),
        ("/api/containers/", true),
        ("/api/collections", true),
        ("/api/collections/", true),
        ("/api/collection/search/img", true),
        ("/api/collection/priv", false),
        ("/api/labels/search", false),
        ("/v1/collections/priv", false),
        ("/shubnet/v1/tags", true),
        ("/shubnet/v1/tags?prefix=priv", false),
        ("/", true),
        ("/ui", true),
        ("/ui/", true),
        ("/ui/search?q=img", true),
        ("/ui/search?q=secretimg", false),
        ("/ui/collections/priv", false),
        ("/ui/collections/pub", true),
        ("/v2/_catalog", true),
    ];
    for (uri, lists_public) in listings {
        let r = call(&backend, "GET", uri, None).await;
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("priv/secretimg")
                && !text.contains("secretimg:1")
                && !text.contains(":\"secretimg\"")
                && !text.contains(&secret_root),
            "GET {uri} ({}) named the private image: {text}",
            r.status
        );
        if lists_public {
            assert_eq!(r.status, StatusCode::OK, "GET {uri}: {text}");
            assert!(
                text.contains("openimg") || text.contains(">pub<") || text.contains("\"pub\""),
                "GET {uri} did not list the public image: {text}"
            );
        }
    }
    // The verification API lists a private tag to a token that may pull it.
    let bearer = bearer();
    let r = call(&backend, "GET", "/shubnet/v1/tags", Some(bearer.as_str())).await;
    assert!(String::from_utf8_lossy(&r.body).contains("secretimg"));
}
