//! End to end through one node: `shubnet add`, `shubnet cat`, and the IPFS gateway over plain
//! HTTP/1.1 (ranges, HEAD, trustless formats, errors), then the same with `curl`.

use crate::{holdings, shubnet_cid, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::cid::{DAG_PB, RAW, assert_block_matches, decode};
use shubnet_tests::data::{CHUNK, LINKS, assert_same_file, block_count, kubo_bytes, kubo_file};
use shubnet_tests::http::{get, get_range, head, request};
use shubnet_tests::js::{car_check, importer_cid};
use shubnet_tests::run_cmd;

#[test]
fn add_cat_and_http_ranges() {
    let node = TestNode::start();
    let dir = tmpdir();
    let len = 3 * CHUNK + 12_345;
    let f = dir.path().join("image.sif");
    kubo_file(&f, "gateway", len);
    let data = std::fs::read(&f).expect("read");

    let cid = node.add(&f);
    assert_eq!(
        cid,
        importer_cid(&f, None),
        "add's CID differs from ipfs-unixfs-importer"
    );
    assert_eq!(
        cid,
        shubnet_cid(&f, None),
        "add's CID differs from `shubnet cid`"
    );
    // The same file again: same CID, still one pin and one blob.
    assert_eq!(node.add(&f), cid);
    let h = holdings(&node);
    assert_eq!(
        h.pins,
        vec![(cid.clone(), len)],
        "pins after adding one file twice"
    );
    assert_eq!(
        h.blobs.len(),
        1,
        "blobs after adding one file twice: {:?}",
        h.blobs
    );

    let out = dir.path().join("cat.out");
    node.cat_to(&cid, &out);
    assert_same_file(&out, &f);

    let url = node.at(&format!("/ipfs/{cid}"));
    let r = get(&url);
    r.expect_status(200).expect_framed();
    assert!(r.body == data, "GET body differs from the file\n{r}");
    let etag = r.header("etag").unwrap_or_default().to_string();
    assert!(etag.contains(&cid), "ETag should name the CID\n{r}");

    let h = head(&url);
    h.expect_status(200);
    assert_eq!(h.content_length(), Some(len), "HEAD Content-Length\n{h}");
    assert_eq!(h.header("etag"), Some(etag.as_str()), "HEAD ETag\n{h}");

    let last = len - 1;
    let ranges: Vec<(String, u64, u64)> = vec![
        ("0-99".into(), 0, 99),
        // Across the boundary between the first and second leaf.
        (
            format!("{}-{}", CHUNK - 100, CHUNK + 100),
            CHUNK - 100,
            CHUNK + 100,
        ),
        // A whole leaf exactly, and a range inside the last, short leaf.
        (format!("{}-{}", CHUNK, 2 * CHUNK - 1), CHUNK, 2 * CHUNK - 1),
        (
            format!("{}-{}", 3 * CHUNK + 5, 3 * CHUNK + 9),
            3 * CHUNK + 5,
            3 * CHUNK + 9,
        ),
        // Suffix and open-ended ranges.
        ("-100".into(), len - 100, last),
        (format!("{}-", len - 10), len - 10, last),
        // An end past the last byte is clamped (RFC 9110 §14.1.2).
        (format!("{}-{}", len - 3, len + 1000), len - 3, last),
        ("0-".into(), 0, last),
    ];
    for (spec, from, to) in ranges {
        let r = get_range(&url, &spec);
        r.expect_status(206).expect_framed();
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{len}").as_str()),
            "Content-Range for bytes={spec}\n{r}"
        );
        assert!(
            r.body == data[from as usize..=to as usize],
            "body for bytes={spec} differs from the file\n{r}"
        );
    }

    // Past the end: 416 with the full length (RFC 9110 §15.5.17).
    for spec in [format!("{len}-"), format!("{}-{}", len + 10, len + 20)] {
        let r = get_range(&url, &spec);
        r.expect_status(416);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "416 must say the length\n{r}"
        );
    }

    // A cached copy is still good.
    let r = request("GET", &url, &[("If-None-Match", &etag)]);
    r.expect_status(304);
    assert!(r.body.is_empty(), "304 with a body\n{r}");
}

