//! The replicator's [`Transfers`] over the real network: `/shubnet/fetch/1` for copies,
//! gossip for announcing them.

use super::Transfers;
use crate::p2p::Network;
use crate::p2p::fetch::client::FetchClient;
use futures::future::BoxFuture;
use libp2p::PeerId;
use shubnet_protocol::Cid;

/// Fetch client plus network handle.
#[derive(Debug, Clone)]
pub struct NetTransfers {
    /// Bulk transfer from holders.
    pub fetch: FetchClient,
    /// Announcements.
    pub network: Network,
}

impl Transfers for NetTransfers {
    fn fetch(&self, root: Cid, holders: Vec<PeerId>) -> BoxFuture<'static, Result<(), String>> {
        let client = self.fetch.clone();
        Box::pin(async move {
            client
                .fetch(root, holders)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn announce_holding(&self, root: Cid) {
        self.network.announce_holding(root);
    }

    fn announce_leaving(&self) {
        self.network.announce_leaving();
    }
}
