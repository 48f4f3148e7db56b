//! Blobs on S3-compatible object storage, against a real Garage server started by the test:
//! push and pull through the gateway with the bucket as the truth (cache emptied, index lost,
//! both rebuilt from the bucket), a federation member on Garage, kill -9 in the middle of a
//! multipart upload, an unreachable store at start, and refused credentials. What is in the
//! bucket is checked through the S3 listing APIs (ListObjectsV2, ListMultipartUploads).

use crate::tmpdir;
use shubnet_tests::TestNode;
use shubnet_tests::bin::shubnet_command;
use shubnet_tests::cmd::poll_until;
use shubnet_tests::data::{assert_same_file, kubo_bytes, kubo_file};
use shubnet_tests::fed::{create_with, found, join, push, request, status, strings};
use shubnet_tests::garage::Garage;
use shubnet_tests::http::{get, get_range};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn blobs_args(garage: &Garage, prefix: &str) -> Vec<String> {
    vec!["--blobs".into(), garage.url(prefix)]
}

fn start_on(garage: &Garage, prefix: &str, extra: &[&str]) -> TestNode {
    let mut args: Vec<String> = blobs_args(garage, prefix);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestNode::start_with_env(&args, &garage.env())
}

/// Push, then pull whole and by range through the gateway; the blob is in the bucket under its
/// CID. Then the local cache and the index are deleted: the node rebuilds its index from the
/// bucket listing and serves the same bytes with ranged GETs.
#[test]
fn s3_push_pull_through_the_gateway_and_rebuild_from_the_bucket() {
    let garage = Garage::start();
    let tmp = tmpdir();
    let mut node = start_on(&garage, "n1", &[]);
    found(&node);
    // More than one 8 MiB part, so the upload is a multipart one.
    let len = 21 * 1024 * 1024 + 123;
    let file = tmp.path().join("img");
    kubo_file(&file, "s3-gateway", len);
    let cid = node.add(&file);
    assert_eq!(
        garage.blobs("n1"),
        vec![(cid.clone(), len)],
        "the bucket should hold exactly the blob, under its CID\n{}",
        node.log_text()
    );
    assert!(garage.incomplete_uploads("n1").is_empty());

    let want = kubo_bytes("s3-gateway", len);
    let check = |node: &TestNode| {
        let r = get(&node.at(&format!("/ipfs/{cid}")));
        r.expect_status(200);
        assert!(
            r.body == want,
            "whole-file GET differs ({} bytes)",
            r.body.len()
        );
        let (from, to) = (9 * 1024 * 1024 - 5, 17 * 1024 * 1024 + 3);
        let r = get_range(&node.at(&format!("/ipfs/{cid}")), &format!("{from}-{to}"));
        r.expect_status(206);
        assert!(
            r.body == want[from..=to],
            "ranged GET differs ({} bytes)",
            r.body.len()
        );
    };
    check(&node);
    let pushed = tmp.path().join("pushed.sif");
    std::fs::write(&pushed, kubo_bytes("s3-push", 3 * 1024 * 1024)).expect("write");
    push(&node, &pushed, "lab-a/tools:1.0", false);
    let pushed_cid = node.add(&pushed);

    // The cache is emptied and sized 0: every read is a ranged GET from the bucket.
    node.stop();
    std::fs::remove_dir_all(node.data_dir().join("blobs")).expect("deleting blobs/");
    node.set_env(
        &[
            garage.env(),
            vec![("SHUBNET_BLOBS_CACHE".into(), "0".into())],
        ]
        .concat(),
    );
    node.restart();
    check(&node);
    let out = tmp.path().join("cat");
    node.cat_to(&pushed_cid, &out);
    assert_same_file(&out, &pushed);
    // The shub API: the manifest, then the image URL it names, served from the bucket.
    let m = get(&node.at("/api/container/lab-a/tools:1.0"));
    m.expect_status(200);
    let m: serde_json::Value = serde_json::from_slice(&m.body).expect("shub JSON");
    let image = m["image"].as_str().expect("an image URL").to_string();
    let path = image
        .strip_prefix(node.url())
        .expect("an image URL on the node");
    let r = get(&node.at(path));
    r.expect_status(200);
    assert!(
        r.body == kubo_bytes("s3-push", 3 * 1024 * 1024),
        "shub download differs"
    );
    assert!(
        node.files_under("blobs")
            .iter()
            .all(|f| f.ends_with(".car")),
        "the cache of size 0 kept blobs: {:?}",
        node.files_under("blobs")
    );

    // The index is lost too: it is rebuilt from the bucket listing, every blob checked and
    // pinned, and served again.
    node.stop();
    for sub in ["blobs", "index"] {
        std::fs::remove_dir_all(node.data_dir().join(sub)).expect("deleting");
    }
    node.restart();
    let pins: Vec<String> = node.pins().into_iter().map(|(c, _)| c).collect();
    assert!(
        pins.contains(&cid) && pins.contains(&pushed_cid),
        "the rebuilt index lacks a blob of the bucket: {pins:?}\n{}",
        node.log_text()
    );
    check(&node);
}

