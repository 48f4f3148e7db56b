//! Secret files: created 0600 in a 0700 directory, written durably (see [`crate::durable`]), and
//! refused when other users can read them. Every key and token on disk goes through here.
//!
//! Owns the permission rules for secrets. Must not know which secrets exist or where they live
//! (that is [`crate::paths`]) or what they hold.

use crate::durable::{self, DurableError, Mode};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why a secret could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file can be read by other users.
    #[error(
        "{0} is readable by other users (mode {1:o}); run `chmod 600 {0}` — the node will not start with an exposed secret"
    )]
    Exposed(String, u32),
    /// The file exists but does not hold what it should.
    #[error("{0} is not a valid {1}")]
    Malformed(String, &'static str),
    /// The secret could not be written; nothing partial is left under its name.
    #[error(transparent)]
    Write(#[from] DurableError),
}

/// `N` bytes from the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut raw = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| SecretError::Io("reading /dev/urandom".into(), e))?;
    Ok(raw)
}

/// Creates the directory of `path` (0700) if needed.
fn secure_parent(path: &Path) -> Result<(), SecretError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| SecretError::Io(format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| SecretError::Io(format!("securing {}", dir.display()), e))?;
    }
    Ok(())
}

/// Writes a new secret file with mode 0600. Fails if it already exists, so a key is never
/// silently replaced; a crash leaves the complete key or none, never a truncated one.
pub fn create(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    secure_parent(path)?;
    durable::create_new(path, contents, Mode::Secret)?;
    Ok(())
}

/// Creates `path` holding 32 random bytes as hex unless it exists; true if it was created.
/// A concurrent creator winning the race is not an error: its key is the one kept.
pub fn create_hex_seed(path: &Path) -> Result<bool, SecretError> {
    if path.exists() {
        return Ok(false);
    }
    match create(path, hex::encode(random_bytes::<32>()?).as_bytes()) {
        Ok(()) => Ok(true),
        Err(SecretError::Write(e)) if e.already_exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `path` as a secret (0600 in a 0700 directory), replacing any earlier file.
pub fn replace(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    secure_parent(path)?;
    durable::replace(path, contents, Mode::Secret)?;
    Ok(())
}

/// Opens `path` for writing as a file only its owner can read, replacing a leftover from an
/// earlier attempt; for secrets streamed in pieces (a backup archive), where the caller
/// chooses the directory and renames the file into place when it is complete.
pub fn create_streamed(path: &Path) -> Result<std::fs::File, SecretError> {
    // A leftover may have been created with other permissions; start from nothing.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SecretError::Io(format!("replacing {}", path.display()), e)),
    }
    open_0600(path)
}

/// Creates `path` (it must not exist) with mode 0600.
fn open_0600(path: &Path) -> Result<std::fs::File, SecretError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SecretError::Io(format!("creating {}", path.display()), e))
}

/// Reads a secret file after checking that only its owner can read it.
pub fn read(path: &Path) -> Result<Vec<u8>, SecretError> {
    check_private(path)?;
    std::fs::read(path).map_err(|e| SecretError::Io(format!("reading {}", path.display()), e))
}

/// Fails unless `path` is unreadable by group and others.
pub fn check_private(path: &Path) -> Result<(), SecretError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| SecretError::Io(format!("reading {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed(path.display().to_string(), mode));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_exposure_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keys/x.key");
        create(&p, b"secret").expect("create");
        assert_eq!(read(&p).expect("read"), b"secret");
        assert!(create(&p, b"other").is_err(), "never overwrites");
        let dmode = std::fs::metadata(p.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(read(&p), Err(SecretError::Exposed(..))));
    }
}
