//! `?format=raw` / `Accept: application/vnd.ipld.raw`: the cases of gateway-conformance's
//! `trustless_gateway_raw_test.go`, plus ranges, conditionals, HEAD and the probe.

use crate::mem::MemBackend;
use crate::*;

const RAW: &str = "application/vnd.ipld.raw";

/// A leaf and an internal node of the deep file, with their bytes.
fn blocks() -> (MemBackend, Cid, Vec<u8>, Cid, Vec<u8>) {
    let (backend, file) = deep_file();
    let (leaf, off, len) = file.leaves[3];
    let leaf_bytes = file.data[off as usize..(off + len) as usize].to_vec();
    let (node, node_bytes) = file.nodes[0].clone();
    (backend, leaf, leaf_bytes, node, node_bytes)
}

#[tokio::test]
async fn format_raw_returns_the_block_with_all_headers() {
    let (backend, leaf, leaf_bytes, node, node_bytes) = blocks();
    for (cid, bytes) in [(leaf, leaf_bytes), (node, node_bytes)] {
        let r = get(&backend, &format!("/ipfs/{cid}?format=raw"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.as_ref(), bytes.as_slice());
        assert_eq!(r.header("content-type"), RAW);
        assert_eq!(r.header("content-length"), bytes.len().to_string());
        assert_eq!(
            r.header("content-disposition"),
            format!("attachment; filename=\"{cid}.bin\"")
        );
        assert_eq!(r.header("accept-ranges"), "bytes");
        assert_ipfs_headers(&r, &cid.to_string(), &format!("\"{cid}.raw\""));
    }
}

#[tokio::test]
async fn accept_header_selects_raw() {
    let (backend, _, _, node, node_bytes) = blocks();
    let r = get(&backend, &format!("/ipfs/{node}"), &[("accept", RAW)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), RAW);
    assert_eq!(r.body.as_ref(), node_bytes.as_slice());
}

#[tokio::test]
async fn format_param_wins_over_accept() {
    let (backend, _, _, node, node_bytes) = blocks();
    let r = get(
        &backend,
        &format!("/ipfs/{node}?format=raw"),
        &[("accept", "application/vnd.ipld.car")],
    )
    .await;
    assert_eq!(r.header("content-type"), RAW);
    assert_eq!(r.body.as_ref(), node_bytes.as_slice());
}

#[tokio::test]
async fn filename_param_names_the_download() {
    let (backend, leaf, ..) = blocks();
    let r = get(
        &backend,
        &format!("/ipfs/{leaf}?filename=foobar.bin"),
        &[("accept", RAW)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-disposition"),
        "attachment; filename=\"foobar.bin\""
    );
}

#[tokio::test]
async fn range_on_a_raw_block() {
    let (backend, _, _, node, bytes) = blocks();
    let uri = format!("/ipfs/{node}?format=raw");
    let r = get(&backend, &uri, &[("range", "bytes=2-9")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), &bytes[2..10]);
    assert_eq!(
        r.header("content-range"),
        format!("bytes 2-9/{}", bytes.len())
    );
    assert_eq!(r.header("content-length"), "8");
    assert_eq!(r.header("content-type"), RAW);

    let r = get(&backend, &uri, &[("range", "bytes=-4")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), &bytes[bytes.len() - 4..]);

    let past = format!("bytes={}-", bytes.len());
    let r = get(&backend, &uri, &[("range", &past)]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.header("content-range"),
        format!("bytes */{}", bytes.len())
    );
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let (backend, _, _, node, bytes) = blocks();
    let uri = format!("/ipfs/{node}?format=raw");
    let g = get(&backend, &uri, &[]).await;
    let h = head(&backend, &uri, &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), bytes.len().to_string());
    for name in [
        "content-type",
        "content-disposition",
        "etag",
        "cache-control",
        "x-ipfs-path",
        "x-ipfs-roots",
        "x-content-type-options",
    ] {
        assert_eq!(h.header(name), g.header(name), "{name}");
    }
}

#[tokio::test]
async fn if_none_match_gives_304() {
    let (backend, _, _, node, _) = blocks();
    let uri = format!("/ipfs/{node}?format=raw");
    let etag = format!("\"{node}.raw\"");
    let r = get(&backend, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), etag);
    // The plain-file tag does not validate the raw representation.
    let r = get(&backend, &uri, &[("if-none-match", &format!("\"{node}\""))]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_block_is_404_and_malformed_cid_is_400() {
    let backend = MemBackend::new(deep_layout());
    let missing = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"nope");
    let r = get(&backend, &format!("/ipfs/{missing}?format=raw"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains(&missing.to_string()));
    assert_eq!(r.header("content-type"), "application/json");

    let r = get(&backend, "/ipfs/not-a-cid?format=raw", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("not a valid CID"), "{}", r.error());

    let h = head(&backend, &format!("/ipfs/{missing}?format=raw"), &[]).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn probe_returns_an_empty_block_without_asking_the_backend() {
    let backend = MemBackend::new(deep_layout());
    for (uri, headers) in [
        (format!("/ipfs/{PROBE}?format=raw"), vec![]),
        (format!("/ipfs/{PROBE}"), vec![("accept", RAW)]),
    ] {
        let r = get(&backend, &uri, &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-type"), RAW);
        assert_eq!(r.header("content-length"), "0");
        let h = head(&backend, &uri, &headers).await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.header("content-type"), RAW);
        assert!(h.body.is_empty());
    }
    assert!(backend.block_requests().is_empty());
}

#[tokio::test]
async fn identity_cid_serves_its_inline_bytes() {
    let backend = MemBackend::new(deep_layout());
    let r = get(&backend, &format!("/ipfs/{INLINED}?format=raw"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), b"hello i am inlined cid\n");
    assert!(backend.block_requests().is_empty());
}
