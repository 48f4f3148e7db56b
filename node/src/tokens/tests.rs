use super::*;
use shubnet_protocol::tokens::TokenRequest;

fn claim(user: &str, message: &[u8], signature: &str) -> HmacClaim {
    HmacClaim {
        user: user.to_owned(),
        message: message.to_vec(),
        signature: signature.to_owned(),
    }
}

/// The sregistry documentation's token, user and signed request (client-protocols.md §1.4).
const KAT_TOKEN: &str = "5027225717bf0030465db1e7099e496022c42181";
const KAT_USER: &str = "vsoch";
const KAT_PAYLOAD: &[u8] = b"pull|dinosaur|20261125T18Z|tacos|latest|";
const KAT_SIGNATURE: &str = "f563004a2d2e73eeb40ba52c53c492c2227e7fd2c1d896c595fce698ac90710d";

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    db: Accounts,
    store: TokenStore,
}

fn open_at(path: &std::path::Path, key: [u8; 32]) -> (Accounts, TokenStore) {
    let db = Accounts::open(path).expect("sled");
    let store = TokenStore::with_key(&db, SealKey::from_bytes(key)).expect("trees");
    (db, store)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index");
    let (db, store) = open_at(&path, [7; 32]);
    Fixture {
        _dir: dir,
        path,
        db,
        store,
    }
}

fn req(user: &str, collections: &[&str], rights: &str) -> NewToken {
    TokenRequest {
        user: user.into(),
        collections: collections.iter().map(|s| s.to_string()).collect(),
        rights: rights.split(',').map(str::to_owned).collect(),
        federation_ttl: None,
    }
    .validate()
    .expect("valid request")
}

