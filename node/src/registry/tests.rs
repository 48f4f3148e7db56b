//! Registry rules: every attack from the trust issue is refused, and nothing of it is stored.

use super::*;
use shubnet_protocol::cid::{RAW, cid_for};
use shubnet_protocol::roster::UnsignedJoinRequest;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: DataDir,
    reg: Registry,
    fed: String,
    other: NodeKeys,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path().join("a"));
    let (keys, _) = NodeKeys::init(&dir).expect("keys");
    let db = Index::open(&dir.index()).expect("sled");
    let reg = Registry::open(dir.clone(), &db, keys).expect("registry");
    let fed = reg
        .create_federation(
            "test fed",
            "lab-a",
            vec!["lab-a".into(), "lab-a-*".into()],
            0,
            Default::default(),
            None,
        )
        .expect("create");
    // A second institution, lab-b, admitted by lab-a's admin key.
    let other_dir = DataDir::new(tmp.path().join("b"));
    let (other, _) = NodeKeys::init(&other_dir).expect("keys b");
    let line = UnsignedJoinRequest {
        institution: "lab-b".into(),
        name: "Lab B".into(),
        peer_id: other.peer_id().to_string(),
        namespaces: vec!["lab-b".into()],
        created: 1,
    }
    .sign(&other.publisher)
    .expect("join request")
    .to_line();
    match reg.admit(&line, 1 << 30, None).expect("admit") {
        RosterOutcome::Accepted(r) => assert_eq!(r.body.version, 2),
        other => panic!("threshold 1 must accept at once: {other:?}"),
    }
    Fixture {
        _tmp: tmp,
        dir,
        reg,
        fed,
        other,
    }
}

fn manifest(
    f: &Fixture,
    key: &ed25519_dalek::SigningKey,
    coll: &str,
    seq: u64,
    prev: Option<Cid>,
    root_seed: u8,
) -> Manifest {
    UnsignedManifest {
        federation: f.fed.clone(),
        collection: coll.into(),
        name: "blast".into(),
        tag: "2.14".into(),
        root: Some(cid_for(RAW, &[root_seed])),
        size: 1,
        sha256: [root_seed; 32],
        media_type: shubnet_protocol::manifest::MEDIA_TYPE_SIF.into(),
        created: 10 + seq,
        seq,
        prev,
        pushed_by: "alice".into(),
        ..Default::default()
    }
    .sign(key)
    .expect("sign")
}

fn log_files(f: &Fixture) -> usize {
    std::fs::read_dir(f.dir.log())
        .expect("log")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
        .count()
}

#[test]
fn members_publish_in_their_namespace_only() {
    let f = fixture();
    let m = manifest(&f, &f.other.publisher, "lab-b", 1, None, 1);
    f.reg
        .accept_manifest(&m)
        .expect("lab-b publishes into lab-b");
    assert_eq!(f.reg.head("lab-b", "blast", "2.14").expect("head"), Some(m));

    let out = manifest(&f, &f.other.publisher, "lab-a", 1, None, 2);
    let err = f
        .reg
        .accept_manifest(&out)
        .expect_err("lab-b may not publish lab-a");
    assert!(
        matches!(
            err,
            RegistryError::Manifest(ManifestError::OutsideNamespace { .. })
        ),
        "{err}"
    );
    assert!(
        f.reg
            .head("lab-a", "blast", "2.14")
            .expect("head")
            .is_none()
    );
    assert_eq!(
        log_files(&f),
        1,
        "nothing of the refused manifest is stored"
    );
}

#[test]
fn a_key_outside_the_roster_is_refused() {
    let f = fixture();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let m = manifest(&f, &stranger, "lab-a", 1, None, 1);
    let err = f.reg.accept_manifest(&m).expect_err("stranger");
    assert!(
        matches!(
            err,
            RegistryError::Manifest(ManifestError::UnknownPublisher)
        ),
        "{err}"
    );
    assert_eq!(log_files(&f), 0);
}

#[test]
fn replays_conflicts_and_frozen_tags() {
    let f = fixture();
    let key = &f.reg.keys().publisher;
    let m1 = manifest(&f, key, "lab-a", 1, None, 1);
    f.reg.accept_manifest(&m1).expect("first");
    let m2 = manifest(&f, key, "lab-a", 2, Some(m1.cid()), 2);
    f.reg.accept_manifest(&m2).expect("second");
    // Re-sending a known manifest is a no-op; replaying the older one cannot move the tag back.
    f.reg.accept_manifest(&m2).expect("idempotent");
    let err = f.reg.accept_manifest(&m1).expect_err("replay");
    assert!(
        matches!(
            err,
            RegistryError::Manifest(ManifestError::SeqNotIncreasing { .. })
        ),
        "{err}"
    );
    let twin = manifest(&f, key, "lab-a", 2, Some(m1.cid()), 9);
    let err = f
        .reg
        .accept_manifest(&twin)
        .expect_err("equal seq, other content");
    assert!(
        matches!(err, RegistryError::Manifest(ManifestError::Conflict { .. })),
        "{err}"
    );
    assert_eq!(
        f.reg.head("lab-a", "blast", "2.14").expect("head"),
        Some(m2.clone())
    );

    // Freeze, then neither a move nor a delete is accepted.
    let r = Reference::parse("lab-a/blast:2.14").expect("ref");
    let frozen = f
        .reg
        .publish(
            &r,
            Some((cid_for(RAW, b"f"), 1, [3; 32])),
            None,
            true,
            "alice",
        )
        .expect("freeze");
    assert!(frozen.body.frozen);
    let err = f
        .reg
        .publish(
            &r,
            Some((cid_for(RAW, b"g"), 1, [4; 32])),
            None,
            false,
            "alice",
        )
        .expect_err("move");
    assert!(
        matches!(
            err,
            RegistryError::Manifest(ManifestError::FrozenTag { .. })
        ),
        "{err}"
    );
    let err = f
        .reg
        .publish(&r, None, None, false, "alice")
        .expect_err("delete");
    assert!(
        matches!(
            err,
            RegistryError::Manifest(ManifestError::FrozenTag { .. })
        ),
        "{err}"
    );
    assert_eq!(
        f.reg.head("lab-a", "blast", "2.14").expect("head"),
        Some(frozen)
    );
}

