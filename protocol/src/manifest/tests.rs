//! Manifest tests: byte-identical round trips against an independent DAG-CBOR implementation,
//! known answers, strict decoding, and the verification, succession and resolution rules.

use super::*;
use crate::cid::{RAW, cid_for};
use crate::roster::{Member, Roster};
use ipld_core::ipld::Ipld;
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pubkey(n: u8) -> [u8; 32] {
    key(n).verifying_key().to_bytes()
}

/// Admin 10; lab-a publishes `lab-a` and `lab-a-*` with key 1; lab-b publishes `lab-b` with key 2.
fn roster() -> Roster {
    let mut r = Roster::genesis("test federation", vec![pubkey(10)], 1, 1_700_000_000);
    r.members = vec![
        Member {
            id: "lab-a".into(),
            name: "Lab A".into(),
            peer_ids: vec!["12D3KooWA".into()],
            publisher_keys: vec![pubkey(1)],
            namespaces: vec!["lab-a".into(), "lab-a-*".into()],
            storage_bytes: 1 << 40,
            gateway: Some("https://shub.lab-a.example".into()),
        },
        Member {
            id: "lab-b".into(),
            name: "Lab B".into(),
            peer_ids: vec!["12D3KooWB".into()],
            publisher_keys: vec![pubkey(2)],
            namespaces: vec!["lab-b".into()],
            storage_bytes: 0,
            gateway: None,
        },
    ];
    r.validate().unwrap();
    r
}

fn fed() -> String {
    roster().federation_id().unwrap()
}

fn image(seq: u64, prev: Option<Cid>) -> UnsignedManifest {
    let content = b"not really a SIF";
    let mut labels = BTreeMap::new();
    labels.insert("org.label-schema.name".into(), "blast".into());
    labels.insert("maintainer".into(), "lab-a".into());
    UnsignedManifest {
        federation: fed(),
        collection: "lab-a".into(),
        name: "blast".into(),
        tag: "2.14".into(),
        root: Some(cid_for(RAW, content)),
        size: content.len() as u64,
        sha256: Sha256::digest(content).into(),
        media_type: MEDIA_TYPE_SIF.into(),
        metadata: Metadata {
            arch: Some("amd64".into()),
            labels,
            deffile: Some("Bootstrap: docker\nFrom: debian:12\n".into()),
            runscript: Some("#!/bin/sh\nexec blastn \"$@\"\n".into()),
            environment: None,
            extra: BTreeMap::new(),
        },
        created: 1_700_000_100 + seq,
        seq,
        prev,
        frozen: false,
        tombstone: false,
        pushed_by: "alice".into(),
    }
}

fn tombstone(seq: u64, prev: Option<Cid>) -> UnsignedManifest {
    UnsignedManifest {
        root: None,
        size: 0,
        sha256: [0; 32],
        media_type: String::new(),
        metadata: Metadata::default(),
        tombstone: true,
        ..image(seq, prev)
    }
}

fn signed(u: UnsignedManifest) -> Manifest {
    u.sign(&key(1)).unwrap()
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
fn roundtrip_is_byte_identical_and_a_dag_cbor_block() {
    let m = signed(image(1, None));
    let bytes = m.encode();
    let back = Manifest::decode(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.encode(), bytes);
    assert_eq!(m.cid().codec(), DAG_CBOR);
    assert_eq!(m.cid(), cid_for(DAG_CBOR, &bytes));
    crate::cid::verify(&m.cid(), &bytes).unwrap();
    m.verify_signature().unwrap();
    // Signing is deterministic: the same fields and key give the same manifest.
    assert_eq!(signed(image(1, None)), m);
}

#[test]
fn another_implementation_reads_and_rewrites_the_same_bytes() {
    // serde_ipld_dagcbor sorts map keys canonically; if our encoder did not, this would differ.
    let m = signed(image(3, Some(cid_for(DAG_CBOR, b"prev"))));
    let bytes = m.encode();
    let ipld = to_ipld(&bytes);
    assert_eq!(from_ipld(ipld.clone()), bytes);
    assert_eq!(ipld["root"], Ipld::Link(m.body.root.unwrap()));
    assert_eq!(ipld["seq"], Ipld::Integer(3));
    assert_eq!(ipld["sig"], Ipld::Bytes(m.signature.to_vec()));
    let keys: Vec<_> = ipld.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 18);
}

