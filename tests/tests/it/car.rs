//! CAR v1 both ways: what `shubnet car export` writes must be read by `@ipld/car` with every
//! block hash correct; what `@ipld/car`'s `CarWriter` writes must import into shubnet.

use crate::{shubnet_cid, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::data::{CHUNK, LINKS, MIB, assert_same_file, block_count, kubo_file};
use shubnet_tests::js::{CarOrder, car_check, car_write, importer_cid};

#[test]
fn car_export_is_read_by_ipld_car() {
    let node = TestNode::start();
    let dir = tmpdir();
    // 180 leaves: a 2-level DAG (root → [174 leaves], [6 leaves]).
    let len = (LINKS + 5) * CHUNK + 7;
    let f = dir.path().join("multi");
    kubo_file(&f, "car-export", len);
    let cid = node.add(&f);
    assert_eq!(
        cid,
        importer_cid(&f, None),
        "add gave a different CID than the importer"
    );

    let car = dir.path().join("export.car");
    node.cli_to_file(&["car", "export", &cid], &car).ok();
    let report = car_check(&car);
    let want_blocks = block_count(len, CHUNK, LINKS);
    assert_eq!(want_blocks, 183);
    assert_eq!(report.roots, vec![cid.clone()], "CAR roots");
    assert_eq!(report.blocks, want_blocks, "CAR block count: {report:?}");
    assert_eq!(report.missing, 0, "the CAR's DAG is incomplete: {report:?}");
    // Leaves carry the file bytes; the 3 dag-pb nodes add a few KiB.
    assert!(
        report.bytes > len && report.bytes < len + 3 * 9000,
        "CAR block bytes {} for a {len}-byte file",
        report.bytes
    );

    // A single-block file: the CAR holds just the raw leaf.
    let small = dir.path().join("small");
    std::fs::write(&small, b"hello world").expect("write");
    let leaf = node.add(&small);
    let car = dir.path().join("small.car");
    node.cli_to_file(&["car", "export", &leaf], &car).ok();
    let r = car_check(&car);
    assert_eq!((r.roots, r.blocks, r.bytes), (vec![leaf], 1, 11));
}

/// Imports a CAR written by `CarWriter` and checks the root and the bytes.
fn import_and_compare(
    node: &TestNode,
    dir: &std::path::Path,
    name: &str,
    len: u64,
    order: CarOrder,
    layout: Option<(u64, u64)>,
) {
    let f = dir.join(name);
    kubo_file(&f, name, len);
    let car = dir.join(format!("{name}.car"));
    let root = car_write(&f, &car, order, layout);
    assert_eq!(
        root,
        importer_cid(&f, layout),
        "car-write.mjs and cid.mjs disagree"
    );
    if layout.is_none() {
        assert_eq!(
            root,
            shubnet_cid(&f, None),
            "shubnet cid differs from the importer"
        );
    }
    let report = car_check(&car);
    assert_eq!(report.roots, vec![root.clone()]);

    let r = node
        .cli(&[
            std::path::Path::new("car"),
            "import".as_ref(),
            car.as_path(),
        ])
        .ok();
    assert_eq!(
        r.out().lines().collect::<Vec<_>>(),
        vec![root.as_str()],
        "`shubnet car import` must print the CAR's root\n{r}"
    );
    let out = dir.join(format!("{name}.out"));
    node.cat_to(&root, &out);
    assert_same_file(&out, &f);
}

#[test]
fn car_from_carwriter_imports_dfs_order() {
    let node = TestNode::start();
    let dir = tmpdir();
    import_and_compare(
        &node,
        dir.path(),
        "dfs-multi",
        5 * CHUNK + 3,
        CarOrder::Dfs,
        None,
    );
    import_and_compare(
        &node,
        dir.path(),
        "dfs-2level",
        (LINKS + 1) * CHUNK + 1,
        CarOrder::Dfs,
        None,
    );
    import_and_compare(&node, dir.path(), "dfs-one", 1000, CarOrder::Dfs, None);
}

#[test]
fn car_from_carwriter_imports_leaves_first_order() {
    // CARv1 does not fix block order; the importer's own order puts the root last.
    let node = TestNode::start();
    let dir = tmpdir();
    import_and_compare(
        &node,
        dir.path(),
        "imp-multi",
        5 * CHUNK + 3,
        CarOrder::Import,
        None,
    );
    import_and_compare(
        &node,
        dir.path(),
        "imp-2level",
        (LINKS + 1) * CHUNK + 1,
        CarOrder::Import,
        None,
    );
}

#[test]
fn car_import_of_kubo_v1_2025_profile() {
    // kubo's `unixfs-v1-2025` profile (IPIP-499): 1 MiB chunks, 1024 links. A registry that
    // accepts CARs from IPFS must take files chunked that way too, and serve their bytes.
    let node = TestNode::start();
    let dir = tmpdir();
    import_and_compare(
        &node,
        dir.path(),
        "v1-2025",
        3 * MIB + 5,
        CarOrder::Dfs,
        Some((MIB, 1024)),
    );
}
