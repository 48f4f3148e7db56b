//! Library uploads waiting for their tag call, on disk, and the sweep that expires them.
//!
//! `apptainer push` to the library API uploads the bytes first and sets the tag in a later
//! request. Between the two, the content is stored and pinned but no manifest references it.
//! Each such upload is one small file `DATA_DIR/uploads/<image id>` holding the root CID, the
//! size and when it arrived, so
//! - a tag call that comes after a restart still finds the upload, and
//! - content that no tag ever claims is unpinned and removed after the expiry
//!   (`[http] library_upload_expiry_secs`) instead of staying pinned forever.
//!
//! A tag call removes the record (the manifest now keeps the content). The sweep never unpins
//! content a manifest references, whatever its records say.

use crate::paths::DataDir;
use shubnet_protocol::Cid;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The records under `DATA_DIR/uploads/`.
#[derive(Debug, Clone)]
pub struct PendingUploads {
    dir: PathBuf,
}

/// One record: what was uploaded, and when (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Root CID of the stored content.
    pub root: Cid,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored.
    pub at: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keys are library image ids (`collection_name_sha256hex`); anything else could name a path
/// outside the directory.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn invalid(key: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid upload key {key:?}"),
    )
}

impl PendingUploads {
    /// The records of the node in `dir`.
    pub fn new(dir: &DataDir) -> Self {
        Self { dir: dir.uploads() }
    }

    /// Records (or re-records, with a fresh time) the upload `key`: temp file, fsync, rename.
    pub fn record(&self, key: &str, root: &Cid, size: u64) -> io::Result<()> {
        if !valid_key(key) {
            return Err(invalid(key));
        }
        std::fs::create_dir_all(&self.dir)?;
        let line = format!("{root} {size} {}\n", now());
        crate::durable::replace(
            &self.dir.join(key),
            line.as_bytes(),
            crate::durable::Mode::Shared,
        )
        .map_err(|e| e.source)
    }

    /// The record of `key`, if any.
    pub fn recall(&self, key: &str) -> io::Result<Option<Pending>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match std::fs::read_to_string(self.dir.join(key)) {
            Ok(text) => Ok(parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the record of `key` (no error if there is none).
    pub fn forget(&self, key: &str) -> io::Result<()> {
        if !valid_key(key) {
            return Ok(());
        }
        match std::fs::remove_file(self.dir.join(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Records older than `expiry` (and unreadable ones, which can only be dropped).
    pub fn expired(&self, expiry: Duration) -> io::Result<Vec<(String, Option<Pending>)>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let cutoff = now().saturating_sub(expiry.as_secs());
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry?;
            let Some(key) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_key(&key) {
                // Leftover temp files of an interrupted record start with a dot.
                continue;
            }
            let rec = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| parse(&t));
            // Strictly older: `at` is truncated to the second, so this is more than `expiry`
            // after the upload, never less (the gateway's cache forgets at `expiry` exactly).
            if rec.is_none_or(|r| r.at < cutoff) {
                out.push((key, rec));
            }
        }
        Ok(out)
    }
}

fn parse(text: &str) -> Option<Pending> {
    let mut it = text.split_whitespace();
    let root = shubnet_protocol::cid::parse(it.next()?).ok()?;
    let size = it.next()?.parse().ok()?;
    let at = it.next()?.parse().ok()?;
    Some(Pending { root, size, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_expire() {
        let tmp = tempfile::tempdir().expect("tmp");
        let up = PendingUploads::new(&DataDir::new(tmp.path()));
        let root = shubnet_protocol::cid::cid_for(shubnet_protocol::cid::RAW, b"x");
        assert_eq!(up.recall("lab-a_tool_00").expect("recall"), None);
        up.record("lab-a_tool_00", &root, 7).expect("record");
        let got = up
            .recall("lab-a_tool_00")
            .expect("recall")
            .expect("a record");
        assert_eq!((got.root, got.size), (root, 7));
        assert!(
            up.expired(Duration::from_secs(3600))
                .expect("list")
                .is_empty()
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(up.expired(Duration::ZERO).expect("list").len(), 1);
        up.forget("lab-a_tool_00").expect("forget");
        assert_eq!(up.recall("lab-a_tool_00").expect("recall"), None);
        for bad in ["../x", "", ".hidden", "a/b"] {
            assert!(up.record(bad, &root, 1).is_err(), "{bad:?}");
        }
    }
}
