//! The admin token: a random secret the node writes to `keys/admin.token` (mode 0600) for the
//! local CLI. The node keeps only its sha256 in memory and compares in constant time.
//!
//! Owns the token's format and comparison. Must not write the file itself (that is
//! [`crate::secrets`]) or decide where it lives ([`crate::paths::DataDir::admin_token`]).

use crate::secrets::{self, SecretError};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The sha256 of the admin token.
#[derive(Clone)]
pub struct AdminToken {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<hashed>)")
    }
}

impl AdminToken {
    /// Loads the token at `path`, creating it on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        secrets::create_hex_seed(path)?;
        let raw = secrets::read(path)?;
        let text = String::from_utf8(raw)
            .map_err(|_| SecretError::Malformed(path.display().to_string(), "admin token"))?;
        Ok(Self::from_secret(text.trim()))
    }

    /// A token from its secret text.
    pub fn from_secret(secret: &str) -> Self {
        Self {
            hash: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// True if `candidate` is the token. Compares hashes without early exit.
    pub fn matches(&self, candidate: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        h.iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0600_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keys/admin.token");
        let t = AdminToken::load_or_create(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let secret = std::fs::read_to_string(&p).expect("read");
        assert!(t.matches(secret.trim()));
        assert!(!t.matches("wrong"));
        assert!(
            AdminToken::load_or_create(&p)
                .expect("load")
                .matches(secret.trim())
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            AdminToken::load_or_create(&p),
            Err(SecretError::Exposed(..))
        ));
    }
}
