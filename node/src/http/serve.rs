//! The HTTP listeners: binds the plain address (and HTTPS, when configured), mounts the gateway
//! over the adapter, and drains on stop within the grace period.
//!
//! It owns sockets, TLS set-up and the drain. It must not start or stop any other part of the
//! node: `server.rs` decides the order.

use super::backend::NodeBackend;
use crate::paths::DataDir;
use shubnet_gateway::GatewayConfig;
use shubnet_gateway::timeouts::TimeoutListener;
use shubnet_gateway::tls::{TlsListener, TlsPeer, with_peer_info};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `serve --tls-cert FILE --tls-key FILE --https ADDR`.
#[derive(Debug, Clone)]
pub struct TlsFlags {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
}

/// Why the HTTP side could not start or failed while serving.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The certificate or key could not be loaded.
    #[error("loading --tls-cert/--tls-key: {0}")]
    Tls(#[from] shubnet_gateway::tls::TlsError),
    /// An address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file telling local tools the URL could not be written.
    #[error(transparent)]
    UrlFile(#[from] crate::durable::DurableError),
    /// The server failed while serving.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Bound listeners, ready to serve.
pub struct Listeners {
    plain: tokio::net::TcpListener,
    tls: Option<TlsListener>,
    gateway: GatewayConfig,
}

impl Listeners {
    /// Binds the plain address and, with `tls`, loads the certificate and binds HTTPS, so a bad
    /// flag fails the start. Writes each URL to its file in `dir` for the local CLI.
    pub async fn bind(
        dir: &DataDir,
        http: SocketAddr,
        tls: Option<&TlsFlags>,
        gateway: GatewayConfig,
    ) -> Result<Self, HttpError> {
        let tls = match tls {
            Some(flags) => Some(bind_tls(dir, flags).await?),
            None => None,
        };
        let plain = tokio::net::TcpListener::bind(http)
            .await
            .map_err(|source| HttpError::Bind { addr: http, source })?;
        let addr = plain
            .local_addr()
            .map_err(|source| HttpError::Bind { addr: http, source })?;
        let url = format!("http://{addr}");
        write_url(&dir.api_file(), &url)?;
        println!("shubnet: serving {url}");
        println!("shubnet: data directory {}", dir.root().display());
        tracing::info!(%url, "serving");
        Ok(Self {
            plain,
            tls,
            gateway,
        })
    }

    /// Serves until `stop` is cancelled, then lets in-flight requests run for at most `grace`.
    /// Returns whether every request finished in time.
    pub async fn serve(
        self,
        backend: NodeBackend,
        stop: CancellationToken,
        grace: Duration,
    ) -> Result<bool, HttpError> {
        let header_timeout = self.gateway.timeouts.header;
        let tls_app = self.tls.as_ref().map(|_| {
            let mut c = self.gateway.clone();
            c.tls = true;
            shubnet_gateway::app(backend.clone(), c)
        });
        let app = shubnet_gateway::app(backend, self.gateway);
        // The timeout listener's connections carry their peer as `TlsPeer`; `with_peer_info`
        // hands it to the admin API's loopback check.
        let http = axum::serve(
            TimeoutListener::new(self.plain, header_timeout),
            with_peer_info(app).into_make_service_with_connect_info::<TlsPeer>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let serving = async {
            match (self.tls, tls_app) {
                (Some(listener), Some(tls_app)) => {
                    let https = axum::serve(
                        TimeoutListener::new(listener, header_timeout),
                        with_peer_info(tls_app).into_make_service_with_connect_info::<TlsPeer>(),
                    )
                    .with_graceful_shutdown(stop.clone().cancelled_owned());
                    let (a, b) = tokio::join!(http.into_future(), https.into_future());
                    a.map_err(HttpError::Serve)?;
                    b.map_err(HttpError::Serve)?;
                }
                _ => http.await.map_err(HttpError::Serve)?,
            }
            Ok::<(), HttpError>(())
        };
        tokio::select! {
            r = serving => r.map(|()| true),
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => Ok(false),
        }
    }
}

/// Loads the certificate and binds the HTTPS address; writes the URL to `DATA_DIR/https.url`.
/// The plain listener keeps serving the local CLI.
async fn bind_tls(dir: &DataDir, tls: &TlsFlags) -> Result<TlsListener, HttpError> {
    let config = shubnet_gateway::tls::server_config(&tls.cert, &tls.key)?;
    let bind = |source| HttpError::Bind {
        addr: tls.listen,
        source,
    };
    let tcp = tokio::net::TcpListener::bind(tls.listen)
        .await
        .map_err(bind)?;
    let listener = TlsListener::new(tcp, config).map_err(bind)?;
    let addr = axum::serve::Listener::local_addr(&listener).map_err(bind)?;
    let url = format!("https://{addr}");
    write_url(&dir.https_file(), &url)?;
    println!("shubnet: serving {url}");
    tracing::info!(%url, "serving HTTPS");
    Ok(listener)
}

fn write_url(path: &std::path::Path, url: &str) -> Result<(), HttpError> {
    crate::durable::replace(
        path,
        format!("{url}\n").as_bytes(),
        crate::durable::Mode::Shared,
    )?;
    Ok(())
}
