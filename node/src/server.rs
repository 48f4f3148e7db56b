//! `shubnet serve`: opens the store, mounts the gateway, listens, and shuts down cleanly on
//! SIGTERM or Ctrl-C.

use crate::admin_token::AdminToken;
use crate::http::backend::NodeBackend;
use crate::paths::DataDir;
use crate::store::Store;
use anyhow::{Context, Result};
use shubnet_gateway::GatewayConfig;
use std::future::IntoFuture;
use std::net::SocketAddr;

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
    /// Also serve HTTPS, with this certificate and key, on this address.
    pub tls: Option<TlsFlags>,
    /// After SIGTERM (or `shubnet leave`), how long in-flight requests may run before they are
    /// cut.
    pub shutdown_grace: std::time::Duration,
}

/// `serve --tls-cert FILE --tls-key FILE --https ADDR`.
#[derive(Debug, Clone)]
pub struct TlsFlags {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
}

/// Loads the certificate and binds the HTTPS address (so a bad flag fails the start, not later);
/// writes the URL to `DATA_DIR/https.url`. The plain listener keeps serving the local CLI.
async fn bind_tls(dir: &DataDir, tls: &TlsFlags) -> Result<shubnet_gateway::tls::TlsListener> {
    let config = shubnet_gateway::tls::server_config(&tls.cert, &tls.key)
        .context("loading --tls-cert/--tls-key")?;
    let tcp = tokio::net::TcpListener::bind(tls.listen)
        .await
        .with_context(|| format!("listening on {} for HTTPS", tls.listen))?;
    let listener =
        shubnet_gateway::tls::TlsListener::new(tcp, config).context("starting the TLS listener")?;
    let addr = axum::serve::Listener::local_addr(&listener).context("reading the HTTPS address")?;
    let url = format!("https://{addr}");
    crate::durable::replace(
        &dir.https_file(),
        format!("{url}\n").as_bytes(),
        crate::durable::Mode::Shared,
    )
    .context("writing https.url")?;
    println!("shubnet: serving {url}");
    tracing::info!(%url, "serving HTTPS");
    Ok(listener)
}

/// Runs a node until SIGTERM/SIGINT.
pub async fn run(cfg: ServeConfig) -> Result<()> {
    let dir = cfg.data_dir.clone();
    std::fs::create_dir_all(dir.root())
        .with_context(|| format!("creating the data directory {}", dir.root().display()))?;
    crate::keys::check_key_dir(&dir).context("checking the key files")?;
    let (keys, created) = crate::keys::NodeKeys::init(&dir).context("loading the node keys")?;
    if created {
        tracing::info!(peer_id = %keys.peer_id(), "created node keys");
    }
    let token =
        AdminToken::load_or_create(&dir.admin_token()).context("loading the admin token")?;
    if !dir.config().exists() {
        crate::config::NodeConfig::default()
            .save(&dir)
            .context("writing config.toml")?;
    }
    tracing::info!(data_dir = %dir.root().display(), "opening the store");
    let store = Store::open(dir.clone())
        .await
        .with_context(|| format!("opening the store in {}", dir.root().display()))?;
    let identity = keys.identity.clone();
    let registry = crate::registry::Registry::open(dir.clone(), store.index(), keys)
        .context("opening the registry")?;
    let tokens = crate::tokens::TokenStore::open(&dir).context("opening the token store")?;
    let backend = NodeBackend::new(store.clone(), registry, token, tokens);
    let net = crate::p2p::spawn(
        identity,
        cfg.p2p.clone(),
        dir.clone(),
        backend.clone(),
        store.clone(),
    )
    .context("starting the p2p network")?;
    let _p2p = net.task;
    backend.set_bitswap(net.bitswap);
    backend.set_fetch(net.fetch.clone());
    if let Some(network) = backend.network() {
        let replicator = crate::replication::Replicator::new(
            store.clone(),
            backend.registry().clone(),
            network.peer_book().clone(),
            cfg.replication.clone(),
            std::sync::Arc::new(crate::replication::NetTransfers {
                fetch: net.fetch,
                network,
            }),
        );
        let _replication = replicator.spawn();
        backend.set_replicator(replicator);
    }
    let tls = match &cfg.tls {
        Some(flags) => {
            let mut c = cfg.gateway.clone();
            c.tls = true;
            Some((
                bind_tls(&dir, flags).await?,
                shubnet_gateway::app(backend.clone(), c),
            ))
        }
        None => None,
    };
    let stop = backend.shutdown_token();
    let _expiry = tokio::spawn(crate::http::uploads::sweep_forever(
        backend.clone(),
        cfg.gateway.upload_expiry,
    ));
    let gateway_cfg = cfg.gateway.clone();
    let header_timeout = gateway_cfg.timeouts.header;
    let app = shubnet_gateway::app(backend, gateway_cfg);
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("listening on {}", cfg.http))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let url = format!("http://{addr}");
    write_api_file(&dir, &url)?;
    println!("shubnet: serving {url}");
    println!("shubnet: data directory {}", dir.root().display());
    tracing::info!(%url, "serving");
    // A signal, or the admin API's shutdown (`shubnet leave`), starts the drain: listeners
    // close at once, in-flight requests run on for at most the grace period.
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
    // The timeout listener's connections carry their peer as `TlsPeer`; `with_peer_info`
    // hands it to the admin API's loopback check.
    let http = axum::serve(
        shubnet_gateway::timeouts::TimeoutListener::new(listener, header_timeout),
        shubnet_gateway::tls::with_peer_info(app)
            .into_make_service_with_connect_info::<shubnet_gateway::tls::TlsPeer>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let serving = async {
        match tls {
            Some((listener, tls_app)) => {
                let https = axum::serve(
                    shubnet_gateway::timeouts::TimeoutListener::new(listener, header_timeout),
                    shubnet_gateway::tls::with_peer_info(tls_app)
                        .into_make_service_with_connect_info::<shubnet_gateway::tls::TlsPeer>(),
                )
                .with_graceful_shutdown(stop.clone().cancelled_owned());
                let (a, b) = tokio::join!(http.into_future(), https.into_future());
                a.context("HTTP server failed")?;
                b.context("HTTPS server failed")?;
            }
            None => http.await.context("HTTP server failed")?,
        }
        Ok::<(), anyhow::Error>(())
    };
    let grace = cfg.shutdown_grace;
    let drained = tokio::select! {
        r = serving => { r?; true }
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => false,
    };
    if drained {
        tracing::info!("shutting down: every request finished");
    } else {
        // Dropping the servers drops their connections: an upload cut here never completes,
        // so its client gets an error and nothing of it is committed (partial/ is emptied at
        // the next start).
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "shutting down: requests still running after the grace period were cut"
        );
    }
    let _ = std::fs::remove_file(dir.api_file());
    let _ = std::fs::remove_file(dir.p2p_addrs());
    store.flush().await.context("flushing the index")?;
    Ok(())
}

fn write_api_file(dir: &DataDir, url: &str) -> Result<()> {
    crate::durable::replace(
        &dir.api_file(),
        format!("{url}\n").as_bytes(),
        crate::durable::Mode::Shared,
    )
    .with_context(|| format!("writing {}", dir.api_file().display()))
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
