//! The stream multiplexers a TCP connection can negotiate, and why there are two.
//!
//! Yamux flow control caps a connection's bytes in flight near `256 KiB × streams open +
//! (connection window − 256 KiB × max_num_streams)`: every stream is guaranteed 256 KiB and only
//! the rest of the 1 GiB connection window can grow into bandwidth-delay-product-sized stream
//! windows. IPFS peers need `max_num_streams` near 4096 (see [`IPFS_MAX_STREAMS`]), which leaves
//! 512 KiB to share, so a bulk transfer across 40 ms moves a few MB/s whatever the link.
//!
//! shubnet nodes therefore offer each other [`WIDE_PROTOCOL`] first: the same yamux, under a
//! name only shubnet negotiates, with [`WIDE_MAX_STREAMS`], which leaves most of the connection
//! window for stream windows to grow into (rust-yamux doubles a stream's window each round
//! trip in which the sender used half of it). Any other peer (Helia, kubo) only knows
//! `/yamux/1.0.0` and gets the IPFS-safe configuration. This module owns the muxer upgrades; it
//! must not know about peers, members or protocols above the muxer.

use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::yamux;

/// The muxer protocol name shubnet nodes prefer between themselves.
pub(super) const WIDE_PROTOCOL: &str = "/shubnet/yamux/1.0.0";

/// Streams per connection between shubnet nodes: enough for every protocol a node runs with
/// hundreds of fetch streams to spare, and small enough that 7/8 of the 1 GiB connection
/// window is left for stream windows to grow into (a stream reaches 100 MB, the
/// bandwidth-delay product of 1 GB/s at 100 ms, in about nine round trips).
const WIDE_MAX_STREAMS: usize = 512;

/// Streams per yamux connection with IPFS peers. Chosen for its side effect: rust-yamux grows
/// a stream's receive window up to what the connection window (1 GiB, not configurable through
/// libp2p-yamux) leaves over `256 KiB × max_num_streams`, and js-yamux (Helia) sends frames as
/// large as that window while rust-yamux refuses frames over 1 MiB (`FrameTooLarge`, which
/// kills the whole connection). With 4094 streams the extra is 512 KiB, so no window passes
/// 768 KiB.
const IPFS_MAX_STREAMS: usize = 4094;

/// The multiplexer upgrade for TCP: [`WIDE_PROTOCOL`] when both ends are shubnet, else
/// `/yamux/1.0.0` configured for IPFS peers.
pub(super) fn upgrade() -> libp2p::core::upgrade::SelectUpgrade<Wide, yamux::Config> {
    let mut ipfs = yamux::Config::default();
    ipfs.set_max_num_streams(IPFS_MAX_STREAMS);
    let mut wide = yamux::Config::default();
    wide.set_max_num_streams(WIDE_MAX_STREAMS);
    libp2p::core::upgrade::SelectUpgrade::new(Wide(wide), ipfs)
}

/// Yamux negotiated under [`WIDE_PROTOCOL`]. The name only selects the configuration: the wire
/// format is yamux's.
#[derive(Debug, Clone)]
pub(super) struct Wide(yamux::Config);

/// The name libp2p-yamux answers to; its upgrades ignore the name they are given.
const YAMUX_PROTOCOL: &str = "/yamux/1.0.0";

impl UpgradeInfo for Wide {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(WIDE_PROTOCOL)
    }
}

impl<C> InboundConnectionUpgrade<C> for Wide
where
    yamux::Config: InboundConnectionUpgrade<C, Info = &'static str>,
{
    type Output = <yamux::Config as InboundConnectionUpgrade<C>>::Output;
    type Error = <yamux::Config as InboundConnectionUpgrade<C>>::Error;
    type Future = <yamux::Config as InboundConnectionUpgrade<C>>::Future;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(socket, YAMUX_PROTOCOL)
    }
}

impl<C> OutboundConnectionUpgrade<C> for Wide
where
    yamux::Config: OutboundConnectionUpgrade<C, Info = &'static str>,
{
    type Output = <yamux::Config as OutboundConnectionUpgrade<C>>::Output;
    type Error = <yamux::Config as OutboundConnectionUpgrade<C>>::Error;
    type Future = <yamux::Config as OutboundConnectionUpgrade<C>>::Future;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(socket, YAMUX_PROTOCOL)
    }
}
