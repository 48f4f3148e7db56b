//! A node's keys, created by `shubnet init` (or the first `serve`):
//!
//! - `keys/node.key`: the libp2p ed25519 identity (protobuf encoding); its peer id names the
//!   node in the federation roster.
//! - `keys/publisher.key`: the ed25519 key that signs this institution's manifests. Separate from
//!   the node identity so it can be rotated or kept elsewhere without changing the peer id.
//! - `keys/admin.key`: the federation admin key, used to sign roster versions. An operator
//!   should keep a copy offline; a node only needs it while acting as an admin.
//!
//! Secrets are hex text (32-byte seeds) or protobuf bytes, all mode 0600 (see [`crate::secrets`]).
//!
//! Owns the key formats and which keys a node has. Must not write files itself (that is
//! [`crate::secrets`]) or name paths ([`crate::paths::DataDir`]).

use crate::paths::DataDir;
use crate::secrets::{self, SecretError};
use ed25519_dalek::SigningKey;
use libp2p_identity::{Keypair, PeerId};
use std::path::Path;

/// All of a node's keys.
pub struct NodeKeys {
    /// libp2p identity.
    pub identity: Keypair,
    /// Signs manifests.
    pub publisher: SigningKey,
    /// Signs roster versions.
    pub admin: SigningKey,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("peer_id", &self.peer_id())
            .field(
                "publisher",
                &hex::encode(self.publisher.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl NodeKeys {
    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.public().to_peer_id()
    }

    /// The publisher public key, as hex.
    pub fn publisher_hex(&self) -> String {
        hex::encode(self.publisher.verifying_key().as_bytes())
    }

    /// The admin public key, as hex.
    pub fn admin_hex(&self) -> String {
        hex::encode(self.admin.verifying_key().as_bytes())
    }

    /// Creates whichever keys are missing, then loads all of them. Existing keys are never
    /// replaced. Returns the keys and whether anything was created.
    pub fn init(dir: &DataDir) -> Result<(Self, bool), SecretError> {
        let mut created = false;
        let node = dir.node_key();
        if !node.exists() {
            let kp = Keypair::ed25519_from_bytes(secrets::random_bytes::<32>()?)
                .map_err(|_| SecretError::Malformed(node.display().to_string(), "ed25519 seed"))?;
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|_| SecretError::Malformed(node.display().to_string(), "node key"))?;
            secrets::create(&node, &bytes)?;
            created = true;
        }
        for p in [dir.publisher_key(), dir.admin_key()] {
            created |= secrets::create_hex_seed(&p)?;
        }
        Ok((Self::load(dir)?, created))
    }

    /// Loads the keys, refusing any that other users can read.
    pub fn load(dir: &DataDir) -> Result<Self, SecretError> {
        let node = dir.node_key();
        let identity = Keypair::from_protobuf_encoding(&secrets::read(&node)?)
            .map_err(|_| SecretError::Malformed(node.display().to_string(), "libp2p key"))?;
        Ok(Self {
            identity,
            publisher: load_seed(&dir.publisher_key())?,
            admin: load_seed(&dir.admin_key())?,
        })
    }
}

fn load_seed(path: &Path) -> Result<SigningKey, SecretError> {
    let raw = secrets::read(path)?;
    let bad = || SecretError::Malformed(path.display().to_string(), "ed25519 key (64 hex digits)");
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(bad)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Checks that every file under `keys/` is private. `serve` calls this before doing anything.
pub fn check_key_dir(dir: &DataDir) -> Result<(), SecretError> {
    let keys = dir.keys();
    let Ok(entries) = std::fs::read_dir(&keys) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.path().is_file() {
            secrets::check_private(&e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_creates_once_and_loads_the_same_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        let (a, created) = NodeKeys::init(&dir).expect("init");
        assert!(created);
        let (b, created) = NodeKeys::init(&dir).expect("init again");
        assert!(!created);
        assert_eq!(a.peer_id(), b.peer_id());
        assert_eq!(a.publisher_hex(), b.publisher_hex());
        assert_ne!(a.publisher_hex(), a.admin_hex());
        for f in ["node.key", "publisher.key", "admin.key"] {
            let mode = std::fs::metadata(dir.keys().join(f))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        std::fs::set_permissions(dir.admin_key(), std::fs::Permissions::from_mode(0o604))
            .expect("chmod");
        assert!(matches!(
            NodeKeys::load(&dir),
            Err(SecretError::Exposed(..))
        ));
        assert!(check_key_dir(&dir).is_err());
    }
}
