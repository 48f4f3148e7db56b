//! Input that must be refused with a clear error and a non-zero exit, leaving the node running
//! and holding exactly what it held before: no new pin, no new blob, nothing left in partial/.
//! (Malformed and unknown CIDs and ranges past the end are in `gateway::http_errors`.)

use crate::{Holdings, holdings, tmpdir};
use shubnet_tests::TestNode;
use shubnet_tests::cmd::{poll_until, run_cmd};
use shubnet_tests::data::{CHUNK, MIB, assert_same_file, kubo_file};
use shubnet_tests::js::{CarOrder, car_check_rejects, car_write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A node that already holds one file, so "unchanged" is not trivially "empty".
fn node_with_one_file(dir: &Path) -> (TestNode, Holdings) {
    let node = TestNode::start();
    let f = dir.join("existing");
    kubo_file(&f, "existing", 2 * CHUNK + 1);
    node.add(&f);
    let h = holdings(&node);
    assert_eq!(h.pins.len(), 1);
    assert!(
        h.partial.is_empty(),
        "partial/ not empty after a good add: {:?}",
        h.partial
    );
    (node, h)
}

#[track_caller]
fn assert_unchanged(node: &mut TestNode, before: &Holdings, what: &str) {
    node.assert_running();
    let after = holdings(node);
    assert_eq!(&after, before, "the node's holdings changed after {what}");
}

#[test]
fn add_missing_file_or_directory() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    let missing = dir.path().join("no-such-file.sif");
    node.cli(&[Path::new("add"), &missing])
        .fails()
        .stderr_mentions("no-such-file.sif")
        .stderr_mentions("No such file");
    node.cli(&[Path::new("add"), dir.path()])
        .fails()
        .stderr_mentions("directory");
    // A FIFO is not a regular file (and reading it would block forever).
    let fifo = dir.path().join("fifo");
    run_cmd(Command::new("mkfifo").arg(&fifo)).ok();
    node.cli(&[Path::new("add"), &fifo])
        .fails()
        .stderr_mentions("not a regular file");
    assert_unchanged(
        &mut node,
        &before,
        "adding a missing file, a directory and a FIFO",
    );
}

/// Root reads any file whatever its mode, so the CLI runs as `nobody` (setpriv, util-linux) on
/// a mode-000 file in a world-searchable directory: `stat` works, `open` gets EACCES.
#[test]
fn add_unreadable_file() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    let bin = shubnet_tests::bin::shubnet_bin();
    let probe = run_cmd(
        Command::new("setpriv")
            .args(setpriv)
            .arg(&bin)
            .arg("--version"),
    );
    assert!(
        probe.status.success(),
        "cannot run {} as uid 65534 (every directory above it must be world-searchable)\n{probe}",
        bin.display()
    );

    let open_dir = dir.path().join("world");
    std::fs::create_dir(&open_dir).expect("mkdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let f = open_dir.join("secret.sif");
    kubo_file(&f, "secret", CHUNK);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");

    let mut cmd = Command::new("setpriv");
    cmd.args(setpriv)
        .arg(&bin)
        .arg("add")
        .arg(&f)
        .args(["--node", node.url(), "--token", &node.token()])
        .env_remove("SHUBNET_DATA_DIR")
        .env_remove("SHUBNET_NODE");
    run_cmd(&mut cmd)
        .fails()
        .stderr_mentions("secret.sif")
        .stderr_mentions("Permission denied");
    assert_unchanged(&mut node, &before, "adding an unreadable file");
}

/// A read error in the middle of an upload: /proc/self/mem stats as a regular file but every
/// read at offset 0 fails with EIO, even for root. The upload must fail, not store a short file.
#[test]
fn add_file_whose_read_fails() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    node.cli(&["add", "/proc/self/mem"]).fails();
    assert_unchanged(&mut node, &before, "an add whose reads failed");
}

/// Start and end offsets of each section of a CAR v1 (after the header).
fn car_sections(car: &[u8]) -> Vec<(usize, usize)> {
    fn varint(b: &[u8], pos: &mut usize) -> usize {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let byte = b[*pos];
            *pos += 1;
            v |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let mut pos = 0;
    let header = varint(car, &mut pos);
    pos += header;
    let mut out = Vec::new();
    while pos < car.len() {
        let start = pos;
        let len = varint(car, &mut pos);
        pos += len;
        out.push((start, pos));
    }
    assert_eq!(pos, car.len(), "test CAR is malformed");
    out
}

/// A CAR of a 6-leaf file in DFS order (root section first), its bytes and its root.
fn sample_car(dir: &Path) -> (PathBuf, Vec<u8>, String) {
    let f = dir.join("car-source");
    kubo_file(&f, "car-source", 5 * CHUNK + 3);
    let car = dir.join("good.car");
    let root = car_write(&f, &car, CarOrder::Dfs, None);
    let bytes = std::fs::read(&car).expect("read");
    (car, bytes, root)
}

#[test]
fn truncated_car_import_changes_nothing() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    let (good, bytes, root) = sample_car(dir.path());
    let sections = car_sections(&bytes);
    assert_eq!(sections.len(), 7);
    let cuts = [
        ("inside the header", 20),
        ("inside the root block", sections[0].0 + 50),
        ("inside a leaf", sections[3].0 + 1000),
        // Well-formed CAR v1, but the DAG is incomplete: 2 of 6 leaves missing.
        ("at a section boundary", sections[4].1),
        ("one byte short", bytes.len() - 1),
    ];
    for (what, at) in cuts {
        let cut = dir.path().join("cut.car");
        std::fs::write(&cut, &bytes[..at]).expect("write");
        let r = node
            .cli(&[Path::new("car"), Path::new("import"), &cut])
            .fails();
        assert!(
            !r.stdout.windows(root.len()).any(|w| w == root.as_bytes()),
            "a CAR truncated {what} printed the root as imported\n{r}"
        );
        assert_unchanged(
            &mut node,
            &before,
            &format!("importing a CAR truncated {what}"),
        );
    }
    // The whole CAR still imports afterwards.
    let r = node
        .cli(&[Path::new("car"), Path::new("import"), &good])
        .ok();
    assert_eq!(r.out(), root, "\n{r}");
}

