//! The `/shubnet/fetch/1` server: answers roster members only (everything on this protocol is
//! federation-only; others get an error frame and the stream closes), one request per stream,
//! or many in turn on a session stream (`/shubnet/fetch/1/session`). Serves complete blobs and
//! the verified leaves of partial downloads. Leaves of blobs the store marks verified are sent
//! without hashing them again (fetchers hash every leaf and report a damaged one through
//! [`super::badleaf`]); others are hashed as they are read. Sends pass through the node's
//! upload limit.
//!
//! A declined request is a [`Refusal`], whose text goes to the peer in `Frame::Error`. This
//! module only reads: it must not write the store or the partial downloads (the client fills
//! those) nor decide membership (the [`Gate`] does).

use super::{BufferPool, Partials, read_frame, write_frame};
use crate::p2p::error::{FetchServeError, ImageBlock, Refusal};
use crate::p2p::gate::Gate;
use crate::p2p::ratelimit::RateLimit;
use crate::p2p::tasks::Tasks;
use crate::store::partial::Partial;
use crate::store::{Store, StoreError};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::Cid;
use shubnet_protocol::cid::DAG_PB;
use shubnet_protocol::fetch::{Frame, Holding, LeafInfo, PROTOCOL, SESSION_PROTOCOL, leaf_table};
use shubnet_protocol::unixfs::FileNode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a peer may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session may wait for its next request before the server closes it. Clients
/// keep idle sessions for less (`client::SESSION_KEEP`), so they rarely reuse a closing one.
const SESSION_IDLE: Duration = Duration::from_secs(60);
/// Leaves read ahead of the stream.
const READ_AHEAD: usize = 8;
/// How often a `Watch` looks for a change in what this node holds.
const WATCH_TICK: Duration = Duration::from_millis(50);
/// A `Watch` sends its holding again after this long without a change, so a closed stream is
/// noticed (the write fails) and its task ends.
const WATCH_KEEPALIVE: Duration = Duration::from_secs(2);

/// Everything the server needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct Server {
    /// Roster membership.
    pub gate: Gate,
    /// Complete blobs.
    pub store: Store,
    /// Partial downloads in progress.
    pub partials: Partials,
    /// The node's upload bucket.
    pub upload: RateLimit,
    /// Leaf tables of complete images already served.
    pub tables: LeafTables,
    /// Leaf buffers, reused across requests.
    pub buffers: BufferPool,
}

/// Registers the protocol and spawns the accept loop.
pub(crate) fn serve(
    tasks: &Tasks,
    mut control: libp2p_stream::Control,
    server: Server,
) -> Result<(), crate::p2p::error::NetError> {
    for (name, session) in [(PROTOCOL, false), (SESSION_PROTOCOL, true)] {
        let mut incoming = crate::p2p::streams::accept(&mut control, name)?;
        let server = server.clone();
        tasks.spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                let server = server.clone();
                tokio::spawn(async move {
                    if let Err(e) = server.inbound(peer, stream, session).await {
                        tracing::debug!(%peer, error = %e, "fetch stream ended");
                    }
                });
            }
        });
    }
    Ok(())
}

impl Server {
    /// Answers the requests of one stream: one, or on a session each in turn until the peer
    /// closes it, an answer fails, or it idles for [`SESSION_IDLE`].
    async fn inbound(
        &self,
        peer: PeerId,
        mut stream: libp2p::Stream,
        session: bool,
    ) -> Result<(), FetchServeError> {
        if !self.gate.is_member(&peer) {
            tracing::info!(%peer, "refused a fetch request from a peer outside the roster");
            let why = Refusal::NotMember.to_string();
            write_frame(&mut stream, &Frame::Error(why)).await?;
            stream.close().await?;
            return Ok(());
        }
        let mut wait = REQUEST_TIMEOUT;
        loop {
            let req = match tokio::time::timeout(wait, read_frame(&mut stream)).await {
                Err(_) if wait == REQUEST_TIMEOUT => {
                    return Err(FetchServeError::NoRequest {
                        after: REQUEST_TIMEOUT,
                    });
                }
                Err(_) | Ok(Ok(None)) => break,
                Ok(Ok(Some(r))) => r,
                Ok(Err(e)) => {
                    let why = Refusal::BadRequest(e).to_string();
                    write_frame(&mut stream, &Frame::Error(why)).await?;
                    break;
                }
            };
            wait = SESSION_IDLE;
            if let Err(why) = self.answer(&mut stream, req, session).await {
                write_frame(&mut stream, &Frame::Error(why.to_string())).await?;
                break;
            }
            if !session {
                break;
            }
            stream.flush().await?;
        }
        stream.close().await?;
        Ok(())
    }

