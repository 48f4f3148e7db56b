//! The registry: the federation roster chain and every accepted manifest, verified before they
//! are accepted.
//!
//! Truth is `log/`: one file per accepted roster version (`<cid>.roster`) and manifest
//! (`<cid>.manifest`), each written temp → fsync → rename *before* it is indexed. The sled trees
//! here (roster versions, manifests, tag heads) are derived and rebuilt from `log/` when they
//! are empty.
//!
//! Rules enforced on everything that enters (from a local push or from a peer):
//! - rosters: the chain verifies from version 1 against the federation id in `config.toml`, each
//!   version signed by a threshold of the previous version's admins;
//! - manifests: signature, publisher in the roster, collection within that member's
//!   namespaces, right federation, and succession (seq strictly increasing, `prev` linked,
//!   frozen tags never move).
//!
//! Owns `log/` (through [`log`]) and the registry's trees of the index ([`crate::db::RegistryTrees`]).
//! Must not touch the content store's files or trees, nor talk to the network: the network
//! takes [`LocalEvent`]s and hands in what peers send.

mod exchange;
mod head_cache;
mod log;
pub mod metadata;
mod roster;
pub mod search;

pub use exchange::{BatchReport, LocalEvent};
pub use roster::{ROSTER_LINE_PREFIX, RosterOutcome, roster_from_line, roster_to_line};

