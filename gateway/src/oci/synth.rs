//! Digests, and the OCI manifest every member serves for a signed shubnet manifest: the
//! client's own bytes when the image was pushed through the OCI API (the record in the signed
//! metadata), otherwise a manifest synthesized from the signed fields alone, so every member
//! produces the same bytes and digest for the same signed manifest.
//!
//! It must not consult anything but the signed manifest: no clock, no node settings.

use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};
use shubnet_protocol::manifest::oci::OciRecord;
use shubnet_protocol::manifest::{MEDIA_TYPE_SIF, Manifest};

/// Media type of an OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of a Docker v2 schema 2 manifest, accepted as the same shape.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Config media type of a SIF artifact (Apptainer's ORAS client).
pub(crate) const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";
/// The legacy, misspelt layer type older Apptainer pushes carry.
pub(crate) const SIF_LAYER_LEGACY: &str = "appliciation/vnd.sylabs.sif.layer.tar";
/// The config body of a SIF artifact.
pub(crate) const EMPTY_CONFIG: &[u8] = b"{}";

/// A content digest: `sha256:<64 hex>` or `sha512:<128 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Digest {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl Digest {
    /// Parses a digest, refusing other algorithms and anything but lowercase hex.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (alg, hexpart) = s.split_once(':')?;
        if hexpart.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        match alg {
            "sha256" => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hexpart, &mut out).ok()?;
                Some(Digest::Sha256(out))
            }
            "sha512" => {
                let mut out = [0u8; 64];
                hex::decode_to_slice(hexpart, &mut out).ok()?;
                Some(Digest::Sha512(Box::new(out)))
            }
            _ => None,
        }
    }

    /// The same algorithm's digest of `bytes`.
    pub(crate) fn of_same_kind(&self, bytes: &[u8]) -> Digest {
        match self {
            Digest::Sha256(_) => Digest::Sha256(Sha256::digest(bytes).into()),
            Digest::Sha512(_) => Digest::Sha512(Box::new(Sha512::digest(bytes).into())),
        }
    }

    pub(crate) fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::Sha256(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Digest::Sha256(d) => write!(f, "sha256:{}", hex::encode(d)),
            Digest::Sha512(d) => write!(f, "sha512:{}", hex::encode(&d[..])),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Title>,
}

#[derive(Serialize)]
struct Title {
    #[serde(rename = "org.opencontainers.image.title")]
    title: String,
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "org.opencontainers.image.created")]
    created: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: [Descriptor<'a>; 1],
    annotations: Created,
}

/// The OCI manifest served for `m` (not a tombstone): the pushed bytes, or the synthesized
/// ones.
pub(crate) fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    match OciRecord::of(&m.body.metadata) {
        Some(r) => r.manifest,
        None => synthesize(m),
    }
}

/// The config blob `m`'s OCI manifest references.
pub(crate) fn config_bytes(m: &Manifest) -> Vec<u8> {
    match OciRecord::of(&m.body.metadata) {
        Some(r) => r.config,
        None => EMPTY_CONFIG.to_vec(),
    }
}

/// A manifest built from the signed fields only, in Apptainer's SIF artifact shape.
pub(crate) fn synthesize(m: &Manifest) -> Vec<u8> {
    let b = &m.body;
    let layer_type = if b.media_type.is_empty() {
        MEDIA_TYPE_SIF
    } else {
        &b.media_type
    };
    let doc = ImageManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: Descriptor {
            media_type: SIF_CONFIG,
            digest: Digest::sha256_of(EMPTY_CONFIG).to_string(),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        layers: [Descriptor {
            media_type: layer_type,
            digest: Digest::Sha256(b.sha256).to_string(),
            size: b.size,
            annotations: Some(Title {
                title: format!("{}_{}.sif", b.name, b.tag),
            }),
        }],
        annotations: Created {
            created: shubnet_protocol::time::rfc3339(b.created),
        },
    };
    // Serializing these plain structs cannot fail; an empty body would fail every digest check.
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_and_print() {
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(Digest::parse(d).map(|x| x.to_string()).as_deref(), Some(d));
        assert_eq!(Digest::sha256_of(EMPTY_CONFIG).to_string(), d);
        assert!(Digest::parse("md5:00").is_none());
        assert!(Digest::parse(&d.to_uppercase()).is_none());
        let s512 = Digest::Sha512(Box::new([7; 64])).to_string();
        assert_eq!(Digest::parse(&s512).map(|x| x.to_string()), Some(s512));
    }
}
