//! `config.toml`: what a node remembers about itself between runs that is not a secret.
//! Written by `init` and by federation commands; flags and environment variables override it
//! (the full option reference comes with the operations issue).

use crate::paths::DataDir;
use serde::{Deserialize, Serialize};

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
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
    /// Federation membership.
    #[serde(default)]
    pub federation: FederationConfig,
    /// What this node holds for the federation beyond its placements, and repair timing.
    #[serde(default)]
    pub replication: ReplicationConfig,
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

const HEADER: &str =
    "# shubnet node configuration. Edit with care; `shubnet` commands rewrite this file.\n";

impl NodeConfig {
    /// Loads `config.toml`, or the defaults if it does not exist.
    pub fn load(dir: &DataDir) -> Result<Self, ConfigError> {
        let path = dir.config();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ConfigError::Io(format!("reading {}", path.display()), e)),
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes `config.toml` atomically.
    pub fn save(&self, dir: &DataDir) -> Result<(), ConfigError> {
        let path = dir.config();
        let body = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, format!("{HEADER}{body}"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| ConfigError::Io(format!("writing {}", path.display()), e))
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
