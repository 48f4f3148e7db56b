//! The layout of a node's data directory, in one place so nothing else builds paths by hand.
//!
//! Owns every file and directory name under DATA_DIR. Must not create, read or write anything:
//! callers do that (durably, through [`crate::durable`]).

use std::path::{Path, PathBuf};

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "SHUBNET_DATA_DIR";

/// Where a node keeps everything; see DESIGN.md "Store on disk".
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The per-user default: `$XDG_DATA_HOME/shubnet`, usually `~/.local/share/shubnet`.
    pub fn default_location() -> PathBuf {
        dirs::data_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("shubnet")
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Complete images, one plain file per root CID.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Temporary files of writes in progress; anything here after a crash is garbage.
    pub fn partial(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// Blobs that failed verification, kept aside for an operator to inspect.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The sled index (derived state; rebuilt by `shubnet repair`).
    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Secrets: node keys and the admin token, all mode 0600.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The admin token the CLI presents to the node's admin API.
    pub fn admin_token(&self) -> PathBuf {
        self.keys().join("admin.token")
    }

    /// The libp2p identity (protobuf encoding); its peer id names the node.
    pub fn node_key(&self) -> PathBuf {
        self.keys().join("node.key")
    }

    /// The seed of the key that signs this institution's manifests.
    pub fn publisher_key(&self) -> PathBuf {
        self.keys().join("publisher.key")
    }

    /// The seed of the federation admin key that signs roster versions.
    pub fn admin_key(&self) -> PathBuf {
        self.keys().join("admin.key")
    }

    /// The node-local key that seals the token secrets kept in `accounts/`.
    pub fn seal_key(&self) -> PathBuf {
        self.keys().join("tokens.key")
    }

    /// User tokens and private collections: a sled database apart from the index, because
    /// nothing can rebuild it (mode 0700).
    pub fn accounts(&self) -> PathBuf {
        self.root.join("accounts")
    }

    /// Where a damaged index is set aside (at unix time `at`) before a fresh one is built.
    pub fn damaged_index(&self, at: u64) -> PathBuf {
        self.root.join(format!("index.damaged-{at}"))
    }

    /// Records of library uploads not yet tagged, one file per upload key.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Present while the node is leaving the federation, so a restart keeps leaving.
    pub fn leaving_marker(&self) -> PathBuf {
        self.root.join("leaving")
    }

    /// The addresses of peers this node has talked to, for dialing them after a restart.
    pub fn p2p_peers(&self) -> PathBuf {
        self.root.join("p2p.peers")
    }

    /// The node's configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// Every accepted manifest and roster version, one file per CID (append-only truth).
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Where a running node lists its p2p addresses (with `/p2p/<peer id>`), one per line.
    pub fn p2p_addrs(&self) -> PathBuf {
        self.root.join("p2p.addrs")
    }

    /// Where a running node writes the URL it serves, so the CLI can find it.
    pub fn api_file(&self) -> PathBuf {
        self.root.join("api.url")
    }

    /// Where a node serving HTTPS writes that URL.
    pub fn https_file(&self) -> PathBuf {
        self.root.join("https.url")
    }
}
