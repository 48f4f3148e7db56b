//! `?format=car` / `Accept: application/vnd.ipld.car`: the cases of gateway-conformance's
//! `trustless_gateway_car_test.go` (dag-scope, entity-bytes, order and dups, Accept precedence,
//! identity CIDs) ported to shubnet's file DAGs, plus the probe, HEAD, conditionals and a
//! block going missing mid-stream.

use crate::mem::MemBackend;
use crate::*;
use http_body_util::BodyExt;
use shubnet_protocol::cid::{DAG_CBOR, DAG_PB, cid_for};
use shubnet_protocol::dagpb::{PbLink, PbNode, UnixfsData, data_type};

const CAR_N: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
const CAR_Y: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=y";

/// GETs a CAR and returns (reply, roots, block CIDs).
async fn car(
    backend: &MemBackend,
    uri: &str,
    headers: &[(&str, &str)],
) -> (Reply, Vec<Cid>, Vec<Cid>) {
    let r = get(backend, uri, headers).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {:?}", r.body);
    let (roots, blocks) = car_blocks(&r.body);
    (r, roots, blocks)
}

/// The block CIDs of `?format=car&<params>` for `cid`.
async fn blocks_of(backend: &MemBackend, cid: &Cid, params: &str) -> Vec<Cid> {
    car(backend, &format!("/ipfs/{cid}?format=car&{params}"), &[])
        .await
        .2
}

// ---- dag-scope -------------------------------------------------------------------------------

#[tokio::test]
async fn default_scope_is_all_in_dfs_order_with_headers() {
    let (backend, file) = deep_file();
    assert!(depth(&file) >= 3, "the test DAG must be deep");
    let cid = file.root.to_string();
    let (r, roots, blocks) = car(&backend, &format!("/ipfs/{cid}?format=car"), &[]).await;
    assert_eq!(roots, vec![file.root]);
    assert_eq!(blocks, expected_all(&file, true));
    assert_eq!(blocks.len(), file.leaves.len() + file.nodes.len());
    assert_eq!(r.header("content-type"), CAR_N);
    assert_eq!(
        r.header("content-disposition"),
        format!("attachment; filename=\"{cid}.car\"")
    );
    assert_eq!(
        r.header("content-length"),
        "",
        "a streamed CAR has no length"
    );
    let etag = r.header("etag").to_string();
    assert!(
        etag.starts_with(&format!("\"{cid}.car.")) && etag.ends_with('"'),
        "{etag}"
    );
    assert_ipfs_headers(&r, &cid, &etag);
}

#[tokio::test]
async fn scope_block_is_the_root_only() {
    let (backend, file) = deep_file();
    assert_eq!(
        blocks_of(&backend, &file.root, "dag-scope=block").await,
        vec![file.root]
    );
}

#[tokio::test]
async fn scope_entity_of_a_file_is_the_whole_file() {
    let (backend, file) = deep_file();
    assert_eq!(
        blocks_of(&backend, &file.root, "dag-scope=entity").await,
        expected_all(&file, true)
    );
    assert_eq!(
        blocks_of(&backend, &file.root, "dag-scope=all").await,
        expected_all(&file, true)
    );
}

