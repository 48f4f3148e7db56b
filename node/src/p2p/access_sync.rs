//! `/shubnet/access/1`, server and client (wire format: `shubnet_protocol::sync::access`):
//! members exchange the signed collection policies and capability revocations of
//! [`crate::access`].
//!
//! The client pulls after the rosters of every sync round (so a record is judged against the
//! newest roster, and a member holds the policy before the manifests it covers): one round trip
//! when both hold the same records. An owner also pushes each record it signs to every
//! connected member at once. The server refuses a peer outside the roster before reading a byte
//! of its request, and hands every record to [`AccessStore::accept`], which checks the signer
//! against the roster. A member of an older version does not know the protocol and refuses the
//! stream; that is not an error.
//!
//! Must not judge records (the access store does) nor touch the swarm.

use super::error::SyncFailure;
use super::frames::write_frame;
use super::gate::Gate;
use super::peers::PeerBook;
use super::streams::protocol;
use super::tasks::Tasks;
use crate::access::{AccessStore, AccessStoreError};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use shubnet_protocol::sync::{
    ACCESS_PROTOCOL, AccessRecord, AccessRequest, AccessResponse, MAX_ACCESS_FRAME,
};
use std::time::Duration;

type Result<T, E = SyncFailure> = std::result::Result<T, E>;

/// How long one request may wait for its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the access exchange needs; cheap to clone.
#[derive(Clone)]
pub struct AccessCtx {
    /// Opens streams to peers.
    pub control: libp2p_stream::Control,
    /// The records.
    pub access: AccessStore,
    /// Who is a member, and the federation id.
    pub gate: Gate,
    /// Connected peers, and where misbehaviour goes.
    pub peers: PeerBook,
}

async fn read_frame(s: &mut libp2p::Stream) -> Result<Option<Vec<u8>>> {
    super::frames::read_frame(s, "access frame", MAX_ACCESS_FRAME).await
}

async fn blocking<T: Send + 'static>(
    access: &AccessStore,
    f: impl FnOnce(&AccessStore) -> Result<T, AccessStoreError> + Send + 'static,
) -> Result<T> {
    let a = access.clone();
    Ok(tokio::task::spawn_blocking(move || f(&a)).await??)
}

/// Accepts each record; returns how many changed what this node enforces. A record the roster
/// does not allow is dropped with a log line: the sender may know a roster this node has not
/// seen yet, so it is not counted as misbehaviour.
async fn accept_all(ctx: &AccessCtx, peer: PeerId, records: Vec<AccessRecord>) -> Result<u32> {
    blocking(&ctx.access, move |a| {
        let mut changed = 0u32;
        for r in &records {
            match a.accept(r) {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(AccessStoreError::Record(e)) => {
                    tracing::warn!(%peer, error = %e, "access record refused: it does not verify");
                }
                Err(
                    e @ (AccessStoreError::NotAuthorized { .. }
                    | AccessStoreError::TooLong { .. }
                    | AccessStoreError::TooManyRevocations { .. }),
                ) => {
                    tracing::warn!(%peer, error = %e, "access record refused");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    })
    .await
}

// ---------- server ----------

/// Registers the protocol and answers members.
pub(super) fn serve(tasks: &Tasks, ctx: AccessCtx) -> Result<(), super::error::NetError> {
    let mut control = ctx.control.clone();
    let mut incoming = super::streams::accept(&mut control, ACCESS_PROTOCOL)?;
    tasks.spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_stream(&ctx, peer, stream).await {
                    tracing::debug!(%peer, error = %e, "access stream ended");
                }
            });
        }
    });
    Ok(())
}

async fn refuse(stream: &mut libp2p::Stream, reason: &str) -> Result<()> {
    write_frame(stream, &AccessResponse::Refused(reason.to_owned()).encode()).await?;
    let _ = stream.close().await;
    Ok(())
}