#[test]
fn trustless_formats() {
    let node = TestNode::start();
    let dir = tmpdir();
    let len = (LINKS + 2) * CHUNK + 1;
    let f = dir.path().join("two-level");
    kubo_file(&f, "trustless", len);
    let cid = node.add(&f);
    assert_eq!(decode(&cid).expect("cid").codec, DAG_PB);

    // ?format=raw of the root: the dag-pb block itself, which hashes to the CID.
    let r = get(&node.at(&format!("/ipfs/{cid}?format=raw")));
    r.expect_status(200).expect_framed();
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.ipld.raw"),
        "\n{r}"
    );
    assert_block_matches(&cid, &r.body);
    assert!(
        r.body.len() < 9000,
        "a root with 2 links is small, got {} bytes",
        r.body.len()
    );

    // ?format=raw of a single-leaf file is the file.
    let small = dir.path().join("small");
    let bytes = kubo_bytes("leaf", 5000);
    std::fs::write(&small, &bytes).expect("write");
    let leaf = node.add(&small);
    assert_eq!(decode(&leaf).expect("cid").codec, RAW);
    let r = get(&node.at(&format!("/ipfs/{leaf}?format=raw")));
    r.expect_status(200).expect_framed();
    assert!(r.body == bytes, "raw leaf bytes differ\n{r}");

    // ?format=car: a complete, verifiable CAR of the whole DAG.
    let r = get(&node.at(&format!("/ipfs/{cid}?format=car")));
    r.expect_status(200);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/vnd.ipld.car"),
        "Content-Type {ct:?}\n{r}"
    );
    let car = dir.path().join("got.car");
    std::fs::write(&car, &r.body).expect("write");
    let report = car_check(&car);
    assert_eq!(report.roots, vec![cid.clone()]);
    assert_eq!(report.blocks, block_count(len, CHUNK, LINKS));
    assert_eq!(report.missing, 0);
}

#[test]
fn http_errors() {
    let mut node = TestNode::start();
    let dir = tmpdir();
    let f = dir.path().join("f");
    kubo_file(&f, "errors", CHUNK + 1);
    let cid = node.add(&f);

    // Not a CID at all, and a CID with a broken base32 body: 400.
    for bad in ["not-a-cid", "bafybeig!!!", "bafy", "Qm"] {
        let r = get(&node.at(&format!("/ipfs/{bad}")));
        r.expect_status(400);
    }
    // Valid CIDs the node does not hold: 404 (GET and HEAD).
    let absent_file = dir.path().join("absent");
    kubo_file(&absent_file, "never-added", 3 * CHUNK);
    let absent = shubnet_cid(&absent_file, None);
    let hello_leaf = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    for c in [absent.as_str(), hello_leaf] {
        get(&node.at(&format!("/ipfs/{c}"))).expect_status(404);
        head(&node.at(&format!("/ipfs/{c}"))).expect_status(404);
        get(&node.at(&format!("/ipfs/{c}?format=raw"))).expect_status(404);
        get(&node.at(&format!("/ipfs/{c}?format=car"))).expect_status(404);
    }
    // A malformed Range is ignored or refused, never mis-served.
    let r = get_range(&node.at(&format!("/ipfs/{cid}")), "abc");
    assert!(
        r.status == 200 || r.status == 416,
        "a malformed Range must give 200 (ignored) or 416\n{r}"
    );
    if r.status == 200 {
        assert_eq!(r.body.len() as u64, CHUNK + 1);
    }

    // The CLI refuses the same things with a non-zero exit.
    node.cli(&["cat", "not-a-cid"]).fails();
    node.cli(&["cat", &absent]).fails();
    node.cli(&["car", "export", "not-a-cid"]).fails();
    node.cli(&["car", "export", &absent]).fails();
    node.cli(&["pin", "add", &absent]).fails();
    node.assert_running();
}