/// A directory linking two files, stored as a block.
fn directory(backend: &MemBackend) -> (Cid, File, File) {
    let a = backend.import(&distinct_data(100));
    let b = backend.import(&distinct_data(40));
    let dir = PbNode {
        links: vec![
            PbLink {
                hash: a.root,
                name: Some("a".into()),
                tsize: None,
            },
            PbLink {
                hash: b.root,
                name: Some("b".into()),
                tsize: None,
            },
        ],
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
    (cid, a, b)
}

#[tokio::test]
async fn directory_entity_is_the_directory_block_and_all_walks_everything() {
    let backend = MemBackend::new(deep_layout());
    let (dir, a, b) = directory(&backend);
    assert_eq!(
        blocks_of(&backend, &dir, "dag-scope=entity").await,
        vec![dir]
    );
    // entity-bytes is ignored for entities that are not byte arrays.
    assert_eq!(
        blocks_of(&backend, &dir, "dag-scope=entity&entity-bytes=0:10").await,
        vec![dir]
    );
    // The two files share their first leaves, so dups matters here.
    let mut want = vec![dir];
    want.extend(expected_all(&a, true));
    want.extend(expected_all(&b, true));
    assert_eq!(
        blocks_of(&backend, &dir, "dag-scope=all&car-dups=y").await,
        want
    );
    let mut seen = std::collections::HashSet::new();
    want.retain(|c| seen.insert(*c));
    assert!(want.len() < 1 + a.leaves.len() + a.nodes.len() + b.leaves.len() + b.nodes.len());
    assert_eq!(blocks_of(&backend, &dir, "dag-scope=all").await, want);
}

#[tokio::test]
async fn other_codecs_are_blocks_and_cannot_be_walked() {
    let backend = MemBackend::new(deep_layout());
    let doc = vec![0xa1, 0x61, 0x61, 0x01]; // dag-cbor {"a": 1}
    let cid = cid_for(DAG_CBOR, &doc);
    backend.insert_block(cid, doc);
    assert_eq!(
        blocks_of(&backend, &cid, "dag-scope=block").await,
        vec![cid]
    );
    assert_eq!(
        blocks_of(&backend, &cid, "dag-scope=entity").await,
        vec![cid]
    );
    let r = get(&backend, &format!("/ipfs/{cid}?format=car"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert!(r.error().contains("dag-scope=all"));
}

// ---- entity-bytes ----------------------------------------------------------------------------

/// gateway-conformance's multiblock.txt shape: 1026 bytes in 256-byte leaves under one root.
fn multiblock() -> (MemBackend, File) {
    let backend = MemBackend::new(Layout::new(256, 174).expect("layout"));
    let file = backend.import(&distinct_data(1026));
    assert_eq!(file.leaves.len(), 5);
    (backend, file)
}

#[tokio::test]
async fn entity_bytes_conformance_cases() {
    let (backend, file) = multiblock();
    let leaves: Vec<Cid> = file.leaves.iter().map(|l| l.0).collect();
    let with = |range: std::ops::Range<usize>| {
        let mut v = vec![file.root];
        v.extend_from_slice(&leaves[range]);
        v
    };
    for (bytes, want) in [
        ("0:*", with(0..5)),
        ("512:*", with(2..5)),
        ("512:1023", with(2..4)),
        ("512:-256", with(2..4)),
        ("-5:*", with(3..5)),
        ("-9999:*", with(0..5)),
        ("-9999:-3", with(0..4)),
        ("0:0", with(0..1)),
        ("0:99999", with(0..5)),
    ] {
        let got = blocks_of(
            &backend,
            &file.root,
            &format!("dag-scope=entity&entity-bytes={bytes}"),
        )
        .await;
        assert_eq!(got, want, "entity-bytes={bytes}");
        // entity-bytes alone implies dag-scope=entity.
        let implied = blocks_of(&backend, &file.root, &format!("entity-bytes={bytes}")).await;
        assert_eq!(implied, want, "entity-bytes={bytes} without dag-scope");
    }
}

#[tokio::test]
async fn entity_bytes_outside_the_file_returns_the_root_as_proof() {
    let (backend, file) = multiblock();
    for bytes in ["1026:*", "2000:3000", "1000:-100", "0:-2000"] {
        assert_eq!(
            blocks_of(&backend, &file.root, &format!("entity-bytes={bytes}")).await,
            vec![file.root],
            "{bytes}"
        );
    }
    for bytes in ["5:2", "-2:-5", "x:1", "1", "1:2:3"] {
        let r = get(
            &backend,
            &format!("/ipfs/{}?format=car&entity-bytes={bytes}", file.root),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bytes}");
        assert!(r.error().contains("entity-bytes"), "{}", r.error());
    }
}

#[tokio::test]
async fn entity_bytes_on_a_deep_dag_matches_the_oracle() {
    let (backend, file) = deep_file();
    let size = file.data.len() as u64;
    assert_eq!(size, 437);
    let mut cases = Vec::new();
    for from in (0..size).step_by(7) {
        for to in [
            from,
            from + 1,
            from + 15,
            from + 16,
            from + 100,
            size - 1,
            5000,
        ] {
            cases.push((format!("{from}:{to}"), from, to.min(size - 1)));
        }
        cases.push((format!("{from}:*"), from, size - 1));
    }
    cases.push(("-5:*".into(), 432, 436));
    cases.push(("-100:-50".into(), 337, 387));
    cases.push(("10:-1".into(), 10, 436));
    for (bytes, from, to) in cases {
        let got = blocks_of(&backend, &file.root, &format!("entity-bytes={bytes}")).await;
        assert_eq!(
            got,
            expected_range(&file, from, to, true),
            "entity-bytes={bytes}"
        );
    }
}

#[tokio::test]
async fn a_range_inside_one_leaf_sends_one_path_and_fetches_nothing_else() {
    let (backend, file) = deep_file();
    // Bytes 100..=101 lie in leaf 6 (bytes 96..112).
    let got = blocks_of(&backend, &file.root, "entity-bytes=100:101").await;
    let path: Vec<Cid> = dfs(&file)
        .iter()
        .filter(|s| s.start <= 101 && s.end > 100)
        .map(|s| s.cid)
        .collect();
    assert_eq!(got, path);
    assert_eq!(got.last(), Some(&file.leaves[6].0));
    assert_eq!(got.len(), 5, "root, three nodes, one leaf");
    let fetched: std::collections::HashSet<Cid> = backend.block_requests().into_iter().collect();
    let sent: std::collections::HashSet<Cid> = got.into_iter().collect();
    assert_eq!(fetched, sent, "only the blocks sent were fetched");
}

#[tokio::test]
async fn missing_blocks_outside_the_range_do_not_matter() {
    // gateway-conformance's file-3k-and-3-blocks-missing-block: the middle leaf is gone.
    let backend = MemBackend::new(Layout::new(1024, 174).expect("layout"));
    let file = backend.import(&distinct_data(3072));
    let [l0, l1, l2] = [file.leaves[0].0, file.leaves[1].0, file.leaves[2].0];
    backend.remove_block(&l1);
    assert_eq!(
        blocks_of(&backend, &file.root, "dag-scope=entity&entity-bytes=0:1000").await,
        vec![file.root, l0]
    );
    assert_eq!(
        blocks_of(&backend, &file.root, "dag-scope=entity&entity-bytes=2200:*").await,
        vec![file.root, l2]
    );
}

#[tokio::test]
async fn a_block_missing_mid_stream_ends_the_body_with_an_error() {
    let backend = MemBackend::new(Layout::new(1024, 174).expect("layout"));
    let file = backend.import(&distinct_data(3072));
    backend.remove_block(&file.leaves[1].0);
    let resp = app(&backend)
        .oneshot(request(
            "GET",
            &format!("/ipfs/{}?format=car", file.root),
            &[],
        ))
        .await
        .expect("infallible");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the root exists, so streaming starts"
    );
    let mut body = resp.into_body();
    let mut sent = Vec::new();
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => sent.extend_from_slice(f.data_ref().expect("data frame")),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the stream must not end cleanly");
    // What was sent before the gap is a valid CAR prefix: the root and the first leaf.
    let mut r = CarReader::new(&sent[..]).expect("header");
    let mut got = Vec::new();
    while let Ok(Some((cid, _))) = r.next_verified_block() {
        got.push(cid);
    }
    assert_eq!(got, vec![file.root, file.leaves[0].0]);
}

#[tokio::test]
async fn a_missing_root_is_404() {
    let backend = MemBackend::new(deep_layout());
    let cid = cid_for(DAG_PB, b"not stored");
    let r = get(&backend, &format!("/ipfs/{cid}?format=car"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("not held"));
    let h = head(&backend, &format!("/ipfs/{cid}?format=car"), &[]).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    let r = get(&backend, "/ipfs/Qm-broken?format=car", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// ---- order and duplicates --------------------------------------------------------------------

/// A file whose first 288 bytes are zeros: 18 equal leaves, 6 equal level-1 nodes and 2 equal
/// level-2 nodes, then distinct bytes.
fn repetitive() -> (MemBackend, File) {
    let backend = MemBackend::new(deep_layout());
    let mut data = vec![0u8; 288];
    data.extend(distinct_data(37));
    let file = backend.import(&data);
    (backend, file)
}

#[tokio::test]
async fn dups_y_sends_every_occurrence_and_dups_n_each_block_once() {
    let (backend, file) = repetitive();
    let uri = format!("/ipfs/{}", file.root);
    let all_y = expected_all(&file, true);
    let all_n = expected_all(&file, false);
    assert!(
        all_y.len() > all_n.len() + 20,
        "the fixture must have many duplicates"
    );

    let (r, _, blocks) = car(
        &backend,
        &uri,
        &[(
            "accept",
            "application/vnd.ipld.car; version=1; order=dfs; dups=y",
        )],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_Y);
    assert_eq!(blocks, all_y);

    let (r, _, blocks) = car(
        &backend,
        &uri,
        &[(
            "accept",
            "application/vnd.ipld.car; version=1; order=dfs; dups=n",
        )],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_N);
    assert_eq!(blocks, all_n);

    // The default is dups=n.
    let (r, _, blocks) = car(&backend, &format!("{uri}?format=car"), &[]).await;
    assert_eq!(r.header("content-type"), CAR_N);
    assert_eq!(blocks, all_n);
}

#[tokio::test]
async fn dups_n_skips_whole_repeated_subtrees_without_fetching_them() {
    let (backend, file) = repetitive();
    let _ = blocks_of(&backend, &file.root, "car-dups=n").await;
    let zero_leaf = file.leaves[0].0;
    let fetched = backend.block_requests();
    assert_eq!(
        fetched.iter().filter(|c| **c == zero_leaf).count(),
        1,
        "a repeated leaf is fetched once"
    );
    assert!(fetched.len() < expected_all(&file, true).len());
}

#[tokio::test]
async fn dups_with_ranges_across_equal_subtrees() {
    let (backend, file) = repetitive();
    // 130..=150 ends the first zero level-2 subtree (0..144) and starts the second.
    for (bytes, from, to) in [
        ("130:150", 130, 150),
        ("40:300", 40, 300),
        ("-40:*", 285, 324),
    ] {
        for dups in [true, false] {
            let flag = if dups { "y" } else { "n" };
            let got = blocks_of(
                &backend,
                &file.root,
                &format!("entity-bytes={bytes}&car-dups={flag}"),
            )
            .await;
            assert_eq!(
                got,
                expected_range(&file, from, to, dups),
                "{bytes} dups={flag}"
            );
        }
    }
}

#[tokio::test]
async fn specific_accept_params_refine_format_car_and_query_params_win() {
    let (backend, file) = repetitive();
    let uri = format!("/ipfs/{}?format=car", file.root);
    let accept_y = (
        "accept",
        "application/vnd.ipld.car; version=1; order=dfs; dups=y",
    );
    let (r, _, blocks) = car(&backend, &uri, &[accept_y]).await;
    assert_eq!(r.header("content-type"), CAR_Y);
    assert_eq!(blocks, expected_all(&file, true));

    let (r, _, blocks) = car(&backend, &format!("{uri}&car-dups=n"), &[accept_y]).await;
    assert_eq!(r.header("content-type"), CAR_N);
    assert_eq!(blocks, expected_all(&file, false));

    // format=car beats an Accept that asks for a raw block.
    let (r, _, _) = car(&backend, &uri, &[("accept", "application/vnd.ipld.raw")]).await;
    assert_eq!(r.header("content-type"), CAR_N);
}

#[tokio::test]
async fn order_and_version_params() {
    let (backend, file) = deep_file();
    let uri = format!("/ipfs/{}", file.root);
    // order=unk lets us choose; we say what we did.
    let (r, _, blocks) = car(
        &backend,
        &uri,
        &[("accept", "application/vnd.ipld.car; version=1; order=unk")],
    )
    .await;
    assert!(r.header("content-type").contains("order=dfs"));
    assert_eq!(blocks, expected_all(&file, true));
    let (r, ..) = car(
        &backend,
        &format!("{uri}?format=car&car-order=dfs&car-version=1"),
        &[],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_N);

    for (query, accept) in [
        ("?format=car&car-order=bfs", None),
        ("?format=car&car-version=2", None),
        ("?format=car&car-dups=maybe", None),
        ("", Some("application/vnd.ipld.car; version=2")),
        (
            "?format=car",
            Some("application/vnd.ipld.car; order=random"),
        ),
        ("?format=car&dag-scope=everything", None),
        ("?format=car&dag-scope=block&entity-bytes=0:*", None),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = get(&backend, &format!("{uri}{query}"), &headers).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query} {accept:?}");
        assert!(!r.error().is_empty());
    }
    // The query parameter wins over an unsupported Accept parameter.
    let (r, ..) = car(
        &backend,
        &format!("{uri}?format=car&car-version=1"),
        &[("accept", "application/vnd.ipld.car; version=2")],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_N);
}

#[tokio::test]
async fn accept_alone_selects_car() {
    let (backend, file) = deep_file();
    let (r, roots, blocks) = car(
        &backend,
        &format!("/ipfs/{}", file.root),
        &[("accept", "application/vnd.ipld.car")],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_N);
    assert_eq!(roots, vec![file.root]);
    assert_eq!(blocks, expected_all(&file, true));
}

// ---- identity CIDs and the probe -------------------------------------------------------------

#[tokio::test]
async fn identity_cids_are_never_sent_as_blocks() {
    let backend = MemBackend::new(deep_layout());
    let (r, roots, blocks) = car(
        &backend,
        &format!("/ipfs/{INLINED}"),
        &[("accept", "application/vnd.ipld.car; dups=y")],
    )
    .await;
    assert_eq!(r.header("content-type"), CAR_Y);
    assert_eq!(
        roots,
        vec![shubnet_protocol::cid::parse(INLINED).expect("cid")]
    );
    assert!(blocks.is_empty());
    assert!(backend.block_requests().is_empty());
}

#[tokio::test]
async fn identity_children_are_walked_but_not_sent() {
    let backend = MemBackend::new(deep_layout());
    let inline = shubnet_protocol::cid::parse(INLINED).expect("cid");
    let real = backend.import(&distinct_data(20));
    let node = PbNode {
        links: vec![
            PbLink {
                hash: inline,
                name: Some(String::new()),
                tsize: Some(23),
            },
            PbLink {
                hash: real.root,
                name: Some(String::new()),
                tsize: Some(20),
            },
        ],
        data: Some(
            UnixfsData {
                kind: data_type::FILE,
                data: None,
                filesize: Some(43),
                blocksizes: vec![23, 20],
            }
            .encode(),
        ),
    }
    .encode();
    let root = cid_for(DAG_PB, &node);
    backend.insert_block(root, node);
    let mut want = vec![root];
    want.extend(expected_all(&real, true));
    assert_eq!(blocks_of(&backend, &root, "car-dups=y").await, want);
    assert!(!backend.block_requests().contains(&inline));
    // Bytes 0..=22 are all inside the identity leaf: only the root goes out.
    assert_eq!(
        blocks_of(&backend, &root, "entity-bytes=0:22").await,
        vec![root]
    );
}

#[tokio::test]
async fn probe_car_get_and_head() {
    let backend = MemBackend::new(deep_layout());
    let probe = shubnet_protocol::cid::parse(PROBE).expect("probe cid");
    for (uri, headers) in [
        (format!("/ipfs/{PROBE}?format=car"), vec![]),
        (
            format!("/ipfs/{PROBE}"),
            vec![("accept", "application/vnd.ipld.car")],
        ),
    ] {
        let (r, roots, blocks) = car(&backend, &uri, &headers).await;
        assert_eq!(roots, vec![probe]);
        assert!(blocks.is_empty());
        assert_eq!(r.header("content-type"), CAR_N);
        let h = head(&backend, &uri, &headers).await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.header("content-type"), CAR_N);
        assert!(h.body.is_empty());
    }
    assert!(backend.block_requests().is_empty());
}

// ---- HEAD and conditionals ---------------------------------------------------------------------

#[tokio::test]
async fn head_car_has_headers_no_body_no_length() {
    let (backend, file) = deep_file();
    let uri = format!("/ipfs/{}?format=car&dag-scope=entity", file.root);
    let g = get(&backend, &uri, &[]).await;
    let h = head(&backend, &uri, &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), "");
    for name in [
        "content-type",
        "content-disposition",
        "etag",
        "cache-control",
        "x-ipfs-path",
    ] {
        assert_eq!(h.header(name), g.header(name), "{name}");
    }
    assert_eq!(
        backend
            .block_requests()
            .iter()
            .filter(|c| **c != file.root)
            .count(),
        file.leaves.len() + file.nodes.len() - 1,
        "HEAD fetched only the root (the GET fetched the rest)"
    );
}

#[tokio::test]
async fn etags_distinguish_parameters_and_validate_304() {
    let (backend, file) = deep_file();
    let uri = |q: &str| format!("/ipfs/{}?format=car{q}", file.root);
    let tag = |r: &Reply| r.header("etag").to_string();
    let all = get(&backend, &uri(""), &[]).await;
    let again = get(&backend, &uri("&dag-scope=all&car-dups=n"), &[]).await;
    assert_eq!(tag(&all), tag(&again), "the same variant has the same tag");
    let mut tags = std::collections::HashSet::new();
    for q in [
        "",
        "&dag-scope=block",
        "&dag-scope=entity",
        "&car-dups=y",
        "&entity-bytes=0:10",
        "&entity-bytes=0:11",
    ] {
        assert!(tags.insert(tag(&get(&backend, &uri(q), &[]).await)), "{q}");
    }
    let r = get(&backend, &uri(""), &[("if-none-match", &tag(&all))]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), tag(&all));
    let r = get(
        &backend,
        &uri("&car-dups=y"),
        &[("if-none-match", &tag(&all))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_single_leaf_file_is_its_own_entity() {
    let backend = MemBackend::new(Layout::default());
    let file = backend.import(b"hello world");
    for q in [
        "",
        "dag-scope=block",
        "dag-scope=entity",
        "entity-bytes=3:4",
        "entity-bytes=50:*",
    ] {
        assert_eq!(
            blocks_of(&backend, &file.root, q).await,
            vec![file.root],
            "{q}"
        );
    }
}
