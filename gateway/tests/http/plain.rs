//! Plain file bytes, as `apptainer pull ipfs://CID` and `curl` fetch them.

use crate::mem::MemBackend;
use crate::*;
use shubnet_protocol::cid::{DAG_PB, cid_for};
use shubnet_protocol::dagpb::{PbLink, PbNode, UnixfsData, data_type};

/// A file of several 1000-byte chunks of the mem backend's read stream.
fn big() -> (MemBackend, File) {
    let backend = MemBackend::new(Layout::new(256, 4).expect("layout"));
    let file = backend.import(&distinct_data(5000));
    (backend, file)
}

#[tokio::test]
async fn full_file_with_headers() {
    let (backend, file) = big();
    let cid = file.root.to_string();
    let r = get(&backend, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), file.data.as_slice());
    assert_eq!(r.header("content-length"), "5000");
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert_eq!(r.header("content-disposition"), "");
    assert_ipfs_headers(&r, &cid, &format!("\"{cid}\""));
    assert_eq!(backend.read_calls(), vec![(file.root, 0, 5000)]);
}

#[tokio::test]
async fn trailing_slash_and_browser_accept_serve_the_file() {
    let (backend, file) = big();
    let r = get(
        &backend,
        &format!("/ipfs/{}/", file.root),
        &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), file.data.as_slice());
}

#[tokio::test]
async fn single_ranges_stream_only_the_window() {
    let (backend, file) = big();
    let uri = format!("/ipfs/{}", file.root);
    for (range, start, end) in [
        ("bytes=100-1999", 100u64, 2000u64),
        ("bytes=4990-", 4990, 5000),
        ("bytes=-7", 4993, 5000),
        ("bytes=0-0", 0, 1),
        ("bytes=4000-99999", 4000, 5000),
    ] {
        let r = get(&backend, &uri, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body.as_ref(), &file.data[start as usize..end as usize]);
        assert_eq!(
            r.header("content-range"),
            format!("bytes {start}-{}/5000", end - 1)
        );
        assert_eq!(r.header("content-length"), (end - start).to_string());
        assert_eq!(backend.read_calls().last(), Some(&(file.root, start, end)));
    }
}

#[tokio::test]
async fn multi_and_invalid_ranges_get_the_whole_file() {
    let (backend, file) = big();
    let uri = format!("/ipfs/{}", file.root);
    for range in ["bytes=0-1,5-6", "bytes=9-3", "lines=1-2"] {
        let r = get(&backend, &uri, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::OK, "{range}");
        assert_eq!(r.body.len(), 5000);
        assert_eq!(r.header("content-range"), "");
    }
}

