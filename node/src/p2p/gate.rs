//! Who may use the federation protocols: the peer ids of the newest roster this node knows.
//!
//! Connections stay open to any IPFS node (Bitswap), so the gate is checked per protocol: the
//! sync, fetch/1 and access servers refuse non-members before reading a byte of their
//! requests; gossip and Kademlia are offered to members only ([`super::members_only`]), and
//! Kademlia's routing table only ever holds members.
//! The newest roster is used, so a newcomer the admitting node just added is let in as soon as
//! that version arrives here (by gossip or sync), and not only after everyone agrees.
//!
//! It must not read the registry on each check or touch the network: [`Gate::refresh`] reloads
//! it at start and whenever a roster version is accepted; every other use reads the cached set.

use crate::registry::Registry;
use libp2p::PeerId;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

/// The membership facts the network needs.
#[derive(Debug, Clone, Default)]
pub struct GateState {
    /// The federation id, once the node created or joined one.
    pub federation: Option<String>,
    /// The newest roster version known.
    pub version: u64,
    /// Node peer ids of the newest roster's members.
    pub members: HashSet<PeerId>,
}

/// A shared, cheap-to-clone view of [`GateState`].
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<RwLock<GateState>>);

impl Gate {
    /// True if `peer` is a node of a member in the newest roster.
    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.read().members.contains(peer)
    }

    /// A copy of the state.
    pub fn state(&self) -> GateState {
        self.read().clone()
    }

    /// The federation id, if any.
    pub fn federation(&self) -> Option<String> {
        self.read().federation.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, GateState> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads from the registry (blocking: sled). Returns true if anything changed.
    pub fn refresh(&self, registry: &Registry) -> bool {
        let federation = registry.federation_id();
        let (version, members) = match registry.roster() {
            Ok(Some(r)) => (
                r.body.version,
                r.body
                    .members
                    .iter()
                    .flat_map(|m| m.peer_ids.iter())
                    .filter_map(|p| p.parse::<PeerId>().ok())
                    .collect(),
            ),
            Ok(None) => (0, HashSet::new()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the roster for the gate");
                return false;
            }
        };
        let mut g = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let changed = g.federation != federation || g.version != version;
        *g = GateState {
            federation,
            version,
            members,
        };
        changed
    }
}
