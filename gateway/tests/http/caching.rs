//! Caching headers of content responses: a response a shared proxy may keep must be one anyone
//! could have fetched. Token-authorized requests and private content are `private, no-store`
//! and vary on `Authorization`; only public content fetched without credentials is immutable.

use crate::mem::PULL_TOKEN;
use crate::{IMMUTABLE, deep_file, get};
use shubnet_protocol::Cid;

const NO_STORE: &str = "private, no-store";

fn uris(root: &Cid, leaf: &Cid) -> Vec<String> {
    vec![
        format!("/ipfs/{root}"),
        format!("/ipfs/{root}?format=raw"),
        format!("/ipfs/{leaf}?format=raw"),
        format!("/ipfs/{root}?format=car"),
    ]
}

fn assert_private(r: &crate::Reply, what: &str) {
    assert_eq!(r.header("cache-control"), NO_STORE, "{what}");
    let vary = r.header("vary").to_ascii_lowercase();
    assert!(vary.contains("authorization"), "{what}: Vary {vary:?}");
    assert!(vary.contains("accept"), "{what}: Vary {vary:?}");
}

#[tokio::test]
async fn private_content_served_with_a_token_is_not_publicly_cacheable() {
    let (backend, file) = deep_file();
    let leaf = file.leaves[0].0;
    let mut cids = vec![file.root];
    cids.extend(file.leaves.iter().map(|(c, _, _)| *c));
    cids.extend(file.nodes.iter().map(|(c, _)| *c));
    backend.file_in(&cids, "priv");
    backend.mark_private("priv");
    let auth = format!("Bearer {PULL_TOKEN}");
    for uri in uris(&file.root, &leaf) {
        let r = get(&backend, &uri, &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_private(&r, &uri);
        // A revalidation must not turn it cacheable either.
        let etag = r.header("etag").to_string();
        let r = get(
            &backend,
            &uri,
            &[("authorization", &auth), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(r.status, 304, "{uri}");
        assert_private(&r, &format!("{uri} (304)"));
    }
}

#[tokio::test]
async fn public_content_is_private_when_fetched_with_a_token_and_immutable_without() {
    let (backend, file) = deep_file();
    let leaf = file.leaves[0].0;
    backend.file_in(&[file.root], "pub");
    let auth = format!("Bearer {PULL_TOKEN}");
    for uri in uris(&file.root, &leaf) {
        let r = get(&backend, &uri, &[("authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_private(&r, &uri);
        let r = get(&backend, &uri, &[]).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(r.header("cache-control"), IMMUTABLE, "{uri}");
        assert!(r.header("vary").contains("Accept"), "{uri}");
    }
    let r = get(
        &backend,
        &format!("/containers/{}/download/public", file.root),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), IMMUTABLE);
}
