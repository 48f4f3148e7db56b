//! The HTTP adapter: everything that implements the gateway's traits over the node's parts.
//!
//! It owns the translation between the node (store, registry, tokens, usage, network,
//! replicator) and `shubnet_gateway`'s traits and error types. No other module of the node
//! imports `shubnet_gateway`; the parts below know nothing of HTTP.

pub mod backend;
pub mod observe;
pub mod registry;
pub mod serve;
pub mod tokens;
pub mod uploads;
