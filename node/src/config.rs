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
