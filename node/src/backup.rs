//! The cold backup: what a node cannot get back from the federation — its keys, its config,
//! its manifest and roster log, and its users' tokens — in one tar stream, and the restore that
//! turns it into a data directory again.
//!
//! Blobs are left out on purpose: replication is the live backup of content, and a restored
//! node fetches what placement gives it (`shubnet car export` covers content offline). The
//! index is left out because it is derived: the restored node rebuilds it from `log/` and
//! re-verifies every entry. The archive holds secret keys, so it is written 0600 and the admin
//! key inside it is the one thing an operator must keep offline.

use crate::paths::DataDir;
use crate::tokens::TokenStore;
use crate::tokens::backup::AccountsExport;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The archive's format marker, its first entry.
pub const FORMAT: &str = "shubnet-backup-v1\n";
const FORMAT_ENTRY: &str = "FORMAT";
const ACCOUNTS_ENTRY: &str = "accounts.json";

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The archive is not a shubnet backup, or is damaged.
    #[error("not a usable shubnet backup: {0}")]
    Bad(String),
    /// The target already holds a node.
    #[error(
        "{0} already holds node keys; restore into an empty data directory (move the old one away first)"
    )]
    NotEmpty(String),
    /// The token store failed.
    #[error("tokens: {0}")]
    Tokens(#[from] crate::tokens::TokenStoreError),
    /// A restored file could not be written privately.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The accounts database could not be opened.
    #[error("accounts database: {0}")]
    Db(#[from] sled::Error),
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |e| BackupError::Io(what, e)
}

/// What a backup or restore covered.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Files from `keys/`.
    pub keys: usize,
    /// Files from `log/`.
    pub log_entries: usize,
    /// Token and collection records.
    pub accounts: usize,
    /// Whether `config.toml` was included.
    pub config: bool,
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    mode: u32,
) -> Result<()> {
    let data = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    append_bytes(tar, name, &data, mode)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(crate::clock::unix_now());
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .map_err(io(format!("writing {name} to the backup")))
}

/// Files under `root` (recursively), as paths relative to it, sorted.
fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::Io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let kind = entry
                .file_type()
                .map_err(io(format!("reading {}", entry.path().display())))?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() && !name.to_string_lossy().ends_with(".tmp") {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the backup of `dir` (keys, config, log, and the records of `tokens`) to `out`.
pub fn write<W: Write>(dir: &DataDir, tokens: &TokenStore, out: W) -> Result<Summary> {
    let mut tar = tar::Builder::new(out);
    let mut s = Summary::default();
    append_bytes(&mut tar, FORMAT_ENTRY, FORMAT.as_bytes(), 0o600)?;
    for rel in files_under(&dir.keys())? {
        let name = format!("keys/{}", rel.display());
        append_file(&mut tar, &dir.keys().join(&rel), &name, 0o600)?;
        s.keys += 1;
    }
    if dir.config().is_file() {
        append_file(&mut tar, &dir.config(), "config.toml", 0o600)?;
        s.config = true;
    }
    for rel in files_under(&dir.log())? {
        let name = format!("log/{}", rel.display());
        append_file(&mut tar, &dir.log().join(&rel), &name, 0o600)?;
        s.log_entries += 1;
    }
    let accounts = tokens.export_raw()?;
    s.accounts = accounts.tokens.len() + accounts.collections.len();
    let json = serde_json::to_vec(&accounts)
        .map_err(|e| BackupError::Bad(format!("encoding accounts: {e}")))?;
    append_bytes(&mut tar, ACCOUNTS_ENTRY, &json, 0o600)?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("finishing the backup"))?;
    Ok(s)
}

/// The archive path `name` as a safe relative path under one of the allowed roots, or `None`.
fn safe_path(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let first = out.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "keys" | "log" => (out.components().count() >= 2).then_some(out),
        "config.toml" | "FORMAT" | "accounts.json" => {
            (out.components().count() == 1).then_some(out)
        }
        _ => None,
    }
}