#[test]
fn tombstones_delete_and_tags_list() {
    let f = fixture();
    let r = Reference::parse("lab-a/tool:1").expect("ref");
    f.reg
        .publish(&r, Some((cid_for(RAW, b"x"), 1, [1; 32])), None, false, "a")
        .expect("push");
    let t = f.reg.publish(&r, None, None, false, "a").expect("delete");
    assert!(t.body.tombstone && t.body.root.is_none());
    let tags = f.reg.tags("lab-a").expect("tags");
    assert_eq!(tags.len(), 1);
    assert!(tags[0].1.body.tombstone);
    let err = f
        .reg
        .publish(
            &Reference::parse("lab-a/none:1").expect("ref"),
            None,
            None,
            false,
            "a",
        )
        .expect_err("nothing to delete");
    assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
}

#[test]
fn rosters_need_the_threshold_and_cannot_skip() {
    let f = fixture();
    let current = f.reg.roster().expect("roster").expect("some");
    // Signed by a non-admin key: refused.
    let mut next = SignedRoster::new(current.body.successor(99));
    next.add_signature(&f.other.publisher);
    assert!(f.reg.accept_roster(&next).is_err());
    // Skipping a version: refused even with the admin's signature.
    let mut skip = current.body.successor(99);
    skip.version += 1;
    let mut skip = SignedRoster::new(skip);
    skip.add_signature(&f.reg.keys().admin);
    assert!(f.reg.accept_roster(&skip).is_err());
    assert_eq!(
        f.reg.roster().expect("r").expect("s").body.version,
        current.body.version
    );
}

#[test]
fn the_index_is_rebuilt_from_log() {
    let f = fixture();
    let r = Reference::parse("lab-a/tool:1").expect("ref");
    let m = f
        .reg
        .publish(&r, Some((cid_for(RAW, b"x"), 1, [1; 32])), None, false, "a")
        .expect("push");
    let chain = f.reg.roster_chain().expect("chain");
    // A fresh index over the same data dir: everything comes back from log/ and verifies.
    let db = Index::temporary().expect("sled");
    let keys = NodeKeys::load(&f.dir).expect("keys");
    let reg2 = Registry::open(f.dir.clone(), &db, keys).expect("reopen");
    assert_eq!(reg2.roster_chain().expect("chain"), chain);
    assert_eq!(reg2.head("lab-a", "tool", "1").expect("head"), Some(m));
}

#[test]
fn roster_lines_roundtrip() {
    let f = fixture();
    let r = f.reg.roster().expect("r").expect("s");
    assert_eq!(roster_from_line(&roster_to_line(&r)).expect("parse"), r);
    assert!(roster_from_line("shubnet-roster-v1.@@@").is_err());
}

#[test]
fn remove_node_keeps_the_institution_and_its_images_valid() {
    let f = fixture();
    let m = manifest(&f, &f.other.publisher, "lab-b", 1, None, 1);
    f.reg.accept_manifest(&m).expect("lab-b publishes");
    let peer = f.other.peer_id().to_string();
    let err = f
        .reg
        .remove_node("12D3KooWNotAMember")
        .expect_err("an unknown node");
    assert!(err.to_string().contains("no member has the node"), "{err}");
    match f.reg.remove_node(&peer).expect("remove") {
        RosterOutcome::Accepted(r) => {
            assert_eq!(r.body.version, 3);
            let b = r.body.member("lab-b").expect("lab-b stays a member");
            assert!(b.peer_ids.is_empty(), "{b:?}");
            assert_eq!(b.storage_bytes, 0, "no node left to hold images");
            assert_eq!(b.publisher_keys.len(), 1, "its publisher key stays");
        }
        other => panic!("threshold 1 must accept at once: {other:?}"),
    }
    // The image lab-b published still resolves and verifies against the new roster.
    let roster = f.reg.roster().expect("roster").expect("some").body;
    m.verify_against(&roster, &f.fed).expect("still valid");
    assert_eq!(f.reg.head("lab-b", "blast", "2.14").expect("head"), Some(m));
    assert!(f.reg.remove_node(&peer).is_err(), "removed twice");
}
