//! The access store's rules against a real roster: who may sign a policy or a revocation, which
//! policy wins, and what a capability grants.

use super::*;
use crate::db::{Accounts, Index};
use crate::keys::NodeKeys;
use crate::paths::DataDir;
use crate::tokens::crypto::SealKey;
use shubnet_protocol::roster::UnsignedJoinRequest;

struct Fixture {
    _tmp: tempfile::TempDir,
    access: AccessStore,
    /// lab-b's keys: a member, but not the owner of lab-a.
    other: NodeKeys,
    /// The local node's (lab-a's) publisher key.
    mine: ed25519_dalek::SigningKey,
}

/// A node of lab-a (owning `lab-a` and `lab-a-*`) in a federation with lab-b (owning `lab-b`).
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path().join("a"));
    let (keys, _) = NodeKeys::init(&dir).expect("keys");
    let mine = keys.publisher.clone();
    let db = Index::open(&dir.index()).expect("sled");
    let reg = Registry::open(dir.clone(), &db, keys).expect("registry");
    reg.create_federation(
        "fed",
        "lab-a",
        vec!["lab-a".into(), "lab-a-*".into()],
        0,
        Default::default(),
        None,
    )
    .expect("create");
    let (other, _) = NodeKeys::init(&DataDir::new(tmp.path().join("b"))).expect("keys b");
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
    reg.admit(&line, 0, Some("https://lab-b.example".into()))
        .expect("admit");
    let accounts = Accounts::open(&tmp.path().join("accounts")).expect("accounts");
    let tokens = TokenStore::with_key(&accounts, SealKey::from_bytes([1; 32])).expect("tokens");
    let access = AccessStore::open(&tokens, reg).expect("access");
    Fixture {
        _tmp: tmp,
        access,
        other,
        mine,
    }
}

fn policy(key: &ed25519_dalek::SigningKey, c: &str, private: bool, seq: u64) -> AccessRecord {
    AccessRecord::Policy(
        SignedPolicy::sign(c, private, seq, key)
            .expect("sign")
            .encode(),
    )
}

#[test]
fn only_the_owner_s_keys_set_a_collection_s_policy() {
    let f = fixture();
    // lab-b is a member, but lab-a is not its namespace: refused, nothing stored.
    let forged = policy(&f.other.publisher, "lab-a", false, u64::MAX);
    assert!(matches!(
        f.access.accept(&forged),
        Err(AccessStoreError::NotAuthorized { .. })
    ));
    // A key no member holds is refused the same way.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    assert!(matches!(
        f.access.accept(&policy(&stranger, "lab-b", true, 1)),
        Err(AccessStoreError::NotAuthorized { .. })
    ));
    // A record whose signature does not match its body is refused before any roster check.
    let mut tampered = SignedPolicy::sign("lab-b", true, 1, &f.other.publisher).expect("sign");
    tampered.private = false;
    assert!(matches!(
        f.access.accept(&AccessRecord::Policy(tampered.encode())),
        Err(AccessStoreError::Record(AccessError::BadSignature))
    ));
    assert!(f.access.policy("lab-a").expect("read").is_none());
    assert!(f.access.policy("lab-b").expect("read").is_none());
    // lab-b's own collection, signed by lab-b: accepted.
    assert!(
        f.access
            .accept(&policy(&f.other.publisher, "lab-b", true, 5))
            .expect("accept")
    );
    assert!(
        f.access
            .private_collections()
            .expect("read")
            .contains("lab-b")
    );
}

#[test]
fn the_newest_policy_wins_whatever_order_it_arrives_in() {
    let f = fixture();
    let older = policy(&f.other.publisher, "lab-b", true, 10);
    let newer = policy(&f.other.publisher, "lab-b", false, 11);
    assert!(f.access.accept(&newer).expect("newer"));
    assert!(!f.access.accept(&older).expect("older is ignored"));
    assert!(
        !f.access
            .policy("lab-b")
            .expect("read")
            .expect("policy")
            .private
    );
    // Replaying the same record changes nothing.
    assert!(!f.access.accept(&newer).expect("replay"));
}

#[test]
fn this_node_signs_only_for_its_own_collections() {
    let f = fixture();
    let p = f
        .access
        .set_visibility("lab-a-x", true)
        .expect("owner signs")
        .expect("a policy");
    assert!(p.private);
    assert_eq!(p.key, f.mine.verifying_key().to_bytes());
    match f.access.set_visibility("lab-b", true) {
        Err(AccessStoreError::NotOwner { owner, .. }) => assert_eq!(owner, "lab-b"),
        other => panic!("a member set another institution's policy: {other:?}"),
    }
    // No member owns it: the per-node flag is all there is.
    assert!(
        f.access
            .set_visibility("nobody", true)
            .expect("ok")
            .is_none()
    );
    assert_eq!(
        f.access.owner_gateway("lab-b").expect("read").as_deref(),
        Some("https://lab-b.example")
    );
    assert_eq!(f.access.owner_gateway("lab-a").expect("read"), None);
    assert!(f.access.owned_elsewhere("lab-b").expect("read"));
    assert!(!f.access.owned_elsewhere("lab-a").expect("read"));
}