fn denied(r: Result<TokenInfo>) -> AuthError {
    match r {
        Err(TokenStoreError::Denied(e)) => e,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn kat_secret() -> [u8; SECRET_LEN] {
    hex::decode(KAT_TOKEN)
        .expect("hex")
        .try_into()
        .expect("20 bytes")
}

#[test]
fn create_authorize_and_revoke() {
    let f = fixture();
    let c = f
        .store
        .create(&req("alice", &["lab-a/*"], "pull"))
        .expect("create");
    assert_eq!(c.token.len(), 40);
    assert!(
        c.token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "40 lowercase hex digits: {}",
        c.token
    );
    assert_eq!(
        c.info.id,
        hex::encode(&Sha256::digest(c.token.as_bytes())[..4])
    );
    assert_eq!(c.info.user, "alice");
    assert_eq!(c.info.rights, vec![Right::Pull]);
    assert!(c.info.created > 0 && c.info.revoked.is_none());

    let ok = f
        .store
        .authorize(&c.token, "lab-a", Right::Pull)
        .expect("allowed");
    assert_eq!(ok, c.info);
    assert_eq!(
        denied(f.store.authorize(&c.token, "lab-b", Right::Pull)),
        AuthError::WrongCollection {
            id: c.info.id.clone(),
            collection: "lab-b".into()
        }
    );
    assert_eq!(
        denied(f.store.authorize(&c.token, "lab-a", Right::Push)),
        AuthError::MissingRight {
            id: c.info.id.clone(),
            right: Right::Push
        }
    );
    assert_eq!(
        denied(f.store.authorize(&c.token, "lab-a", Right::Delete)).reason(),
        "missing_right"
    );
    for wrong in [
        "0".repeat(40),
        c.token.to_uppercase(),
        c.token[..39].to_string(),
        String::new(),
    ] {
        assert_eq!(
            denied(f.store.authorize(&wrong, "lab-a", Right::Pull)),
            AuthError::Unknown,
            "{wrong}"
        );
    }

    let r = f.store.revoke(&c.info.id).expect("revoke");
    let when = r.revoked.expect("revoked");
    assert_eq!(
        denied(f.store.authorize(&c.token, "lab-a", Right::Pull)),
        AuthError::Revoked {
            id: c.info.id.clone()
        }
    );
    assert_eq!(denied(f.store.identify(&c.token)).reason(), "revoked");
    // Revoking again keeps the first time; the token stays listed as revoked.
    assert_eq!(
        f.store.revoke(&c.info.id).expect("again").revoked,
        Some(when)
    );
    let list = f.store.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].revoked, Some(when));

    assert!(matches!(
        f.store.revoke("abcdef01"),
        Err(TokenStoreError::NotFound(_))
    ));
    for bad in ["xyz", "abcdef0", "abcdef0123", ""] {
        assert!(
            matches!(f.store.revoke(bad), Err(TokenStoreError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn patterns_and_rights_combine() {
    let f = fixture();
    let t = f
        .store
        .create(&req("bob", &["lab-*", "shared"], "push,delete"))
        .expect("create")
        .token;
    for (c, r, ok) in [
        ("lab-a", Right::Push, true),
        ("lab-bio", Right::Delete, true),
        ("shared", Right::Push, true),
        ("lab-a", Right::Pull, false),
        ("labs", Right::Push, false),
        ("shared-2", Right::Push, false),
    ] {
        assert_eq!(f.store.authorize(&t, c, r).is_ok(), ok, "{c} {r}");
    }
    let all = f
        .store
        .create(&req("root", &["*"], "pull,push,delete"))
        .expect("create")
        .token;
    for r in Right::ALL {
        assert!(f.store.authorize(&all, "anything-at-all", r).is_ok());
    }
    // Each token is its own; ids are unique and listed.
    let ids: std::collections::HashSet<String> = f
        .store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids.len(), 2);
}

#[test]
fn hmac_signatures_verify_against_the_users_tokens() {
    let f = fixture();
    let info = f
        .store
        .insert(kat_secret(), &req(KAT_USER, &["dinosaur"], "pull"))
        .expect("insert")
        .expect("id free")
        .info;
    // Another user's tokens are never tried for vsoch.
    f.store
        .create(&req("other", &["*"], "pull,push,delete"))
        .expect("create");
    let check = |user: &str, msg: &[u8], sig: &str, coll: &str, right: Right| {
        f.store.authorize_hmac(&claim(user, msg, sig), coll, right)
    };
    assert_eq!(
        check(
            KAT_USER,
            KAT_PAYLOAD,
            KAT_SIGNATURE,
            "dinosaur",
            Right::Pull
        )
        .expect("valid"),
        info
    );
    let upper = KAT_SIGNATURE.to_uppercase();
    assert!(check(KAT_USER, KAT_PAYLOAD, &upper, "dinosaur", Right::Pull).is_ok());

    let tampered = b"pull|dinosaur|20261125T19Z|tacos|latest|";
    let mut flipped = KAT_SIGNATURE.to_string();
    flipped.replace_range(0..1, "e");
    for (user, msg, sig) in [
        ("other", KAT_PAYLOAD, KAT_SIGNATURE),
        ("nobody", KAT_PAYLOAD, KAT_SIGNATURE),
        (KAT_USER, &tampered[..], KAT_SIGNATURE),
        (KAT_USER, KAT_PAYLOAD, flipped.as_str()),
        (KAT_USER, KAT_PAYLOAD, "zz"),
        (KAT_USER, KAT_PAYLOAD, &KAT_SIGNATURE[..62]),
        (KAT_USER, KAT_PAYLOAD, ""),
    ] {
        assert_eq!(
            denied(check(user, msg, sig, "dinosaur", Right::Pull)),
            AuthError::Unknown,
            "{user} {sig}"
        );
    }
    assert_eq!(
        denied(check(
            KAT_USER,
            KAT_PAYLOAD,
            KAT_SIGNATURE,
            "lab-a",
            Right::Pull
        ))
        .reason(),
        "wrong_collection"
    );
    assert_eq!(
        denied(check(
            KAT_USER,
            KAT_PAYLOAD,
            KAT_SIGNATURE,
            "dinosaur",
            Right::Push
        ))
        .reason(),
        "missing_right"
    );
    f.store.revoke(&info.id).expect("revoke");
    assert_eq!(
        denied(check(
            KAT_USER,
            KAT_PAYLOAD,
            KAT_SIGNATURE,
            "dinosaur",
            Right::Pull
        ))
        .reason(),
        "revoked"
    );
    // The same secret cannot be stored twice (its id is taken).
    assert!(
        f.store
            .insert(kat_secret(), &req(KAT_USER, &["x"], "pull"))
            .expect("insert")
            .is_none()
    );
}

#[test]
fn hmac_needs_this_nodes_sealing_key() {
    let f = fixture();
    f.store
        .insert(kat_secret(), &req(KAT_USER, &["dinosaur"], "pull"))
        .expect("insert")
        .expect("id free");
    f.db.flush().expect("flush");
    drop(f.store);
    drop(f.db);
    // The index alone, opened with another key: bearer still works, HMAC cannot.
    let (_db, other) = open_at(&f.path, [8; 32]);
    assert!(other.authorize(KAT_TOKEN, "dinosaur", Right::Pull).is_ok());
    assert_eq!(
        denied(other.authorize_hmac(
            &claim(KAT_USER, KAT_PAYLOAD, KAT_SIGNATURE),
            "dinosaur",
            Right::Pull
        )),
        AuthError::Unknown
    );
}

#[test]
fn tokens_survive_reopening() {
    let f = fixture();
    let c = f
        .store
        .create(&req("alice", &["lab-a"], "pull"))
        .expect("create");
    f.store.set_private("lab-a", true).expect("private");
    let before = f.store.list().expect("list");
    drop(f.store);
    drop(f.db);
    let (_db, store) = open_at(&f.path, [7; 32]);
    assert_eq!(store.list().expect("list"), before);
    assert!(store.authorize(&c.token, "lab-a", Right::Pull).is_ok());
    assert!(store.is_private("lab-a").expect("private"));
}

/// Every occurrence of `needle` in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_token_is_nowhere_in_the_database() {
    let f = fixture();
    let mut secrets = Vec::new();
    for (user, rights) in [
        ("alice", "pull"),
        ("bob", "push"),
        ("carol", "pull,push,delete"),
    ] {
        let c = f.store.create(&req(user, &["*"], rights)).expect("create");
        secrets.push(c.token);
    }
    f.store
        .insert(kat_secret(), &req(KAT_USER, &["dinosaur"], "pull"))
        .expect("insert")
        .expect("free");
    secrets.push(KAT_TOKEN.to_string());
    f.store
        .revoke(&f.store.list().expect("list")[0].id)
        .expect("revoke");
    f.store.set_private("lab-a", true).expect("private");
    f.db.flush().expect("flush");

    let needles: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .flat_map(|t| {
            let raw = hex::decode(t).expect("hex");
            [
                (format!("hex of {}", &t[..6]), t.as_bytes().to_vec()),
                (format!("HEX of {}", &t[..6]), t.to_uppercase().into_bytes()),
                (format!("raw bytes of {}", &t[..6]), raw.clone()),
                // Even a third of the secret would be a leak.
                (format!("part of {}", &t[..6]), raw[..8].to_vec()),
            ]
        })
        .collect();
    let mut records = 0;
    for (name, tree) in f.db.every_tree() {
        for item in tree.iter() {
            let (k, v) = item.expect("item");
            records += 1;
            for (what, n) in &needles {
                assert!(!contains(&k, n), "{what} in a key of tree {name:?}");
                assert!(!contains(&v, n), "{what} in a value of tree {name:?}");
            }
        }
    }
    assert!(records >= 5, "scanned {records} records");
    // And on disk, after a flush.
    let mut files = 0;
    let mut stack = vec![f.path.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&p).expect("read");
            for (what, n) in &needles {
                assert!(!contains(&bytes, n), "{what} in {}", p.display());
            }
        }
    }
    assert!(files > 0);
}

#[test]
fn collections_are_public_until_set_private() {
    let f = fixture();
    assert!(!f.store.is_private("lab-a").expect("get"));
    assert_eq!(
        f.store.set_private("lab-a", true).expect("set"),
        CollectionInfo {
            name: "lab-a".into(),
            private: true
        }
    );
    f.store.set_private("lab-b", false).expect("set");
    assert!(f.store.is_private("lab-a").expect("get"));
    assert!(!f.store.is_private("lab-b").expect("get"));
    assert_eq!(
        f.store
            .collections()
            .expect("list")
            .iter()
            .map(|c| (c.name.as_str(), c.private))
            .collect::<Vec<_>>(),
        vec![("lab-a", true), ("lab-b", false)]
    );
    f.store.set_private("lab-a", false).expect("set");
    assert!(!f.store.is_private("lab-a").expect("get"));
    for bad in ["Lab-A", "lab_a", "", "../x", &"a".repeat(40)] {
        assert!(
            matches!(
                f.store.set_private(bad, true),
                Err(TokenStoreError::Invalid(_))
            ),
            "{bad}"
        );
    }
}