#[test]
fn curl_downloads() {
    let curl = which("curl").unwrap_or_else(|| {
        panic!("curl is not installed; run .ci/run (or: apt-get install -y curl)")
    });
    let node = TestNode::start();
    let dir = tmpdir();
    let len = 2 * CHUNK + 777;
    let f = dir.path().join("f");
    kubo_file(&f, "curl", len);
    let cid = node.add(&f);
    let url = node.at(&format!("/ipfs/{cid}"));

    let out = dir.path().join("whole");
    run_cmd(
        std::process::Command::new(&curl)
            .args(["-sS", "--fail", "-o"])
            .arg(&out)
            .arg(&url),
    )
    .ok();
    assert_same_file(&out, &f);

    let part = dir.path().join("part");
    run_cmd(
        std::process::Command::new(&curl)
            .args(["-sS", "--fail", "-r", "100-262243", "-o"])
            .arg(&part)
            .arg(&url),
    )
    .ok();
    let data = std::fs::read(&f).expect("read");
    assert!(
        std::fs::read(&part).expect("read") == data[100..=262_243],
        "curl -r body differs"
    );

    // Resume a cut download, as `curl -C -` does after a dropped connection.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &data[..CHUNK as usize + 5]).expect("write");
    run_cmd(
        std::process::Command::new(&curl)
            .args(["-sS", "--fail", "-C", "-", "-o"])
            .arg(&cut)
            .arg(&url),
    )
    .ok();
    assert_same_file(&cut, &f);

    // curl --fail turns 404 into exit 22.
    let absent = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let r = run_cmd(
        std::process::Command::new(&curl)
            .args(["-sS", "--fail", "-o", "/dev/null"])
            .arg(node.at(&format!("/ipfs/{absent}"))),
    );
    assert_eq!(r.status.code(), Some(22), "curl on a missing CID\n{r}");
}

/// Finds a program on PATH.
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

#[test]
fn concurrent_adds() {
    let node = TestNode::start();
    let dir = tmpdir();
    let files: Vec<std::path::PathBuf> = (0..3)
        .map(|i| {
            let f = dir.path().join(format!("c{i}"));
            kubo_file(&f, &format!("concurrent-{i}"), 20 * CHUNK + i);
            f
        })
        .collect();
    // Five uploads at once, two of them of the same file.
    let order = [0usize, 1, 0, 2, 1];
    let children: Vec<_> = order
        .iter()
        .map(|&i| {
            node.command(&[std::path::Path::new("add"), &files[i]])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn add")
        })
        .collect();
    for (&i, child) in order.iter().zip(children) {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "concurrent add of file {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            cid,
            shubnet_cid(&files[i], None),
            "concurrent add of file {i}"
        );
    }
    let h = holdings(&node);
    assert_eq!(h.pins.len(), 3, "pins after concurrent adds: {:?}", h.pins);
    assert_eq!(
        h.blobs.len(),
        3,
        "blobs after concurrent adds: {:?}",
        h.blobs
    );
    assert!(
        h.partial.is_empty(),
        "partial/ after concurrent adds: {:?}",
        h.partial
    );
    for (i, f) in files.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        node.cat_to(&shubnet_cid(f, None), &out);
        assert_same_file(&out, f);
    }
}

#[test]
fn unpin_and_gc() {
    let node = TestNode::start();
    let dir = tmpdir();
    let (fa, fb) = (dir.path().join("a"), dir.path().join("b"));
    kubo_file(&fa, "gc-a", 3 * CHUNK);
    kubo_file(&fb, "gc-b", 3 * CHUNK + 1);
    let a = node.add(&fa);
    let b = node.add(&fb);

    node.cli(&["pin", "rm", &a]).ok();
    node.cli(&["pin", "rm", &b]).ok();
    node.cli(&["pin", "add", &b]).ok();
    assert_eq!(
        node.pins(),
        vec![(b.clone(), 3 * CHUNK + 1)],
        "pins after rm a, rm b, add b"
    );
    // Unpinned content stays until gc.
    get(&node.at(&format!("/ipfs/{a}"))).expect_status(200);

    let r = node.cli(&["gc"]).ok();
    assert!(
        r.out().contains(&format!("removed {a}")),
        "gc did not report removing {a}\n{r}"
    );
    assert!(!r.out().contains(&b), "gc removed the pinned {b}\n{r}");
    get(&node.at(&format!("/ipfs/{a}"))).expect_status(404);
    assert_eq!(holdings(&node).blobs.len(), 1, "blobs after gc");
    let out = dir.path().join("b.out");
    node.cat_to(&b, &out);
    assert_same_file(&out, &fb);
    // A second gc has nothing to do; a CID that is gone cannot be pinned.
    let r = node.cli(&["gc"]).ok();
    assert!(
        !r.out().lines().any(|l| l.starts_with("removed ")),
        "second gc removed something\n{r}"
    );
    node.cli(&["pin", "add", &a]).fails();
}

#[test]
fn health_and_readiness_answer_for_probes() {
    let node = TestNode::start();
    let h = get(&node.at("/healthz"));
    h.expect_status(200);
    assert_eq!(h.body, b"ok\n");
    let r = get(&node.at("/readyz"));
    r.expect_status(200);
    assert_eq!(r.body, b"ready\n");
}
