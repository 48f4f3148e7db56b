//! Stream protocol names and their registration on the raw-stream behaviour.
//!
//! It owns the one way protocols register an accept loop. It must not accept or serve
//! streams itself: each protocol's module does that.

use super::error::NetError;
use libp2p::StreamProtocol;

/// The protocol id as libp2p wants it.
pub(super) fn protocol(name: &'static str) -> StreamProtocol {
    StreamProtocol::new(name)
}

/// Registers `name` on the stream behaviour, for an accept loop.
pub(super) fn accept(
    control: &mut libp2p_stream::Control,
    name: &'static str,
) -> Result<libp2p_stream::IncomingStreams, NetError> {
    control
        .accept(protocol(name))
        .map_err(|e| NetError::Register {
            protocol: name,
            reason: e.to_string(),
        })
}
