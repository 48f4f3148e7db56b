//! The HTTP adapter: everything that implements the gateway's traits over the node's parts.
//!
//! It owns the translation between the node (store, registry, tokens, usage, network,
//! replicator) and `shubnet_gateway`'s traits and error types, and the HTTP listeners. The
//! gateway settings the CLI fills in are re-exported here, so no other module of the node
//! imports `shubnet_gateway`. It must not hold state of its own beyond upload records and the
//! metrics refresh, nor decide policy: privacy comes from `visibility`, membership from the
//! gate, and every rule of the registry from the registry.

pub mod backend;
mod convert;
pub mod observe;
pub mod registry;
pub mod serve;
pub mod tokens;
pub mod uploads;

pub use shubnet_gateway::GatewayConfig;
pub use shubnet_gateway::timeouts::Timeouts;