/// Restores a backup into `dir`, which must not hold node keys yet. Files are written
/// temp → fsync → rename, keys 0600 and directories 0700; nothing outside `dir` is touched.
pub fn restore<R: Read>(archive: R, dir: &DataDir) -> Result<Summary> {
    let keys_dir = dir.keys();
    if std::fs::read_dir(&keys_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::NotEmpty(dir.root().display().to_string()));
    }
    std::fs::create_dir_all(dir.root())
        .map_err(io(format!("creating {}", dir.root().display())))?;
    set_mode(dir.root(), 0o700)?;
    let mut tar = tar::Archive::new(archive);
    let mut s = Summary::default();
    let mut saw_format = false;
    let mut accounts: Option<AccountsExport> = None;
    for entry in tar.entries().map_err(io("reading the backup"))? {
        let mut entry = entry.map_err(io("reading the backup"))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Bad(
                "it holds something other than files".into(),
            ));
        }
        let raw = entry
            .path()
            .map_err(io("reading an entry name"))?
            .into_owned();
        let rel = safe_path(&raw)
            .ok_or_else(|| BackupError::Bad(format!("unexpected entry {}", raw.display())))?;
        let size = entry.header().size().map_err(io("reading an entry size"))?;
        if size > 64 * 1024 * 1024 {
            return Err(BackupError::Bad(format!(
                "{} is implausibly large",
                rel.display()
            )));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .read_to_end(&mut data)
            .map_err(io(format!("reading {}", rel.display())))?;
        match rel.to_str() {
            Some("FORMAT") => {
                if data != FORMAT.as_bytes() {
                    return Err(BackupError::Bad("unknown backup format".into()));
                }
                saw_format = true;
            }
            Some("accounts.json") => {
                accounts = Some(
                    serde_json::from_slice(&data)
                        .map_err(|e| BackupError::Bad(format!("accounts.json: {e}")))?,
                );
            }
            _ => {
                if !saw_format {
                    return Err(BackupError::Bad("it does not start with its format".into()));
                }
                write_file(&dir.root().join(&rel), &data)?;
                if rel.starts_with("keys") {
                    s.keys += 1;
                } else if rel.starts_with("log") {
                    s.log_entries += 1;
                } else {
                    s.config = true;
                }
            }
        }
    }
    if !saw_format || s.keys == 0 {
        return Err(BackupError::Bad("it holds no node keys".into()));
    }
    if let Some(a) = accounts {
        let path = dir.root().join("accounts");
        let db = sled::Config::new().path(&path).open()?;
        set_mode(&path, 0o700)?;
        let store = TokenStore::from_parts(
            db.open_tree(crate::tokens::TOKENS)?,
            db.open_tree(crate::tokens::COLLECTIONS)?,
            crate::tokens::crypto::SealKey::from_bytes([0; 32]),
        );
        s.accounts = store.import_raw(&a)?;
        db.flush()?;
    }
    Ok(s)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("setting the mode of {}", path.display())))
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    // secrets::create makes the parent 0700 and the file 0600, and syncs it; it refuses an
    // existing file, so a temp file left by an interrupted restore goes first.
    let tmp = path.with_extension("restore.tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BackupError::Io(format!("removing {}", tmp.display()), e)),
    }
    crate::secrets::create(&tmp, data)?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming into {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_strange_entries_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "keys",
            "blobs/x",
            "index/db",
            "log/../../x",
            "config.toml/x",
        ] {
            assert!(safe_path(Path::new(bad)).is_none(), "{bad}");
        }
        for good in ["keys/node.key", "log/abc", "config.toml", "./keys/a"] {
            assert!(safe_path(Path::new(good)).is_some(), "{good}");
        }
    }

    #[test]
    fn restore_refuses_a_non_empty_target_and_garbage() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::new(tmp.path().join("d"));
        std::fs::create_dir_all(dir.keys()).expect("mkdir");
        std::fs::write(dir.keys().join("node.key"), "x").expect("write");
        let err = restore(&b""[..], &dir).expect_err("not empty");
        assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
        let fresh = DataDir::new(tmp.path().join("e"));
        let err = restore(&b"not a tar at all, not at all"[..], &fresh).expect_err("garbage");
        assert!(
            matches!(err, BackupError::Bad(_) | BackupError::Io(..)),
            "{err}"
        );
        assert!(!fresh.keys().exists(), "nothing written from garbage");
    }
}