#[tokio::test]
async fn range_past_the_end_is_416() {
    let (backend, file) = big();
    let r = get(
        &backend,
        &format!("/ipfs/{}", file.root),
        &[("range", "bytes=5000-")],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */5000");
    assert!(r.error().contains("not satisfiable"));
    assert!(backend.read_calls().is_empty());
}

#[tokio::test]
async fn if_range_with_another_tag_ignores_the_range() {
    let (backend, file) = big();
    let uri = format!("/ipfs/{}", file.root);
    let r = get(
        &backend,
        &uri,
        &[("range", "bytes=0-9"), ("if-range", "\"something-else\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 5000);
    let ours = format!("\"{}\"", file.root);
    let r = get(
        &backend,
        &uri,
        &[("range", "bytes=0-9"), ("if-range", &ours)],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), &file.data[..10]);
}

#[tokio::test]
async fn if_none_match_gives_304_without_reading() {
    let (backend, file) = big();
    let etag = format!("\"{}\"", file.root);
    let r = get(
        &backend,
        &format!("/ipfs/{}", file.root),
        &[("if-none-match", &format!("\"other\", {etag}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), etag);
    assert_eq!(r.header("cache-control"), IMMUTABLE);
    assert!(backend.read_calls().is_empty());

    let r = get(
        &backend,
        &format!("/ipfs/{}", file.root),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let missing = cid_for(shubnet_protocol::cid::RAW, b"absent");
    let r = get(
        &backend,
        &format!("/ipfs/{missing}"),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn head_reports_length_without_reading() {
    let (backend, file) = big();
    let uri = format!("/ipfs/{}", file.root);
    let h = head(&backend, &uri, &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), "5000");
    assert_eq!(h.header("etag"), format!("\"{}\"", file.root));
    let h = head(&backend, &uri, &[("range", "bytes=10-19")]).await;
    assert_eq!(h.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h.header("content-range"), "bytes 10-19/5000");
    assert_eq!(h.header("content-length"), "10");
    assert!(backend.read_calls().is_empty());
}

#[tokio::test]
async fn single_leaf_and_empty_files() {
    let backend = MemBackend::new(Layout::default());
    let small = backend.import(b"hello world");
    assert_eq!(
        small.root.to_string(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    let r = get(&backend, &format!("/ipfs/{}", small.root), &[]).await;
    assert_eq!(r.body.as_ref(), b"hello world");
    let empty = backend.import(b"");
    let r = get(&backend, &format!("/ipfs/{}", empty.root), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "0");
    assert!(r.body.is_empty());
    let r = get(
        &backend,
        &format!("/ipfs/{}", empty.root),
        &[("range", "bytes=0-")],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */0");
}

#[tokio::test]
async fn filename_and_download_params() {
    let (backend, file) = big();
    let r = get(
        &backend,
        &format!("/ipfs/{}?filename=alpine.sif", file.root),
        &[],
    )
    .await;
    assert_eq!(
        r.header("content-disposition"),
        "inline; filename=\"alpine.sif\""
    );
    let r = get(
        &backend,
        &format!("/ipfs/{}?filename=alpine.sif&download=true", file.root),
        &[],
    )
    .await;
    assert_eq!(
        r.header("content-disposition"),
        "attachment; filename=\"alpine.sif\""
    );
}

#[tokio::test]
async fn probe_and_identity_files_never_reach_the_backend() {
    let backend = MemBackend::new(Layout::default());
    let r = get(&backend, &format!("/ipfs/{PROBE}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), "0");
    assert_eq!(r.header("etag"), format!("\"{PROBE}\""));
    let h = head(&backend, &format!("/ipfs/{PROBE}"), &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    let r = get(
        &backend,
        &format!("/ipfs/{INLINED}"),
        &[("range", "bytes=6-6")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), b"i");
    assert!(backend.block_requests().is_empty());
    assert!(backend.read_calls().is_empty());
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let (backend, file) = big();
    let missing = cid_for(shubnet_protocol::cid::RAW, b"absent");
    let r = get(&backend, &format!("/ipfs/{missing}"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("not held"));
    let h = head(&backend, &format!("/ipfs/{missing}"), &[]).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);

    let r = get(&backend, "/ipfs/bafy-not-a-cid", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.header("content-type"), "application/json");

    let r = get(&backend, &format!("/ipfs/{}?format=tar", file.root), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("tar"));

    let r = get(&backend, &format!("/ipfs/{}/sub/path", file.root), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert!(r.error().contains("paths below a CID"));
}

#[tokio::test]
async fn a_directory_is_not_served_as_plain_bytes() {
    let (backend, file) = big();
    let dir = PbNode {
        links: vec![PbLink {
            hash: file.root,
            name: Some("image.sif".into()),
            tsize: Some(5000),
        }],
        data: Some(
            UnixfsData {
                kind: data_type::DIRECTORY,
                ..Default::default()
            }
            .encode(),
        ),
    }
    .encode();
    let cid = cid_for(DAG_PB, &dir);
    backend.insert_block(cid, dir);
    let r = get(&backend, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert!(r.error().contains("only files"), "{}", r.error());
    // The same block is still available raw.
    let r = get(&backend, &format!("/ipfs/{cid}?format=raw"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}
