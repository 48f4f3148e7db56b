//! Roster tests: validation, the signed chain, join requests and admission.

use super::*;
use ed25519_dalek::SigningKey;
use ipld_core::ipld::Ipld;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pubkey(n: u8) -> [u8; 32] {
    key(n).verifying_key().to_bytes()
}

fn member(id: &str, key_seed: u8, namespaces: &[&str]) -> Member {
    Member {
        id: id.into(),
        name: format!("Institution {id}"),
        peer_ids: vec![format!("12D3KooW{key_seed}x")],
        publisher_keys: vec![pubkey(key_seed)],
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        storage_bytes: 1 << 40,
        gateway: None,
    }
}

/// Version 1: admins 10 and 11, threshold 2, lab-a as the founding member.
fn genesis() -> SignedRoster {
    let mut body = Roster::genesis("two-admin", vec![pubkey(10), pubkey(11)], 2, 1_700_000_000);
    body.members.push(member("lab-a", 1, &["lab-a", "lab-a-*"]));
    let mut s = SignedRoster::new(body);
    s.add_signature(&key(10));
    s.add_signature(&key(11));
    s
}

fn join_request(id: &str, seed: u8, namespaces: &[&str]) -> JoinRequest {
    UnsignedJoinRequest {
        institution: id.into(),
        name: format!("Institution {id}"),
        peer_id: format!("12D3KooW{seed}peer"),
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        created: 1_700_000_500,
    }
    .sign(&key(seed))
    .unwrap()
}

/// Version 2 of [`genesis`], admitting lab-b, unsigned.
fn v2_unsigned(g: &SignedRoster) -> SignedRoster {
    let mut body = g.body.successor(1_700_001_000);
    body.admit(&join_request("lab-b", 2, &["lab-b"]), 1 << 39)
        .unwrap();
    SignedRoster::new(body)
}

fn fed(g: &SignedRoster) -> String {
    g.body.federation_id().unwrap()
}

#[test]
fn genesis_founds_the_federation() {
    let g = genesis();
    let id = fed(&g);
    assert_eq!(id, g.body_cid().to_string());
    assert!(id.starts_with("bafyrei"), "{id}");
    assert_eq!(
        verify_chain(&id, std::slice::from_ref(&g)),
        Ok(g.body.clone())
    );
    assert_eq!(
        verify_chain("bafyreiother", std::slice::from_ref(&g)),
        Err(RosterError::WrongFederation {
            expected: "bafyreiother".into(),
            found: id.clone()
        })
    );
    assert_eq!(verify_chain(&id, &[]), Err(RosterError::EmptyChain));

    let mut one_sig = g.clone();
    one_sig.signatures.pop();
    assert_eq!(
        verify_genesis(&one_sig),
        Err(RosterError::TooFewSignatures { have: 1, need: 2 })
    );
    // Signatures do not change the body, so the federation id is the same signed or not.
    assert_eq!(fed(&one_sig), id);
}

#[test]
fn threshold_two_needs_both_admins() {
    let g = genesis();
    let mut v2 = v2_unsigned(&g);
    assert_eq!(
        verify_next(&g.body, &v2),
        Err(RosterError::TooFewSignatures { have: 0, need: 2 })
    );
    v2.add_signature(&key(10));
    assert_eq!(
        verify_next(&g.body, &v2),
        Err(RosterError::TooFewSignatures { have: 1, need: 2 })
    );
    // Signing twice with the same key still counts once.
    v2.add_signature(&key(10));
    assert_eq!(v2.signatures.len(), 1);
    v2.add_signature(&key(11));
    assert_eq!(verify_next(&g.body, &v2), Ok(()));

    let latest = verify_chain(&fed(&g), &[g.clone(), v2.clone()]).unwrap();
    assert_eq!(latest.version, 2);
    let lab_b = latest.member("lab-b").unwrap();
    assert_eq!(latest.may_publish(&pubkey(2), "lab-b"), Some(lab_b));
    assert_eq!(latest.may_publish(&pubkey(2), "lab-a"), None);
    assert_eq!(
        latest.may_publish(&pubkey(1), "lab-a-tools").unwrap().id,
        "lab-a"
    );
}

