//! What anti-entropy and gossip need from the registry: digests of the manifest set, listings
//! by bucket, roster versions after a given one, batch acceptance of manifests learnt from a
//! peer, and the events this node's own publications raise for the network to announce.
//!
//! Owns the registry's answers to sync. Must not send or receive anything itself.

use super::{Registry, RegistryError, Result, db};
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::{Manifest, ManifestError, Verifier, check_succession};
use shubnet_protocol::roster::SignedRoster;
use shubnet_protocol::sync::{Summary, bucket_of};

/// Something this node did that peers should hear about.
#[derive(Debug, Clone)]
pub enum LocalEvent {
    /// A manifest this node published (push or delete), encoded.
    Manifest(Vec<u8>),
    /// A roster version this node's admin completed, encoded.
    Roster(Vec<u8>),
    /// The node created or joined a federation.
    Federation,
}

/// The outcome of [`Registry::accept_manifests`].
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Newly stored manifests.
    pub accepted: usize,
    /// Already known.
    pub known: usize,
    /// Refused, with the reason.
    pub refused: Vec<(Cid, RegistryError)>,
}

impl Registry {
    /// Subscribes to what this node publishes (for gossip).
    pub fn local_events(&self) -> tokio::sync::broadcast::Receiver<LocalEvent> {
        self.inner.events.subscribe()
    }

    pub(super) fn emit(&self, e: LocalEvent) {
        // No subscriber (no network) is fine.
        let _ = self.inner.events.send(e);
    }

    /// The current roster version (0 outside a federation).
    pub fn roster_version(&self) -> Result<u64> {
        Ok(self.roster()?.map_or(0, |r| r.body.version))
    }

    /// Digests of every stored manifest, bucketed (see `shubnet_protocol::sync`).
    pub fn summary(&self) -> Result<Summary> {
        let mut s = Summary::default();
        for item in self.inner.manifests.iter().keys() {
            let k = item.map_err(db)?;
            if let Ok(c) = Cid::try_from(k.as_ref()) {
                s.add(&c);
            }
        }
        Ok(s)
    }

