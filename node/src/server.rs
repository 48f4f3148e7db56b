//! `shubnet serve`: builds the node's parts in dependency order, runs them, and stops them in
//! reverse order on SIGTERM, Ctrl-C or the admin API's shutdown.
//!
//! The order is the map of the node: store → registry → tokens → usage → membership gate and
//! visibility → network → replicator → HTTP adapter and listeners. Each part receives only the
//! handles it needs, all of them ready, so no part meets another that has not started yet.
//! This module owns that order and nothing else: it must not implement any part's behaviour.

use crate::admin_token::AdminToken;
use crate::http::GatewayConfig;
use crate::http::backend::{NodeBackend, Parts};
use crate::http::serve::{HttpError, Listeners};
use crate::p2p::gate::Gate;
use crate::paths::DataDir;
use crate::registry::{Registry, RegistryError};
use crate::replication::{NetTransfers, Replicator};
use crate::secrets::SecretError;
use crate::store::{Store, StoreError};
use crate::tokens::{TokenStore, TokenStoreError};
use crate::visibility::Visibility;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::http::serve::TlsFlags;

/// How long stopping waits for the replicator and the network after HTTP has drained.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (created if missing).
    pub data_dir: DataDir,
    /// HTTP listen address; port 0 picks a free port.
    pub http: SocketAddr,
    /// HTTP-layer settings.
    pub gateway: GatewayConfig,
    /// libp2p listen, bootstrap and announce addresses.
    pub p2p: crate::p2p::P2pConfig,
    /// Placement, mirror policy and repair timing (`config.toml` `[replication]`).
    pub replication: crate::config::ReplicationConfig,
    /// The background scrub (`config.toml` `[scrub]`).
    pub scrub: crate::config::ScrubConfig,
    /// Blobs in a bucket instead of `DATA_DIR/blobs/` (`--blobs`, `[store] blobs`), with the
    /// bound of the local read cache.
    pub blobs: Option<(crate::store::BlobsUrl, u64)>,
    /// Also serve HTTPS, with this certificate and key, on this address.
    pub tls: Option<TlsFlags>,
    /// After SIGTERM (or `shubnet leave`), how long in-flight requests may run before they are
    /// cut.
    pub shutdown_grace: Duration,
}