use crate::clock::unix_now as now;
use crate::config::NodeConfig;
use crate::db::Index;
use crate::keys::NodeKeys;
use crate::paths::DataDir;
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::{
    Manifest, ManifestError, Metadata, UnsignedManifest, check_succession,
};
use shubnet_protocol::reference::Reference;
use shubnet_protocol::roster::{Roster, RosterError, SignedRoster, verify_chain};
use shubnet_protocol::sif::MEDIA_TYPE_OPAQUE;
use std::sync::{Arc, Mutex};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The manifest broke a rule; nothing was stored.
    #[error("manifest rejected: {0}")]
    Manifest(#[from] ManifestError),
    /// The roster broke a rule; nothing was stored.
    #[error("roster rejected: {0}")]
    Roster(#[from] RosterError),
    /// This node has not created or joined a federation.
    #[error("this node is not in a federation yet; run `shubnet federation create` or join one")]
    NoFederation,
    /// The node is already in a federation.
    #[error("this node is already in federation {0}")]
    AlreadyFederated(String),
    /// The request does not make sense in the current state.
    #[error("{0}")]
    Invalid(String),
    /// Nothing is known under that name.
    #[error("{0} not found")]
    NotFound(String),
    /// Disk or index failure.
    #[error("{0}")]
    Io(String),
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

fn io<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> RegistryError + '_ {
    move |e| RegistryError::Io(format!("{context}: {e}"))
}

fn db(e: sled::Error) -> RegistryError {
    RegistryError::Io(format!("index: {e}"))
}

/// A cheap-to-clone handle to the registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

struct Inner {
    dir: DataDir,
    keys: NodeKeys,
    config: Mutex<NodeConfig>,
    rosters: sled::Tree,
    manifests: sled::Tree,
    heads: sled::Tree,
    pending: sled::Tree,
    root_collections: sled::Tree,
    /// Serialises acceptance so succession checks and head updates cannot interleave.
    write: Mutex<()>,
    /// What this node itself published or accepted, for the network to announce.
    events: tokio::sync::broadcast::Sender<LocalEvent>,
    /// Every live tag head, for search and listings (derived; rebuilt at open).
    search: std::sync::RwLock<search::SearchIndex>,
    /// Recently read head encodings (derived; invalidated on every head change).
    head_cache: head_cache::HeadCache,
}

/// The key of a tag head.
fn head_key(collection: &str, name: &str, tag: &str) -> String {
    format!("{collection}/{name}:{tag}")
}

impl Registry {
    /// Opens the registry's trees of the node's index, rebuilding them from `log/` if empty.
    pub fn open(dir: DataDir, index: &Index, keys: NodeKeys) -> Result<Self> {
        std::fs::create_dir_all(dir.log()).map_err(io("creating log/"))?;
        let config = NodeConfig::load(&dir).map_err(|e| RegistryError::Io(e.to_string()))?;
        let trees = index.registry_trees().map_err(db)?;
        let reg = Registry {
            inner: Arc::new(Inner {
                rosters: trees.rosters,
                manifests: trees.manifests,
                heads: trees.heads,
                pending: trees.pending,
                root_collections: trees.root_collections,
                dir,
                keys,
                config: Mutex::new(config),
                write: Mutex::new(()),
                events: tokio::sync::broadcast::channel(256).0,
                search: std::sync::RwLock::default(),
                head_cache: head_cache::HeadCache::default(),
            }),
        };
        if reg.inner.rosters.is_empty() {
            reg.rebuild_from_log()?;
        }
        if reg.read_index().is_empty() {
            let heads = reg.tags("")?;
            let mut index = reg.write_index();
            for (_, m) in &heads {
                index.set_head(m);
            }
        }
        Ok(reg)
    }

    /// The node's keys.
    pub fn keys(&self) -> &NodeKeys {
        &self.inner.keys
    }

    /// The federation id from `config.toml`, if any.
    pub fn federation_id(&self) -> Option<String> {
        self.inner
            .config
            .lock()
            .ok()
            .and_then(|c| c.federation.id.clone())
    }

    /// The whole roster chain, oldest first.
    pub fn roster_chain(&self) -> Result<Vec<SignedRoster>> {
        let mut out = Vec::new();
        for item in self.inner.rosters.iter() {
            let (_, v) = item.map_err(db)?;
            out.push(SignedRoster::decode(&v)?);
        }
        Ok(out)
    }

    /// The current roster.
    pub fn roster(&self) -> Result<Option<SignedRoster>> {
        match self.inner.rosters.last().map_err(db)? {
            Some((_, v)) => Ok(Some(SignedRoster::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn current(&self) -> Result<(String, Roster)> {
        let id = self.federation_id().ok_or(RegistryError::NoFederation)?;
        let r = self.roster()?.ok_or(RegistryError::NoFederation)?;
        Ok((id, r.body))
    }

    /// The search index, for reading.
    pub fn read_index(&self) -> std::sync::RwLockReadGuard<'_, search::SearchIndex> {
        self.inner
            .search
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, search::SearchIndex> {
        self.inner
            .search
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The head manifest of a tag (image or tombstone).
    pub fn head(&self, collection: &str, name: &str, tag: &str) -> Result<Option<Manifest>> {
        let Some(cid) = self
            .inner
            .heads
            .get(head_key(collection, name, tag))
            .map_err(db)?
        else {
            return Ok(None);
        };
        self.manifest_bytes(&cid)?
            .map(|b| Manifest::decode(&b).map_err(RegistryError::from))
            .transpose()
    }

    /// The encoding of a tag's head manifest as stored (it was decoded, canonical, and verified
    /// when accepted), for readers that pass it on: no decode and re-encode per request.
    pub fn head_bytes(&self, collection: &str, name: &str, tag: &str) -> Result<Option<Vec<u8>>> {
        let key = head_key(collection, name, tag);
        let cache = &self.inner.head_cache;
        if let Some(b) = cache.get(&key) {
            return Ok(Some(b.to_vec()));
        }
        let generation = cache.generation();
        let bytes = match self.inner.heads.get(&key).map_err(db)? {
            Some(cid) => self.manifest_bytes(&cid)?,
            None => None,
        };
        if let Some(b) = &bytes {
            cache.insert(generation, key, b);
        }
        Ok(bytes)
    }

    /// A manifest's encoding by CID bytes.
    fn manifest_bytes(&self, cid: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .manifests
            .get(cid)
            .map_err(db)?
            .map(|v| v.to_vec()))
    }

    /// A manifest by CID.
    pub fn manifest(&self, cid: &Cid) -> Result<Option<Manifest>> {
        self.manifest_bytes(&cid.to_bytes())?
            .map(|b| Manifest::decode(&b).map_err(RegistryError::from))
            .transpose()
    }

    /// Verifies a manifest against the roster and the tag's head, then logs and indexes it.
    /// An identical manifest is accepted again as a no-op.
    pub fn accept_manifest(&self, m: &Manifest) -> Result<()> {
        let _w = self.lock();
        self.accept_manifest_locked(m).inspect_err(count_rejection)
    }

    fn accept_manifest_locked(&self, m: &Manifest) -> Result<()> {
        let (id, roster) = self.current()?;
        // One manifest: verify_against decodes only the publisher's key. Batches (sync) use
        // `Verifier`, which decodes the roster's keys once; bench_manifests measures that path.
        m.verify_against(&roster, &id)?;
        let b = &m.body;
        let head = self.head(&b.collection, &b.name, &b.tag)?;
        match check_succession(head.as_ref(), m) {
            Ok(()) => {}
            Err(ManifestError::AlreadyKnown) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.store_manifest(m, true)?;
        self.inner.heads.flush().map_err(db)?;
        Ok(())
    }

    /// Logs and indexes a verified manifest; `head` makes it the tag's head (false for an
    /// older version learnt later by sync). The caller flushes.
    fn store_manifest(&self, m: &Manifest, head: bool) -> Result<()> {
        let cid = m.cid();
        let bytes = m.encode();
        log::write(&self.inner.dir.log(), &format!("{cid}.manifest"), &bytes)
            .map_err(io("writing the manifest to log/"))?;
        self.index_manifest(m, bytes, head)
    }

    /// Indexes a manifest whose `log/` file is already durable (see [`Self::store_manifest`]).
    fn index_manifest(&self, m: &Manifest, bytes: Vec<u8>, head: bool) -> Result<()> {
        let b = &m.body;
        let cid = m.cid();
        self.inner
            .manifests
            .insert(cid.to_bytes(), bytes)
            .map_err(db)?;
        if let Some(root) = b.root {
            let mut key = root.to_bytes();
            key.push(0);
            key.extend_from_slice(b.collection.as_bytes());
            self.inner.root_collections.insert(key, &[]).map_err(db)?;
        }
        if head {
            let key = head_key(&b.collection, &b.name, &b.tag);
            self.inner.heads.insert(&key, cid.to_bytes()).map_err(db)?;
            self.inner.head_cache.invalidate(&key);
            self.write_index().set_head(m);
        }
        Ok(())
    }

    /// Signs a manifest with this node's publisher key for the next `seq` of the tag, and
    /// accepts it. `root` is `None` for a tombstone. `metadata` is the SIF metadata
    /// ([`metadata::extract`]); `None` for content that is not a SIF, which is published as an
    /// opaque image (media type [`MEDIA_TYPE_OPAQUE`], empty metadata). Tombstones ignore it.
    pub fn publish(
        &self,
        reference: &Reference,
        content: Option<(Cid, u64, [u8; 32])>,
        metadata: Option<Metadata>,
        frozen: bool,
        pushed_by: &str,
    ) -> Result<Manifest> {
        let _w = self.lock();
        let (id, _) = self.current()?;
        let head = self.head(&reference.collection, &reference.name, &reference.tag)?;
        if content.is_none() && head.as_ref().is_none_or(|h| h.body.tombstone) {
            return Err(RegistryError::NotFound(reference.tag_path()));
        }
        let (root, size, sha256) = match content {
            Some((r, s, h)) => (Some(r), s, h),
            None => (None, 0, [0; 32]),
        };
        let body = UnsignedManifest {
            federation: id,
            collection: reference.collection.clone(),
            name: reference.name.clone(),
            tag: reference.tag.clone(),
            root,
            size,
            sha256,
            media_type: match (root, &metadata) {
                (None, _) => String::new(),
                (Some(_), Some(_)) => shubnet_protocol::manifest::MEDIA_TYPE_SIF.to_owned(),
                (Some(_), None) => MEDIA_TYPE_OPAQUE.to_owned(),
            },
            metadata: match root {
                Some(_) => metadata.unwrap_or_default(),
                None => Metadata::default(),
            },
            created: now(),
            seq: head.as_ref().map_or(1, |h| h.body.seq + 1),
            prev: head.as_ref().map(Manifest::cid),
            frozen,
            tombstone: root.is_none(),
            pushed_by: pushed_by.to_owned(),
        };
        let m = body.sign(&self.inner.keys.publisher)?;
        self.accept_manifest_locked(&m)?;
        self.emit(LocalEvent::Manifest(m.encode()));
        Ok(m)
    }

    /// Fails unless this node's publisher key may publish `collection` under the current roster.
    pub fn check_may_publish(&self, collection: &str) -> Result<()> {
        let (_, roster) = self.current()?;
        let key = self.inner.keys.publisher.verifying_key().to_bytes();
        let member = roster
            .member_for_key(&key)
            .ok_or(ManifestError::UnknownPublisher)?;
        if !member.may_publish(collection) {
            return Err(ManifestError::OutsideNamespace {
                collection: collection.to_owned(),
                member: member.id.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Everything a push can be refused for that does not depend on the content: the namespace
    /// and a frozen head. Checked before any byte is stored.
    pub fn check_may_push(&self, reference: &Reference) -> Result<()> {
        self.check_may_publish(&reference.collection)?;
        if let Some(head) = self.head(&reference.collection, &reference.name, &reference.tag)?
            && head.body.frozen
        {
            return Err(ManifestError::FrozenTag {
                tag: reference.tag_path(),
            }
            .into());
        }
        Ok(())
    }

    /// Collections with a manifest naming `root` as its content.
    pub fn collections_of_root(&self, root: &Cid) -> Result<Vec<String>> {
        let mut prefix = root.to_bytes();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inner.root_collections.scan_prefix(&prefix) {
            let (k, _) = item.map_err(db)?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Tag heads, optionally under `collection` or `collection/name`.
    pub fn tags(&self, prefix: &str) -> Result<Vec<(String, Manifest)>> {
        let mut out = Vec::new();
        let scan = if prefix.is_empty() {
            self.inner.heads.iter()
        } else if prefix.contains('/') {
            self.inner.heads.scan_prefix(format!("{prefix}:"))
        } else {
            self.inner.heads.scan_prefix(format!("{prefix}/"))
        };
        for item in scan {
            let (k, v) = item.map_err(db)?;
            let Some(bytes) = self.manifest_bytes(&v)? else {
                continue;
            };
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                Manifest::decode(&bytes)?,
            ));
        }
        Ok(out)
    }

    /// Rebuilds the roster and manifest trees from `log/`, re-verifying everything in order.
    pub fn rebuild_from_log(&self) -> Result<()> {
        let Some(id) = self.federation_id() else {
            return Ok(());
        };
        let (rosters, manifests) =
            log::read_all(&self.inner.dir.log()).map_err(io("reading log/"))?;
        let mut chain: Vec<SignedRoster> = rosters
            .iter()
            .filter_map(|b| SignedRoster::decode(b).ok())
            .collect();
        chain.sort_by_key(|r| r.body.version);
        chain.dedup_by_key(|r| r.body.version);
        if chain.is_empty() {
            return Ok(());
        }
        verify_chain(&id, &chain)?;
        for r in &chain {
            self.inner
                .rosters
                .insert(r.body.version.to_be_bytes(), r.encode())
                .map_err(db)?;
        }
        let mut ms: Vec<Manifest> = manifests
            .iter()
            .filter_map(|b| Manifest::decode(b).ok())
            .collect();
        ms.sort_by_key(|m| m.body.seq);
        for m in &ms {
            if let Err(e) = self.accept_manifest_locked(m) {
                tracing::warn!(cid = %m.cid(), error = %e, "log entry not re-accepted");
            }
        }
        tracing::info!(
            rosters = chain.len(),
            manifests = ms.len(),
            "registry rebuilt from log/"
        );
        Ok(())
    }
}

/// Counts a refused manifest in `/metrics` under a fixed reason name.
pub(crate) fn count_rejection(e: &RegistryError) {
    let reason = match e {
        RegistryError::Manifest(m) => match m {
            ManifestError::Decode(_) | ManifestError::TooLarge(_) => "malformed",
            ManifestError::Reference(_)
            | ManifestError::Invalid { .. }
            | ManifestError::TombstoneWithRoot
            | ManifestError::MissingRoot => "invalid",
            ManifestError::BadPublisherKey | ManifestError::BadSignature => "bad_signature",
            ManifestError::WrongFederation { .. } => "wrong_federation",
            ManifestError::UnknownPublisher => "unknown_publisher",
            ManifestError::OutsideNamespace { .. } => "outside_namespace",
            ManifestError::AlreadyKnown => return,
            ManifestError::FrozenTag { .. } => "frozen_tag",
            ManifestError::DifferentTag { .. }
            | ManifestError::SeqNotIncreasing { .. }
            | ManifestError::Conflict { .. }
            | ManifestError::WrongPrev { .. } => "succession",
        },
        RegistryError::NoFederation => "no_federation",
        RegistryError::Io(_) => return,
        _ => "other",
    };
    shubnet_metrics::global().reject("manifest", reason);
}

#[cfg(test)]
mod tests;