    /// Answers one request; an `Err` is sent to the peer as the answer's last frame.
    async fn answer(
        &self,
        stream: &mut libp2p::Stream,
        req: Frame,
        session: bool,
    ) -> Result<(), Refusal> {
        match req {
            Frame::Have(root) => {
                let h = self.holding(&root).await;
                write_frame(stream, &Frame::Holding(h)).await?;
                Ok(())
            }
            Frame::Watch(_) if session => Err(Refusal::WatchInSession),
            Frame::Watch(root) => self.watch(stream, &root).await,
            Frame::Nodes(root) => {
                for (cid, bytes) in self.nodes(&root).await? {
                    write_frame(stream, &Frame::Node { cid, bytes }).await?;
                }
                write_frame(stream, &Frame::End).await?;
                Ok(())
            }
            Frame::Leaves { root, first, count } => self.leaves(stream, root, first, count).await,
            other => Err(Refusal::NotARequest(Box::new(other))),
        }
    }

    async fn holding(&self, root: &Cid) -> Holding {
        if matches!(self.store.root_record(root), Ok(Some(_))) {
            return Holding::Complete;
        }
        match self.partials.get(root).await {
            Some(p) => {
                let v = p.verified();
                Holding::Partial {
                    leaves: v.len(),
                    bitmap: v.as_bytes().to_vec(),
                }
            }
            None => Holding::None,
        }
    }

    /// Answers `Watch`: the holding now, then each change, until it is complete or the peer
    /// goes away. A node fetching the same image learns within [`WATCH_TICK`] of each verified
    /// leaf that it may ask here for it.
    async fn watch(&self, stream: &mut libp2p::Stream, root: &Cid) -> Result<(), Refusal> {
        let mut last: Option<(u8, u64)> = None;
        let mut sent_at = tokio::time::Instant::now();
        loop {
            let h = self.holding(root).await;
            let key = match &h {
                Holding::None => (0, 0),
                Holding::Complete => (1, 0),
                Holding::Partial { bitmap, .. } => {
                    (2, bitmap.iter().map(|b| u64::from(b.count_ones())).sum())
                }
            };
            if last != Some(key) || sent_at.elapsed() >= WATCH_KEEPALIVE {
                let done = matches!(h, Holding::Complete);
                write_frame(stream, &Frame::Holding(h)).await?;
                stream.flush().await?;
                if done {
                    return Ok(());
                }
                last = Some(key);
                sent_at = tokio::time::Instant::now();
            }
            tokio::time::sleep(WATCH_TICK).await;
        }
    }

    async fn nodes(&self, root: &Cid) -> Result<Vec<(Cid, Vec<u8>)>, Refusal> {
        if let Some(p) = self.partials.get(root).await {
            return Ok(p.nodes().to_vec());
        }
        let (s, r) = (self.store.clone(), *root);
        tokio::task::spawn_blocking(move || stored_nodes(&s, &r)).await?
    }

    /// The leaf table of the complete image `root`: cached, since every `Leaves` request needs
    /// it and computing it reads and decodes every dag-pb node of the image.
    async fn blob_table(&self, root: &Cid) -> Result<Arc<Vec<LeafInfo>>, Refusal> {
        if let Some(t) = self.tables.get(root) {
            return Ok(t);
        }
        let nodes = self.nodes(root).await?;
        let map: HashMap<Cid, Vec<u8>> = nodes.into_iter().collect();
        let root_len = if root.codec() == DAG_PB {
            None
        } else {
            self.store
                .block(root)
                .ok()
                .flatten()
                .and_then(|b| u32::try_from(b.len()).ok())
        };
        let table = Arc::new(leaf_table(root, &map, root_len)?);
        self.tables.put(*root, table.clone());
        Ok(table)
    }