/// kill -9 while a blob's multipart upload is half done (the test build holds uploads after
/// their first part when SHUBNET_FAULT_STALL_UPLOAD is set): the bucket then has an incomplete
/// upload and nothing under a final name. After a restart the incomplete upload is aborted and
/// still nothing is under a final name; the same add then succeeds.
#[test]
fn s3_kill9_during_an_upload_leaves_no_orphan_and_no_half_object() {
    let garage = Garage::start();
    let tmp = tmpdir();
    let stall: Vec<(String, String)> = [
        garage.env(),
        vec![("SHUBNET_FAULT_STALL_UPLOAD".into(), "1".into())],
    ]
    .concat();
    let mut node = TestNode::start_with_env(&["--blobs", &garage.url("crash")], &stall);
    let file = tmp.path().join("img");
    kubo_file(&file, "s3-crash", 30 * 1024 * 1024);
    let mut add = node
        .command(&["add".as_ref(), file.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting `shubnet add`");
    poll_until(
        Duration::from_secs(30),
        "an incomplete multipart upload in the bucket",
        || (!garage.incomplete_uploads("crash").is_empty()).then_some(()),
    );
    node.kill9();
    let _ = add.kill();
    let _ = add.wait();
    assert!(
        !garage.incomplete_uploads("crash").is_empty(),
        "the upload should still be incomplete after kill -9"
    );
    assert_eq!(garage.blobs("crash"), vec![], "a half object is visible");

    node.set_env(&garage.env());
    node.restart();
    assert_eq!(
        garage.incomplete_uploads("crash"),
        vec![],
        "the orphaned multipart upload was not aborted at start\n{}",
        node.log_text()
    );
    assert_eq!(garage.blobs("crash"), vec![], "a half object is visible");
    let cid = node.add(&file);
    assert_eq!(garage.blobs("crash"), vec![(cid, 30 * 1024 * 1024)]);
}

/// Refused credentials stop the node at start with an error that says so and names the key.
#[test]
fn s3_wrong_credentials_are_named_in_the_error() {
    let garage = Garage::start();
    if garage.is_moto() {
        return; // moto accepts any credentials and forgets its objects on restart
    }
    let tmp = tmpdir();
    let mut env = garage.env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "00".repeat(32);
        }
    }
    let out = shubnet_command(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--p2p",
        "/ip4/127.0.0.1/tcp/0",
    ])
    .arg("--data-dir")
    .arg(tmp.path().join("data"))
    .args(["--blobs", &garage.url("creds")])
    .envs(env)
    .stdin(Stdio::null())
    .output()
    .expect("running serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "serve started with a wrong secret\n{stderr}"
    );
    assert!(
        stderr.contains("refused the credentials") && stderr.contains("GK0123456789abcdef01234567"),
        "the error does not name the credentials and the key id:\n{stderr}"
    );
}