#[test]
fn a_capability_grants_only_what_its_issuer_owns_until_revoked_or_expired() {
    let f = fixture();
    let pattern = |p: &str| CollectionPattern::parse(p).expect("pattern");
    let issued = f
        .access
        .issue(
            "alice",
            vec![pattern("*")],
            vec![Right::Pull],
            unix_now() + 3600,
        )
        .expect("issue");
    let ok = f
        .access
        .authorize(&issued.token, "lab-a", Right::Pull)
        .expect("check");
    assert_eq!(ok.expect("granted").user, "alice");
    // `*` cannot reach past the issuer's namespaces.
    assert!(matches!(
        f.access
            .authorize(&issued.token, "lab-b", Right::Pull)
            .expect("check"),
        Err(AuthError::WrongCollection { .. })
    ));
    assert!(matches!(
        f.access
            .authorize(&issued.token, "lab-a", Right::Push)
            .expect("check"),
        Err(AuthError::MissingRight { .. })
    ));
    // A capability lab-b signs for lab-a grants nothing.
    let forged = Capability::issue(
        [5; 16],
        "mallory",
        vec![pattern("lab-a")],
        vec![Right::Pull],
        unix_now() + 3600,
        &f.other.publisher,
    )
    .expect("issue");
    assert!(matches!(
        f.access
            .authorize(&forged.to_token(), "lab-a", Right::Pull)
            .expect("check"),
        Err(AuthError::WrongCollection { .. })
    ));
    // Expired.
    let old = Capability::issue(
        [6; 16],
        "old",
        vec![pattern("lab-a")],
        vec![Right::Pull],
        unix_now() - 1,
        &f.mine,
    )
    .expect("issue");
    assert!(matches!(
        f.access
            .authorize(&old.to_token(), "lab-a", Right::Pull)
            .expect("check"),
        Err(AuthError::Expired { .. })
    ));
    // Revoked: by this node's own revocation.
    f.access.revoke(&issued.info.id).expect("revoke");
    assert!(matches!(
        f.access
            .authorize(&issued.token, "lab-a", Right::Pull)
            .expect("check"),
        Err(AuthError::Revoked { .. })
    ));
    // A revocation signed by another member does not touch lab-a's capabilities.
    let fresh = f
        .access
        .issue(
            "carol",
            vec![pattern("lab-a")],
            vec![Right::Pull],
            unix_now() + 3600,
        )
        .expect("issue");
    let cap = Capability::from_token(&fresh.token).expect("token");
    let theirs = Revocation::sign(cap.id, cap.expires, &f.other.publisher);
    assert!(
        f.access
            .accept(&AccessRecord::Revocation(theirs.encode()))
            .expect("a member's revocation is stored")
    );
    assert!(
        f.access
            .authorize(&fresh.token, "lab-a", Right::Pull)
            .expect("check")
            .is_ok(),
        "lab-b revoked a capability lab-a issued"
    );
}

#[test]
fn local_flags_are_published_once_the_node_owns_them() {
    let f = fixture();
    f.access
        .inner
        .tokens
        .set_private("lab-a", true)
        .expect("flag");
    f.access
        .inner
        .tokens
        .set_private("lab-b", true)
        .expect("flag");
    assert_eq!(f.access.publish_local_flags().expect("publish"), 1);
    assert!(
        f.access
            .policy("lab-a")
            .expect("read")
            .expect("policy")
            .private
    );
    assert!(
        f.access.policy("lab-b").expect("read").is_none(),
        "signed for another owner"
    );
    assert_eq!(f.access.publish_local_flags().expect("again"), 0);
}

#[test]
fn lifetimes_and_revocations_per_key_are_bounded() {
    let f = fixture();
    let pattern = |p: &str| CollectionPattern::parse(p).expect("pattern");
    let too_late = unix_now() + MAX_LIFE_SECS + 3600;
    // This node will not issue a capability that outlives what members accept…
    assert!(matches!(
        f.access
            .issue("alice", vec![pattern("lab-a")], vec![Right::Pull], too_late),
        Err(AccessStoreError::TooLong { .. })
    ));
    // …and refuses one another member signed anyway.
    let long = Capability::issue(
        [6; 16],
        "bob",
        vec![pattern("lab-b")],
        vec![Right::Pull],
        too_late,
        &f.other.publisher,
    )
    .expect("issue");
    assert!(matches!(
        f.access
            .authorize(&long.to_token(), "lab-b", Right::Pull)
            .expect("check"),
        Err(AuthError::Unknown)
    ));
    // A revocation kept longer than any capability lives is refused, not stored.
    let r = Revocation::sign([7; 16], too_late, &f.other.publisher);
    assert!(matches!(
        f.access.accept(&AccessRecord::Revocation(r.encode())),
        Err(AccessStoreError::TooLong { .. })
    ));
    // One key's revocations in force are capped; another key is not affected.
    let soon = unix_now() + 3600;
    for i in 0..MAX_REVOCATIONS_PER_KEY as u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let r = Revocation::sign(id, soon, &f.other.publisher);
        assert!(f.access.store_revocation(&r).expect("under the cap"));
    }
    let over = Revocation::sign([0xff; 16], soon, &f.other.publisher);
    assert!(matches!(
        f.access.accept(&AccessRecord::Revocation(over.encode())),
        Err(AccessStoreError::TooManyRevocations { .. })
    ));
    let mine = Revocation::sign([0xff; 16], soon, &f.mine);
    assert!(
        f.access
            .accept(&AccessRecord::Revocation(mine.encode()))
            .expect("another key")
    );
}