#[test]
fn known_answer() {
    // Pins the encoding: any change to key names, order or field encoding changes every
    // manifest CID in every federation, so it must be deliberate.
    let m = signed(image(1, None));
    let bytes = m.encode();
    assert_eq!(bytes.len(), 582);
    assert_eq!(
        &bytes[..12],
        &[
            0xb1, 0x61, b'v', 0x01, 0x63, b's', b'e', b'q', 0x01, 0x63, b's', b'i'
        ]
    );
    assert_eq!(
        m.cid().to_string(),
        "bafyreieeqghczebp533x244y6vpkwjdbxx6rfy7o44fff7dgwi35522uzi"
    );
}

#[test]
fn decode_rejects_what_is_not_the_one_encoding() {
    let m = signed(image(1, None));
    let bytes = m.encode();
    let ipld = to_ipld(&bytes);

    let mut extra = ipld.clone();
    extra.insert("zzz".into(), Ipld::Integer(1));
    assert_eq!(
        Manifest::decode(&from_ipld(extra)),
        Err(CborError::UnknownField("zzz".into()).into())
    );

    let mut v2 = ipld.clone();
    v2.insert("v".into(), Ipld::Integer(2));
    v2.insert("new_field".into(), Ipld::Integer(1));
    assert_eq!(
        Manifest::decode(&from_ipld(v2)),
        Err(CborError::UnsupportedVersion(2).into())
    );

    let mut missing = ipld.clone();
    missing.remove("pushed_by");
    assert_eq!(
        Manifest::decode(&from_ipld(missing)),
        Err(CborError::MissingField("pushed_by").into())
    );

    let mut null_prev = ipld.clone();
    null_prev.insert("prev".into(), Ipld::Null);
    assert!(matches!(
        Manifest::decode(&from_ipld(null_prev)),
        Err(ManifestError::Decode(CborError::WrongType {
            field: "prev",
            ..
        }))
    ));

    // An empty labels map means the same as none, but only "none" is canonical.
    let mut empty_labels = ipld.clone();
    if let Some(Ipld::Map(md)) = empty_labels.get_mut("metadata") {
        md.insert("labels".into(), Ipld::Map(BTreeMap::new()));
    }
    assert_eq!(
        Manifest::decode(&from_ipld(empty_labels)),
        Err(CborError::NonCanonical("re-encoding differs from the input").into())
    );

    // The same entries in bytewise (not length-first) order.
    let mut reordered = vec![0xb1];
    for (k, v) in &ipld {
        reordered.extend(serde_ipld_dagcbor::to_vec(k).unwrap());
        reordered.extend(serde_ipld_dagcbor::to_vec(v).unwrap());
    }
    assert_eq!(
        Manifest::decode(&reordered),
        Err(CborError::NonCanonical("map keys out of canonical order").into())
    );

    // seq 1 written as a one-byte argument (0x18 0x01) instead of inline.
    let pos = bytes.windows(5).position(|w| w == b"\x63seq\x01").unwrap();
    let mut long_int = bytes[..pos + 4].to_vec();
    long_int.extend([0x18, 0x01]);
    long_int.extend(&bytes[pos + 5..]);
    assert_eq!(
        Manifest::decode(&long_int),
        Err(CborError::NonCanonical("integer or length not in shortest form").into())
    );

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Manifest::decode(&trailing),
        Err(ManifestError::Decode(CborError::Malformed(_)))
    ));
    assert_eq!(
        Manifest::decode(&vec![0; MAX_MANIFEST_SIZE + 1]),
        Err(CborError::TooLarge {
            len: MAX_MANIFEST_SIZE + 1,
            max: MAX_MANIFEST_SIZE
        }
        .into())
    );
    for cut in 0..bytes.len() {
        assert!(Manifest::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn every_single_bit_flip_is_caught() {
    let m = signed(image(2, Some(cid_for(DAG_CBOR, b"prev"))));
    let bytes = m.encode();
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let caught = match Manifest::decode(&b) {
            Err(_) => true,
            Ok(d) => d.verify_signature().is_err(),
        };
        assert!(caught, "flipping bit {bit} went unnoticed");
    }
}

#[test]
fn structural_rules() {
    use ManifestError as E;
    let mut u = image(1, None);
    u.tombstone = true;
    assert_eq!(u.sign(&key(1)), Err(E::TombstoneWithRoot));

    let mut u = image(1, None);
    u.root = None;
    assert_eq!(u.sign(&key(1)), Err(E::MissingRoot));

    let mut u = tombstone(1, None);
    u.size = 5;
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid { field: "size", .. })
    ));
    signed(tombstone(1, None)).verify_signature().unwrap();

    let mut u = image(1, None);
    u.collection = "Lab-A".into();
    assert!(matches!(u.sign(&key(1)), Err(E::Reference(_))));

    let mut u = image(1, None);
    u.tag = "sha256.x".into();
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Reference(ReferenceError::ReservedTag(_)))
    ));

    let mut u = image(1, None);
    u.root = Some(cid_for(DAG_CBOR, b"x"));
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid { field: "root", .. })
    ));

    let mut u = image(1, None);
    u.prev = Some(cid_for(RAW, b"x"));
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid { field: "prev", .. })
    ));

    let mut u = image(1, None);
    u.media_type = "nonsense".into();
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid {
            field: "media_type",
            ..
        })
    ));

    let mut u = image(1, None);
    u.pushed_by = String::new();
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid {
            field: "pushed_by",
            ..
        })
    ));

    let mut u = image(1, None);
    u.federation = String::new();
    assert!(matches!(
        u.sign(&key(1)),
        Err(E::Invalid {
            field: "federation",
            ..
        })
    ));

    let mut u = image(1, None);
    u.metadata.deffile = Some("x".repeat(MAX_MANIFEST_SIZE));
    assert!(matches!(u.sign(&key(1)), Err(E::TooLarge(_))));
}

