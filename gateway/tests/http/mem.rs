//! `MemBackend`: the gateway's backend traits over hash maps, built with the real UnixFS importer so
//! every CID is the one a node would produce. It records what the gateway asked for, so tests
//! can check that nothing outside a range is fetched and that identity CIDs never reach it.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use shubnet_gateway::backend::{
    AddOutcome, CarImportOutcome, FederationOutcome, FederationRequest, FederationView, GcReport,
    LeaveAction, LeaveProgress, PinInfo, PushOutcome, RepairReport, ScrubReport, Status,
};
use shubnet_gateway::search::{CollectionSummary, ImageHit, SearchPage, SearchQuery, Usage};
use shubnet_gateway::tokens::{
    AuthError, AuthResult, CollectionInfo, CreatedToken, HmacClaim, NewToken, Right, TokenBackend,
    TokenInfo,
};
use shubnet_gateway::{
    AdminAuth, BackendError, ByteStream, ContentBackend, LifecycleBackend, MetricsBackend,
    NotReady, PublishBackend, RegistryBackend, StoreBackend, UploadBackend, UsageBackend,
    VisibilityBackend,
};
use shubnet_protocol::Cid;
use shubnet_protocol::car::CarReader;
use shubnet_protocol::manifest::{MEDIA_TYPE_SIF, Manifest, Metadata, UnsignedManifest};
use shubnet_protocol::unixfs::{Block, FileNode, Importer, Layout};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// The admin token `MemBackend` accepts.
pub const TOKEN: &str = "secret-admin-token";

/// A bearer token with the pull right on every collection.
pub const PULL_TOKEN: &str = "secret-pull-token";

/// A failure `MemBackend` can be told to report from `gc` and `repair`.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Internal,
    StorageFull,
    Unavailable,
}

/// One imported file, with what the importer said about it.
#[derive(Debug, Clone)]
pub struct File {
    pub root: Cid,
    pub data: Vec<u8>,
    /// Leaves in file order: (cid, offset, len).
    pub leaves: Vec<(Cid, u64, u64)>,
    /// dag-pb nodes in the order the importer finished them.
    pub nodes: Vec<(Cid, Vec<u8>)>,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<Cid, Bytes>,
    files: HashMap<Cid, Bytes>,
    pins: BTreeMap<String, u64>,
    block_requests: Vec<Cid>,
    read_calls: Vec<(Cid, u64, u64)>,
    add_calls: usize,
    stream_errors: Vec<(io::ErrorKind, String)>,
    failure: Option<Failure>,
    /// Content root → the collections that hold it.
    collections: HashMap<Cid, Vec<String>>,
    /// Collections marked private.
    private: Vec<String>,
    /// Signed head manifests by `collection/name:tag`.
    heads: BTreeMap<String, Manifest>,
}

/// The in-memory backend.
#[derive(Clone)]
pub struct MemBackend {
    inner: Arc<Mutex<Inner>>,
    layout: Layout,
}

