//! Gossip on the federation topic (`/shubnet/<federation id>/announce`): validation of what
//! arrives. Gossipsub runs with `validate_messages`, so nothing is forwarded until this task
//! has handed the manifest or roster to the registry and it was accepted; anything the
//! registry refuses is rejected (or ignored when this node is merely behind, which also starts
//! a sync with the peer that sent it). Messages authored or forwarded by non-members are
//! rejected and non-members are blacklisted in gossipsub. Gossipsub cannot refuse to *send* to a
//! connected peer that subscribed, so a hostile non-member could still read announcements
//! (which carry only what the public gateway lists anyway); a shubnet node that is not in its
//! own roster does not subscribe.
//!
//! It must not write manifests or rosters itself (the registry decides) nor publish: sending
//! goes through the event loop.

use super::anti_entropy::SyncCtx;
use super::command::Command;
use super::events::NetEvent;
use super::tasks::Tasks;
use crate::registry::RegistryError;
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use shubnet_protocol::manifest::{Manifest, ManifestError};
use shubnet_protocol::roster::SignedRoster;
use shubnet_protocol::sync::Announcement;
use tokio::sync::mpsc;

/// The topic name of a federation: manifests, rosters and holdings, the kinds every release
/// decodes.
pub fn topic(federation: &str) -> libp2p::gossipsub::IdentTopic {
    libp2p::gossipsub::IdentTopic::new(format!("/shubnet/{federation}/announce"))
}

/// The federation's second topic, for announcement kinds newer than the previous release
/// ([`Announcement::is_extension`]): a node of that release never subscribes to it, so it is
/// never sent a message it would reject.
pub fn extension_topic(federation: &str) -> libp2p::gossipsub::IdentTopic {
    libp2p::gossipsub::IdentTopic::new(format!("/shubnet/{federation}/announce/2"))
}

/// One message waiting for validation.
#[derive(Debug)]
pub struct Inbound {
    /// Gossipsub's id for it.
    pub id: MessageId,
    /// The peer that forwarded it.
    pub propagation: PeerId,
    /// Its author (messages are signed).
    pub source: Option<PeerId>,
    /// The payload.
    pub data: Vec<u8>,
}

/// Validates messages one at a time and reports each verdict to the swarm loop; `behind`
/// receives peers worth a sync round because this node missed something they have.
pub(super) fn validate(
    tasks: &Tasks,
    ctx: SyncCtx,
    mut rx: mpsc::Receiver<Inbound>,
    behind: mpsc::Sender<PeerId>,
) {
    tasks.spawn(async move {
        while let Some(msg) = rx.recv().await {
            let (acceptance, sync) = verdict(&ctx, &msg).await;
            tracing::debug!(source = ?msg.source, ?acceptance, "gossip message");
            if sync {
                let _ = behind.try_send(msg.propagation);
            }
            if matches!(acceptance, MessageAcceptance::Reject) {
                ctx.peers.misbehaved(msg.propagation);
            }
            let cmd = Command::Validated {
                id: msg.id,
                propagation: msg.propagation,
                acceptance,
            };
            if ctx.cmds.send(cmd).await.is_err() {
                return;
            }
        }
    });
}

/// The verdict, and whether to sync with the sender.
async fn verdict(ctx: &SyncCtx, msg: &Inbound) -> (MessageAcceptance, bool) {
    use MessageAcceptance::{Accept, Ignore, Reject};
    let Some(source) = msg.source else {
        return (Reject, false);
    };
    if !ctx.gate.is_member(&source) || !ctx.gate.is_member(&msg.propagation) {
        tracing::info!(%source, propagation = %msg.propagation, "gossip from a non-member rejected");
        return (Reject, false);
    }
    ctx.peers.seen(msg.propagation);
    let ann = match Announcement::decode(&msg.data) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(%source, error = %e, "undecodable gossip rejected");
            return (Reject, false);
        }
    };
    let reg = ctx.registry.clone();
    match ann {
        Announcement::Holding(root) => {
            ctx.peers.add_holding(source, root);
            (Accept, false)
        }
        Announcement::Leaving => {
            if !ctx
                .peers
                .is_leaving(&source, std::time::Duration::from_secs(60))
            {
                tracing::info!(%source, "member is leaving: its images move to the next nodes");
            }
            ctx.peers.leaving(source);
            ctx.events.send(NetEvent::MemberLeaving(source));
            (Accept, false)
        }
        Announcement::Usage(totals) => {
            if let Some(u) = ctx.usage.clone() {
                let peer = source.to_string();
                let r =
                    tokio::task::spawn_blocking(move || u.record_announced(&peer, &totals)).await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(%source, error = %e, "announced downloads not recorded");
                }
            }
            (Accept, false)
        }
        Announcement::Manifest(bytes) => {
            let m = match Manifest::decode(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::info!(%source, error = %e, "undecodable manifest in gossip");
                    return (Reject, false);
                }
            };
            let cid = m.cid();
            let r = tokio::task::spawn_blocking(move || reg.accept_manifest(&m)).await;
            match r {
                Ok(Ok(())) => {
                    tracing::info!(%cid, %source, "manifest accepted from gossip");
                    (Accept, false)
                }
                Ok(Err(RegistryError::Manifest(
                    ManifestError::WrongPrev { .. }
                    | ManifestError::UnknownPublisher
                    | ManifestError::OutsideNamespace { .. },
                ))) => (Ignore, true), // this node may be behind: sync
                Ok(Err(RegistryError::Manifest(ManifestError::SeqNotIncreasing { .. }))) => {
                    (Ignore, false) // old news
                }
                Ok(Err(e)) => {
                    tracing::warn!(%cid, %source, error = %e, "manifest from gossip refused");
                    (Reject, false)
                }
                Err(_) => (Ignore, false),
            }
        }
        Announcement::Roster(bytes) => {
            let r = match SignedRoster::decode(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(%source, error = %e, "undecodable roster in gossip");
                    return (Reject, false);
                }
            };
            let version = r.body.version;
            let have = ctx.gate.state().version;
            if version > have.saturating_add(1) {
                return (Ignore, true); // versions in between are missing: sync
            }
            let res = tokio::task::spawn_blocking(move || reg.accept_roster(&r)).await;
            match res {
                Ok(Ok(())) => {
                    tracing::info!(version, %source, "roster accepted from gossip");
                    ctx.roster_changed().await;
                    (Accept, false)
                }
                Ok(Err(e)) => {
                    tracing::warn!(version, %source, error = %e, "roster from gossip refused");
                    (Reject, false)
                }
                Err(_) => (Ignore, false),
            }
        }
    }
}
