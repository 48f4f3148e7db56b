//! `shubnet serve`.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use crate::config::NodeConfig;
use crate::http::GatewayConfig;
use crate::paths::{DATA_DIR_ENV, DataDir};
use crate::server::{self, ServeConfig};
use anyhow::{Context, Result};
use clap::Args;
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
    /// [default: 127.0.0.1:8080, or `[http] listen` in config.toml]
    #[arg(long, env = "SHUBNET_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// libp2p listen address; repeat for several [default: /ip4/0.0.0.0/tcp/4001 and
    /// /ip4/0.0.0.0/udp/4001/quic-v1].
    #[arg(long = "p2p", value_name = "MULTIADDR")]
    pub p2p: Vec<libp2p::Multiaddr>,
    /// A peer to dial at start (`/ip4/…/tcp/4001/p2p/PEERID`, or by name:
    /// `/dns4/HOST/tcp/4001/p2p/PEERID`, resolved again at every redial); repeat for several.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// An address to announce to peers (e.g. the public one behind NAT, or a DNS name:
    /// `/dns4/p2p.example.org/tcp/4001`); repeat for several. When given, peers learn only
    /// the announced addresses, not the listen ones.
    #[arg(long, value_name = "MULTIADDR")]
    pub announce: Vec<libp2p::Multiaddr>,
    /// Neither publish nor subscribe to gossip; sync alone carries manifests and rosters
    /// (for tests and diagnosis).
    #[arg(long)]
    pub no_gossip: bool,
    /// Seconds between anti-entropy sync rounds with each connected member.
    /// [default: 60, or `[p2p] sync_interval_secs`]
    #[arg(long, env = "SHUBNET_SYNC_INTERVAL", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_interval: Option<u64>,
    /// Seconds between gossip announcements of this node's changed download counts.
    /// [default: 60, or `[p2p] usage_announce_secs`]
    #[arg(long, env = "SHUBNET_USAGE_ANNOUNCE", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub usage_announce: Option<u64>,
    /// Cap on what this node sends to other nodes (fetch/1 and Bitswap), bytes per second;
    /// 0 = unlimited.
    #[arg(long, env = "SHUBNET_UPLOAD_LIMIT", value_name = "BYTES_PER_SEC")]
    pub upload_limit: Option<u64>,
    /// Cap on what this node fetches from other nodes, bytes per second; 0 = unlimited.
    #[arg(long, env = "SHUBNET_DOWNLOAD_LIMIT", value_name = "BYTES_PER_SEC")]
    pub download_limit: Option<u64>,
    /// Cap on what Bitswap sends to peers outside the federation (any IPFS node), all of them
    /// together, bytes per second; 0 = unlimited. Members are held only to --upload-limit.
    /// [default: 16000000, or `[p2p] public_upload_limit`]
    #[arg(
        long,
        env = "SHUBNET_PUBLIC_UPLOAD_LIMIT",
        value_name = "BYTES_PER_SEC"
    )]
    pub public_upload_limit: Option<u64>,
    /// Let the admin API answer non-loopback clients (they still need the admin token).
    #[arg(long)]
    pub allow_remote_admin: bool,
    /// Largest upload accepted, in bytes [default: 64 GiB].
    #[arg(long, env = "SHUBNET_MAX_UPLOAD", value_name = "BYTES")]
    pub max_upload: Option<u64>,
    /// Seconds a client may take to send a request's head before the connection is closed
    /// [default: 30].
    #[arg(long, env = "SHUBNET_HEADER_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: Option<u64>,
    /// Seconds an upload's body may send nothing before the upload is cut [default: 60].
    #[arg(long, env = "SHUBNET_BODY_IDLE_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout: Option<u64>,
    /// Seconds a library upload may wait for its tag call before its content is unpinned
    /// [default: 86400].
    #[arg(long, env = "SHUBNET_UPLOAD_EXPIRY", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_expiry: Option<u64>,
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
    /// [default: 0.0.0.0:443, or `[http] https`]
    #[arg(long, env = "SHUBNET_HTTPS", value_name = "ADDR")]
    pub https: Option<SocketAddr>,
    /// On SIGTERM, seconds to let in-flight downloads and uploads finish before cutting them.
    /// [default: 30, or `[http] shutdown_grace_secs`]
    #[arg(long, env = "SHUBNET_SHUTDOWN_GRACE", value_name = "SECS")]
    pub shutdown_grace: Option<u64>,
    /// Keep blobs in an S3-compatible bucket: s3://BUCKET/PREFIX (endpoint and credentials
    /// from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP). [default: local disk, or `[store] blobs`]
    #[arg(long, env = "SHUBNET_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// Log filter, e.g. `info` or `shubnet_node=debug` (also RUST_LOG).
    /// [default: info]
    #[arg(long, env = "SHUBNET_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// Runs `serve`.