    async fn leaves(
        &self,
        stream: &mut libp2p::Stream,
        root: Cid,
        first: u64,
        count: u64,
    ) -> Result<(), Refusal> {
        let complete = matches!(self.store.root_record(&root), Ok(Some(_)));
        let source = if complete {
            let table = self.blob_table(&root).await?;
            let f = self
                .store
                .open_blob_of(&root)
                .map_err(|source| Refusal::Open {
                    root: Box::new(root),
                    source,
                })?;
            Source::Blob(table, f)
        } else {
            Source::Partial(
                self.partials
                    .get(&root)
                    .await
                    .ok_or_else(|| Refusal::NotHeld {
                        root: Box::new(root),
                    })?,
            )
        };
        let leaves = source.len();
        let end = first.saturating_add(count);
        if end > leaves {
            return Err(Refusal::OutOfRange {
                root: Box::new(root),
                leaves,
                first,
                end,
            });
        }
        // Leaves are read (and, unless marked verified, hashed) on a blocking thread a few
        // ahead of the stream, into buffers that go back to the pool once sent.
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<(u64, Vec<u8>), Refusal>>(READ_AHEAD);
        let store = self.store.clone();
        let pool = self.buffers.clone();
        tokio::task::spawn_blocking(move || {
            for i in first..end {
                let mut buf = pool.get();
                let got = match &source {
                    Source::Partial(p) => p.read_leaf_into(i, &mut buf),
                    Source::Blob(table, f) => {
                        let leaf = &table[i as usize];
                        store
                            .read_blob_leaf_into(
                                &root,
                                f,
                                &leaf.cid,
                                leaf.offset,
                                leaf.len,
                                &mut buf,
                            )
                            .map(|()| true)
                    }
                };
                let item = match got {
                    Ok(true) => Ok((i, buf)),
                    Ok(false) => Err(Refusal::LeafNotHeld {
                        index: i,
                        root: Box::new(root),
                    }),
                    Err(StoreError::Corrupt(c)) => Err(Refusal::Damaged { cid: Box::new(c) }),
                    Err(source) => Err(Refusal::ReadLeaf { index: i, source }),
                };
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    return;
                }
            }
        });
        while let Some(item) = rx.recv().await {
            #[allow(unused_mut)]
            let (index, mut bytes) = item?;
            self.upload.acquire(bytes.len()).await;
            #[cfg(feature = "fault-injection")]
            corrupt(&mut bytes);
            // Header, then the leaf's own buffer: no copy into a frame.
            let header = Frame::leaf_header(index, bytes.len());
            let send = async {
                stream.write_all(&header).await?;
                stream.write_all(&bytes).await
            };
            send.await?;
            shubnet_metrics::global().transferred(
                "fetch",
                true,
                (header.len() + bytes.len()) as u64,
            );
            self.buffers.put(bytes);
        }
        Ok(write_frame(stream, &Frame::End).await?)
    }
}

/// Where a `Leaves` request's leaves come from.
enum Source {
    /// A partial download: its verified leaves.
    Partial(Arc<Partial>),
    /// A complete image: its leaf table and its open blob.
    Blob(Arc<Vec<LeafInfo>>, crate::store::BlobFile),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Partial(p) => p.leaves().len() as u64,
            Source::Blob(t, _) => t.len() as u64,
        }
    }
}

/// Leaf tables of complete images, computed once per image instead of once per `Leaves`
/// request (a 1 GiB image is asked for in 256 requests). A root's table never changes, so an
/// entry is never stale; the cache is emptied when it holds [`CACHED_TABLES`] images.
#[derive(Debug, Clone, Default)]
pub struct LeafTables(Arc<Mutex<HashMap<Cid, Arc<Vec<LeafInfo>>>>>);

/// Images whose leaf tables are kept (each about 50 bytes per leaf: 200 KiB per GiB).
const CACHED_TABLES: usize = 16;

impl LeafTables {
    fn get(&self, root: &Cid) -> Option<Arc<Vec<LeafInfo>>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(root)
            .cloned()
    }

    fn put(&self, root: Cid, table: Arc<Vec<LeafInfo>>) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= CACHED_TABLES {
            m.clear();
        }
        m.insert(root, table);
    }
}

/// Test builds only: `SHUBNET_FAULT_CORRUPT_FETCH=1` flips a byte of every leaf sent, so tests
/// can play a malicious holder.
#[cfg(feature = "fault-injection")]
fn corrupt(bytes: &mut [u8]) {
    if !std::env::var("SHUBNET_FAULT_CORRUPT_FETCH").is_ok_and(|v| v == "1") {
        return;
    }
    if let Some(b) = bytes.first_mut() {
        *b ^= 0xff;
    }
}

/// The dag-pb nodes of a stored file DAG, depth-first. Blocking.
pub fn stored_nodes(store: &Store, root: &Cid) -> Result<Vec<(Cid, Vec<u8>)>, Refusal> {
    if store.root_record(root)?.is_none() {
        return Err(Refusal::NotHeld {
            root: Box::new(*root),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        if cid.codec() != DAG_PB {
            continue;
        }
        let bytes = store.block(&cid)?.ok_or_else(|| Refusal::NodeMissing {
            at: Box::new(ImageBlock { root: *root, cid }),
        })?;
        if let Ok(FileNode::Branch { children, .. }) = FileNode::decode(&cid, &bytes) {
            stack.extend(
                children
                    .iter()
                    .rev()
                    .map(|(c, _)| *c)
                    .filter(|c| c.codec() == DAG_PB),
            );
        }
        out.push((cid, bytes.to_vec()));
    }
    Ok(out)
}
