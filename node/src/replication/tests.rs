//! The replicator's decisions on a real store and registry: the publisher's copy, mirror
//! policy, tombstones and retention. Placement across nodes is tested in `placement.rs`;
//! fetching between real processes in the integration tests.

use super::*;
use crate::keys::NodeKeys;
use crate::paths::DataDir;
use bytes::Bytes;
use shubnet_protocol::reference::Reference;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct FakeTransfers {
    fetched: Mutex<Vec<Cid>>,
    announced: Mutex<Vec<Cid>>,
}

impl Transfers for FakeTransfers {
    fn fetch(
        &self,
        root: Cid,
        _holders: Vec<PeerId>,
    ) -> BoxFuture<'static, Result<(), TransferFailed>> {
        self.fetched.lock().expect("lock").push(root);
        Box::pin(async { Err(TransferFailed("no network in this test".into())) })
    }
    fn announce_holding(&self, root: Cid) {
        self.announced.lock().expect("lock").push(root);
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    reg: Registry,
    fake: Arc<FakeTransfers>,
}

async fn fixture(cfg: ReplicationConfig) -> (Fixture, Replicator) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path().join("n"));
    std::fs::create_dir_all(dir.root()).expect("mkdir");
    let (keys, _) = NodeKeys::init(&dir).expect("keys");
    let store = Store::open(dir.clone()).await.expect("store");
    let reg = Registry::open(dir, store.index(), keys).expect("registry");
    reg.create_federation(
        "t",
        "lab-a",
        vec!["lab-a".into()],
        1 << 30,
        shubnet_protocol::roster::Replication {
            k: 1,
            min_institutions: 1,
        },
        None,
    )
    .expect("create");
    let fake = Arc::new(FakeTransfers::default());
    let r = Replicator::new(
        store.clone(),
        reg.clone(),
        PeerBook::default(),
        cfg,
        fake.clone(),
        CancellationToken::new(),
    );
    (
        Fixture {
            _tmp: tmp,
            store,
            reg,
            fake,
        },
        r,
    )
}

async fn add(store: &Store, seed: u8) -> (Cid, u64) {
    let bytes = Bytes::from(vec![seed; 300_000]);
    let (cid, rec) = store
        .add_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]))
        .await
        .expect("add");
    (cid, rec.size)
}

fn reference(tag: &str) -> Reference {
    Reference::new("lab-a", "img", tag).expect("reference")
}

