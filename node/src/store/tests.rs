//! Store tests against a real directory: import, read back, GC, repair, CAR import.

use super::*;
use bytes::Bytes;
use futures::StreamExt;
use shubnet_protocol::car::CarWriter;
use shubnet_protocol::unixfs::import_reader;

fn data(len: usize, seed: u8) -> Vec<u8> {
    // A cheap deterministic pattern that does not repeat within a chunk.
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn stream_of(
    bytes: Vec<u8>,
    piece: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Unpin + Send {
    let pieces: Vec<std::io::Result<Bytes>> = bytes
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces)
}

async fn read_all(store: &Store, cid: Cid, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut rx = store.read_file(cid, start, end);
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn open(dir: &std::path::Path) -> Store {
    Store::open(DataDir::new(dir)).await.expect("open store")
}

fn files_in(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn add_then_read_blocks_and_ranges() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let bytes = data(3 * 262_144 + 1000, 1);
    let (root, rec) = store
        .add_stream(stream_of(bytes.clone(), 70_000))
        .await
        .expect("add");
    let expect = import_reader(&bytes[..], Layout::default()).expect("import");
    assert_eq!(root, expect.root);
    assert_eq!(rec.size, bytes.len() as u64);
    assert_eq!(Some(rec.sha256), expect.sha256);
    assert!(store.is_pinned(&root).expect("pinned"));
    assert_eq!(files_in(&tmp.path().join("blobs")), vec![root.to_string()]);
    assert!(files_in(&tmp.path().join("partial")).is_empty());

    assert_eq!(
        read_all(&store, root, 0, rec.size).await.expect("read"),
        bytes
    );
    for (s, e) in [
        (0, 1),
        (262_143, 262_145),
        (500_000, 787_000),
        (rec.size - 1, rec.size),
    ] {
        assert_eq!(
            read_all(&store, root, s, e).await.expect("range"),
            bytes[s as usize..e as usize]
        );
    }
    // Every block is served and verifies.
    let root_block = store.block(&root).expect("block").expect("held");
    shubnet_protocol::cid::verify(&root, &root_block).expect("root verifies");
    let leaf = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, &bytes[262_144..524_288]);
    assert_eq!(
        store.block(&leaf).expect("leaf").as_deref(),
        Some(&bytes[262_144..524_288])
    );
    assert_eq!(store.file_size(&leaf).expect("size"), Some(262_144));
}

#[tokio::test]
async fn interrupted_upload_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let good = stream_of(data(600_000, 2), 50_000);
    let broken = good.chain(futures::stream::iter([Err(std::io::Error::other(
        "client went away",
    ))]));
    let err = store
        .add_stream(Box::pin(broken))
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::Interrupted(_)), "{err}");
    assert!(files_in(&tmp.path().join("blobs")).is_empty());
    assert!(files_in(&tmp.path().join("partial")).is_empty());
    assert!(store.roots().expect("roots").is_empty());
}

#[tokio::test]
async fn gc_keeps_pinned_and_removes_unpinned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let a = data(700_000, 3);
    let b = data(700_000, 4);
    let (ra, _) = store
        .add_stream(stream_of(a.clone(), 1 << 16))
        .await
        .expect("add a");
    let (rb, _) = store
        .add_stream(stream_of(b, 1 << 16))
        .await
        .expect("add b");
    store.unpin(&rb).expect("unpin");
    let out = store.gc().await.expect("gc");
    assert_eq!(out.removed, vec![rb]);
    assert_eq!(files_in(&tmp.path().join("blobs")), vec![ra.to_string()]);
    assert!(store.block(&rb).expect("lookup").is_none());
    assert_eq!(
        read_all(&store, ra, 0, a.len() as u64)
            .await
            .expect("a intact"),
        a
    );
    // GC again removes nothing.
    assert!(store.gc().await.expect("gc").removed.is_empty());
}