    /// Stored manifest CIDs whose bucket is `index`.
    pub fn bucket(&self, index: u8) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        for item in self.inner.manifests.iter().keys() {
            let k = item.map_err(db)?;
            if let Ok(c) = Cid::try_from(k.as_ref())
                && bucket_of(&c).0 == index
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// True if the manifest is stored.
    pub fn has_manifest(&self, cid: &Cid) -> Result<bool> {
        self.inner
            .manifests
            .contains_key(cid.to_bytes())
            .map_err(db)
    }

    /// Encodings of the stored manifests among `cids`.
    pub fn manifests_encoded(&self, cids: &[Cid]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for c in cids {
            if let Some(b) = self.manifest_bytes(&c.to_bytes())? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Encodings of roster versions after `after`, oldest first, at most `max`.
    pub fn rosters_after(&self, after: u64, max: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let start = after.saturating_add(1).to_be_bytes();
        for item in self.inner.rosters.range(start..).take(max) {
            let (_, v) = item.map_err(db)?;
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// Accepts roster versions from a peer in order; returns how many were new. Each must
    /// follow the current one with the admins' threshold signatures (`verify_next`).
    pub fn accept_rosters(&self, rosters: &[SignedRoster]) -> Result<usize> {
        let mut new = 0;
        for r in rosters {
            let before = self.roster_version()?;
            self.accept_roster(r)?;
            if self.roster_version()? > before {
                new += 1;
            }
        }
        Ok(new)
    }

    /// Accepts manifests from a peer: each verified against the current roster (one
    /// [`Verifier`] for the batch) and by the succession rules of
    /// [`accept_manifest`](Registry::accept_manifest), in `seq` order. A manifest whose `prev`
    /// is not the head yet is refused with `WrongPrev`; the caller may offer it again once the
    /// missing one arrived (see `p2p::anti_entropy`).
    pub fn accept_manifests(&self, mut batch: Vec<Manifest>) -> Result<BatchReport> {
        let _w = self.lock();
        let (id, roster) = self.current()?;
        let verifier = Verifier::new(&roster, &id);
        batch.sort_by_key(|m| m.body.seq);
        let mut report = BatchReport::default();
        // Decide every manifest first, against the index plus what this batch accepted before
        // it (a chain of one tag may arrive in one batch); then write their log files in one
        // durable round; only then index them, so the index never names a manifest that is
        // not in log/.
        let mut heads: std::collections::HashMap<String, Manifest> = Default::default();
        let mut accepted: Vec<Manifest> = Vec::new();
        let mut seen: std::collections::HashSet<Cid> = Default::default();
        for m in batch {
            let cid = m.cid();
            if let Err(e) = verifier.verify(&m) {
                let e = e.into();
                super::count_rejection(&e);
                report.refused.push((cid, e));
                continue;
            }
            if seen.contains(&cid) || self.has_manifest(&cid)? {
                report.known += 1;
                continue;
            }
            let b = &m.body;
            let key = format!("{}/{}:{}", b.collection, b.name, b.tag);
            let head = match heads.get(&key) {
                Some(h) => Some(h.clone()),
                None => self.head(&b.collection, &b.name, &b.tag)?,
            };
            match check_succession(head.as_ref(), &m) {
                Ok(()) => {
                    heads.insert(key, m.clone());
                    seen.insert(cid);
                    accepted.push(m);
                    report.accepted += 1;
                }
                Err(ManifestError::AlreadyKnown) => report.known += 1,
                Err(e) => {
                    let e = e.into();
                    super::count_rejection(&e);
                    report.refused.push((cid, e));
                }
            }
        }
        let files: Vec<(String, Vec<u8>)> = accepted
            .iter()
            .map(|m| (format!("{}.manifest", m.cid()), m.encode()))
            .collect();
        super::log::write_many(&self.inner.dir.log(), &files)
            .map_err(|e| RegistryError::Io(format!("writing manifests to log/: {e}")))?;
        for (m, (_, bytes)) in accepted.iter().zip(files) {
            self.index_manifest(m, bytes, true)?;
        }
        self.inner.heads.flush().map_err(db)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use crate::keys::NodeKeys;
    use crate::paths::DataDir;
    use crate::registry::Registry;
    use shubnet_protocol::cid::{RAW, cid_for};
    use shubnet_protocol::manifest::{Manifest, UnsignedManifest};

    fn registry(tmp: &std::path::Path) -> (Registry, crate::db::Index) {
        let dir = DataDir::new(tmp);
        let (keys, _) = NodeKeys::init(&dir).expect("keys");
        let db = crate::db::Index::open(&dir.index()).expect("sled");
        (Registry::open(dir, &db, keys).expect("registry"), db)
    }

    fn chain(reg: &Registry, fed: &str, n: u64) -> Vec<Manifest> {
        let mut out: Vec<Manifest> = Vec::new();
        for seq in 1..=n {
            let m = UnsignedManifest {
                federation: fed.into(),
                collection: "c".into(),
                name: "img".into(),
                tag: "v1".into(),
                root: Some(cid_for(RAW, &seq.to_le_bytes())),
                size: 1,
                sha256: [1; 32],
                media_type: shubnet_protocol::manifest::MEDIA_TYPE_SIF.into(),
                created: 1,
                seq,
                prev: out.last().map(Manifest::cid),
                pushed_by: "t".into(),
                ..Default::default()
            }
            .sign(&reg.keys().publisher)
            .expect("sign");
            out.push(m);
        }
        out
    }

    #[test]
    fn batch_accepts_in_order_and_refuses_forgery_and_rollback() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (reg, _db) = registry(tmp.path());
        let fed = reg
            .create_federation("f", "lab", vec!["*".into()], 0, Default::default(), None)
            .expect("create");
        let ms = chain(&reg, &fed, 3);
        // Head first (seq 3 arrives alone, e.g. by gossip, is refused: prev unknown).
        assert!(reg.accept_manifest(&ms[2]).is_err());
        // A shuffled batch is applied in seq order.
        let r = reg
            .accept_manifests(vec![ms[2].clone(), ms[0].clone(), ms[1].clone()])
            .expect("batch");
        assert_eq!((r.accepted, r.refused.len()), (3, 0));
        let head = reg.head("c", "img", "v1").expect("head").expect("some");
        assert_eq!(head.cid(), ms[2].cid());
        let total: u32 = reg
            .summary()
            .expect("summary")
            .buckets
            .iter()
            .map(|b| b.count)
            .sum();
        assert_eq!(total, 3);
        let r = reg.accept_manifests(ms.clone()).expect("again");
        assert_eq!((r.accepted, r.known), (0, 3));
        // A forged manifest (signature broken) is refused.
        let mut forged = chain(&reg, &fed, 4).pop().expect("m");
        forged.body.size = 999;
        let r = reg.accept_manifests(vec![forged]).expect("batch");
        assert_eq!((r.accepted, r.refused.len()), (0, 1));
        // A rolled-back version (another seq 1 for the same tag) is refused.
        let mut other = chain(&reg, &fed, 1).pop().expect("m");
        other.body.created = 2;
        let other = other.body.sign(&reg.keys().publisher).expect("sign");
        let r = reg.accept_manifests(vec![other]).expect("batch");
        assert_eq!((r.accepted, r.refused.len()), (0, 1));
    }
}