#[test]
fn verification_against_the_roster() {
    use ManifestError as E;
    let roster = roster();
    let fed = fed();
    let verifier = Verifier::new(&roster, &fed);
    // Both ways of verifying agree on every case.
    let check = |m: &Manifest, federation: &str| {
        let one = m.verify_against(&roster, federation).map(|m| m.id.clone());
        let many = Verifier::new(&roster, federation)
            .verify(m)
            .map(|m| m.id.clone());
        assert_eq!(one, many);
        if federation == fed {
            assert_eq!(verifier.verify(m).map(|m| m.id.clone()), one);
        }
        one
    };
    let m = signed(image(1, None));
    assert_eq!(check(&m, &fed).unwrap(), "lab-a");

    // Namespace globs: lab-a-* covers lab-a-tools.
    let mut u = image(1, None);
    u.collection = "lab-a-tools".into();
    check(&signed(u), &fed).unwrap();

    assert_eq!(
        check(&m, "bafyother"),
        Err(E::WrongFederation {
            expected: "bafyother".into(),
            found: fed.clone()
        })
    );

    // Signed by a key outside the roster.
    let outsider = image(1, None).sign(&key(9)).unwrap();
    outsider.verify_signature().unwrap();
    assert_eq!(check(&outsider, &fed), Err(E::UnknownPublisher));

    // Lab B publishing into lab-a.
    let intruder = image(1, None).sign(&key(2)).unwrap();
    assert_eq!(
        check(&intruder, &fed),
        Err(E::OutsideNamespace {
            collection: "lab-a".into(),
            member: "lab-b".into()
        })
    );

    // Any field changed after signing.
    let mut tampered = m.clone();
    tampered.body.sha256[0] ^= 1;
    assert_eq!(check(&tampered, &fed), Err(E::BadSignature));
    let mut tampered = m.clone();
    tampered.body.root = Some(cid_for(RAW, b"evil"));
    assert_eq!(check(&tampered, &fed), Err(E::BadSignature));
    let mut tampered = m.clone();
    tampered.body.metadata.labels.insert("x".into(), "y".into());
    assert_eq!(tampered.verify_signature(), Err(E::BadSignature));
    let mut tampered = m.clone();
    tampered.body.collection = "lab-a-evil".into();
    assert_eq!(check(&tampered, &fed), Err(E::BadSignature));

    // A field made invalid after signing is reported as the rule it breaks.
    let mut bad_ref = m.clone();
    bad_ref.body.name = "BLAST".into();
    assert!(matches!(
        check(&bad_ref, &fed),
        Err(E::Reference(ReferenceError::Uppercase { .. }))
    ));

    let mut bad_key = m.clone();
    bad_key.publisher = [0xff; 32];
    assert!(matches!(
        bad_key.verify_signature(),
        Err(E::BadPublisherKey | E::BadSignature)
    ));
}

