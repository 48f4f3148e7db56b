//! What the network tells the rest of the node ([`NetEvent`]), as a stream the replicator
//! follows.
//!
//! It owns the channel and its overflow rule (events are hints; a lagging receiver loses
//! later ones, and the periodic rounds catch up). It must not decide what an event means.

use futures::Stream;
use libp2p::PeerId;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// What the network tells the rest of the node (the replicator follows these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A member announced that it is leaving: its images must move.
    MemberLeaving(PeerId),
    /// A new roster version took effect: placement may have changed.
    RosterChanged,
}

/// The stream of [`NetEvent`]s. Events are hints that something changed: when the receiver
/// lags, later ones are dropped (logged) and the periodic rounds catch up.
#[derive(Debug)]
pub struct NetEvents(mpsc::Receiver<NetEvent>);

impl Stream for NetEvents {
    type Item = NetEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<NetEvent>> {
        self.0.poll_recv(cx)
    }
}

/// The sending half the protocols hold, and its stream.
pub(super) fn events() -> (EventSender, NetEvents) {
    let (tx, rx) = mpsc::channel(64);
    (EventSender(tx), NetEvents(rx))
}

/// Sends [`NetEvent`]s without waiting.
#[derive(Debug, Clone)]
pub struct EventSender(mpsc::Sender<NetEvent>);

impl EventSender {
    /// Sends `e`, or drops it if the receiver is behind or gone.
    pub fn send(&self, e: NetEvent) {
        if let Err(err) = self.0.try_send(e) {
            tracing::debug!(error = %err, "network event dropped");
        }
    }
}