/// Why the node could not start, or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be created or made owner-only.
    #[error("creating the data directory {path} (owner-only, 0700): {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// The node keys or admin token could not be checked, loaded or created.
    #[error("loading the node keys and admin token: {0}")]
    Keys(#[from] SecretError),
    /// The default configuration could not be written.
    #[error("writing config.toml: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened or flushed.
    #[error("the store in {path}: {source}")]
    Store {
        /// The data directory.
        path: PathBuf,
        /// The store's reason.
        #[source]
        source: StoreError,
    },
    /// The registry could not be opened.
    #[error("opening the registry: {0}")]
    Registry(#[from] RegistryError),
    /// The token store could not be opened.
    #[error("opening the token store: {0}")]
    Tokens(#[from] TokenStoreError),
    /// The federation access state could not be opened.
    #[error("access state: {0}")]
    Access(#[from] crate::access::AccessStoreError),
    /// The p2p network could not start.
    #[error("starting the p2p network: {0}")]
    Network(#[from] crate::p2p::NetError),
    /// The HTTP side failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A blocking start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Opens the store. With blobs in a bucket that cannot be reached, start-up waits and retries
/// (the node is not ready meanwhile); refused credentials and bad configuration stop it at once.
async fn open_store(
    dir: &crate::paths::DataDir,
    blobs: Option<(crate::store::BlobsUrl, u64)>,
    owner: String,
) -> Result<Store, StoreError> {
    let Some((url, cache_bytes)) = blobs else {
        return Store::open(dir.clone()).await;
    };
    tracing::info!(blobs = %url, cache_bytes, "blobs are in object storage");
    let object = crate::store::ObjectBlobs::from_env(url)?;
    let mut delay = Duration::from_secs(1);
    loop {
        let backend = crate::store::BlobBackend::Object {
            blobs: object.clone(),
            cache_bytes,
            owner: owner.clone(),
        };
        match Store::open_with(dir.clone(), backend).await {
            Err(StoreError::Object(crate::store::ObjectError::Unavailable { url, detail })) => {
                tracing::warn!(%url, %detail, retry_in_secs = delay.as_secs(), "object storage unreachable; not ready, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// Runs a node until SIGTERM/SIGINT or the admin API's shutdown.
pub async fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let dir = cfg.data_dir.clone();
    crate::owner_only::restrict_umask();
    crate::owner_only::secure(&dir).map_err(|source| ServeError::DataDir {
        path: dir.root().to_path_buf(),
        source,
    })?;
    crate::keys::check_key_dir(&dir)?;
    let (keys, created) = crate::keys::NodeKeys::init(&dir)?;
    if created {
        tracing::info!(peer_id = %keys.peer_id(), "created node keys");
    }
    let admin = AdminToken::load_or_create(&dir.admin_token())?;
    if !dir.config().exists() {
        crate::config::NodeConfig::default().save(&dir)?;
    }
    let store_err = |source| ServeError::Store {
        path: dir.root().to_path_buf(),
        source,
    };

    tracing::info!(data_dir = %dir.root().display(), "opening the store");
    // The node's identity, so the same node restarted (elsewhere, after a crash) takes its own
    // lock back while any other node is refused.
    let owner = format!("node {}", keys.peer_id());
    let store = open_store(&dir, cfg.blobs.clone(), owner)
        .await
        .map_err(store_err)?;
    let identity = keys.identity.clone();
    let registry = Registry::open(dir.clone(), store.index(), keys)?;
    let tokens = TokenStore::open(&dir)?;
    let usage = crate::usage::UsageStore::open(store.index())
        .inspect_err(|e| tracing::error!(error = %e, "download and star counts are off"))
        .ok();
    let gate = Gate::default();
    let reg = registry.clone();
    let gate = tokio::task::spawn_blocking(move || {
        gate.refresh(&reg);
        gate
    })
    .await?;
    let access = crate::access::AccessStore::open(&tokens, registry.clone())?;
    let visibility = Visibility::new(
        store.clone(),
        registry.clone(),
        tokens.clone(),
        access.clone(),
    );

    let net_stop = CancellationToken::new();
    let (net, net_events, event_loop) = crate::p2p::new(
        identity,
        cfg.p2p.clone(),
        dir.clone(),
        crate::p2p::NetParts {
            store: store.clone(),
            registry: registry.clone(),
            gate,
            visibility: visibility.clone(),
            access: access.clone(),
            usage: usage.clone(),
        },
        net_stop.clone(),
    )?;
    let network = tokio::spawn(event_loop.run());

    let replication_stop = CancellationToken::new();
    let replicator = Replicator::new(
        store.clone(),
        registry.clone(),
        net.peer_book().clone(),
        cfg.replication.clone(),
        Arc::new(NetTransfers(net.clone())),
        replication_stop.clone(),
    );
    let replication = replicator.spawn(net_events);
    let scrubber = crate::scrub::Scrubber::new(store.clone(), net.fetch().clone(), cfg.scrub);
    let scrubbing = scrubber.clone().spawn(replication_stop.clone());

    let stop = CancellationToken::new();
    let backend = NodeBackend::new(Parts {
        store: store.clone(),
        registry,
        admin,
        tokens,
        access,
        usage,
        visibility,
        net,
        replicator,
        shutdown: stop.clone(),
        scrubber,
    });
    let expiry = tokio::spawn(crate::http::backend::sweep_uploads_forever(
        backend.clone(),
        cfg.gateway.upload_expiry,
    ));
    let listeners = Listeners::bind(&dir, cfg.http, cfg.tls.as_ref(), cfg.gateway.clone()).await;
    let served = match listeners {
        Ok(l) => {
            // A signal, or the admin API's shutdown (`shubnet leave`), starts the drain:
            // listeners close at once, in-flight requests run on for at most the grace period.
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    tokio::select! {
                        () = shutdown_signal() => {}
                        () = stop.cancelled() => {}
                    }
                    stop.cancel();
                }
            });
            l.serve(backend, stop.clone(), cfg.shutdown_grace).await
        }
        Err(e) => Err(e),
    };
    match &served {
        Ok(true) => tracing::info!("shutting down: every request finished"),
        // Dropping the servers drops their connections: an upload cut here never completes,
        // so its client gets an error and nothing of it is committed (partial/ is emptied at
        // the next start).
        Ok(false) => tracing::warn!(
            grace_secs = cfg.shutdown_grace.as_secs(),
            "shutting down: requests still running after the grace period were cut"
        ),
        Err(_) => {}
    }

    // Reverse order: HTTP is done; then the replicator, then the network, then the index.
    expiry.abort();
    let _ = std::fs::remove_file(dir.api_file());
    replication_stop.cancel();
    if tokio::time::timeout(STOP_WAIT, replication).await.is_err() {
        tracing::warn!("the replicator did not stop in time");
    }
    if tokio::time::timeout(STOP_WAIT, scrubbing).await.is_err() {
        tracing::warn!("the scrub did not stop in time");
    }
    net_stop.cancel();
    if tokio::time::timeout(STOP_WAIT, network).await.is_err() {
        tracing::warn!("the p2p network did not stop in time");
    }
    store.flush().await.map_err(store_err)?;
    served.map(|_| ()).map_err(ServeError::from)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