#[test]
fn succession_rules() {
    use ManifestError as E;
    let first = signed(image(1, None));
    check_succession(None, &first).unwrap();
    assert!(matches!(
        check_succession(None, &signed(image(2, Some(first.cid())))),
        Err(E::WrongPrev { expected: None, .. })
    ));

    let second = signed(image(2, Some(first.cid())));
    check_succession(Some(&first), &second).unwrap();
    assert_eq!(
        check_succession(Some(&second), &second),
        Err(E::AlreadyKnown)
    );
    assert_eq!(
        check_succession(Some(&second), &first),
        Err(E::SeqNotIncreasing { head: 2, new: 1 })
    );
    let mut rival = image(2, Some(first.cid()));
    rival.size += 1;
    assert_eq!(
        check_succession(Some(&second), &signed(rival)),
        Err(E::Conflict { seq: 2 })
    );
    assert_eq!(
        check_succession(Some(&second), &signed(image(3, Some(first.cid())))),
        Err(E::WrongPrev {
            expected: Some(second.cid().to_string()),
            found: Some(first.cid().to_string())
        })
    );
    assert_eq!(
        check_succession(Some(&second), &signed(image(3, None))),
        Err(E::WrongPrev {
            expected: Some(second.cid().to_string()),
            found: None
        })
    );
    let mut other_tag = image(3, Some(second.cid()));
    other_tag.tag = "2.15".into();
    assert!(matches!(
        check_succession(Some(&second), &signed(other_tag)),
        Err(E::DifferentTag { .. })
    ));

    // Delete, then re-create.
    let deleted = signed(tombstone(3, Some(second.cid())));
    check_succession(Some(&second), &deleted).unwrap();
    check_succession(Some(&deleted), &signed(image(4, Some(deleted.cid())))).unwrap();

    // A frozen head moves neither to a new image nor to a tombstone.
    let mut f = image(3, Some(second.cid()));
    f.frozen = true;
    let frozen = signed(f);
    check_succession(Some(&second), &frozen).unwrap();
    for next in [
        signed(image(4, Some(frozen.cid()))),
        signed(tombstone(4, Some(frozen.cid()))),
    ] {
        assert_eq!(
            check_succession(Some(&frozen), &next),
            Err(E::FrozenTag {
                tag: "lab-a/blast:2.14".into()
            })
        );
    }
}

#[test]
fn resolution() {
    assert_eq!(resolve([]), None);
    let a = signed(image(1, None));
    let b = signed(image(2, Some(a.cid())));
    let c = signed(tombstone(3, Some(b.cid())));
    assert_eq!(resolve([&a, &b]), Some(Resolution::Image(&b)));
    assert_eq!(resolve([&b, &a]), Some(Resolution::Image(&b)));
    assert_eq!(resolve([&a, &c, &b]), Some(Resolution::Deleted(&c)));
    assert_eq!(resolve([&a, &c, &b]).map(|r| r.manifest()), Some(&c));

    // A frozen manifest is final even if later ones were let through.
    let mut f = image(2, Some(a.cid()));
    f.frozen = true;
    let frozen = signed(f);
    let later = signed(image(3, Some(frozen.cid())));
    assert_eq!(
        resolve([&a, &later, &frozen]),
        Some(Resolution::Image(&frozen))
    );

    // Equal seqs: every node picks the same one, whatever the order.
    let mut r = image(2, Some(a.cid()));
    r.size += 1;
    let rival = signed(r);
    assert_eq!(resolve([&b, &rival]), resolve([&rival, &b]));
}