impl MemBackend {
    pub fn new(layout: Layout) -> Self {
        Self {
            inner: Arc::default(),
            layout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("mem backend lock")
    }

    /// Imports `data` with this backend's layout and stores every block.
    pub fn import(&self, data: &[u8]) -> File {
        let file = chunk(data, self.layout);
        let mut inner = self.lock();
        for (cid, off, len) in &file.leaves {
            let (o, l) = (*off as usize, *len as usize);
            inner
                .blocks
                .insert(*cid, Bytes::copy_from_slice(&data[o..o + l]));
        }
        for (cid, bytes) in &file.nodes {
            inner.blocks.insert(*cid, Bytes::from(bytes.clone()));
        }
        inner.files.insert(file.root, Bytes::from(data.to_vec()));
        file
    }

    /// Stores a block that is not part of an imported file (directories, dag-cbor...).
    pub fn insert_block(&self, cid: Cid, bytes: Vec<u8>) {
        self.lock().blocks.insert(cid, Bytes::from(bytes));
    }

    /// Forgets a block, to simulate one going missing.
    pub fn remove_block(&self, cid: &Cid) {
        self.lock().blocks.remove(cid);
    }

    /// Every CID `block` was asked for, in order.
    /// Publishes `file` as `collection/name:tag` with a manifest signed by a test key, and
    /// records that its blocks belong to `collection`.
    pub fn publish(&self, reference: &str, file: &File) -> Manifest {
        let (collection, rest) = reference.split_once('/').expect("collection/name:tag");
        let (name, tag) = rest.split_once(':').expect("name:tag");
        let key = SigningKey::from_bytes(&[7; 32]);
        let m = UnsignedManifest {
            federation: "bafytestfederation".into(),
            collection: collection.into(),
            name: name.into(),
            tag: tag.into(),
            root: Some(file.root),
            size: file.data.len() as u64,
            sha256: Sha256::digest(&file.data).into(),
            media_type: MEDIA_TYPE_SIF.into(),
            metadata: Metadata::default(),
            created: 1_700_000_000,
            seq: 1,
            prev: None,
            frozen: false,
            tombstone: false,
            pushed_by: "tester".into(),
        }
        .sign(&key)
        .expect("a valid manifest");
        let mut cids = vec![file.root];
        cids.extend(file.leaves.iter().map(|(c, _, _)| *c));
        cids.extend(file.nodes.iter().map(|(c, _)| *c));
        self.file_in(&cids, collection);
        self.lock().heads.insert(reference.into(), m.clone());
        m
    }

    /// Marks `collection` private: its content then needs [`PULL_TOKEN`].
    pub fn mark_private(&self, collection: &str) {
        self.lock().private.push(collection.to_string());
    }

    /// Records that `cids` (a root and its blocks) belong to `collection`.
    pub fn file_in(&self, cids: &[Cid], collection: &str) {
        let mut inner = self.lock();
        for cid in cids {
            inner
                .collections
                .entry(*cid)
                .or_default()
                .push(collection.to_string());
        }
    }

    pub fn block_requests(&self) -> Vec<Cid> {
        self.lock().block_requests.clone()
    }

    /// Every `read_file` call.
    pub fn read_calls(&self) -> Vec<(Cid, u64, u64)> {
        self.lock().read_calls.clone()
    }

    /// How many times `add` was called.
    pub fn add_calls(&self) -> usize {
        self.lock().add_calls
    }

    /// The errors upload streams delivered to `add` / `import_car`.
    pub fn stream_errors(&self) -> Vec<(io::ErrorKind, String)> {
        self.lock().stream_errors.clone()
    }

    /// Number of stored blocks.
    pub fn block_count(&self) -> usize {
        self.lock().blocks.len()
    }

    /// Makes `gc` and `repair` fail.
    pub fn fail_with(&self, failure: Failure) {
        self.lock().failure = Some(failure);
    }

    async fn collect(&self, mut body: ByteStream) -> Result<Vec<u8>, BackendError> {
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => buf.extend_from_slice(&c),
                Err(e) => {
                    self.lock().stream_errors.push((e.kind(), e.to_string()));
                    return Err(BackendError::Invalid(format!("upload interrupted: {e}")));
                }
            }
        }
        Ok(buf)
    }

    /// Reassembles a file from stored blocks.
    fn assemble(&self, cid: &Cid, out: &mut Vec<u8>) -> Result<(), BackendError> {
        let block = self
            .lock()
            .blocks
            .get(cid)
            .cloned()
            .ok_or_else(|| BackendError::Invalid(format!("CAR lacks block {cid}")))?;
        match FileNode::decode(cid, &block).map_err(|e| BackendError::Invalid(e.to_string()))? {
            FileNode::Raw => out.extend_from_slice(&block),
            FileNode::Branch { data, children } => {
                out.extend_from_slice(&data);
                for (child, _) in children {
                    self.assemble(&child, out)?;
                }
            }
        }
        Ok(())
    }

    fn failure(&self) -> Result<(), BackendError> {
        match self.lock().failure {
            None => Ok(()),
            Some(Failure::Internal) => Err(BackendError::Internal(
                "sled tree corrupted at /secret/path".into(),
            )),
            Some(Failure::StorageFull) => Err(BackendError::StorageFull("disk full".into())),
            Some(Failure::Unavailable) => Err(BackendError::Unavailable("shutting down".into())),
        }
    }
}

/// Runs the importer over `data` without storing anything.
pub fn chunk(data: &[u8], layout: Layout) -> File {
    let mut imp = Importer::new(layout);
    imp.update(data);
    let mut blocks: Vec<Block> = imp.take_blocks().collect();
    let (rest, summary) = imp.finish();
    blocks.extend(rest);
    let mut leaves = Vec::new();
    let mut nodes = Vec::new();
    for b in blocks {
        match b {
            Block::Leaf { cid, offset, len } => leaves.push((cid, offset, len)),
            Block::Node { cid, bytes } => nodes.push((cid, bytes)),
        }
    }
    File {
        root: summary.root,
        data: data.to_vec(),
        leaves,
        nodes,
    }
}

