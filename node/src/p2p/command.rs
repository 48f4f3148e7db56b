//! What the rest of the network asks of the event loop ([`Command`]), and why a dial it was
//! asked for failed ([`DialFailure`]).
//!
//! It owns only these message types. It must not hold state or act: the event loop, which
//! owns the swarm, carries them out.

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use shubnet_protocol::sync::Announcement;
use tokio::sync::oneshot;

/// Requests to the event loop, which owns the swarm.
#[derive(Debug)]
pub(crate) enum Command {
    /// Connect to the address (ending in `/p2p/PEER_ID`); answered once connected, at once if
    /// already connected, or with the reason the dial failed.
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, DialFailure>>),
    /// Gossip this on the federation topic.
    Publish(Announcement),
    /// The verdict on a gossip message.
    Validated {
        /// Gossipsub's id.
        id: MessageId,
        /// Who forwarded it.
        propagation: PeerId,
        /// Forward it, drop it, or drop it and penalise the sender.
        acceptance: MessageAcceptance,
    },
    /// The gate's roster changed: resubscribe, unblacklist new members, dial them.
    RosterChanged,
    /// Connect again to a peer this node dialled before, at the address it used (so a transfer
    /// resumes on the same path); answered like `Dial`.
    Reconnect(PeerId, oneshot::Sender<Result<PeerId, DialFailure>>),
}

/// Why a dial asked of the event loop failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialFailure {
    /// The address does not end in `/p2p/PEER_ID`.
    #[error("{addr} names no peer id; give the full address ending in /p2p/PEER_ID")]
    NoPeerId {
        /// The address given.
        addr: Multiaddr,
    },
    /// The swarm could not connect.
    #[error("cannot connect to {target}: {reason}")]
    Failed {
        /// The address or peer dialled.
        target: String,
        /// libp2p's reason.
        reason: String,
    },
    /// The network stopped before the dial finished.
    #[error("the p2p network stopped")]
    Stopped,
}
