//! `config.toml`: what a node remembers about itself between runs that is not a secret.
//! Written by `init` and by federation commands; flags and environment variables override it.
//!
//! It holds the federation id, the root of trust every roster and manifest is verified against,
//! so it is only ever replaced durably. Owns the file's schema and its reading and writing.
//! Must not hold secrets (they live in `keys/`) or apply flags (the CLI does).

pub mod check;
pub mod schema;

use crate::paths::DataDir;
use serde::{Deserialize, Serialize};

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file could not be replaced; the previous one is intact.
    #[error(transparent)]
    Write(#[from] crate::durable::DurableError),
    /// The file is not valid TOML for this schema; the message names the line.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        message: String,
    },
}

/// The node's configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The HTTP gateway.
    #[serde(default, skip_serializing_if = "HttpConfig::is_empty")]
    pub http: HttpConfig,
    /// The libp2p network.
    #[serde(default, skip_serializing_if = "P2pFileConfig::is_empty")]
    pub p2p: P2pFileConfig,
    /// Logging.
    #[serde(default, skip_serializing_if = "LogConfig::is_empty")]
    pub log: LogConfig,
    /// Federation membership.
    #[serde(default)]
    pub federation: FederationConfig,
    /// What this node holds for the federation beyond its placements, and repair timing.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// The background re-check of stored blobs against their CIDs.
    #[serde(default, skip_serializing_if = "ScrubConfig::is_default")]
    pub scrub: ScrubConfig,
    /// Where blobs live.
    #[serde(default, skip_serializing_if = "StoreConfig::is_empty")]
    pub store: StoreConfig,
}

/// `[store]`: local disk (the default) or an S3-compatible bucket for the blobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `s3://BUCKET/PREFIX`; unset keeps blobs under `DATA_DIR/blobs/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<String>,
    /// Bytes of local disk the object backend's read cache may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_bytes: Option<u64>,
}

impl StoreConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `[scrub]`: how often and how fast stored blobs are re-hashed against their CIDs. Reads do
/// not hash blobs verified at import or on receipt, so this is what finds disk damage on
/// images nobody fetches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    /// Seconds after a blob's last check before the scheduled scrub re-hashes it; 0 turns the
    /// scheduled scrub off (`shubnet scrub` still works).
    #[serde(default = "default_scrub_interval")]
    pub interval_secs: u64,
    /// Bytes per second the scheduled scrub reads at most.
    #[serde(default = "default_scrub_rate")]
    pub rate_bytes_per_sec: u64,
}

fn default_scrub_interval() -> u64 {
    30 * 24 * 3600
}
fn default_scrub_rate() -> u64 {
    32 * 1024 * 1024
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_scrub_interval(),
            rate_bytes_per_sec: default_scrub_rate(),
        }
    }
}

impl ScrubConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Replication settings that are this node's own choice (the factor k is the roster's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Mirror policy: `["all"]` keeps a copy of every image in the federation; collection
    /// patterns (`lab-a`, `lab-a-*`) keep those collections. Adds to the roster's placement.
    #[serde(default)]
    pub mirror: Vec<String>,
    /// Seconds a holder may be unreachable before the next node in placement order fetches
    /// its images (repair).
    #[serde(default = "default_grace")]
    pub grace_period_secs: u64,
    /// Seconds a deleted image's content is kept (unpinned) so a mistaken delete can be undone
    /// by pushing the tag again.
    #[serde(default = "default_retention")]
    pub tombstone_retention_secs: u64,
    /// Seconds between placement checks.
    #[serde(default = "default_check")]
    pub check_interval_secs: u64,
}

fn default_grace() -> u64 {
    600
}
fn default_retention() -> u64 {
    7 * 24 * 3600
}
fn default_check() -> u64 {
    30
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            mirror: Vec::new(),
            grace_period_secs: default_grace(),
            tombstone_retention_secs: default_retention(),
            check_interval_secs: default_check(),
        }
    }
}