impl shubnet_gateway::Backend for MemBackend {}

impl ContentBackend for MemBackend {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, BackendError> {
        let mut inner = self.lock();
        inner.block_requests.push(*cid);
        Ok(inner.blocks.get(cid).cloned())
    }

    async fn file_size(&self, cid: &Cid) -> Result<Option<u64>, BackendError> {
        Ok(self.lock().files.get(cid).map(|d| d.len() as u64))
    }

    async fn read_file(&self, cid: &Cid, start: u64, end: u64) -> Result<ByteStream, BackendError> {
        let mut inner = self.lock();
        inner.read_calls.push((*cid, start, end));
        let data = inner
            .files
            .get(cid)
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("{cid}")))?;
        let part = data.slice(start as usize..end as usize);
        // Several chunks, as a disk-backed store would yield them.
        let chunks: Vec<io::Result<Bytes>> = (0..part.len())
            .step_by(1000)
            .map(|i| Ok(part.slice(i..(i + 1000).min(part.len()))))
            .collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn count_download(&self, _: &Cid) {}
}

impl StoreBackend for MemBackend {
    async fn add(&self, body: ByteStream) -> Result<AddOutcome, BackendError> {
        self.lock().add_calls += 1;
        let data = self.collect(body).await?;
        let file = self.import(&data);
        let size = data.len() as u64;
        self.lock().pins.insert(file.root.to_string(), size);
        Ok(AddOutcome {
            cid: file.root,
            size,
            sha256: String::new(),
            pinned: true,
        })
    }

    async fn import_car(&self, body: ByteStream) -> Result<CarImportOutcome, BackendError> {
        let data = self.collect(body).await?;
        let mut reader =
            CarReader::new(&data[..]).map_err(|e| BackendError::Invalid(e.to_string()))?;
        let roots = reader.roots().to_vec();
        let mut blocks = 0;
        while let Some((cid, bytes)) = reader
            .next_verified_block()
            .map_err(|e| BackendError::Invalid(e.to_string()))?
        {
            self.insert_block(cid, bytes);
            blocks += 1;
        }
        let mut outcomes = Vec::new();
        for root in roots {
            let mut file = Vec::new();
            self.assemble(&root, &mut file)?;
            let size = file.len() as u64;
            let mut inner = self.lock();
            inner.files.insert(root, Bytes::from(file));
            inner.pins.insert(root.to_string(), size);
            outcomes.push(AddOutcome {
                cid: root,
                size,
                sha256: String::new(),
                pinned: true,
            });
        }
        Ok(CarImportOutcome {
            roots: outcomes,
            blocks,
        })
    }

    async fn pin(&self, cid: &Cid) -> Result<(), BackendError> {
        let mut inner = self.lock();
        let size = inner
            .files
            .get(cid)
            .map(|d| d.len() as u64)
            .ok_or_else(|| BackendError::NotFound(format!("{cid} is not held")))?;
        inner.pins.insert(cid.to_string(), size);
        Ok(())
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), BackendError> {
        match self.lock().pins.remove(&cid.to_string()) {
            Some(_) => Ok(()),
            None => Err(BackendError::NotFound(format!("{cid} is not pinned"))),
        }
    }

    async fn pins(&self) -> Result<Vec<PinInfo>, BackendError> {
        Ok(self
            .lock()
            .pins
            .iter()
            .map(|(cid, size)| PinInfo {
                cid: shubnet_protocol::cid::parse(cid).expect("a pinned CID"),
                size: *size,
            })
            .collect())
    }

    async fn gc(&self) -> Result<GcReport, BackendError> {
        self.failure()?;
        let mut inner = self.lock();
        let pinned: Vec<String> = inner.pins.keys().cloned().collect();
        let gone: Vec<Cid> = inner
            .files
            .keys()
            .filter(|c| !pinned.contains(&c.to_string()))
            .copied()
            .collect();
        let mut freed = 0;
        for c in &gone {
            freed += inner.files.remove(c).map_or(0, |d| d.len() as u64);
        }
        Ok(GcReport {
            removed: gone,
            freed_bytes: freed,
        })
    }

