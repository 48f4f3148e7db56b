//! Members-only behaviours: a wrapper that lets a libp2p behaviour (gossipsub, Kademlia) accept
//! inbound streams only from peers the [`Gate`] names, on connections that stay open to anyone
//! for Bitswap.
//!
//! The check happens when a stream is negotiated: for a non-member the wrapped protocol is not
//! offered at all, so multistream-select fails and not one byte of the peer's message is read.
//! The set is read at each negotiation, so a peer is let in as soon as the roster admits it.
//! A peer whose outbound stream was refused earlier on a connection may have given up on that
//! protocol there (gossipsub disables itself after a refusal); the event loop replaces such a
//! connection once the peer becomes a member.
//!
//! It owns no policy beyond "member or not" and must not read the registry: the gate does.

use super::gate::Gate;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::UpgradeInfo;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend, ListenUpgradeError,
    UpgradeInfoSend,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

/// `inner`, answering inbound streams from members only.
pub(super) struct MembersOnly<B> {
    inner: B,
    gate: Gate,
}

impl<B> MembersOnly<B> {
    pub(super) fn new(inner: B, gate: Gate) -> Self {
        Self { inner, gate }
    }

    fn wrap<H>(&self, inner: H, peer: PeerId) -> Gated<H> {
        Gated {
            inner,
            peer,
            gate: self.gate.clone(),
        }
    }
}

impl<B> Deref for MembersOnly<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for MembersOnly<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for MembersOnly<B> {
    type ConnectionHandler = Gated<B::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let h = self
            .inner
            .handle_established_inbound_connection(id, peer, local, remote)?;
        Ok(self.wrap(h, peer))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let h = self
            .inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)?;
        Ok(self.wrap(h, peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// A connection handler whose inbound protocols are offered to members only.
pub(super) struct Gated<H> {
    inner: H,
    peer: PeerId,
    gate: Gate,
}

impl<H: ConnectionHandler> ConnectionHandler for Gated<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = MembersUpgrade<H::InboundProtocol>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        let open = self.gate.is_member(&self.peer);
        self.inner
            .listen_protocol()
            .map_upgrade(|inner| MembersUpgrade { inner, open })
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error }) => {
                ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error })
            }
            ConnectionEvent::FullyNegotiatedOutbound(e) => {
                ConnectionEvent::FullyNegotiatedOutbound(e)
            }
            ConnectionEvent::DialUpgradeError(e) => ConnectionEvent::DialUpgradeError(e),
            ConnectionEvent::AddressChange(e) => ConnectionEvent::AddressChange(e),
            ConnectionEvent::LocalProtocolsChange(e) => ConnectionEvent::LocalProtocolsChange(e),
            ConnectionEvent::RemoteProtocolsChange(e) => ConnectionEvent::RemoteProtocolsChange(e),
            _ => {
                tracing::trace!("a connection event the members-only wrapper does not know");
                return;
            }
        };
        self.inner.on_connection_event(event)
    }
}

/// The inner inbound upgrade, offering its protocol names only when `open`.
pub(super) struct MembersUpgrade<U> {
    inner: U,
    open: bool,
}

impl<U: UpgradeInfoSend> UpgradeInfo for MembersUpgrade<U> {
    type Info = U::Info;
    type InfoIter = std::iter::Take<U::InfoIter>;

    fn protocol_info(&self) -> Self::InfoIter {
        let n = if self.open { usize::MAX } else { 0 };
        UpgradeInfoSend::protocol_info(&self.inner).take(n)
    }
}

impl<U: InboundUpgradeSend> libp2p::core::upgrade::InboundUpgrade<Stream> for MembersUpgrade<U> {
    type Output = U::Output;
    type Error = U::Error;
    type Future = U::Future;

    fn upgrade_inbound(self, socket: Stream, info: Self::Info) -> Self::Future {
        InboundUpgradeSend::upgrade_inbound(self.inner, socket, info)
    }
}