/// Serves one request. Membership is asked before the request is read.
async fn serve_stream(ctx: &AccessCtx, peer: PeerId, mut stream: libp2p::Stream) -> Result<()> {
    if !ctx.gate.is_member(&peer) {
        tracing::info!(%peer, "access exchange refused: not a member of the roster");
        return refuse(&mut stream, "not a member of this federation's roster").await;
    }
    let Some(body) = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut stream))
        .await
        .map_err(|_| SyncFailure::Idle { after: IO_TIMEOUT })??
    else {
        return Ok(());
    };
    let req = match AccessRequest::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            ctx.peers.misbehaved(peer);
            return Err(SyncFailure::BadRequest(e));
        }
    };
    let (AccessRequest::Pull { federation, .. } | AccessRequest::Push { federation, .. }) = &req;
    if ctx.gate.federation().as_deref() != Some(federation.as_str()) {
        return refuse(&mut stream, "another federation").await;
    }
    let resp = match req {
        AccessRequest::Pull { digest, .. } => {
            let (mine, records) = blocking(&ctx.access, |a| {
                a.publish_local_flags()?;
                let r = a.records()?;
                Ok((shubnet_protocol::sync::access_digest(&r), r))
            })
            .await?;
            if mine == digest {
                AccessResponse::Same
            } else {
                AccessResponse::Records(records)
            }
        }
        AccessRequest::Push { records, .. } => {
            AccessResponse::Accepted(accept_all(ctx, peer, records).await?)
        }
    };
    write_frame(&mut stream, &resp.encode()).await?;
    let _ = stream.close().await;
    Ok(())
}

// ---------- client ----------

async fn ask(ctx: &AccessCtx, peer: PeerId, req: AccessRequest) -> Result<Option<AccessResponse>> {
    let mut stream = match ctx
        .control
        .clone()
        .open_stream(peer, protocol(ACCESS_PROTOCOL))
        .await
    {
        Ok(s) => s,
        Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
            tracing::debug!(%peer, "peer does not speak the access protocol (older version)");
            return Ok(None);
        }
        Err(e) => return Err(SyncFailure::OpenStream(e)),
    };
    write_frame(&mut stream, &req.encode()).await?;
    let body = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut stream))
        .await
        .map_err(|source| SyncFailure::NoAnswer {
            after: IO_TIMEOUT,
            source,
        })??
        .ok_or(SyncFailure::Closed)?;
    match AccessResponse::decode(&body) {
        Ok(AccessResponse::Refused(reason)) => Err(SyncFailure::Refused { reason }),
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            ctx.peers.misbehaved(peer);
            Err(SyncFailure::BadAnswer(e))
        }
    }
}

/// Pulls `peer`'s records unless both hold the same; returns how many changed anything here.
/// First publishes this node's own private flags that the federation does not hold yet.
pub async fn pull(ctx: &AccessCtx, peer: PeerId) -> Result<u32> {
    let federation = ctx.gate.federation().ok_or(SyncFailure::NoFederation)?;
    blocking(&ctx.access, |a| a.publish_local_flags()).await?;
    let digest = blocking(&ctx.access, |a| a.digest()).await?;
    match ask(ctx, peer, AccessRequest::Pull { federation, digest }).await? {
        None | Some(AccessResponse::Same) => Ok(0),
        Some(AccessResponse::Records(records)) => accept_all(ctx, peer, records).await,
        Some(_) => {
            ctx.peers.misbehaved(peer);
            Err(SyncFailure::Unexpected {
                what: "something else than records",
            })
        }
    }
}

/// Pushes every record this node signs to every connected member, as it is signed.
pub(super) fn spawn_pusher(tasks: &Tasks, ctx: AccessCtx) {
    let mut signed = ctx.access.subscribe();
    tasks.spawn(async move {
        loop {
            let record = match signed.recv().await {
                Ok(r) => r,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "access records not pushed; sync rounds carry them");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(federation) = ctx.gate.federation() else {
                continue;
            };
            let members = ctx.gate.state().members;
            for peer in ctx.peers.connected_peers() {
                if !members.contains(&peer) {
                    continue;
                }
                let (ctx, federation, record) = (ctx.clone(), federation.clone(), record.clone());
                tokio::spawn(async move {
                    let req = AccessRequest::Push {
                        federation,
                        records: vec![record],
                    };
                    if let Err(e) = ask(&ctx, peer, req).await {
                        tracing::debug!(%peer, error = %e, "access push failed; the next sync round carries it");
                    }
                });
            }
        }
    });
}