impl ReplicationConfig {
    /// True when the mirror policy asks for `collection`.
    pub fn mirrors(&self, collection: &str) -> bool {
        self.mirror
            .iter()
            .any(|p| p == "all" || shubnet_protocol::roster::pattern_matches(p, collection))
    }
}

/// `[http]`: unset keys fall back to the flag defaults (see [`schema::OPTIONS`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the gateway and admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<toml::Spanned<String>>,
    /// Let the admin API answer non-loopback clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_remote_admin: Option<bool>,
    /// Largest upload, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upload_bytes: Option<u64>,
    /// Seconds a request head may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds an upload body may stall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_idle_timeout_secs: Option<u64>,
    /// Seconds an untagged library upload stays pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_upload_expiry_secs: Option<u64>,
    /// PEM certificate chain for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// PEM private key for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// HTTPS listen address (used with `tls_cert`/`tls_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<toml::Spanned<String>>,
    /// Seconds a stopping node waits for in-flight requests before cutting them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_secs: Option<u64>,
}

impl HttpConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `[p2p]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct P2pFileConfig {
    /// Listen multiaddrs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<toml::Spanned<String>>,
    /// Peers to dial at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<toml::Spanned<String>>,
    /// Addresses to announce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<toml::Spanned<String>>,
    /// Bytes per second this node sends to peers; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u64>,
    /// Bytes per second this node receives from peers; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_limit: Option<u64>,
    /// Bytes per second Bitswap sends to non-members together; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_upload_limit: Option<u64>,
    /// Seconds between anti-entropy rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval_secs: Option<u64>,
    /// Seconds between announcements of changed download totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_announce_secs: Option<u64>,
    /// Publish and subscribe to the federation's gossip topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip: Option<bool>,
}

impl P2pFileConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `shubnet_node=debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl LogConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Which federation this node trusts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The federation id (CID of roster version 1). Manifests and rosters are verified against
    /// it; empty until `federation create` or a join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// This node's institution id in the roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
}

/// The file's text, or `None` when it does not exist (the defaults apply).
fn read_text(path: &std::path::Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Io(format!("reading {}", path.display()), e)),
    }
}

const HEADER: &str =
    "# shubnet node configuration. Edit with care; `shubnet` commands rewrite this file.\n";

impl NodeConfig {
    /// Loads `config.toml` as written (no environment overrides), or the defaults if it does
    /// not exist. Commands that rewrite the file use this, so an override never gets saved.
    pub fn load(dir: &DataDir) -> Result<Self, ConfigError> {
        let path = dir.config();
        let Some(text) = read_text(&path)? else {
            return Ok(Self::default());
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Loads `config.toml` with `SHUBNET_*` environment overrides applied and checked: what
    /// `serve` runs with (flags still win over both).
    pub fn load_effective(dir: &DataDir) -> Result<Self, ConfigError> {
        let path = dir.config();
        let text = read_text(&path)?.unwrap_or_default();
        let name = path.display().to_string();
        let cfg = check::parse_with_env(&text, &name, |k| std::env::var(k).ok())?;
        let problems = check::validate(&cfg, &text);
        if let Some(first) = problems.first() {
            return Err(ConfigError::Parse {
                path: name,
                message: first.to_string(),
            });
        }
        Ok(cfg)
    }

    /// Replaces `config.toml` durably: a crash leaves the old file or the new one, and once this
    /// returns the new one survives power loss.
    pub fn save(&self, dir: &DataDir) -> Result<(), ConfigError> {
        let path = dir.config();
        let body = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::durable::replace(
            &path,
            format!("{HEADER}{body}").as_bytes(),
            crate::durable::Mode::Shared,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors_name_the_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        assert_eq!(
            NodeConfig::load(&dir).expect("default"),
            NodeConfig::default()
        );
        let mut c = NodeConfig::default();
        c.federation.id = Some("bafy".into());
        c.save(&dir).expect("save");
        assert_eq!(NodeConfig::load(&dir).expect("load"), c);
        std::fs::write(dir.config(), "[federation]\nid = 3\n").expect("write");
        let err = NodeConfig::load(&dir).expect_err("type error").to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
