//! The admin token: a random secret the node writes to `keys/admin.token` (mode 0600) for the
//! local CLI. The node keeps only its sha256 in memory and compares in constant time.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why the token could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The token file can be read by other users.
    #[error(
        "{0} is readable by other users (mode {1:o}); run `chmod 600 {0}` — the node will not start with an exposed secret"
    )]
    Exposed(String, u32),
}

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
    /// Loads the token at `path`, creating it (and its directory, 0700) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, TokenError> {
        let show = || path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| TokenError::Io(format!("creating {}", dir.display()), e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| TokenError::Io(format!("securing {}", dir.display()), e))?;
        }
        if !path.exists() {
            let mut raw = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut raw))
                .map_err(|e| TokenError::Io("reading /dev/urandom".into(), e))?;
            let token = hex::encode(raw);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| TokenError::Io(format!("creating {}", show()), e))?;
            f.write_all(token.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| TokenError::Io(format!("writing {}", show()), e))?;
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| TokenError::Io(format!("reading {}", show()), e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Exposed(show(), mode));
        }
        let token = std::fs::read_to_string(path)
            .map_err(|e| TokenError::Io(format!("reading {}", show()), e))?;
        Ok(Self::from_secret(token.trim()))
    }

    /// A token from its secret text (tests, and the file above).
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
        // The same file loads to the same token.
        assert!(
            AdminToken::load_or_create(&p)
                .expect("load")
                .matches(secret.trim())
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            AdminToken::load_or_create(&p),
            Err(TokenError::Exposed(..))
        ));
    }
}
