//! Crash safety (DESIGN.md "Store on disk"): a crash at any moment leaves the old state or the
//! new one, never a corrupt blob; the index is derived and `shubnet repair` rebuilds it from
//! `blobs/`.

use crate::{shubnet_cid, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, wait_deadline};
use shubnet_tests::data::{CHUNK, LINKS, MIB, assert_same_file, block_count, kubo_file};
use shubnet_tests::js::{CarOrder, car_check, car_write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Every file under `DATA_DIR/blobs` must be a complete image: `shubnet cid` of it must equal its
/// name.
#[track_caller]
fn assert_blobs_complete(node: &TestNode) {
    let blobs = node.files_under("blobs");
    for rel in &blobs {
        let path = node.data_dir().join("blobs").join(rel);
        let name = Path::new(rel)
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let cid = shubnet_cid(&path, None);
        assert_eq!(
            cid,
            name,
            "blob {} ({} bytes) does not hash to its name: it is partial or corrupt",
            path.display(),
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        );
    }
}

#[track_caller]
fn repair_is_clean(node: &TestNode) -> String {
    let r = node.cli(&["repair"]).ok();
    let out = r.out();
    assert!(
        out.lines().any(|l| l.trim() == "repair: no damage"),
        "`shubnet repair` did not report `repair: no damage`\n{r}"
    );
    out
}

/// (size, allocated blocks, mtime ns) of every file under `partial/`.
fn partial_state(node: &TestNode) -> Vec<(String, u64, u64, i64)> {
    node.files_under("partial")
        .into_iter()
        .filter_map(|rel| {
            let m = std::fs::metadata(node.data_dir().join("partial").join(&rel)).ok()?;
            Some((
                rel,
                m.len(),
                m.blocks(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ))
        })
        .collect()
}

#[test]
fn kill9_during_add_leaves_no_partial_blob() {
    let dir = tmpdir();
    let len = 300 * MIB;
    let f = dir.path().join("big.sif");
    kubo_file(&f, "crash-add", len);
    let want = shubnet_cid(&f, None);

    let mut node = TestNode::start();
    let before = node.files_under("blobs");
    assert!(before.is_empty(), "a new node has blobs: {before:?}");

    // Start the upload in the background and catch the node writing it.
    let mut add = node
        .command(&[Path::new("add"), f.as_path()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning shubnet add");
    let first = poll_until(
        Duration::from_secs(120),
        "a file under DATA_DIR/partial",
        || {
            let s = partial_state(&node);
            s.iter().any(|e| e.1 > 0).then_some(s)
        },
    );
    poll_until(Duration::from_secs(60), "the partial file to grow", || {
        (partial_state(&node) != first).then_some(())
    });
    assert!(
        add.try_wait().expect("try_wait").is_none(),
        "`shubnet add` of {len} bytes finished before the node could be killed mid-upload"
    );
    let caught = partial_state(&node);
    node.kill9();
    eprintln!("killed the node mid-upload; partial/ was {caught:?}");

    let status = wait_deadline(&mut add, Duration::from_secs(60), "shubnet add");
    let mut add_out = String::new();
    let mut add_err = String::new();
    use std::io::Read;
    let _ = add
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut add_out);
    let _ = add
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut add_err);
    assert!(
        !status.success(),
        "`shubnet add` succeeded although the node was killed mid-upload (partial was {caught:?})\nstdout: {add_out}\nstderr: {add_err}"
    );

    // Nothing half-written may be published as a blob, before or after restart and repair.
    assert_blobs_complete(&node);
    node.restart();
    repair_is_clean(&node);
    assert_blobs_complete(&node);
    let left = node.files_under("partial");
    assert!(
        left.is_empty(),
        "partial/ still holds {left:?} after restart and `shubnet repair` (the crashed upload is garbage)"
    );
    assert!(
        node.pins().iter().all(|(c, _)| *c != want),
        "the interrupted add is pinned"
    );

    // The same add now succeeds and reads back.
    assert_eq!(node.add(&f), want);
    let out = dir.path().join("out");
    node.cat_to(&want, &out);
    assert_same_file(&out, &f);
    assert_blobs_complete(&node);
}

#[test]
fn index_is_rebuilt_from_blobs() {
    let dir = tmpdir();
    let mut node = TestNode::start();
    let sizes = [1, CHUNK + 1, 3 * MIB + 5, (LINKS + 1) * CHUNK + 1];
    let mut added = Vec::new();
    for (i, len) in sizes.into_iter().enumerate() {
        let f = dir.path().join(format!("f{i}"));
        kubo_file(&f, &format!("reindex-{i}"), len);
        let cid = node.add(&f);
        added.push((cid, f));
    }
    let pins_before = node.pins();
    assert_eq!(
        pins_before.len(),
        sizes.len(),
        "pins after {} adds: {pins_before:?}",
        sizes.len()
    );

    let status = node.stop();
    assert!(status.success(), "the node exited with {status} on SIGTERM");
    let index = node.data_dir().join("index");
    assert!(index.exists(), "no index at {}", index.display());
    std::fs::remove_dir_all(&index).expect("rm -rf index");

    node.restart();
    repair_is_clean(&node);
    for (i, (cid, f)) in added.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        node.cat_to(cid, &out);
        assert_same_file(&out, f);
    }
    // The dag-pb nodes come back too, not only the bytes.
    let car = dir.path().join("after.car");
    node.cli_to_file(&["car", "export", &added[3].0], &car).ok();
    let report = car_check(&car);
    assert_eq!(report.roots, vec![added[3].0.clone()]);
    assert_eq!(report.blocks, block_count(sizes[3], CHUNK, LINKS));
    assert_eq!(report.missing, 0);
    assert_eq!(
        node.pins(),
        pins_before,
        "the pins changed when the index was rebuilt from blobs/ (a later gc would delete content)"
    );
}

/// What a command did when the node under it was killed.
struct Interrupted {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    /// partial/ just before the kill.
    partial: Vec<(String, u64, u64, i64)>,
}

/// Runs `shubnet ARGS…` against `node` and SIGKILLs the node once the largest file in partial/
/// holds `at_bytes` (or once the command has exited, whichever comes first).
fn kill_node_during(node: &mut TestNode, args: &[&std::ffi::OsStr], at_bytes: u64) -> Interrupted {
    let mut child = node
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning shubnet");
    let partial = poll_until(
        Duration::from_secs(300),
        &format!("partial/ to reach {at_bytes} bytes"),
        || {
            let s = partial_state(node);
            let done = child.try_wait().ok().flatten().is_some();
            (done || s.iter().any(|e| e.1 >= at_bytes)).then_some(s)
        },
    );
    node.kill9();
    let status = wait_deadline(&mut child, Duration::from_secs(60), "shubnet");
    use std::io::Read;
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    Interrupted {
        status,
        stdout,
        stderr,
        partial,
    }
}

/// After a crash and a restart: repair is clean, every blob is whole, partial/ is empty, and
/// every acknowledged file still reads back.
#[track_caller]
fn after_crash(node: &mut TestNode, held: &[(String, std::path::PathBuf)], dir: &Path) {
    node.restart();
    repair_is_clean(node);
    assert_blobs_complete(node);
    let left = node.files_under("partial");
    assert!(
        left.is_empty(),
        "partial/ holds {left:?} after restart and repair"
    );
    for (i, (cid, f)) in held.iter().enumerate() {
        let out = dir.join(format!("held-{i}.out"));
        node.cat_to(cid, &out);
        assert_same_file(&out, f);
    }
}

#[test]
fn kill9_at_several_points_of_add_and_car_import() {
    let dir = tmpdir();
    let mut node = TestNode::start();
    let mut held: Vec<(String, std::path::PathBuf)> = Vec::new();
    let len = 200 * MIB;
    for (i, frac) in [0.02, 0.5, 0.99, 1.5].into_iter().enumerate() {
        let f = dir.path().join(format!("sweep-{i}"));
        kubo_file(&f, &format!("sweep-{i}"), len);
        let want = shubnet_cid(&f, None);
        let at = (len as f64 * frac) as u64;
        let r = kill_node_during(&mut node, &["add".as_ref(), f.as_os_str()], at);
        eprintln!(
            "add killed at {frac} ({at} bytes): {}, partial/ was {:?}",
            r.status, r.partial
        );
        if r.status.success() {
            // Acknowledged before the kill: it must survive.
            assert_eq!(
                r.stdout.trim(),
                want,
                "add printed a wrong CID\n{}",
                r.stderr
            );
            held.push((want.clone(), f.clone()));
        }
        after_crash(&mut node, &held, dir.path());
        if !r.status.success() {
            let pinned = node.pins().into_iter().any(|(c, _)| c == want);
            assert!(!pinned, "an add killed at {frac} left {want} pinned");
            let g = shubnet_tests::http::head(&node.at(&format!("/ipfs/{want}")));
            assert_eq!(
                g.status, 404,
                "an add killed at {frac} left {want} servable\n{g}"
            );
        }
        if !r.status.success() {
            std::fs::remove_file(&f).expect("rm");
        }
    }
    assert!(
        !held.is_empty(),
        "no add finished before its kill: the last round (kill after 1.5× the size) must"
    );

    // The same for a CAR import: a CAR written by CarWriter, node killed half way.
    let f = dir.path().join("car-src");
    kubo_file(&f, "crash-car", 100 * MIB);
    let car = dir.path().join("crash.car");
    let root = car_write(&f, &car, CarOrder::Dfs, None);
    let r = kill_node_during(
        &mut node,
        &["car".as_ref(), "import".as_ref(), car.as_os_str()],
        50 * MIB,
    );
    eprintln!(
        "car import killed half way: {}, partial/ was {:?}",
        r.status, r.partial
    );
    if r.status.success() {
        held.push((root.clone(), f.clone()));
    }
    after_crash(&mut node, &held, dir.path());
    let r = node
        .cli(&["car".as_ref(), "import".as_ref(), car.as_os_str()])
        .ok();
    assert_eq!(r.out(), root);
    let out = dir.path().join("car.out");
    node.cat_to(&root, &out);
    assert_same_file(&out, &f);
}
