//! The replicator's [`Transfers`] over the real network: `/shubnet/fetch/1` for copies,
//! gossip for announcing them. It must not decide what to copy or from whom: the replicator
//! passes the root and its holders.

use super::{TransferFailed, Transfers};
use crate::p2p::NetClient;
use futures::future::BoxFuture;
use libp2p::PeerId;
use shubnet_protocol::Cid;

/// Transfers through the network client.
#[derive(Debug, Clone)]
pub struct NetTransfers(pub NetClient);

impl Transfers for NetTransfers {
    fn fetch(
        &self,
        root: Cid,
        holders: Vec<PeerId>,
    ) -> BoxFuture<'static, Result<(), TransferFailed>> {
        let client = self.0.fetch().clone();
        Box::pin(async move {
            client
                .fetch(root, holders)
                .await
                .map(|_| ())
                .map_err(|e| TransferFailed(Box::new(e)))
        })
    }

    fn announce_holding(&self, root: Cid) {
        self.0.announce_holding(root);
    }

    fn announce_leaving(&self) {
        self.0.announce_leaving();
    }
}