    async fn repair(&self) -> Result<RepairReport, BackendError> {
        self.failure()?;
        let inner = self.lock();
        Ok(RepairReport {
            checked: inner.files.len() as u64,
            damaged: Vec::new(),
            indexed_blocks: inner.blocks.len() as u64,
            removed_partials: 0,
        })
    }

    async fn scrub(&self) -> Result<ScrubReport, BackendError> {
        self.failure()?;
        let inner = self.lock();
        Ok(ScrubReport {
            checked: inner.files.len() as u64,
            ..Default::default()
        })
    }

    async fn fetch(&self, _: &Cid, _: &[String]) -> Result<AddOutcome, BackendError> {
        Err(unsupported())
    }

    async fn backup(&self) -> Result<ByteStream, BackendError> {
        Err(unsupported())
    }
}

impl AdminAuth for MemBackend {
    fn check_admin_token(&self, token: &str) -> bool {
        token == TOKEN
    }
}

/// What `MemBackend` has no model of: the registry, tokens, usage and the node's life. The
/// `/ipfs` and admin routes under test here never reach these.
fn unsupported() -> BackendError {
    BackendError::Unavailable("MemBackend has no registry, tokens or network".into())
}

/// Content belongs to the collections `file_in` named; a collection is public unless
/// `mark_private` named it.
impl VisibilityBackend for MemBackend {
    async fn content_collections(&self, cid: &Cid) -> Result<Vec<String>, BackendError> {
        Ok(self
            .lock()
            .collections
            .get(cid)
            .cloned()
            .unwrap_or_default())
    }
    async fn collection_is_private(&self, collection: &str) -> Result<bool, BackendError> {
        Ok(self.lock().private.iter().any(|c| c == collection))
    }
}

impl LifecycleBackend for MemBackend {
    async fn ready(&self) -> Result<(), NotReady> {
        Ok(())
    }
    async fn status(&self) -> Result<Status, BackendError> {
        Err(unsupported())
    }
    async fn leave(&self, _: LeaveAction) -> Result<LeaveProgress, BackendError> {
        Err(unsupported())
    }
    async fn shutdown(&self) -> Result<(), BackendError> {
        Err(unsupported())
    }
}

/// The heads `publish` signed, private collections included: the gateway, not the backend,
/// must keep those from readers without a token.
impl RegistryBackend for MemBackend {
    async fn federation(&self) -> Result<FederationView, BackendError> {
        Err(unsupported())
    }
    async fn manifest_for_tag(
        &self,
        c: &str,
        n: &str,
        t: &str,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .lock()
            .heads
            .get(&format!("{c}/{n}:{t}"))
            .map(Manifest::encode))
    }
    async fn manifest_by_cid(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .lock()
            .heads
            .values()
            .find(|m| m.cid() == *cid)
            .map(Manifest::encode))
    }
    async fn tag_heads(&self, prefix: &str) -> Result<Vec<Vec<u8>>, BackendError> {
        let under = |r: &str| {
            prefix.is_empty()
                || r.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(':'))
        };
        Ok(self
            .lock()
            .heads
            .iter()
            .filter(|(r, _)| under(r))
            .map(|(_, m)| m.encode())
            .collect())
    }
}

/// What an index that forgot privacy would answer: every head, private ones included.
fn hit(m: &Manifest) -> ImageHit {
    let b = &m.body;
    ImageHit {
        reference: format!("{}/{}:{}", b.collection, b.name, b.tag),
        collection: b.collection.clone(),
        name: b.name.clone(),
        tag: b.tag.clone(),
        manifest: m.cid().to_string(),
        root: b.root.unwrap_or_default(),
        size: b.size,
        sha256: hex::encode(b.sha256),
        created: b.created,
        ..ImageHit::default()
    }
}

impl PublishBackend for MemBackend {
    async fn federation_admin(
        &self,
        _: FederationRequest,
    ) -> Result<FederationOutcome, BackendError> {
        Err(unsupported())
    }
    async fn push(&self, _: &str, _: bool, _: ByteStream) -> Result<PushOutcome, BackendError> {
        Err(unsupported())
    }
    async fn push_check(&self, _: &str) -> Result<(), BackendError> {
        Err(unsupported())
    }
    async fn delete_tag(&self, _: &str) -> Result<PushOutcome, BackendError> {
        Err(unsupported())
    }
    async fn push_as(
        &self,
        _: &str,
        _: bool,
        _: &str,
        _: ByteStream,
    ) -> Result<PushOutcome, BackendError> {
        Err(unsupported())
    }
    async fn push_with_extra(
        &self,
        _: &str,
        _: &str,
        _: std::collections::BTreeMap<String, Vec<u8>>,
        _: ByteStream,
    ) -> Result<PushOutcome, BackendError> {
        Err(unsupported())
    }
    async fn delete_as(&self, _: &str, _: &str) -> Result<PushOutcome, BackendError> {
        Err(unsupported())
    }
}