/// With the store unreachable at start the node keeps retrying and is not ready (no API yet);
/// once the store is back it opens the store and serves.
#[test]
fn s3_unreachable_at_start_is_not_ready_and_retries() {
    let mut garage = Garage::start();
    if garage.is_moto() {
        return; // moto accepts any credentials and forgets its objects on restart
    }
    garage.kill();
    let tmp = tmpdir();
    let data = tmp.path().join("data");
    let log = tmp.path().join("serve.stderr");
    let mut child = shubnet_command(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--p2p",
        "/ip4/127.0.0.1/tcp/0",
    ])
    .arg("--data-dir")
    .arg(&data)
    .args(["--blobs", &garage.url("down")])
    .envs(garage.env())
    .env("NO_COLOR", "1")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("starting serve");
    poll_until(Duration::from_secs(30), "a retry in the log", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("object storage unreachable; not ready, retrying")
            .then_some(())
    });
    assert!(
        child.try_wait().expect("wait").is_none(),
        "serve gave up while the store was unreachable\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        !data.join("api.url").exists(),
        "the node serves (and would answer /readyz) before its store is open"
    );
    garage.restart();
    let t0 = Instant::now();
    let url = poll_until(Duration::from_secs(60), "the node to serve", || {
        let u = std::fs::read_to_string(data.join("api.url")).ok()?;
        let u = u.trim().trim_end_matches('/').to_string();
        (get_status(&format!("{u}/healthz")) == Some(200)).then_some(u)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(!url.is_empty(), "ready after {:?}", t0.elapsed());
}

fn get_status(url: &str) -> Option<u16> {
    let hostport = url.strip_prefix("http://")?.split('/').next()?;
    std::net::TcpStream::connect(hostport).ok()?;
    Some(get(url).status)
}

/// Three institutions, B's blobs on Garage and mirroring everything: an image pushed on A
/// reaches B's bucket; an image pushed on B is in its bucket, replicated to another member, and
/// pulled through C.
#[test]
fn s3_federation_member_on_garage_pushes_pulls_and_replicates() {
    let garage = Garage::start();
    let tmp = tmpdir();
    let a = TestNode::start_with(&["--sync-interval", "2"]);
    let a_addr = a.p2p_addr();
    let boot = ["--sync-interval", "2", "--bootstrap", &a_addr];
    let b_env = [garage.env(), vec![("SHUBNET_MIRROR".into(), "all".into())]].concat();
    let mut b_args: Vec<&str> = boot.to_vec();
    let url = garage.url("b");
    b_args.extend(["--blobs", &url]);
    let b = TestNode::start_with_env(&b_args, &b_env);
    let c = TestNode::start_with(&boot);
    let fed = create_with(
        &a,
        "Fed",
        "lab-a",
        &["--storage", "1G", "--replication", "2"],
    );
    for (n, inst) in [(&b, "lab-b"), (&c, "lab-c")] {
        let line = request(n, inst);
        a.cli(&["federation", "admit", &line, "--storage", "1G"])
            .ok();
    }
    join(&b, &fed, a.url());
    join(&c, &fed, a.url());

    // Pushed on A: B mirrors it into its bucket.
    let fa = tmp.path().join("a.sif");
    kubo_file(&fa, "s3-fed-a", 5 * 1024 * 1024 + 7);
    push(&a, &fa, "lab-a/app:1.0", false);
    let a_cid = a.add(&fa);
    poll_until(Duration::from_secs(60), "A's image in B's bucket", || {
        garage
            .blobs("b")
            .iter()
            .any(|(n, _)| *n == a_cid)
            .then_some(())
    });

    // Pushed on B: in the bucket, held by a second member, and pulled through C.
    let fb = tmp.path().join("b.sif");
    kubo_file(&fb, "s3-fed-b", 9 * 1024 * 1024 + 3);
    push(&b, &fb, "lab-b/app:1.0", false);
    let b_cid = b.add(&fb);
    assert!(garage.blobs("b").iter().any(|(n, _)| *n == b_cid));
    poll_until(Duration::from_secs(60), "B's image on 2 holders", || {
        let s = status(&b);
        let img = s["images"]
            .as_array()?
            .iter()
            .find(|i| strings(&i["tags"]).iter().any(|t| t == "lab-b/app:1.0"))?;
        (img["replicas"].as_u64()? >= 2).then_some(())
    });
    let out = tmp.path().join("pulled");
    c.cli(&[
        "pull".as_ref(),
        "lab-b/app:1.0".as_ref(),
        "--from".as_ref(),
        c.url().as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    assert_same_file(&out, &fb);
}

/// Two nodes on one prefix: the second refuses to start and names the first; on its own prefix
/// it starts. The first, killed and restarted, takes its own lock back at once.
#[test]
fn s3_a_second_writer_on_a_prefix_refuses_to_start() {
    let garage = Garage::start();
    let tmp = tmpdir();
    let mut first = start_on(&garage, "shared", &[]);
    let first_peer = shubnet_tests::fed::keys(&first).peer_id;
    let out = shubnet_command(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--p2p",
        "/ip4/127.0.0.1/tcp/0",
    ])
    .arg("--data-dir")
    .arg(tmp.path().join("second"))
    .args(["--blobs", &garage.url("shared")])
    .envs(garage.env())
    .stdin(Stdio::null())
    .output()
    .expect("running serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a second writer started on the prefix\n{stderr}"
    );
    assert!(
        stderr.contains("another node") && stderr.contains(&first_peer),
        "the refusal does not name the other writer:\n{stderr}"
    );
    let other = start_on(&garage, "other", &[]);
    drop(other);
    first.kill9();
    first.restart();
}