#[tokio::test]
async fn shared_leaves_survive_gc_of_one_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let a = data(262_144 * 3, 5);
    let mut b = a[..262_144 * 2].to_vec(); // first two leaves shared
    b.extend(data(1000, 6));
    let (ra, _) = store
        .add_stream(stream_of(a, 1 << 16))
        .await
        .expect("add a");
    let (rb, _) = store
        .add_stream(stream_of(b.clone(), 1 << 16))
        .await
        .expect("add b");
    store.unpin(&ra).expect("unpin");
    store.gc().await.expect("gc");
    assert_eq!(
        read_all(&store, rb, 0, b.len() as u64)
            .await
            .expect("b intact"),
        b
    );
}

#[tokio::test]
async fn repair_rebuilds_a_deleted_index_and_quarantines_damage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = data(900_000, 7);
    let b = data(10_000, 8);
    let (ra, rb) = {
        let store = open(tmp.path()).await;
        let (ra, _) = store
            .add_stream(stream_of(a.clone(), 1 << 16))
            .await
            .expect("add");
        let (rb, _) = store
            .add_stream(stream_of(b.clone(), 1 << 16))
            .await
            .expect("add");
        store.flush().await.expect("flush");
        (ra, rb)
    };
    std::fs::remove_dir_all(tmp.path().join("index")).expect("rm index");
    // A crash leftover in partial/ must not survive either.
    std::fs::write(tmp.path().join("partial/add-crashed.tmp"), b"half").expect("write");
    let store = open(tmp.path()).await; // rebuilds automatically
    assert_eq!(read_all(&store, ra, 0, a.len() as u64).await.expect("a"), a);
    assert_eq!(read_all(&store, rb, 0, b.len() as u64).await.expect("b"), b);
    assert!(store.is_pinned(&ra).expect("pin") && store.is_pinned(&rb).expect("pin"));
    assert!(files_in(&tmp.path().join("partial")).is_empty());

    // Flip one byte of b's blob: repair finds it, quarantines it, keeps a.
    let pb = tmp.path().join("blobs").join(rb.to_string());
    let mut bytes = std::fs::read(&pb).expect("read");
    bytes[5] ^= 0xff;
    std::fs::write(&pb, &bytes).expect("write");
    assert_eq!(
        store.scrub_blob(&rb, &mut |_| {}).expect("scrub"),
        ScrubOutcome::Damaged { leaf: rb },
        "the scrub finds the damage"
    );
    let report = store.repair().await.expect("repair");
    assert_eq!(report.checked, 2);
    assert_eq!(report.damaged, vec![rb.to_string()]);
    assert_eq!(files_in(&tmp.path().join("blobs")), vec![ra.to_string()]);
    assert_eq!(files_in(&tmp.path().join("quarantine")).len(), 1);
    assert!(store.block(&rb).expect("lookup").is_none());
    assert!(!store.is_pinned(&rb).expect("pin"));
    assert!(store.repair().await.expect("repair").is_clean());
}

fn car_of(bytes: &[u8], layout: Layout, corrupt_leaf: bool, drop_leaf: bool) -> (Cid, Vec<u8>) {
    let mut imp = shubnet_protocol::unixfs::Importer::new(layout);
    imp.update(bytes);
    let mut blocks: Vec<_> = imp.take_blocks().collect();
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    let mut w = CarWriter::new(Vec::new(), &[summary.root]).expect("car");
    let mut first_leaf = true;
    for b in blocks.iter().rev() {
        match b {
            Block::Leaf { cid, offset, len } => {
                let mut d = bytes[*offset as usize..(*offset + *len) as usize].to_vec();
                if first_leaf && corrupt_leaf {
                    d[0] ^= 1;
                }
                let skip = first_leaf && drop_leaf;
                first_leaf = false;
                if !skip {
                    w.write_block(cid, &d).expect("write");
                }
            }
            Block::Node { cid, bytes } => w.write_block(cid, bytes).expect("write"),
        }
    }
    (summary.root, w.finish().expect("finish"))
}

use shubnet_protocol::unixfs::Block;