impl UsageBackend for MemBackend {
    async fn search(&self, q: SearchQuery) -> Result<SearchPage, BackendError> {
        let hits: Vec<ImageHit> = self
            .lock()
            .heads
            .values()
            .map(hit)
            .filter(|h| q.collection.as_ref().is_none_or(|c| *c == h.collection))
            .filter(|h| q.q.split_whitespace().all(|w| h.reference.contains(w)))
            .collect();
        Ok(SearchPage {
            total: hits.len(),
            hits: hits.into_iter().skip(q.offset).take(q.limit).collect(),
        })
    }
    async fn collection_summaries(&self) -> Result<Vec<CollectionSummary>, BackendError> {
        let mut out: BTreeMap<String, CollectionSummary> = BTreeMap::new();
        for m in self.lock().heads.values() {
            let s = out
                .entry(m.body.collection.clone())
                .or_insert_with(|| CollectionSummary {
                    name: m.body.collection.clone(),
                    ..CollectionSummary::default()
                });
            s.images += 1;
            s.size += m.body.size;
        }
        Ok(out.into_values().collect())
    }
    async fn usage(&self, _: &str) -> Result<Usage, BackendError> {
        Ok(Usage::default())
    }
    async fn star(&self, _: &str, _: &str, _: bool) -> Result<Usage, BackendError> {
        Err(unsupported())
    }
}

impl MetricsBackend for MemBackend {
    async fn refresh_metrics(&self, _: &'static shubnet_gateway::metrics::Metrics) {}
}

impl UploadBackend for MemBackend {
    async fn record_upload(&self, _: &str, _: &Cid, _: u64) -> Result<(), BackendError> {
        Err(unsupported())
    }
    async fn recall_upload(&self, _: &str) -> Result<Option<(Cid, u64)>, BackendError> {
        // Nothing is ever recorded, so nothing is found.
        Ok(None)
    }
    async fn forget_upload(&self, _: &str) -> Result<(), BackendError> {
        Err(unsupported())
    }
}

/// Keeps no tokens: the token routes are tested in `shubnet_gateway::tokens`.
impl TokenBackend for MemBackend {
    async fn create_token(&self, _: NewToken) -> Result<CreatedToken, BackendError> {
        Err(unsupported())
    }
    async fn tokens(&self) -> Result<Vec<TokenInfo>, BackendError> {
        Err(unsupported())
    }
    async fn revoke_token(&self, _: &str) -> Result<TokenInfo, BackendError> {
        Err(unsupported())
    }
    async fn identify_token(&self, _: &str) -> Result<AuthResult, BackendError> {
        Err(unsupported())
    }
    /// Knows one token, [`PULL_TOKEN`], which may pull anything.
    async fn authorize_token(
        &self,
        token: &str,
        _: &str,
        right: Right,
    ) -> Result<AuthResult, BackendError> {
        if token != PULL_TOKEN {
            return Ok(Err(AuthError::Unknown));
        }
        let info = TokenInfo {
            id: "pull".into(),
            user: "tester".into(),
            collections: vec!["*".parse().map_err(|_| unsupported())?],
            rights: vec![Right::Pull],
            created: 0,
            revoked: None,
        };
        Ok(if right == Right::Pull {
            Ok(info)
        } else {
            Err(AuthError::MissingRight { id: info.id, right })
        })
    }
    async fn authorize_hmac(
        &self,
        _: HmacClaim,
        _: &str,
        _: Right,
    ) -> Result<AuthResult, BackendError> {
        Err(unsupported())
    }
    async fn set_collection_private(
        &self,
        _: &str,
        _: bool,
    ) -> Result<CollectionInfo, BackendError> {
        Err(unsupported())
    }
    async fn collections(&self) -> Result<Vec<CollectionInfo>, BackendError> {
        let inner = self.lock();
        let mut names: Vec<&String> = inner.heads.values().map(|m| &m.body.collection).collect();
        names.sort();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|n| CollectionInfo {
                name: n.clone(),
                private: inner.private.contains(n),
            })
            .collect())
    }
}