#[tokio::test]
async fn publisher_pins_its_images_and_fetches_what_it_lacks() {
    let (f, r) = fixture(ReplicationConfig::default()).await;
    let (held, size) = add(&f.store, 1).await;
    f.store.unpin(&held).expect("unpin");
    f.reg
        .publish(
            &reference("1"),
            Some((held, size, [1; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    let missing = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"elsewhere");
    f.reg
        .publish(
            &reference("2"),
            Some((missing, 9, [2; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    r.round().await.expect("round");
    assert!(
        f.store.is_pinned(&held).expect("pinned"),
        "held image re-pinned"
    );
    assert_eq!(*f.fake.announced.lock().expect("lock"), vec![held]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*f.fake.fetched.lock().expect("lock"), vec![missing]);
    let status = r.status().expect("status");
    assert_eq!(status.images.len(), 2);
    assert!(status.images[0].under_replicated && !status.images[0].local);
    assert_eq!(status.images[0].root, missing.to_string());
    assert_eq!(status.images[1].replicas, 1);
    assert!(status.images[1].local && !status.images[1].under_replicated);
}

#[tokio::test]
async fn a_deleted_image_is_unpinned_kept_for_the_retention_then_removed() {
    let cfg = ReplicationConfig {
        tombstone_retention_secs: 3600,
        ..ReplicationConfig::default()
    };
    let (f, r) = fixture(cfg).await;
    let (root, size) = add(&f.store, 2).await;
    f.reg
        .publish(
            &reference("1"),
            Some((root, size, [1; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    f.reg
        .publish(&reference("1"), None, None, false, "t")
        .expect("delete");
    r.round().await.expect("round");
    assert!(
        !f.store.is_pinned(&root).expect("pinned"),
        "unpinned at once"
    );
    assert!(f.store.is_retained(&root).expect("retained"));
    f.store.gc().await.expect("gc");
    assert!(
        f.store.root_record(&root).expect("rec").is_some(),
        "gc keeps it"
    );
    // Undo: the tag is pushed again with the same content; it is live and pinned again.
    f.reg
        .publish(
            &reference("1"),
            Some((root, size, [1; 32])),
            None,
            false,
            "t",
        )
        .expect("re-push");
    r.round().await.expect("round");
    assert!(f.store.is_pinned(&root).expect("pinned"));
    assert_eq!(f.store.retained_until(&root).expect("until"), None);
}

#[tokio::test]
async fn retention_over_removes_the_content() {
    let cfg = ReplicationConfig {
        tombstone_retention_secs: 0,
        ..ReplicationConfig::default()
    };
    let (f, r) = fixture(cfg).await;
    let (root, size) = add(&f.store, 3).await;
    let (other, other_size) = add(&f.store, 4).await;
    f.reg
        .publish(
            &reference("1"),
            Some((root, size, [1; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    f.reg
        .publish(
            &reference("2"),
            Some((other, other_size, [1; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    f.reg
        .publish(&reference("1"), None, None, false, "t")
        .expect("delete");
    r.round().await.expect("round");
    r.round().await.expect("round");
    assert!(
        f.store.root_record(&root).expect("rec").is_none(),
        "removed"
    );
    assert!(
        f.store.root_record(&other).expect("rec").is_some(),
        "others stay"
    );
    assert!(f.store.is_pinned(&other).expect("pinned"));
}

#[tokio::test]
async fn mirror_policy_matches_patterns() {
    let cfg = ReplicationConfig {
        mirror: vec!["lab-b-*".into()],
        ..ReplicationConfig::default()
    };
    assert!(cfg.mirrors("lab-b-x") && !cfg.mirrors("lab-c"));
    let all = ReplicationConfig {
        mirror: vec!["all".into()],
        ..ReplicationConfig::default()
    };
    assert!(all.mirrors("anything"));
}

#[tokio::test]
async fn leaving_takes_nothing_new_refuses_to_drop_below_k_and_survives_a_restart() {
    let (f, r) = fixture(ReplicationConfig::default()).await;
    let (held, size) = add(&f.store, 7).await;
    f.reg
        .publish(
            &reference("1"),
            Some((held, size, [7; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    let p = r.leave_progress().expect("progress");
    assert!(!p.leaving && !p.done && p.admin);
    r.start_leaving().expect("start");
    assert!(r.is_leaving() && r.status().expect("status").leaving);
    // Alone in the federation: its one image can never have k = 1 holder elsewhere.
    let p = r.leave_progress().expect("progress");
    assert_eq!((p.pending, p.impossible, p.done), (1, 1, false), "{p:?}");
    assert_eq!(p.images[0].root, held.to_string());
    assert_eq!(p.images[0].candidates, 0);
    // A new image is not fetched by a leaving node; what it holds stays pinned.
    let missing = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"new");
    f.reg
        .publish(
            &reference("2"),
            Some((missing, 3, [8; 32])),
            None,
            false,
            "t",
        )
        .expect("publish");
    r.round().await.expect("round");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(f.fake.fetched.lock().expect("lock").is_empty());
    assert!(f.store.is_pinned(&held).expect("pinned"));
    // The leave survives a restart (a marker in the data dir) until cancelled.
    let again = Replicator::new(
        f.store.clone(),
        f.reg.clone(),
        PeerBook::default(),
        ReplicationConfig::default(),
        f.fake.clone(),
        CancellationToken::new(),
    );
    assert!(again.is_leaving());
    again.cancel_leaving().expect("cancel");
    assert!(!again.is_leaving());
    let fresh = Replicator::new(
        f.store.clone(),
        f.reg.clone(),
        PeerBook::default(),
        ReplicationConfig::default(),
        f.fake.clone(),
        CancellationToken::new(),
    );
    assert!(!fresh.is_leaving(), "the cancel removed the marker");
}
