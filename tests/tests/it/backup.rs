//! `shubnet backup` / `restore` through real processes: a node restored from its backup has
//! the same identity, federation, tags and tokens, rebuilt from the log alone.

use crate::tmpdir;
use shubnet_tests::TestNode;
use shubnet_tests::data::kubo_file;
use shubnet_tests::fed::{create, keys, push, show, tags};
use shubnet_tests::http::request;
use std::os::unix::fs::PermissionsExt;

fn token_allowed(node: &TestNode, token: &str) -> u16 {
    let url = node.at("/admin/v1/tokens/check?collection=lab-a&right=pull");
    let admin = format!("Bearer {}", node.token());
    request(
        "GET",
        &url,
        &[("Authorization", &admin), ("X-Shubnet-Token", token)],
    )
    .status
}

#[test]
fn a_node_restored_from_backup_keeps_identity_federation_tags_and_tokens() {
    let tmp = tmpdir();
    let mut a = TestNode::start();
    let fed = create(&a, "Fed", "lab-a");
    let img = tmp.path().join("img");
    kubo_file(&img, "backup", 2 * 1024 * 1024);
    push(&a, &img, "lab-a/tool:1.0", false);
    let token = a
        .cli(&[
            "token",
            "create",
            "--user",
            "bob",
            "--collection",
            "lab-a",
            "--rights",
            "pull",
        ])
        .ok()
        .out();
    assert_eq!(token_allowed(&a, &token), 200);
    let before_keys = keys(&a);
    let before_tags = tags(&a);

    let archive = tmp.path().join("a.backup");
    let r = a
        .cli(&["backup".as_ref(), "-o".as_ref(), archive.as_os_str()])
        .ok();
    assert!(r.out().contains("backup written"), "{r}");
    let mode = std::fs::metadata(&archive)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the backup holds secret keys");
    a.stop();

    // Restoring over a node refuses; into an empty directory it works.
    let data = a.data_dir().as_os_str().to_owned();
    let mut over = a.command(&[
        "restore".as_ref(),
        archive.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    let r = shubnet_tests::run_cmd(&mut over).fails();
    assert!(r.stderr.contains("already holds node keys"), "{r}");

    let restored = tmp.path().join("restored");
    let logs = tmp.path().join("restored-logs");
    let r = shubnet_tests::run_cmd(&mut shubnet_tests::bin::shubnet_command(&[
        "restore".as_ref(),
        archive.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ]))
    .ok();
    assert!(r.out().contains("restored"), "{r}");
    for f in ["node.key", "publisher.key", "admin.key"] {
        let m = std::fs::metadata(restored.join("keys").join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600, "{f}");
    }
    let b = TestNode::start_at(&restored, &logs);
    let after = keys(&b);
    assert_eq!(after.peer_id, before_keys.peer_id, "same node identity");
    assert_eq!(after.publisher_key, before_keys.publisher_key);
    assert_eq!(show(&b)["id"], fed.as_str());
    assert_eq!(tags(&b), before_tags, "tags rebuilt from the log");
    assert_eq!(token_allowed(&b, &token), 200, "the token still works");
    assert_eq!(
        token_allowed(&b, "0123456789abcdef0123456789abcdef01234567"),
        403
    );
}

#[test]
fn restore_refuses_a_damaged_or_foreign_archive() {
    let tmp = tmpdir();
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, vec![0x42u8; 4096]).expect("write");
    let target = tmp.path().join("t");
    let r = shubnet_tests::run_cmd(&mut shubnet_tests::bin::shubnet_command(&[
        "restore".as_ref(),
        bad.as_os_str(),
        "--data-dir".as_ref(),
        target.as_os_str(),
    ]))
    .fails();
    assert!(r.stderr.contains("backup"), "{r}");
    assert!(
        !target.join("keys").exists(),
        "nothing restored from a bad archive"
    );
}