#[tokio::test]
async fn car_import_verifies_everything_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let bytes = data(5000, 9);
    let layout = Layout::new(100, 3).expect("layout");
    for (corrupt, drop_leaf) in [(true, false), (false, true)] {
        let (_, car) = car_of(&bytes, layout, corrupt, drop_leaf);
        let err = store
            .import_car(stream_of(car, 333))
            .await
            .expect_err("rejected");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(
            files_in(&tmp.path().join("blobs")).is_empty(),
            "nothing stored"
        );
        assert!(files_in(&tmp.path().join("partial")).is_empty());
        assert!(store.roots().expect("roots").is_empty());
    }
    // A truncated CAR is rejected too.
    let (_, car) = car_of(&bytes, layout, false, false);
    let err = store
        .import_car(stream_of(car[..car.len() - 7].to_vec(), 100))
        .await
        .expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");

    // A good CAR with a non-default layout imports, reads back, and survives index loss.
    let (root, car) = car_of(&bytes, layout, false, false);
    let out = store.import_car(stream_of(car, 333)).await.expect("import");
    assert_eq!(out.roots.len(), 1);
    assert_eq!(out.roots[0].0, root);
    assert_eq!(read_all(&store, root, 0, 5000).await.expect("read"), bytes);
    assert!(store.repair().await.expect("repair").is_clean());
    assert_eq!(
        read_all(&store, root, 10, 4321).await.expect("read"),
        bytes[10..4321]
    );
}

#[tokio::test]
async fn a_scribbled_index_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = data(400_000, 11);
    let root = {
        let store = open(tmp.path()).await;
        let (root, _) = store
            .add_stream(stream_of(a.clone(), 1 << 16))
            .await
            .expect("add");
        store.flush().await.expect("flush");
        root
    };
    let db = tmp.path().join("index/db");
    let len = std::fs::metadata(&db).expect("sled db file").len() as usize;
    std::fs::write(&db, data(len.max(4096), 12)).expect("scribble");
    let store = open(tmp.path()).await;
    // sled may report the damage (the index is set aside) or silently come up empty; either
    // way the blob must be found again and stay pinned.
    assert_eq!(
        read_all(&store, root, 0, a.len() as u64)
            .await
            .expect("read"),
        a
    );
    assert!(store.is_pinned(&root).expect("pinned"));
}

/// The dag-pb nodes and the leaf table of `bytes` chunked by `layout`.
fn dag_of(bytes: &[u8], layout: Layout) -> (Cid, partial::DagNodes) {
    let mut imp = shubnet_protocol::unixfs::Importer::new(layout);
    imp.update(bytes);
    let mut blocks: Vec<_> = imp.take_blocks().collect();
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    let nodes = blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::Node { cid, bytes } => Some((cid, bytes)),
            Block::Leaf { .. } => None,
        })
        .collect();
    (summary.root, nodes)
}

#[tokio::test]
async fn a_partial_download_hashes_the_whole_file_whatever_the_order() {
    use sha2::{Digest, Sha256};
    let bytes = data(29_950, 7);
    let want: [u8; 32] = Sha256::digest(&bytes).into();
    let layout = Layout::new(100, 4).expect("layout");
    let (root, nodes) = dag_of(&bytes, layout);
    let n = 300u64;
    let leaf = |p: &partial::Partial, i: u64| {
        let l = p.leaves()[i as usize];
        bytes[l.offset as usize..(l.offset + u64::from(l.len)) as usize].to_vec()
    };
    // In file order; backwards; in order from the middle then the start (two streams), with
    // a wrong leaf refused; and across a reopen (a restart), in scattered order.
    let middle_first: Vec<u64> = (150..n).chain(0..150).collect();
    let scattered: Vec<u64> = (0..n).map(|i| (i * 7) % n).collect();
    for (case, order) in [
        (0..n).collect::<Vec<_>>(),
        (0..n).rev().collect(),
        middle_first,
        scattered,
    ]
    .into_iter()
    .enumerate()
    {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path()).await;
        let mut p = store
            .open_partial(&root, Some(nodes.clone()))
            .expect("open partial");
        assert_eq!(p.leaves().len() as u64, n);
        for (k, &i) in order.iter().enumerate() {
            if case == 3 && k == 100 {
                drop(p);
                p = store.open_partial(&root, None).expect("reopen partial");
            }
            if case == 2 && k == 10 {
                let mut wrong = leaf(&p, i);
                wrong[0] ^= 1;
                assert!(!p.write_leaf(i, &wrong).expect("write"), "case {case}");
            }
            assert!(p.write_leaf(i, &leaf(&p, i)).expect("write"), "case {case}");
        }
        let (got_root, record) = store.finish_partial(&p).await.expect("finish");
        assert_eq!(got_root, root);
        assert_eq!(record.size, bytes.len() as u64, "case {case}");
        assert_eq!(record.sha256, want, "case {case}");
        let back = read_all(&store, root, 0, bytes.len() as u64)
            .await
            .expect("read");
        assert!(back == bytes, "case {case}: stored bytes differ");
    }
}