#[test]
fn unknown_metadata_survives_and_stays_signed() {
    let mut u = image(1, None);
    let mut raw = Vec::new();
    cbor::text(&mut raw, "1.1");
    u.metadata.extra.insert("sif_version".into(), raw.clone());
    let m = signed(u);
    let bytes = m.encode();
    let back = Manifest::decode(&bytes).unwrap();
    assert_eq!(back.body.metadata.extra["sif_version"], raw);
    assert_eq!(back.encode(), bytes);
    back.verify_signature().unwrap();
    // A newer node's key arrives as extra, and another implementation agrees on the bytes.
    let md = &to_ipld(&bytes)["metadata"];
    assert!(matches!(md, Ipld::Map(m) if m["sif_version"] == Ipld::String("1.1".into())));

    let mut u = image(1, None);
    u.metadata.extra.insert("arch".into(), raw.clone());
    assert!(matches!(
        u.sign(&key(1)),
        Err(ManifestError::Invalid {
            field: "metadata.extra",
            ..
        })
    ));
    let mut u = image(1, None);
    u.metadata.extra.insert("x".into(), vec![0xff]);
    assert!(matches!(
        u.sign(&key(1)),
        Err(ManifestError::Invalid {
            field: "metadata.extra",
            ..
        })
    ));
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn arb_unsigned() -> impl Strategy<Value = UnsignedManifest> {
    let names = (
        "[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}",
        "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}",
        "[a-z][a-z0-9]{0,8}([._-][a-z0-9]{1,8}){0,2}",
    );
    let content = (
        any::<bool>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
    );
    let meta = (
        proptest::option::of(arb_text()),
        proptest::collection::btree_map(arb_text(), arb_text(), 0..4),
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        proptest::collection::btree_map("x[a-z]{0,6}", any::<u64>(), 0..3),
    );
    let flags = (any::<u64>(), any::<u64>(), any::<bool>(), "[a-z]{1,12}");
    (names, content, meta, flags).prop_map(
        |(
            (collection, name, tag),
            (tombstone, size, sha, root_seed, prev_seed),
            (arch, labels, deffile, runscript, environment, extra),
            (created, seq, frozen, pushed_by),
        )| {
            let extra = extra
                .into_iter()
                .map(|(k, v)| {
                    let mut raw = Vec::new();
                    cbor::uint(&mut raw, v);
                    (k, raw)
                })
                .collect();
            UnsignedManifest {
                federation: "bafyreigenesis".into(),
                collection,
                name,
                tag,
                root: (!tombstone).then(|| cid_for(RAW, &root_seed.to_le_bytes())),
                size: if tombstone { 0 } else { size },
                sha256: if tombstone { [0; 32] } else { sha },
                media_type: if tombstone {
                    String::new()
                } else {
                    MEDIA_TYPE_SIF.into()
                },
                metadata: Metadata {
                    arch,
                    labels,
                    deffile,
                    runscript,
                    environment,
                    extra,
                },
                created,
                seq,
                prev: prev_seed.map(|s| cid_for(DAG_CBOR, &s.to_le_bytes())),
                frozen,
                tombstone,
                pushed_by,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn encode_decode_encode_is_identical(u in arb_unsigned(), k in 1u8..=255) {
        let m = u.sign(&key(k)).unwrap();
        let bytes = m.encode();
        let back = Manifest::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode(), bytes.clone());
        prop_assert!(back.verify_signature().is_ok());
        // An independent DAG-CBOR implementation writes the same bytes.
        prop_assert_eq!(from_ipld(to_ipld(&bytes)), bytes);
    }

    #[test]
    fn a_flipped_bit_fails_decode_or_verification(u in arb_unsigned(), bit in any::<prop::sample::Index>()) {
        let m = u.sign(&key(7)).unwrap();
        let mut bytes = m.encode();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(d) = Manifest::decode(&bytes) {
            prop_assert!(d.verify_signature().is_err());
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::decode(&bytes);
    }
}