pub fn run(a: ServeArgs) -> Result<()> {
    let data_dir = DataDir::new(a.data_dir.clone().unwrap_or_else(DataDir::default_location));
    // Precedence: flag > environment > config.toml > default. Clap applies the flag and its
    // environment variable; the file (with its own SHUBNET_* overrides) fills the rest.
    let file = NodeConfig::load_effective(&data_dir)
        .context("reading config.toml (`shubnet config check` explains each error)")?;
    let parse_addrs = |v: &[toml::Spanned<String>]| -> Result<Vec<libp2p::Multiaddr>> {
        v.iter()
            .map(|s| s.get_ref().parse().context("a multiaddr in config.toml"))
            .collect()
    };
    let file_listen = parse_addrs(&file.p2p.listen)?;
    let file_bootstrap = parse_addrs(&file.p2p.bootstrap)?;
    let file_announce = parse_addrs(&file.p2p.announce)?;
    let http: SocketAddr = match (a.http, &file.http.listen) {
        (Some(h), _) => h,
        (None, Some(s)) => s
            .get_ref()
            .parse()
            .context("[http] listen in config.toml")?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let https: SocketAddr = match (a.https, &file.http.https) {
        (Some(h), _) => h,
        (None, Some(s)) => s.get_ref().parse().context("[http] https in config.toml")?,
        (None, None) => SocketAddr::from(([0, 0, 0, 0], 443)),
    };
    let log = a
        .log
        .clone()
        .or(file.log.filter.clone())
        .unwrap_or_else(|| "info".to_string());
    let filter = std::env::var("RUST_LOG").unwrap_or(log);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).context("invalid --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = ServeConfig {
        data_dir,
        http,
        p2p: crate::p2p::P2pConfig {
            listen: first_nonempty(a.p2p, file_listen).unwrap_or_else(crate::p2p::default_listen),
            bootstrap: first_nonempty(a.bootstrap, file_bootstrap).unwrap_or_default(),
            announce: first_nonempty(a.announce, file_announce).unwrap_or_default(),
            no_gossip: a.no_gossip || file.p2p.gossip == Some(false),
            sync_interval: std::time::Duration::from_secs(
                a.sync_interval
                    .or(file.p2p.sync_interval_secs)
                    .unwrap_or(60)
                    .max(1),
            ),
            usage_announce: secs(
                a.usage_announce.or(file.p2p.usage_announce_secs),
                crate::usage::ANNOUNCE_EVERY.as_secs(),
            ),
            upload_limit: a.upload_limit.or(file.p2p.upload_limit).unwrap_or(0),
            download_limit: a.download_limit.or(file.p2p.download_limit).unwrap_or(0),
            public_upload_limit: a
                .public_upload_limit
                .or(file.p2p.public_upload_limit)
                .unwrap_or(crate::p2p::DEFAULT_PUBLIC_UPLOAD_LIMIT),
        },
        replication: file.replication.clone(),
        scrub: file.scrub.clone(),
        blobs: match a.blobs.clone().or(file.store.blobs.clone()) {
            Some(u) => Some((
                u.parse::<crate::store::BlobsUrl>()
                    .context("--blobs / [store] blobs")?,
                file.store.cache_bytes.unwrap_or(10 * 1024 * 1024 * 1024),
            )),
            None => None,
        },
        gateway: GatewayConfig {
            allow_remote_admin: a.allow_remote_admin || file.http.allow_remote_admin == Some(true),
            max_upload_bytes: a
                .max_upload
                .or(file.http.max_upload_bytes)
                .unwrap_or(64 * 1024 * 1024 * 1024),
            tls: false,
            timeouts: crate::http::Timeouts {
                header: secs(a.header_timeout.or(file.http.header_timeout_secs), 30),
                body_idle: secs(a.body_idle_timeout.or(file.http.body_idle_timeout_secs), 60),
            },
            upload_expiry: secs(
                a.upload_expiry.or(file.http.library_upload_expiry_secs),
                24 * 3600,
            ),
        },
        tls: a
            .tls_cert
            .or(file.http.tls_cert.clone().map(PathBuf::from))
            .zip(a.tls_key.or(file.http.tls_key.clone().map(PathBuf::from)))
            .map(|(cert, key)| server::TlsFlags {
                cert,
                key,
                listen: https,
            }),
        shutdown_grace: std::time::Duration::from_secs(
            a.shutdown_grace
                .or(file.http.shutdown_grace_secs)
                .unwrap_or(30),
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server::run(cfg)).map_err(Into::into)
}

/// `value` seconds (at least 1), or `default`.
fn secs(value: Option<u64>, default: u64) -> std::time::Duration {
    std::time::Duration::from_secs(value.unwrap_or(default).max(1))
}

/// The flag's values if any were given, else the file's, else `None` (the default applies).
fn first_nonempty<T>(flag: Vec<T>, file: Vec<T>) -> Option<Vec<T>> {
    if !flag.is_empty() {
        Some(flag)
    } else if !file.is_empty() {
        Some(file)
    } else {
        None
    }
}