#[test]
fn skipped_replayed_and_forked_versions_fail() {
    let g = genesis();
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.add_signature(&key(11));

    // Version 3 straight after version 1.
    let mut v3 = SignedRoster::new(Roster {
        version: 3,
        ..v2.body.clone()
    });
    v3.add_signature(&key(10));
    v3.add_signature(&key(11));
    assert_eq!(
        verify_next(&g.body, &v3),
        Err(RosterError::SkippedVersion {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        verify_chain(&fed(&g), &[g.clone(), v3]),
        Err(RosterError::SkippedVersion {
            expected: 2,
            found: 3
        })
    );

    // Replays of old versions.
    assert_eq!(
        verify_next(&v2.body, &g),
        Err(RosterError::StaleVersion {
            current: 2,
            found: 1
        })
    );
    assert_eq!(
        verify_next(&v2.body, &v2),
        Err(RosterError::StaleVersion {
            current: 2,
            found: 2
        })
    );
    assert_eq!(
        verify_chain(&fed(&g), &[g.clone(), v2.clone(), v2.clone()]),
        Err(RosterError::StaleVersion {
            current: 2,
            found: 2
        })
    );
    // A chain must start at version 1.
    assert_eq!(
        verify_chain(&fed(&g), std::slice::from_ref(&v2)),
        Err(RosterError::SkippedVersion {
            expected: 1,
            found: 2
        })
    );

    // A version 2 that claims another predecessor.
    let mut elsewhere = v2.body.clone();
    elsewhere.prev = Some(crate::cid::cid_for(crate::cid::DAG_CBOR, b"another roster"));
    let mut elsewhere = SignedRoster::new(elsewhere);
    elsewhere.add_signature(&key(10));
    elsewhere.add_signature(&key(11));
    assert!(matches!(
        verify_next(&g.body, &elsewhere),
        Err(RosterError::WrongPrev { .. })
    ));
}

#[test]
fn only_the_previous_admins_may_sign() {
    let g = genesis();
    // A stolen publisher key (not an admin) cannot rewrite the roster.
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.add_signature(&key(1));
    assert_eq!(
        verify_next(&g.body, &v2),
        Err(RosterError::UnknownSigner(hex(&pubkey(1))))
    );

    // New admins cannot authorise the version that appoints them.
    let mut takeover = g.body.successor(1_700_002_000);
    takeover.admins = vec![pubkey(66), pubkey(67)];
    let mut takeover = SignedRoster::new(takeover);
    takeover.add_signature(&key(66));
    takeover.add_signature(&key(67));
    assert_eq!(
        verify_next(&g.body, &takeover),
        Err(RosterError::UnknownSigner(hex(&pubkey(66))))
    );

    // A broken signature is refused even when enough others are valid.
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.add_signature(&key(11));
    v2.signatures[0].signature[5] ^= 1;
    assert_eq!(
        verify_next(&g.body, &v2),
        Err(RosterError::BadSignature(hex(&v2.signatures[0].key)))
    );

    // A signature over a different body.
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.add_signature(&key(11));
    v2.body.replication.k = 5;
    assert!(matches!(
        verify_next(&g.body, &v2),
        Err(RosterError::BadSignature(_))
    ));

    // The same admin twice (only possible in memory: decode refuses it).
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.signatures.push(v2.signatures[0].clone());
    assert_eq!(
        verify_next(&g.body, &v2),
        Err(RosterError::DuplicateSigner(hex(&pubkey(10))))
    );
    assert!(matches!(
        SignedRoster::decode(&v2.encode()),
        Err(RosterError::Decode(CborError::NonCanonical(_)))
    ));
}

#[test]
fn validation_rules() {
    use InvalidRoster as I;
    let base = genesis().body;
    let check = |f: &dyn Fn(&mut Roster)| {
        let mut r = base.clone();
        f(&mut r);
        r.validate()
    };
    assert_eq!(check(&|_| {}), Ok(()));
    assert_eq!(check(&|r| r.name = String::new()), Err(I::BadName));
    assert_eq!(check(&|r| r.name = "a\nb".into()), Err(I::BadName));
    assert_eq!(check(&|r| r.version = 0), Err(I::ZeroVersion));
    assert_eq!(check(&|r| r.version = 2), Err(I::PrevPresence));
    assert_eq!(
        check(&|r| r.prev = Some(crate::cid::cid_for(crate::cid::DAG_CBOR, b"x"))),
        Err(I::PrevPresence)
    );
    assert_eq!(
        check(&|r| {
            r.version = 2;
            r.prev = Some(crate::cid::cid_for(crate::cid::RAW, b"x"));
        }),
        Err(I::BadPrev)
    );
    assert_eq!(
        check(&|r| {
            r.admins.clear();
            r.threshold = 0;
        }),
        Err(I::NoAdmins)
    );
    assert_eq!(
        check(&|r| r.admins = vec![pubkey(10), pubkey(10)]),
        Err(I::DuplicateAdmin(hex(&pubkey(10))))
    );
    // The identity point is a small-order ("weak") key.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    assert!(matches!(
        check(&|r| r.admins.push(weak)),
        Err(I::BadKey { what: "admin", .. })
    ));
    assert_eq!(
        check(&|r| r.threshold = 3),
        Err(I::Threshold {
            threshold: 3,
            admins: 2
        })
    );
    assert!(matches!(
        check(&|r| r.threshold = 0),
        Err(I::Threshold { .. })
    ));
    assert!(matches!(
        check(&|r| r.replication.k = 0),
        Err(I::Replication(_))
    ));
    assert!(matches!(
        check(&|r| r.replication.min_institutions = 4),
        Err(I::Replication(_))
    ));
    for bad in ["", "Lab-A", "lab_a", "-lab", "lab--a", &"a".repeat(64)] {
        assert_eq!(
            check(&|r| r.members[0].id = bad.to_string()),
            Err(I::BadMemberId(bad.to_string())),
            "{bad:?}"
        );
    }
    assert_eq!(
        check(&|r| r.members.push(member("lab-a", 3, &[]))),
        Err(I::DuplicateMember("lab-a".into()))
    );
    assert!(matches!(
        check(&|r| r.members[0].gateway = Some("ftp://x".into())),
        Err(I::BadMemberField {
            field: "gateway",
            ..
        })
    ));
    assert!(matches!(
        check(&|r| r.members[0].peer_ids.push("not/base58".into())),
        Err(I::BadMemberField {
            field: "peer_ids",
            ..
        })
    ));
    assert!(matches!(
        check(&|r| r.members[0].name = String::new()),
        Err(I::BadMemberField { field: "name", .. })
    ));
    assert!(matches!(
        check(&|r| r.members[0].publisher_keys.push(weak)),
        Err(I::BadKey {
            what: "publisher",
            ..
        })
    ));
    assert!(matches!(
        check(&|r| r.members.push(member("lab-b", 1, &[]))),
        Err(I::DuplicatePublisherKey { .. })
    ));
    assert!(matches!(
        check(&|r| {
            let mut m = member("lab-b", 2, &[]);
            m.peer_ids = base.members[0].peer_ids.clone();
            r.members.push(m);
        }),
        Err(I::DuplicatePeerId { .. })
    ));
    assert!(matches!(
        check(&|r| r.members[0].peer_ids = vec!["p".into(); MAX_PEERS_PER_MEMBER + 1]),
        Err(I::TooMany {
            what: "peer_ids",
            ..
        })
    ));
    for bad in [
        "lab_a",
        "a*b",
        "-*",
        "**",
        "Lab-*",
        "lab--*",
        &"a".repeat(40),
    ] {
        assert!(
            matches!(
                check(&|r| r.members[0].namespaces.push(bad.to_string())),
                Err(I::BadNamespace { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn namespaces_never_overlap_between_members() {
    let with = |a: &[&str], b: &[&str]| {
        let mut r = genesis().body;
        r.members = vec![member("m-a", 1, a), member("m-b", 2, b)];
        r.validate()
    };
    // Disjoint.
    assert_eq!(with(&["lab-a", "lab-a-*"], &["lab-b", "lab-ab"]), Ok(()));
    assert_eq!(with(&["lab-*"], &["lab", "la"]), Ok(()));
    assert_eq!(with(&["*"], &[]), Ok(()));
    // One member's own patterns may overlap.
    assert_eq!(with(&["lab-*", "lab-a-*", "lab-x", "*"], &[]), Ok(()));
    // Overlapping in every way.
    for (a, b) in [
        (&["lab-a"][..], &["lab-a"][..]),
        (&["lab-*"], &["lab-a"]),
        (&["lab-a"], &["lab-*"]),
        (&["lab-*"], &["lab-a-*"]),
        (&["lab-a-*"], &["lab-*"]),
        (&["*"], &["x"]),
        (&["x"], &["*"]),
        (&["lab*"], &["lab"]),
        (&["zz", "a-*"], &["b", "a-b-c"]),
    ] {
        assert!(
            matches!(with(a, b), Err(InvalidRoster::NamespaceOverlap { .. })),
            "{a:?} vs {b:?}"
        );
    }
    match with(&["lab-*"], &["lab-a"]) {
        Err(InvalidRoster::NamespaceOverlap {
            member_a,
            pattern_a,
            member_b,
            pattern_b,
        }) => assert_eq!(
            (
                member_a.as_str(),
                pattern_a.as_str(),
                member_b.as_str(),
                pattern_b.as_str()
            ),
            ("m-a", "lab-*", "m-b", "lab-a")
        ),
        other => panic!("{other:?}"),
    }

    let m = member("m", 1, &["exact", "pre-*"]);
    assert!(m.may_publish("exact"));
    assert!(!m.may_publish("exact-not"));
    assert!(m.may_publish("pre-x"));
    assert!(!m.may_publish("pre"));
    assert!(member("m", 1, &["*"]).may_publish("anything"));
    assert!(!member("m", 1, &[]).may_publish("anything"));
}

#[test]
fn join_requests_travel_as_one_line() {
    let req = join_request("lab-c", 3, &["lab-c", "lab-c-*"]);
    let line = req.to_line();
    assert!(line.starts_with(JOIN_LINE_PREFIX));
    assert!(line.bytes().all(|b| b.is_ascii_graphic()), "{line}");
    assert!(line.len() < 400, "{} characters", line.len());
    assert_eq!(JoinRequest::from_line(&line), Ok(req.clone()));
    assert_eq!(
        JoinRequest::from_line(&format!("  {line}\r\n")),
        Ok(req.clone())
    );

    // Wrapped at 76 columns by a mail client.
    let wrapped: Vec<String> = line
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(JoinRequest::from_line(&wrapped.join("\n")), Ok(req.clone()));

    assert!(matches!(
        JoinRequest::from_line("hello"),
        Err(RosterError::BadJoinLine(_))
    ));
    assert!(matches!(
        JoinRequest::from_line(&format!("{JOIN_LINE_PREFIX}!!!")),
        Err(RosterError::BadJoinLine(_))
    ));
    assert!(matches!(
        JoinRequest::from_line(&"a".repeat(3 * MAX_JOIN_LINE)),
        Err(RosterError::BadJoinLine(_))
    ));

    // Someone else's key in a request they did not sign.
    let mut forged = req.clone();
    forged.publisher_key = pubkey(4);
    assert_eq!(
        JoinRequest::from_line(&forged.to_line()),
        Err(RosterError::BadSignature(hex(&pubkey(4))))
    );
    let mut tampered = req.clone();
    tampered.body.namespaces.push("*".into());
    assert!(matches!(
        JoinRequest::from_line(&tampered.to_line()),
        Err(RosterError::BadSignature(_))
    ));
    // Every single-character change to the line is refused.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in JOIN_LINE_PREFIX.len()..line.len() {
        let mut b = line.clone().into_bytes();
        b[i] = alphabet.bytes().find(|&c| c != b[i]).unwrap();
        let changed = String::from_utf8(b).unwrap();
        if let Ok(r) = JoinRequest::from_line(&changed) {
            // Base64 slack bits in the last character can change without changing the bytes.
            assert_eq!(r, req, "changing character {i} went unnoticed");
        }
    }

    assert!(matches!(
        UnsignedJoinRequest {
            institution: "Bad Id".into(),
            ..req.body.clone()
        }
        .sign(&key(3)),
        Err(RosterError::Invalid(InvalidRoster::BadMemberId(_)))
    ));
}

#[test]
fn admitting_members() {
    let g = genesis();
    let mut next = g.body.successor(1_700_001_000);
    assert_eq!(next.version, 2);
    assert_eq!(next.prev, Some(g.body_cid()));

    // A namespace already owned by lab-a.
    assert!(matches!(
        next.clone().admit(&join_request("lab-x", 5, &["lab-*"]), 0),
        Err(RosterError::Invalid(InvalidRoster::NamespaceOverlap { .. }))
    ));
    // A forged request.
    let mut forged = join_request("lab-x", 5, &["lab-x"]);
    forged.body.namespaces = vec!["lab-a".into()];
    assert!(matches!(
        next.clone().admit(&forged, 0),
        Err(RosterError::BadSignature(_))
    ));

    next.admit(&join_request("lab-c", 3, &["lab-c"]), 100)
        .unwrap();
    // A second node of the same institution joins the existing member.
    next.admit(&join_request("lab-c", 4, &["lab-c-*"]), 50)
        .unwrap();
    let c = next.member("lab-c").unwrap();
    assert_eq!(c.peer_ids.len(), 2);
    assert_eq!(c.publisher_keys, vec![pubkey(3), pubkey(4)]);
    assert_eq!(c.namespaces, vec!["lab-c", "lab-c-*"]);
    assert_eq!(c.storage_bytes, 150);
    assert_eq!(
        next.owner_of("lab-c-x").map(|m| m.id.as_str()),
        Some("lab-c")
    );
}

fn to_ipld(bytes: &[u8]) -> BTreeMap<String, Ipld> {
    match serde_ipld_dagcbor::from_slice::<Ipld>(bytes).unwrap() {
        Ipld::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

fn from_ipld(m: BTreeMap<String, Ipld>) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(&Ipld::Map(m)).unwrap()
}

#[test]
fn encoding_is_canonical_and_strict() {
    let g = genesis();
    let mut v2 = v2_unsigned(&g);
    v2.body.members[0].gateway = Some("https://shub.lab-a.example".into());
    v2.add_signature(&key(11));
    v2.add_signature(&key(10));
    let bytes = v2.encode();
    let back = SignedRoster::decode(&bytes).unwrap();
    assert_eq!(back, v2);
    assert_eq!(back.encode(), bytes);
    assert_eq!(Roster::decode(&v2.body.encode()), Ok(v2.body.clone()));
    assert_eq!(from_ipld(to_ipld(&bytes)), bytes);
    assert_eq!(from_ipld(to_ipld(&v2.body.encode())), v2.body.encode());
    assert_eq!(
        g.body_cid().to_string(),
        "bafyreiekayjqrb7fwudpxmxtmopofpbahirulshkk3oskocxjd4ihtnzae",
        "known answer: changing the encoding changes every federation id"
    );

    let ipld = to_ipld(&bytes);
    let mut extra = ipld.clone();
    extra.insert("note".into(), Ipld::String("hi".into()));
    assert_eq!(
        SignedRoster::decode(&from_ipld(extra)),
        Err(CborError::UnknownField("note".into()).into())
    );
    let mut body = to_ipld(&v2.body.encode());
    if let Some(Ipld::List(members)) = body.get_mut("members")
        && let Some(Ipld::Map(m)) = members.get_mut(0)
    {
        m.insert("public".into(), Ipld::Bool(true));
    }
    assert_eq!(
        Roster::decode(&from_ipld(body)),
        Err(CborError::UnknownField("member.public".into()).into())
    );
    let mut v9 = to_ipld(&v2.body.encode());
    v9.insert("v".into(), Ipld::Integer(9));
    assert_eq!(
        Roster::decode(&from_ipld(v9)),
        Err(CborError::UnsupportedVersion(9).into())
    );
    // Signatures out of key order.
    let mut unsorted = ipld.clone();
    if let Some(Ipld::List(sigs)) = unsorted.get_mut("sigs") {
        sigs.reverse();
    }
    assert!(matches!(
        SignedRoster::decode(&from_ipld(unsorted)),
        Err(RosterError::Decode(CborError::NonCanonical(_)))
    ));
    // An invalid body is refused at decode.
    let mut invalid = v2.clone();
    invalid.body.threshold = 9;
    assert!(matches!(
        SignedRoster::decode(&invalid.encode()),
        Err(RosterError::Invalid(InvalidRoster::Threshold { .. }))
    ));
    assert!(matches!(
        SignedRoster::decode(&vec![0; MAX_ROSTER_SIZE + 1]),
        Err(RosterError::Decode(CborError::TooLarge { .. }))
    ));
    for cut in 0..bytes.len() {
        assert!(SignedRoster::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

/// Decode, then the verification that applies to this version: a flip must fail one of them.
fn flip_is_caught(bytes: &[u8], bit: usize, current: &Roster) -> bool {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    match SignedRoster::decode(&b) {
        Err(_) => true,
        Ok(r) => verify_next(current, &r).is_err(),
    }
}

#[test]
fn every_single_bit_flip_is_caught() {
    let g = genesis();
    let mut v2 = v2_unsigned(&g);
    v2.add_signature(&key(10));
    v2.add_signature(&key(11));
    let bytes = v2.encode();
    for bit in 0..bytes.len() * 8 {
        assert!(
            flip_is_caught(&bytes, bit, &g.body),
            "flipping bit {bit} went unnoticed"
        );
    }
    let gbytes = g.encode();
    for bit in 0..gbytes.len() * 8 {
        let mut b = gbytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let caught = match SignedRoster::decode(&b) {
            Err(_) => true,
            Ok(r) => verify_chain(&fed(&g), &[r]).is_err(),
        };
        assert!(caught, "flipping genesis bit {bit} went unnoticed");
    }
}

fn arb_roster() -> impl Strategy<Value = (Roster, Vec<u8>)> {
    let member = (
        "\\PC{1,20}".prop_filter("display name", |s| display_name_ok(s)),
        proptest::collection::vec("[1-9A-HJ-NP-Za-km-z]{8,52}", 0..3),
        proptest::collection::vec("[a-z0-9]{1,6}(-[a-z0-9]{1,6})?\\*?", 0..4),
        any::<u64>(),
        proptest::option::of("https://[a-z]{1,12}\\.example(/[a-z]{0,8})?"),
    );
    (
        "\\PC{1,30}".prop_filter("display name", |s| display_name_ok(s)),
        proptest::collection::vec(member, 0..6),
        1u8..5,
        any::<u64>(),
        any::<u64>(),
        1u32..10,
    )
        .prop_map(|(name, members, admins, created, version, k)| {
            let admin_seeds: Vec<u8> = (100..100 + admins).collect();
            let mut r = Roster::genesis(
                &name,
                admin_seeds.iter().map(|&s| pubkey(s)).collect(),
                u32::from(admins).div_ceil(2),
                created,
            );
            if version % 3 != 0 {
                r.version = version.max(2);
                r.prev = Some(crate::cid::cid_for(
                    crate::cid::DAG_CBOR,
                    &version.to_le_bytes(),
                ));
            }
            r.replication = Replication {
                k,
                min_institutions: k.div_ceil(2),
            };
            for (i, (name, peers, namespaces, storage, gateway)) in members.into_iter().enumerate()
            {
                // Unique ids, peers and keys; namespaces made unique by a member prefix.
                let seed = u8::try_from(i + 1).unwrap_or(1);
                r.members.push(Member {
                    id: format!("m{i}"),
                    name,
                    peer_ids: peers.iter().map(|p| format!("{i}{p}")).collect(),
                    publisher_keys: vec![pubkey(seed), pubkey(seed + 50)],
                    namespaces: namespaces.iter().map(|n| format!("m{i}-{n}")).collect(),
                    storage_bytes: storage,
                    gateway,
                });
            }
            (r, admin_seeds)
        })
        .prop_filter("valid", |(r, _)| r.validate().is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_decode_encode_is_identical((body, admins) in arb_roster()) {
        let mut s = SignedRoster::new(body);
        for a in &admins {
            s.add_signature(&key(*a));
        }
        let bytes = s.encode();
        let back = SignedRoster::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.encode(), bytes.clone());
        prop_assert_eq!(Roster::decode(&s.body.encode()).unwrap(), s.body.clone());
        prop_assert_eq!(from_ipld(to_ipld(&bytes)), bytes);
    }

    #[test]
    fn a_flipped_bit_fails_decode_or_verification(bit in any::<prop::sample::Index>()) {
        let g = genesis();
        let mut v2 = v2_unsigned(&g);
        v2.add_signature(&key(10));
        v2.add_signature(&key(11));
        let bytes = v2.encode();
        prop_assert!(flip_is_caught(&bytes, bit.index(bytes.len() * 8), &g.body));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedRoster::decode(&bytes);
        let _ = Roster::decode(&bytes);
        let _ = JoinRequest::decode(&bytes);
    }

    #[test]
    fn join_line_parse_never_panics(s in "\\PC{0,200}") {
        let _ = JoinRequest::from_line(&s);
    }
}