#[test]
fn car_with_corrupted_block_is_rejected() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    let (good, bytes, root) = sample_car(dir.path());
    let sections = car_sections(&bytes);
    for (what, at) in [
        ("the root block", sections[0].1 - 3),
        ("a middle leaf", sections[3].0 + 5000),
        ("the last leaf", sections[6].1 - 1),
    ] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let path = dir.path().join("bad.car");
        std::fs::write(&path, &bad).expect("write");
        // The reference reader agrees the CAR is bad.
        car_check_rejects(&path);
        node.cli(&[Path::new("car"), Path::new("import"), &path])
            .fails();
        assert_unchanged(
            &mut node,
            &before,
            &format!("importing a CAR with a bit flipped in {what}"),
        );
    }
    let r = node
        .cli(&[Path::new("car"), Path::new("import"), &good])
        .ok();
    assert_eq!(r.out(), root, "\n{r}");
}

/// A tmpfs mounted for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mkdir mount point");
        let r = run_cmd(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "shubnet-test",
                ])
                .arg(at),
        );
        assert!(
            r.status.success(),
            "this test needs to mount a {size} tmpfs (root with CAP_SYS_ADMIN) to fill a disk, \
             and could not\n{r}"
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("umount {} failed; detaching it lazily", self.0.display());
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn disk_full_during_add() {
    let dir = tmpdir();
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, "64m");
    let mut node = TestNode::start_at(&data, &dir.path().join("logs"));
    let big = dir.path().join("big.sif");
    kubo_file(&big, "disk-full", 100 * MIB);

    let r = node
        .cli(&[Path::new("add"), &big])
        .fails()
        .stderr_mentions("space");
    eprintln!("add on a full disk: {}", r.stderr.trim());
    node.assert_running();
    let partial = node.files_under("partial");
    let blobs = node.files_under("blobs");
    assert!(
        partial.is_empty(),
        "partial/ keeps {partial:?} after a failed add"
    );
    assert!(blobs.is_empty(), "blobs/ has {blobs:?} after a failed add");
    assert!(node.pins().is_empty(), "a failed add left a pin");

    // Space was given back: a file that fits can be added and read.
    let small = dir.path().join("small.sif");
    kubo_file(&small, "fits", 8 * MIB);
    let cid = node.add(&small);
    let out = dir.path().join("out");
    node.cat_to(&cid, &out);
    assert_same_file(&out, &small);
    drop(node);
}

/// The uploading client dies mid-upload: the node must drop the partial upload by itself, with
/// no restart and no repair, and keep serving.
#[test]
fn client_killed_mid_upload() {
    let dir = tmpdir();
    let (mut node, before) = node_with_one_file(dir.path());
    let big = dir.path().join("big.sif");
    kubo_file(&big, "client-dies", 300 * MIB);
    let mut add = node
        .command(&[Path::new("add"), &big])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn add");
    poll_until(
        Duration::from_secs(120),
        "the upload to reach 20 MiB in partial/",
        || {
            let sizes: Vec<u64> = node
                .files_under("partial")
                .iter()
                .filter_map(|p| std::fs::metadata(node.data_dir().join("partial").join(p)).ok())
                .map(|m| m.len())
                .collect();
            sizes.iter().any(|&s| s >= 20 * MIB).then_some(())
        },
    );
    assert!(
        add.try_wait().expect("try_wait").is_none(),
        "the add finished too soon"
    );
    add.kill().expect("kill -9 the client");
    add.wait().expect("reap");
    // The node notices the broken connection and cleans up on its own.
    poll_until(
        Duration::from_secs(30),
        "partial/ to be emptied after the client died",
        || node.files_under("partial").is_empty().then_some(()),
    );
    assert_unchanged(&mut node, &before, "a client killed mid-upload");
}

/// A downloader that hangs up mid-body does not hurt the node.
#[test]
fn client_hangs_up_mid_download() {
    use std::io::{Read, Write};
    let dir = tmpdir();
    let (mut node, _) = node_with_one_file(dir.path());
    let f = dir.path().join("dl");
    kubo_file(&f, "hang-up", 64 * MIB);
    let cid = node.add(&f);
    let hostport = node.url().trim_start_matches("http://").to_string();
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(&hostport).expect("connect");
        write!(s, "GET /ipfs/{cid} HTTP/1.1\r\nHost: {hostport}\r\n\r\n").expect("send");
        let mut buf = vec![0u8; 256 * 1024];
        s.read_exact(&mut buf).expect("read the first bytes");
        drop(s);
    }
    node.assert_running();
    let out = dir.path().join("out");
    node.cat_to(&cid, &out);
    assert_same_file(&out, &f);
}
