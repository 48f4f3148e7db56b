//! `shubnet serve`.

use crate::paths::{DATA_DIR_ENV, DataDir};
use crate::server::{self, ServeConfig};
use anyhow::{Context, Result};
use clap::Args;
use shubnet_gateway::GatewayConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `shubnet serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory; created on first start [default: ~/.local/share/shubnet].
    #[arg(long, env = DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for the HTTP gateway and admin API. Loopback by default; use 0.0.0.0:PORT to
    /// serve other hosts (the admin API still answers only loopback unless --allow-remote-admin).
    #[arg(
        long,
        env = "SHUBNET_HTTP",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub http: SocketAddr,
    /// libp2p listen address; repeat for several [default: /ip4/0.0.0.0/tcp/4001 and
    /// /ip4/0.0.0.0/udp/4001/quic-v1].
    #[arg(long = "p2p", value_name = "MULTIADDR")]
    pub p2p: Vec<libp2p::Multiaddr>,
    /// A peer to dial at start (`/ip4/…/tcp/4001/p2p/PEERID`); repeat for several.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// An address to announce to peers (e.g. the public one behind NAT); repeat for several.
    #[arg(long, value_name = "MULTIADDR")]
    pub announce: Vec<libp2p::Multiaddr>,
    /// Neither publish nor subscribe to gossip; sync alone carries manifests and rosters
    /// (for tests and diagnosis).
    #[arg(long)]
    pub no_gossip: bool,
    /// Seconds between anti-entropy sync rounds with each connected member.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_interval: u64,
    /// Cap on what this node sends to other nodes (fetch/1 and Bitswap), bytes per second;
    /// 0 = unlimited.
    #[arg(
        long,
        env = "SHUBNET_UPLOAD_LIMIT",
        default_value_t = 0,
        value_name = "BYTES_PER_SEC"
    )]
    pub upload_limit: u64,
    /// Cap on what this node fetches from other nodes, bytes per second; 0 = unlimited.
    #[arg(
        long,
        env = "SHUBNET_DOWNLOAD_LIMIT",
        default_value_t = 0,
        value_name = "BYTES_PER_SEC"
    )]
    pub download_limit: u64,
    /// Let the admin API answer non-loopback clients (they still need the admin token).
    #[arg(long)]
    pub allow_remote_admin: bool,
    /// Largest upload accepted, in bytes.
    #[arg(long, env = "SHUBNET_MAX_UPLOAD", default_value_t = 64 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub max_upload: u64,
    /// PEM certificate chain: also serve the gateway over HTTPS on --https (with --tls-key).
    #[arg(
        long,
        env = "SHUBNET_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SHUBNET_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// HTTPS listen address when --tls-cert is given. shub:// URIs allow no port, so public
    /// gateways answer on 443; --http keeps serving plain HTTP (the CLI's admin API).
    #[arg(
        long,
        env = "SHUBNET_HTTPS",
        default_value = "0.0.0.0:443",
        value_name = "ADDR"
    )]
    pub https: SocketAddr,
    /// Log filter, e.g. `info` or `shubnet_node=debug` (also RUST_LOG).
    #[arg(
        long,
        env = "SHUBNET_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
}

/// Runs `serve`.
pub fn run(a: ServeArgs) -> Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| a.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).context("invalid --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = ServeConfig {
        data_dir: DataDir::new(a.data_dir.unwrap_or_else(DataDir::default_location)),
        http: a.http,
        p2p: crate::p2p::P2pConfig {
            listen: if a.p2p.is_empty() {
                crate::p2p::default_listen()
            } else {
                a.p2p
            },
            bootstrap: a.bootstrap,
            announce: a.announce,
            no_gossip: a.no_gossip,
            sync_interval: std::time::Duration::from_secs(a.sync_interval),
            upload_limit: a.upload_limit,
            download_limit: a.download_limit,
        },
        gateway: GatewayConfig {
            allow_remote_admin: a.allow_remote_admin,
            max_upload_bytes: a.max_upload,
            tls: false,
        },
        tls: a
            .tls_cert
            .zip(a.tls_key)
            .map(|(cert, key)| server::TlsFlags {
                cert,
                key,
                listen: a.https,
            }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server::run(cfg))
}
