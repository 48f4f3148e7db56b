//! Limits of the HTTP server against real processes: a slowloris client and a silent
//! connection are cut after `--header-timeout`; a stalled upload is cut after
//! `--body-idle-timeout` and leaves no partial file, pin or tag; library uploads survive a
//! restart until their tag call, and content never tagged is unpinned after `--upload-expiry`.

use shubnet_tests::TestNode;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::{kubo_bytes, sha256_hex};
use shubnet_tests::fed::{found, user_token};
use shubnet_tests::http::get;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn connect(node: &TestNode) -> TcpStream {
    let s = TcpStream::connect(node.url().trim_start_matches("http://")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    s
}

/// Reads until the node closes the connection; returns what it sent and how long it took.
fn until_closed(s: &mut TcpStream, since: Instant) -> (String, Duration) {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), since.elapsed())
}

#[test]
fn slow_request_heads_are_cut_and_others_still_served() {
    let node = TestNode::start_with(&["--header-timeout", "2"]);

    // Connects and sends nothing.
    let t = Instant::now();
    let mut silent = connect(&node);
    // Trickles a header line a byte at a time, every 300 ms (never finishing the head).
    let mut slow = connect(&node);
    let slow_start = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let mut cut_at = None;
    for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(&[*b]).is_err() {
            cut_at = Some(slow_start.elapsed());
            break;
        }
        // A closed socket shows as a read of 0 bytes before writes start failing.
        slow.set_nonblocking(true).expect("nonblocking");
        let mut one = [0u8; 1];
        let closed =
            !matches!(slow.read(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        slow.set_nonblocking(false).expect("blocking");
        if closed {
            cut_at = Some(slow_start.elapsed());
            break;
        }
    }
    let cut_at = cut_at.expect("a slowloris client that sent for 15 s was never cut");
    assert!(
        cut_at >= Duration::from_millis(1500) && cut_at < Duration::from_secs(8),
        "the trickling client was cut after {cut_at:?}, want about 2 s"
    );
    let (sent, took) = until_closed(&mut silent, t);
    assert!(
        !sent.contains("200 OK"),
        "the silent connection got an answer: {sent}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the silent connection stayed open {took:?}"
    );

    // A client that sends its head on time is served, also on a kept-alive connection whose
    // response took longer than the header timeout to read.
    let r = get(&node.at("/healthz"));
    r.expect_status(200);
    let mut s = connect(&node);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("first answer");
    assert!(String::from_utf8_lossy(&buf[..n]).contains(" 200 "));
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("second request");
    let (second, _) = until_closed(&mut s, Instant::now());
    assert!(second.contains(" 200 "), "keep-alive request: {second}");
}

/// `POST /v1/imagefile/<id>` of `declared` bytes, sending only `body`, then keeping the
/// connection open without a byte more.
fn stalled_upload(
    node: &TestNode,
    token: &str,
    id: &str,
    declared: usize,
    body: &[u8],
) -> TcpStream {
    let mut s = connect(node);
    let head = format!(
        "POST /v1/imagefile/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    s
}

#[test]
fn a_stalled_upload_is_cut_and_stores_nothing() {
    let node = TestNode::start_with(&["--body-idle-timeout", "4"]);
    found(&node);
    let token = user_token(&node, "alice", "lab-a", "push");
    let pins = node.pins();
    let file = kubo_bytes("stalled", 3_000_000);
    let id = format!("lab-a_stall_{}", sha256_hex(&file));

    let t = Instant::now();
    let mut s = stalled_upload(&node, &token, &id, file.len(), &file[..1_200_000]);
    // While it stalls, the store holds the partial upload...
    poll_until(
        Duration::from_secs(3),
        "a partial file of the upload",
        || (!node.files_under("partial").is_empty()).then_some(()),
    );
    // ...until the idle timeout cuts it: an error (or a closed connection), never 200.
    let (answer, took) = until_closed(&mut s, t);
    assert!(
        !answer.contains(" 200 "),
        "a stalled upload was accepted: {answer}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "the stalled upload was cut after {took:?}, want about 4 s"
    );
    poll_until(Duration::from_secs(5), "the partial upload removed", || {
        node.files_under("partial").is_empty().then_some(())
    });
    assert_eq!(node.pins(), pins, "a cut upload left content pinned");
    assert!(
        node.files_under("blobs").is_empty(),
        "a cut upload left a blob"
    );
    let tags = node.cli(&["tags", "--json"]).ok().out();
    assert_eq!(tags.trim(), "[]");

    // The same upload, not stalled, is stored: the node did not refuse it for other reasons.
    let mut s = stalled_upload(&node, &token, &id, file.len(), &file);
    let (answer, _) = until_closed_after_answer(&mut s);
    assert!(
        answer.contains(" 200 "),
        "a whole upload was refused: {answer}"
    );
}

/// Reads the answer to a complete request (the node keeps the connection alive).
fn until_closed_after_answer(s: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    (String::from_utf8_lossy(&buf[..n]).into_owned(), t.elapsed())
}

/// `curl` POST of `bytes` to `path` with a bearer token; returns the status code.
fn post(node: &TestNode, path: &str, token: &str, body: &[u8], tmp: &std::path::Path) -> u16 {
    let f = tmp.join("body");
    std::fs::write(&f, body).expect("write");
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg(node.at(path))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn library_uploads_survive_a_restart_and_untagged_ones_expire() {
    let tmp = crate::tmpdir();
    let mut node = TestNode::start();
    found(&node);
    let token = user_token(&node, "alice", "lab-a", "push,pull");

    // Uploaded, then the node restarts before the tag call: the tag call still finds it.
    let kept = kubo_bytes("upload-kept", 900_000);
    let kept_id = format!("lab-a_kept_{}", sha256_hex(&kept));
    assert_eq!(
        post(
            &node,
            &format!("/v1/imagefile/{kept_id}"),
            &token,
            &kept,
            tmp.path()
        ),
        200
    );
    node.restart();
    let tag = format!("{{\"Tag\":\"v1\",\"ImageID\":\"{kept_id}\"}}");
    assert_eq!(
        post(
            &node,
            "/v1/tags/lab-a_kept",
            &token,
            tag.as_bytes(),
            tmp.path()
        ),
        200,
        "the tag call after a restart did not find the upload\n{}",
        node.log_text()
    );
    let m = get(&node.at("/api/container/lab-a/kept:v1"));
    m.expect_status(200);
    let kept_root = serde_json::from_slice::<serde_json::Value>(&m.body).expect("json")["metadata"]
        ["root"]
        .as_str()
        .expect("root")
        .to_owned();

    // With a 2 s expiry, an upload no tag claims is unpinned and its blob removed; the tagged
    // one stays.
    node.set_serve_args(&["--upload-expiry", "2"], &[]);
    node.restart();
    let lost = kubo_bytes("upload-lost", 700_000);
    let lost_id = format!("lab-a_lost_{}", sha256_hex(&lost));
    assert_eq!(
        post(
            &node,
            &format!("/v1/imagefile/{lost_id}"),
            &token,
            &lost,
            tmp.path()
        ),
        200
    );
    let pinned = |n: &TestNode| -> Vec<String> { n.pins().into_iter().map(|(c, _)| c).collect() };
    assert_eq!(
        pinned(&node).len(),
        2,
        "both uploads pinned: {:?}",
        node.pins()
    );
    poll_until(
        Duration::from_secs(20),
        "the untagged upload to expire",
        || (pinned(&node) == vec![kept_root.clone()]).then_some(()),
    );
    poll_until(Duration::from_secs(5), "its blob removed", || {
        (node.files_under("blobs") == vec![kept_root.clone()]).then_some(())
    });
    // The record goes last, just after the blob.
    poll_until(Duration::from_secs(5), "its upload record removed", || {
        node.files_under("uploads").is_empty().then_some(())
    });
    // Its tag call now fails cleanly.
    let tag = format!("{{\"Tag\":\"v1\",\"ImageID\":\"{lost_id}\"}}");
    let code = post(
        &node,
        "/v1/tags/lab-a_lost",
        &token,
        tag.as_bytes(),
        tmp.path(),
    );
    assert_eq!(code, 404, "a tag call for an expired upload");
    get(&node.at("/api/container/lab-a/kept:v1")).expect_status(200);
}
