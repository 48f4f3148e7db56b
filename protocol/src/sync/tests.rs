//! Sync message tests: round trips, caps on hostile input, and the bucket and usage digests.

use super::wire::{REQ_MANIFESTS, REQ_USAGE, RESP_SUMMARY, RESP_USAGE};
use super::*;
use crate::Cid;
use crate::cid::{RAW, cid_for};

#[test]
fn usage_announcements_roundtrip_and_refuse_truncation() {
    let a = Announcement::Usage(vec![(cid(1), 7), (cid(2), u64::MAX)]);
    let bytes = a.encode();
    assert_eq!(Announcement::decode(&bytes).expect("decodes"), a);
    for cut in 1..bytes.len() {
        assert!(Announcement::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(Announcement::decode(&extra).is_err());
    let mut many = vec![4u8];
    many.extend_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        Announcement::decode(&many),
        Err(SyncError::TooLarge { .. })
    ));
}
use proptest::prelude::*;

fn cid(n: u32) -> Cid {
    cid_for(RAW, &n.to_le_bytes())
}

#[test]
fn roundtrips() {
    let reqs = [
        Request::Summary {
            federation: "fed".into(),
        },
        Request::Rosters { after: 7 },
        Request::Bucket { index: 255 },
        Request::Manifests {
            cids: vec![cid(1), cid(2)],
        },
        Request::Usage { after: None },
        Request::Usage {
            after: Some(cid(4)),
        },
    ];
    for r in reqs {
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    let mut s = Summary::default();
    s.add(&cid(1));
    let resps = [
        Response::Summary {
            roster_version: 3,
            buckets: s.buckets.clone(),
            holdings: vec![cid(9)],
            usage: None,
        },
        Response::Summary {
            roster_version: 3,
            buckets: s.buckets.clone(),
            holdings: vec![],
            usage: Some(usage_digest(&[(cid(6), 2)])),
        },
        Response::Rosters {
            rosters: vec![vec![1, 2], vec![]],
        },
        Response::Bucket { cids: vec![cid(3)] },
        Response::Manifests {
            manifests: vec![vec![0; 10]],
        },
        Response::Refused {
            reason: "not a member".into(),
        },
        Response::Usage {
            totals: vec![(cid(6), 0), (cid(7), u64::MAX)],
        },
    ];
    for r in resps {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
    }
    for a in [
        Announcement::Manifest(vec![1, 2, 3]),
        Announcement::Roster(vec![4]),
        Announcement::Holding(cid(5)),
        Announcement::Leaving,
    ] {
        assert_eq!(Announcement::decode(&a.encode()), Ok(a));
    }
}

#[test]
fn caps_and_garbage() {
    // A manifest request claiming 2^40 CIDs is refused before allocating.
    let mut b = vec![REQ_MANIFESTS];
    varint::encode(1 << 40, &mut b);
    assert!(matches!(
        Request::decode(&b),
        Err(SyncError::TooLarge { .. })
    ));
    assert_eq!(Request::decode(&[]), Err(SyncError::Truncated));
    assert_eq!(Request::decode(&[99]), Err(SyncError::UnknownKind(99)));
    let mut ok = Request::Rosters { after: 1 }.encode();
    ok.push(0);
    assert_eq!(Request::decode(&ok), Err(SyncError::Trailing(1)));
    assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
    assert_eq!(frame_len(5u32.to_be_bytes()), Ok(5));
    // A summary with too few buckets.
    let mut s = vec![RESP_SUMMARY, 1, 1, 0];
    s.extend_from_slice(&[0; 32]);
    s.push(0);
    assert_eq!(Response::decode(&s), Err(SyncError::BucketCount(1)));
    // A usage page claiming more entries than a page holds is refused before allocating.
    let mut u = vec![RESP_USAGE];
    varint::encode(MAX_USAGE_ENTRIES as u64 + 1, &mut u);
    assert!(matches!(
        Response::decode(&u),
        Err(SyncError::TooLarge { .. })
    ));
    assert_eq!(
        Request::decode(&[REQ_USAGE, 2]),
        Err(SyncError::UnknownKind(2))
    );
}

#[test]
fn usage_digests_are_order_free_and_track_each_total() {
    let totals = [(cid(1), 3), (cid(2), 5)];
    let d = usage_digest(&totals);
    assert_eq!(d, usage_digest(totals.iter().rev()));
    assert_eq!(usage_digest(&[]), [0; 32]);
    // One more download of cid(1): XOR the old term out and the new one in.
    let mut inc = d;
    xor_into(&mut inc, &usage_term(&cid(1), 3));
    xor_into(&mut inc, &usage_term(&cid(1), 4));
    assert_eq!(inc, usage_digest(&[(cid(1), 4), (cid(2), 5)]));
    assert_ne!(inc, d);
    // A summary with a digest of the wrong length is refused, not half-read.
    let mut b = Response::Summary {
        roster_version: 1,
        buckets: Summary::default().buckets,
        holdings: vec![],
        usage: Some(d),
    }
    .encode();
    b.pop();
    assert_eq!(Response::decode(&b), Err(SyncError::Trailing(31)));
}

#[test]
fn summaries_compare_by_bucket() {
    let (mut a, mut b) = (Summary::default(), Summary::default());
    for i in 0..1000 {
        a.add(&cid(i));
        b.add(&cid(999 - i));
    }
    assert!(a.differing(&b.buckets).is_empty());
    b.add(&cid(5000));
    let d = a.differing(&b.buckets);
    assert_eq!(d, vec![bucket_of(&cid(5000)).0]);
}

proptest! {
    #[test]
    fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::decode(&data);
        let _ = Response::decode(&data);
        let _ = Announcement::decode(&data);
    }
}
