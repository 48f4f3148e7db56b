//! Graceful shutdown: SIGTERM during a 1 GiB upload (curl, rate-limited so the signal lands
//! mid-body). With a grace period long enough, the upload completes, answers 200 with the CID
//! the file really has, and is stored; with a short one it is cut, the client gets an error,
//! and nothing of it is kept. Either way the node exits within its bound and, after a restart,
//! `shubnet repair` is clean with no partial files.

use crate::tmpdir;
use shubnet_tests::TestNode;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

/// Starts `curl` uploading `file` to the node's `/admin/v1/add` at `rate` (curl syntax).
fn start_upload(node: &TestNode, file: &Path, rate: &str, out: &Path) -> std::process::Child {
    Command::new("curl")
        .args(["-sS", "-X", "POST", "-T"])
        .arg(file)
        .args(["--limit-rate", rate])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", node.token()))
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
        ])
        .args(["-o"])
        .arg(out)
        .args(["-w", "%{http_code}"])
        .arg(node.at("/admin/v1/add"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl must be installed (Debian: curl)")
}

fn sigterm(node: &TestNode) {
    let pid = node.pid().expect("running");
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Restarts `node`, runs `shubnet repair` and checks it found nothing to mend.
fn restart_and_repair_is_clean(node: &mut TestNode) {
    node.restart();
    let r = node.cli(&["repair"]).ok();
    let out = r.out();
    assert!(
        out.contains("removed 0 partial file(s)") && out.contains("no damage"),
        "repair after the restart was not clean\n{r}"
    );
    assert!(
        node.files_under("partial").is_empty(),
        "partial files left: {:?}",
        node.files_under("partial")
    );
}

#[test]
fn sigterm_during_a_1gib_upload_completes_or_errors_never_truncates() {
    let tmp = tmpdir();
    let file = tmp.path().join("big.sif");
    // Sparse: costs no disk, still 1 GiB to send, chunk and hash.
    std::fs::File::create(&file)
        .and_then(|f| f.set_len(GIB))
        .expect("making a 1 GiB file");
    let want_cid = shubnet_tests::bin::shubnet_command(&["cid".as_ref(), file.as_os_str()])
        .output()
        .expect("shubnet cid");
    let want_cid = String::from_utf8_lossy(&want_cid.stdout).trim().to_string();
    assert!(
        want_cid.starts_with("bafy"),
        "shubnet cid printed {want_cid:?}"
    );

    // 1. A short grace: the upload (about 20 s at 50 MB/s) is cut about 1 s after SIGTERM.
    let mut node = TestNode::start_with(&["--shutdown-grace", "1"]);
    let body = tmp.path().join("cut.json");
    let curl = start_upload(&node, &file, "50M", &body);
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    sigterm(&node);
    let exit = node.wait_exit(Duration::from_secs(15));
    let took = t.elapsed();
    let out = curl.wait_with_output().expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !(out.status.success() && code.starts_with('2')),
        "the cut upload was answered {code}: {}",
        std::fs::read_to_string(&body).unwrap_or_default()
    );
    assert!(exit.success(), "node exit {exit}\n{}", node.log_text());
    assert!(
        took < Duration::from_secs(10),
        "the node took {took:?} to stop with a 1 s grace"
    );
    assert!(
        node.log_text().contains("cut"),
        "the node did not log that it cut requests\n{}",
        node.log_text()
    );
    restart_and_repair_is_clean(&mut node);
    assert!(
        node.pins().is_empty(),
        "the cut upload left content: {:?}",
        node.pins()
    );

    // 2. A long grace: the upload started before SIGTERM finishes, answers 200, is stored
    //    and verifies; only then does the node exit.
    node.set_args(&["--shutdown-grace", "120"]);
    node.restart();
    let body = tmp.path().join("done.json");
    let curl = start_upload(&node, &file, "200M", &body);
    std::thread::sleep(Duration::from_secs(2));
    sigterm(&node);
    let out = curl.wait_with_output().expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    let answer = std::fs::read_to_string(&body).unwrap_or_default();
    assert!(
        out.status.success() && code == "200",
        "the drained upload failed: {code} {answer} {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_text()
    );
    let exit = node.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "node exit {exit}\n{}", node.log_text());
    assert!(
        answer.contains(&want_cid),
        "the node answered 200 with {answer}, not the file's CID {want_cid}"
    );
    restart_and_repair_is_clean(&mut node);
    assert_eq!(
        node.pins(),
        vec![(want_cid.clone(), GIB)],
        "the drained upload is not stored whole"
    );
}

/// The node stops its parts in the reverse of the order it built them: HTTP drains first (a
/// drain still needs the network for on-demand reads), then the replicator, then the network,
/// each awaited before the next, and the process exits cleanly.
#[test]
fn sigterm_stops_http_then_replication_then_the_network() {
    let shubnet_tests::fed::TwoMembers { mut a, .. } = shubnet_tests::fed::TwoMembers::connected();
    let status = a.stop();
    assert!(status.success(), "exit status {status}\n{}", a.log_text());
    let log = a.log_text();
    let at = |line: &str| {
        log.find(line)
            .unwrap_or_else(|| panic!("no {line:?} in the log\n{log}"))
    };
    let http = at("shutting down: every request finished");
    let replication = at("replication stopped");
    let network = at("p2p network stopped");
    assert!(
        http < replication && replication < network,
        "stopped out of order (HTTP at {http}, replication at {replication}, network at \
         {network})\n{log}"
    );
}
