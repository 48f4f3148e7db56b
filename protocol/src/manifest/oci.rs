//! The OCI record a signed manifest carries when its image was pushed through the OCI
//! distribution API: the exact bytes of the client's OCI manifest and of its config blob, kept
//! under one key of [`Metadata::extra`](super::Metadata::extra) so any member can serve them
//! byte-identical. Older nodes keep unknown metadata keys verbatim, so they still verify and
//! relay a manifest that has one.
//!
//! Encoding: the value under [`OCI_KEY`] is a DAG-CBOR map `{"config": bytes, "manifest":
//! bytes}`. It must not hold anything another node could not rebuild from these bytes alone.

use super::cbor::{self, CborError, Decoder, Entry};

/// The metadata key under which the record lives.
pub const OCI_KEY: &str = "oci";

/// The client's OCI manifest and config blob, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRecord {
    /// The OCI image manifest as the client pushed it.
    pub manifest: Vec<u8>,
    /// The config blob it references.
    pub config: Vec<u8>,
}

impl OciRecord {
    /// The canonical DAG-CBOR value to store under [`OCI_KEY`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.manifest.len() + self.config.len() + 32);
        let config = |o: &mut Vec<u8>| cbor::bytes(o, &self.config);
        let manifest = |o: &mut Vec<u8>| cbor::bytes(o, &self.manifest);
        let mut entries: Vec<Entry<'_>> = vec![("config", &config), ("manifest", &manifest)];
        cbor::map(&mut out, &mut entries);
        out
    }

    /// Reads the value stored under [`OCI_KEY`].
    pub fn decode(raw: &[u8]) -> Result<Self, CborError> {
        let mut d = Decoder::new(raw);
        let mut keys = d.map("oci", 2)?;
        let (mut config, mut manifest) = (None, None);
        while let Some(k) = d.key(&mut keys)? {
            match k {
                "config" => config = Some(d.bytes("oci.config")?.to_vec()),
                "manifest" => manifest = Some(d.bytes("oci.manifest")?.to_vec()),
                _ => return Err(CborError::Malformed("unknown key in the oci record")),
            }
        }
        d.finish()?;
        Ok(Self {
            manifest: cbor::required(manifest, "oci.manifest")?,
            config: cbor::required(config, "oci.config")?,
        })
    }

    /// The record in `metadata`, if it has a well-formed one.
    pub fn of(metadata: &super::Metadata) -> Option<Self> {
        Self::decode(metadata.extra.get(OCI_KEY)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_accepted_as_extra_metadata() {
        let r = OciRecord {
            manifest: br#"{"schemaVersion":2}"#.to_vec(),
            config: b"{}".to_vec(),
        };
        let raw = r.encode();
        assert_eq!(OciRecord::decode(&raw), Ok(r.clone()));
        let mut m = super::super::Metadata::default();
        m.extra.insert(OCI_KEY.into(), raw);
        assert_eq!(OciRecord::of(&m), Some(r));
    }

    /// What an older member does with a manifest carrying the record: decode (keeping the
    /// unknown key verbatim), verify, and re-encode to the same bytes and CID.
    #[test]
    fn a_signed_manifest_with_the_record_survives_decode_and_reencode() {
        use super::super::{MEDIA_TYPE_SIF, Manifest, UnsignedManifest};
        use ed25519_dalek::SigningKey;
        let mut body = UnsignedManifest {
            federation: "bafyfed".into(),
            collection: "lab-a".into(),
            name: "app".into(),
            tag: "v1".into(),
            root: Some(crate::cid::cid_for(crate::cid::RAW, b"sif")),
            size: 3,
            sha256: [1; 32],
            media_type: MEDIA_TYPE_SIF.into(),
            created: 1_700_000_000,
            seq: 1,
            pushed_by: "alice".into(),
            ..UnsignedManifest::default()
        };
        let rec = OciRecord {
            manifest: br#"{"schemaVersion":2, "layers":[]}"#.to_vec(),
            config: b"{}".to_vec(),
        };
        body.metadata.extra.insert(OCI_KEY.into(), rec.encode());
        let m = body.sign(&SigningKey::from_bytes(&[1; 32])).expect("sign");
        let bytes = m.encode();
        let back = Manifest::decode(&bytes).expect("decode");
        back.verify_signature().expect("signature");
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.cid(), m.cid());
        assert_eq!(OciRecord::of(&back.body.metadata), Some(rec));
    }
}