#[tokio::test]
async fn verified_blobs_are_served_without_hashing_and_the_scrub_finds_damage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path()).await;
    let a = data(900_000, 9);
    let (root, _) = store
        .add_stream(stream_of(a.clone(), 1 << 16))
        .await
        .expect("add");
    assert!(
        store.blob_verified_at(&root).expect("mark").is_some(),
        "an import marks its blob verified"
    );
    let outcome = store.scrub_blob(&root, &mut |_| {}).expect("scrub");
    assert!(
        matches!(
            outcome,
            ScrubOutcome::Intact {
                leaves: 4,
                bytes: 900_000
            }
        ),
        "{outcome:?}"
    );

    // One bit flipped in the third leaf, on disk.
    let blob = tmp.path().join("blobs").join(root.to_string());
    let mut bytes = std::fs::read(&blob).expect("read");
    bytes[600_000] ^= 0x01;
    std::fs::write(&blob, &bytes).expect("write");
    let leaf = {
        let nodes = crate::p2p::fetch::server::stored_nodes(&store, &root).expect("nodes");
        let map: std::collections::HashMap<_, _> = nodes.into_iter().collect();
        let table = shubnet_protocol::fetch::leaf_table(&root, &map, None).expect("table");
        assert_eq!(table.len(), 4);
        (table[0].cid, table[2].cid)
    };
    // Reads trust the mark (fetchers hash what they receive); the checks do not.
    assert_eq!(
        read_all(&store, root, 0, a.len() as u64)
            .await
            .expect("read"),
        bytes
    );
    assert_eq!(
        store.check_leaf(&root, &leaf.0).expect("check"),
        LeafCheck::Intact
    );
    assert_eq!(
        store.check_leaf(&root, &leaf.1).expect("check"),
        LeafCheck::Damaged
    );
    assert_eq!(
        store.scrub_blob(&root, &mut |_| {}).expect("scrub"),
        ScrubOutcome::Damaged { leaf: leaf.1 }
    );

    assert!(store.quarantine_root(&root).await.expect("quarantine"));
    assert!(store.root_record(&root).expect("record").is_none());
    assert!(
        store.block(&leaf.0).expect("lookup").is_none(),
        "no longer served"
    );
    assert!(store.blob_verified_at(&root).expect("mark").is_none());
    assert!(files_in(&tmp.path().join("blobs")).is_empty());
    assert_eq!(files_in(&tmp.path().join("quarantine")).len(), 1);
    assert!(
        store.is_pinned(&root).expect("pin"),
        "the pin waits for the good copy"
    );
    assert_eq!(
        store.check_leaf(&root, &leaf.0).expect("check"),
        LeafCheck::NotHeld
    );
    assert!(!store.quarantine_root(&root).await.expect("again"));

    // The good copy comes back verified and pinned.
    let (again, _) = store
        .add_stream(stream_of(a.clone(), 1 << 16))
        .await
        .expect("add");
    assert_eq!(again, root);
    assert!(store.blob_verified_at(&root).expect("mark").is_some());
    assert_eq!(
        read_all(&store, root, 0, a.len() as u64)
            .await
            .expect("read"),
        a
    );
}
