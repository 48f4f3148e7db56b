//! The cold backup: what a node cannot get back from the federation — its keys, its config,
//! its manifest and roster log, and its users' tokens — in one tar stream, and the restore that
//! turns it into a data directory again.
//!
//! Blobs are left out on purpose: replication is the live backup of content, and a restored
//! node fetches what placement gives it (`shubnet car export` covers content offline). The
//! index is left out because it is derived: the restored node rebuilds it from `log/` and
//! re-verifies every entry. The archive holds secret keys, so it is written 0600 and the admin
//! key inside it is the one thing an operator must keep offline.
//!
//! Owns the archive format. Must not write the archive file itself (the CLI does) or open the
//! index; restored files go through [`crate::secrets`], records through the token store.

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

/// Where an archive entry belongs.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// The format marker.
    Format,
    /// The token and collection records.
    Accounts,
    /// `config.toml`.
    Config,
    /// A file under `keys/`, by its path below it.
    Key(PathBuf),
    /// A file under `log/`, by its path below it.
    Log(PathBuf),
}

/// The archive path `name` as one of the entries a backup holds, or `None` (absolute paths,
/// `..`, and anything else are refused).
fn safe_path(name: &Path) -> Option<Entry> {
    let mut parts = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let (first, rest) = parts.split_first()?;
    let below = || (!rest.is_empty()).then(|| rest.iter().collect::<PathBuf>());
    match (first.to_str()?, rest.is_empty()) {
        ("keys", false) => below().map(Entry::Key),
        ("log", false) => below().map(Entry::Log),
        ("config.toml", true) => Some(Entry::Config),
        ("FORMAT", true) => Some(Entry::Format),
        ("accounts.json", true) => Some(Entry::Accounts),
        _ => None,
    }
}

/// Restores a backup into `dir`, which must not hold node keys yet. Files are written durably
/// ([`crate::secrets::replace`]), 0600 in 0700 directories; nothing outside `dir` is touched.
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
        let entry_kind = safe_path(&raw)
            .ok_or_else(|| BackupError::Bad(format!("unexpected entry {}", raw.display())))?;
        let size = entry.header().size().map_err(io("reading an entry size"))?;
        if size > 64 * 1024 * 1024 {
            return Err(BackupError::Bad(format!(
                "{} is implausibly large",
                raw.display()
            )));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .read_to_end(&mut data)
            .map_err(io(format!("reading {}", raw.display())))?;
        let target = match entry_kind {
            Entry::Format => {
                if data != FORMAT.as_bytes() {
                    return Err(BackupError::Bad("unknown backup format".into()));
                }
                saw_format = true;
                continue;
            }
            Entry::Accounts => {
                accounts = Some(
                    serde_json::from_slice(&data)
                        .map_err(|e| BackupError::Bad(format!("accounts.json: {e}")))?,
                );
                continue;
            }
            Entry::Key(rel) => {
                s.keys += 1;
                dir.keys().join(rel)
            }
            Entry::Log(rel) => {
                s.log_entries += 1;
                dir.log().join(rel)
            }
            Entry::Config => {
                s.config = true;
                dir.config()
            }
        };
        if !saw_format {
            return Err(BackupError::Bad("it does not start with its format".into()));
        }
        crate::secrets::replace(&target, &data)?;
    }
    if !saw_format || s.keys == 0 {
        return Err(BackupError::Bad("it holds no node keys".into()));
    }
    if let Some(a) = accounts {
        let path = dir.accounts();
        let db = crate::db::Accounts::open(&path)?;
        set_mode(&path, 0o700)?;
        // Records are imported as stored (sealed); the key only matters for opening them.
        let store = TokenStore::with_key(&db, crate::tokens::crypto::SealKey::from_bytes([0; 32]))?;
        s.accounts = store.import_raw(&a)?;
        db.flush()?;
    }
    Ok(s)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("setting the mode of {}", path.display())))
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
