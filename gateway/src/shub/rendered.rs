//! Rendered `GET /api/container/<c>/<n>:<t>` bodies of public tags.
//!
//! Every `apptainer pull shub://` and every sregistry client asks this route first, so a
//! popular tag is asked again and again for the same answer. The body depends only on the head
//! manifest's encoding and on the base URL the client reached the gateway at, so an entry is
//! keyed by reference and base URL and is used only while the tag's head is still byte-for-byte
//! the manifest it was rendered from. A changed head (new push, tombstone) misses and re-renders.
//! Private tags are never kept: their `image` URL carries a signed, expiring secret.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Entries kept; the map is emptied when it fills (hot tags come straight back).
const CAPACITY: usize = 4096;

struct Entry {
    manifest: Vec<u8>,
    body: Bytes,
}

/// The cache, one per gateway.
#[derive(Default)]
pub struct Rendered {
    map: Mutex<HashMap<(String, String), Entry>>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered").finish_non_exhaustive()
    }
}

impl Rendered {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body rendered for `reference` at `base` from exactly `manifest`, if kept.
    pub(super) fn get(&self, reference: &str, base: &str, manifest: &[u8]) -> Option<Bytes> {
        let map = self.map();
        let e = map.get(&(reference.to_owned(), base.to_owned()))?;
        (e.manifest == manifest).then(|| e.body.clone())
    }

    /// Keeps `body` as the rendering of `manifest` for `reference` at `base`.
    pub(super) fn put(&self, reference: String, base: String, manifest: Vec<u8>, body: Bytes) {
        let mut map = self.map();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert((reference, base), Entry { manifest, body });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_the_manifest_it_was_rendered_from() {
        let r = Rendered::default();
        r.put(
            "a/b:c".into(),
            "http://h".into(),
            b"m1".to_vec(),
            Bytes::from_static(b"{1}"),
        );
        assert_eq!(
            r.get("a/b:c", "http://h", b"m1").as_deref(),
            Some(&b"{1}"[..])
        );
        assert!(
            r.get("a/b:c", "http://h", b"m2").is_none(),
            "a changed head must miss"
        );
        assert!(
            r.get("a/b:c", "https://h", b"m1").is_none(),
            "another base URL must miss"
        );
        for i in 0..CAPACITY + 1 {
            r.put(format!("x/y:{i}"), "b".into(), Vec::new(), Bytes::new());
        }
        assert!(r.map().len() <= CAPACITY);
    }
}
