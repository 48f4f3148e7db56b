//! HTTPS for the gateway: a rustls server config from PEM files, and a [`TlsListener`] that
//! plugs into `axum::serve`.
//!
//! `shub://` clients allow no port in the URI, so a public gateway must answer on 443. The
//! listener accepts TCP connections and runs each TLS handshake in its own task with a
//! deadline, so a slow or hostile client cannot stall the accept loop; finished connections are
//! handed to axum through a bounded channel.
//!
//! It must not know routes or the backend: it only turns TCP connections into TLS ones.

use axum::serve::Listener;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections that finished their handshake but were not yet taken by the server.
const READY_QUEUE: usize = 256;

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate chain or key.
    #[error("invalid certificate or key: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// A server config serving the certificate chain in `cert` (PEM) with the key in `key` (PEM,
/// PKCS#8, PKCS#1 or SEC1), offering HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |p: &Path, reason: String| TlsError::Pem {
        path: p.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_err(cert, "no CERTIFICATE block".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TCP listener whose connections are TLS streams.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; handshakes run in background tasks on the current runtime.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is gone; never resolve otherwise.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer address of a connection from a listener other than a plain `TcpListener` (TLS,
/// [`crate::timeouts::TimeoutListener`]), as `axum`'s connect info.
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

impl<L: Listener<Addr = SocketAddr>>
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::timeouts::TimeoutListener<L>>,
    > for TlsPeer
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, crate::timeouts::TimeoutListener<L>>,
    ) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

/// Copies [`TlsPeer`] into `ConnectInfo<SocketAddr>`, which the admin API checks: a request
/// without it would count as local. Serve the result with
/// `into_make_service_with_connect_info::<TlsPeer>()`.
pub fn with_peer_info(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::map_request(
        |mut req: axum::extract::Request| async move {
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<TlsPeer>>()
                .map(|c| c.0.0);
            // Without a peer (never the case when served as documented) fail closed: a
            // non-loopback placeholder, so the admin API refuses.
            let peer = peer.unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 0)));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req
        },
    ))
}
