//! `log/`: the append-only record of accepted rosters and manifests, one file per CID.
//!
//! Owns the files of `log/`. Must not index anything (the registry does, after a write here
//! returns) or write anywhere else.

use crate::durable::{self, DurableError, Mode};
use std::path::Path;

/// Writes `name` in `log/` durably. An existing file with the same name holds the same bytes
/// (names are CIDs) and is left alone.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DurableError> {
    let dest = dir.join(name);
    if dest.exists() {
        return Ok(());
    }
    durable::replace(&dest, bytes, Mode::Shared)
}

/// [`write`] for many files at once, with one round of fsyncs (see [`durable::replace_all`]):
/// a batch of manifests from sync (or a bulk import) costs one disk flush instead of two per
/// file.
pub fn write_many(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), DurableError> {
    let missing: Vec<(std::path::PathBuf, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (dir.join(name), bytes.as_slice()))
        .filter(|(dest, _)| !dest.exists())
        .collect();
    durable::replace_all(&missing, Mode::Shared)
}

/// Encoded rosters and encoded manifests, as read from `log/`.
pub type LogContents = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Every roster and manifest encoding in `log/`, unverified.
pub fn read_all(dir: &Path) -> std::io::Result<LogContents> {
    let mut rosters = Vec::new();
    let mut manifests = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".roster") {
            rosters.push(std::fs::read(e.path())?);
        } else if name.ends_with(".manifest") {
            manifests.push(std::fs::read(e.path())?);
        }
    }
    Ok((rosters, manifests))
}
