//! The signed image manifest: what a tag (`collection/name:tag`) points at.
//!
//! Goals: one canonical byte form per manifest, so a manifest is an IPFS block (CIDv1,
//! dag-cbor, sha2-256) whose CID names it everywhere; a signature that covers every field; and
//! the rules that decide whether a manifest may become a tag's head, each failing with its own
//! [`ManifestError`] variant. Non-goals: fetching rosters or content, storing anything, clocks
//! (callers pass `created`), key generation (callers pass a [`SigningKey`]).
//!
//! Spec: shared/DESIGN.md, "Data model → Manifest"; DAG-CBOR
//! <https://ipld.io/specs/codecs/dag-cbor/spec/>.
//!
//! # Encoding
//!
//! A DAG-CBOR map, keys in canonical order (shorter first, then bytewise). Absent optional
//! fields are left out, never written as `null`:
//!
//! | key          | type            | field                                                    |
//! |--------------|-----------------|----------------------------------------------------------|
//! | `v`          | uint            | [`FORMAT_VERSION`]                                       |
//! | `seq`        | uint            | [`UnsignedManifest::seq`]                                |
//! | `sig`        | bytes(64)       | [`Manifest::signature`] (absent from the signed payload) |
//! | `tag`        | text            | tag                                                      |
//! | `name`       | text            | container name                                           |
//! | `prev`       | CID, optional   | previous manifest of this tag                            |
//! | `root`       | CID, optional   | root of the image's UnixFS DAG; absent for a tombstone   |
//! | `size`       | uint            | file size in bytes                                       |
//! | `frozen`     | bool            | the tag may never move again                             |
//! | `sha256`     | bytes(32)       | whole-file sha256                                        |
//! | `created`    | uint            | unix seconds, as the publisher's clock saw it            |
//! | `metadata`   | map             | [`Metadata`]                                             |
//! | `publisher`  | bytes(32)       | ed25519 public key of the publishing member              |
//! | `pushed_by`  | text            | the user who pushed, on the publishing node              |
//! | `tombstone`  | bool            | this manifest deletes the tag                            |
//! | `collection` | text            | collection                                               |
//! | `federation` | text            | federation id (CID of roster version 1)                  |
//! | `media_type` | text            | media type of the content                                |
//!
//! [`Manifest::decode`] refuses anything but this exact form: unknown keys, another format
//! version, non-canonical CBOR, and inputs over [`MAX_MANIFEST_SIZE`]; it decodes, re-encodes and
//! compares bytes, so every accepted manifest has exactly one encoding and one CID.
//!
//! # Extending the metadata
//!
//! SIF metadata will grow. [`Metadata`] has typed fields for the keys this version knows and
//! keeps every other key in [`Metadata::extra`] as its raw canonical DAG-CBOR. Adding a typed
//! field later (an optional key, left out when empty) therefore breaks nothing: old manifests
//! lack the key and still re-encode to the same bytes, so their CIDs and signatures stay valid;
//! old nodes keep a new manifest's unknown metadata keys verbatim, so they still verify, store and
//! relay it. Changes outside `metadata` need a new [`FORMAT_VERSION`], which old nodes refuse by
//! name ([`CborError::UnsupportedVersion`]).
//!
//! # Signature and rules
//!
//! ed25519 (RFC 8032, strict verification) over [`SIGNATURE_DOMAIN`] followed by the canonical
//! encoding of every field except `sig`. Signatures are deterministic, so signing the same
//! fields with the same key twice yields the same manifest and CID.
//!
//! Whether a manifest may exist: [`Manifest::verify_against`] a roster (or [`Verifier`] for
//! many manifests). Whether it may become its tag's head: [`check_succession`]. What a tag
//! resolves to given all its valid manifests: [`resolve`].

pub(crate) mod cbor;
pub mod oci;
#[cfg(test)]
mod tests;

use crate::cid::{DAG_CBOR, DAG_PB, RAW, SHA2_256, cid_for};
use crate::reference::{self, Reference, ReferenceError};
use crate::roster::{Member, Roster};
use cbor::{Decoder, Entry, required};
use cid::Cid;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

pub use cbor::CborError;

/// The manifest format this code writes and the only one it reads.
pub const FORMAT_VERSION: u64 = 1;
/// Largest encoded manifest accepted or produced. Generous for a definition file, runscript and
/// environment; callers truncate longer metadata before signing.
pub const MAX_MANIFEST_SIZE: usize = 64 * 1024;
/// What the signature covers first, so a manifest signature can never be replayed as a
/// signature over anything else.
pub const SIGNATURE_DOMAIN: &[u8] = b"shubnet-manifest-v1\0";
/// Media type of a SIF image (the one sylabs and ORAS use for SIF in OCI registries).
pub const MEDIA_TYPE_SIF: &str = "application/vnd.sylabs.sif.layer.v1.sif";
/// Most labels a manifest may carry.
pub const MAX_LABELS: u64 = 1024;
/// Longest federation id accepted (a CIDv1 in base32 is 59 characters).
pub const MAX_FEDERATION_LEN: usize = 128;
/// Longest `pushed_by` user name.
pub const MAX_USER_LEN: usize = 128;
/// Longest media type (RFC 6838: 127 characters for each half; one half is plenty here).
pub const MAX_MEDIA_TYPE_LEN: usize = 127;

/// The metadata keys this version reads into typed fields.
const KNOWN_METADATA: [&str; 5] = ["arch", "labels", "deffile", "runscript", "environment"];

/// Why a manifest could not be decoded, built, or accepted. Each rule has its own variant.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The bytes are not a canonical manifest.
    #[error("manifest is not canonical DAG-CBOR: {0}")]
    Decode(#[from] CborError),
    /// The collection, name or tag break the naming rules clients impose.
    #[error("manifest reference is invalid: {0}")]
    Reference(#[from] ReferenceError),
    /// A field holds a value no valid manifest has.
    #[error("manifest field {field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// A tombstone names content.
    #[error("a tombstone has no root CID")]
    TombstoneWithRoot,
    /// A manifest that is not a tombstone names no content.
    #[error("a manifest that is not a tombstone needs a root CID")]
    MissingRoot,
    /// The encoded manifest would exceed [`MAX_MANIFEST_SIZE`].
    #[error("the manifest encodes to {0} bytes; at most {MAX_MANIFEST_SIZE} are allowed")]
    TooLarge(usize),
    /// The publisher key is not a valid ed25519 public key.
    #[error("the publisher key is not a valid ed25519 key")]
    BadPublisherKey,
    /// The signature does not verify: a field was changed after signing, or it was never signed
    /// by this key.
    #[error("the manifest signature does not verify")]
    BadSignature,
    /// The manifest belongs to another federation.
    #[error("the manifest is for federation {found}, not {expected}")]
    WrongFederation {
        /// This node's federation.
        expected: String,
        /// The manifest's.
        found: String,
    },
    /// The publisher key belongs to no roster member.
    #[error("the publisher key belongs to no member of the roster")]
    UnknownPublisher,
    /// The publishing member may not publish this collection.
    #[error("member {member} may not publish to collection {collection}")]
    OutsideNamespace {
        /// The collection.
        collection: String,
        /// The member's institution id.
        member: String,
    },
    /// The manifest is for another federation or tag than the head it would succeed.
    #[error("the manifest is for {new}, the head for {head}")]
    DifferentTag {
        /// The head's federation and tag.
        head: String,
        /// The new manifest's.
        new: String,
    },
    /// The manifest is the current head already: a no-op, not an attack.
    #[error("the manifest is already the head of its tag")]
    AlreadyKnown,
    /// An older or replayed manifest.
    #[error("seq {new} is not above the head's seq {head}")]
    SeqNotIncreasing {
        /// The head's seq.
        head: u64,
        /// The new manifest's.
        new: u64,
    },
    /// A different manifest with the head's seq: two pushes raced, or a publisher equivocated.
    #[error("another manifest already has seq {seq} for this tag")]
    Conflict {
        /// The contested seq.
        seq: u64,
    },
    /// The head is frozen; it can be neither replaced nor deleted.
    #[error("tag {tag} is frozen and cannot move")]
    FrozenTag {
        /// `collection/name:tag`.
        tag: String,
    },
    /// `prev` does not name the current head. CIDs are given as text; the manifest's own `prev`
    /// is at hand for a caller that wants to fetch it.
    #[error("prev is {found:?}, but the head is {expected:?}")]
    WrongPrev {
        /// The head's CID (`None` when the tag has no head).
        expected: Option<String>,
        /// The manifest's `prev`.
        found: Option<String>,
    },
}

/// The summary of an image's SIF metadata that a manifest carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Architecture from the SIF header (`amd64`, `arm64`…).
    pub arch: Option<String>,
    /// Image labels (`org.label-schema.*`, `%labels`); left out of the encoding when empty.
    pub labels: BTreeMap<String, String>,
    /// The definition file the image was built from.
    pub deffile: Option<String>,
    /// The runscript.
    pub runscript: Option<String>,
    /// The environment script.
    pub environment: Option<String>,
    /// Metadata keys this version does not know, each kept as the canonical DAG-CBOR encoding of
    /// its value so the manifest re-encodes byte for byte. Keys may not be one of the known keys.
    pub extra: BTreeMap<String, Vec<u8>>,
}

/// Every field of a manifest except the publisher key and signature, which
/// [`UnsignedManifest::sign`] adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsignedManifest {
    /// The federation id: the CID of roster version 1, as text.
    pub federation: String,
    /// The collection.
    pub collection: String,
    /// The container name.
    pub name: String,
    /// The tag.
    pub tag: String,
    /// Root CID of the image's UnixFS DAG (raw or dag-pb, sha2-256); `None` for a tombstone.
    pub root: Option<Cid>,
    /// File size in bytes; 0 for a tombstone.
    pub size: u64,
    /// sha256 of the whole file; all zero for a tombstone.
    pub sha256: [u8; 32],
    /// Media type of the content, e.g. [`MEDIA_TYPE_SIF`]; may be empty for a tombstone.
    pub media_type: String,
    /// The metadata summary.
    pub metadata: Metadata,
    /// Unix seconds when the publisher signed.
    pub created: u64,
    /// Strictly increasing per tag.
    pub seq: u64,
    /// CID of the manifest this one succeeds for the same tag; `None` for a tag's first.
    pub prev: Option<Cid>,
    /// When true the tag can never move again.
    pub frozen: bool,
    /// When true this manifest deletes the tag.
    pub tombstone: bool,
    /// The user who pushed, as the publishing node knows them.
    pub pushed_by: String,
}

/// A signed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The signed fields.
    pub body: UnsignedManifest,
    /// ed25519 public key of the publisher.
    pub publisher: [u8; 32],
    /// ed25519 signature over [`SIGNATURE_DOMAIN`] and the encoding of `body` and `publisher`.
    pub signature: [u8; 64],
}

impl UnsignedManifest {
    /// The reference this manifest is for (without a digest).
    pub fn reference(&self) -> Reference {
        Reference {
            collection: self.collection.clone(),
            name: self.name.clone(),
            tag: self.tag.clone(),
            digest: None,
        }
    }

    /// Checks the rules a manifest obeys regardless of roster and history.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |field, reason| Err(ManifestError::Invalid { field, reason });
        if self.federation.is_empty()
            || self.federation.len() > MAX_FEDERATION_LEN
            || !self.federation.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid("federation", "must be 1-128 printable ASCII characters");
        }
        reference::validate_collection(&self.collection)?;
        reference::validate_name(&self.name)?;
        reference::validate_tag(&self.tag)?;
        match (self.tombstone, &self.root) {
            (true, Some(_)) => return Err(ManifestError::TombstoneWithRoot),
            (false, None) => return Err(ManifestError::MissingRoot),
            (true, None) => {
                if self.size != 0 || self.sha256 != [0; 32] {
                    return invalid("size", "a tombstone has size 0 and an all-zero sha256");
                }
            }
            (false, Some(root)) => {
                if root.version() != cid::Version::V1
                    || root.hash().code() != SHA2_256
                    || !matches!(root.codec(), RAW | DAG_PB)
                {
                    return invalid("root", "must be a CIDv1 raw or dag-pb block with sha2-256");
                }
            }
        }
        if let Some(prev) = &self.prev
            && (prev.version() != cid::Version::V1
                || prev.hash().code() != SHA2_256
                || prev.codec() != DAG_CBOR)
        {
            return invalid("prev", "must be a CIDv1 dag-cbor block with sha2-256");
        }
        let media_ok = self.media_type.len() <= MAX_MEDIA_TYPE_LEN
            && self.media_type.bytes().all(|b| b.is_ascii_graphic())
            && (self
                .media_type
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'))
                || (self.tombstone && self.media_type.is_empty()));
        if !media_ok {
            return invalid("media_type", "must be type/subtype in printable ASCII");
        }
        if self.pushed_by.is_empty()
            || self.pushed_by.len() > MAX_USER_LEN
            || self.pushed_by.chars().any(char::is_control)
        {
            return invalid(
                "pushed_by",
                "must be 1-128 bytes without control characters",
            );
        }
        for (key, raw) in &self.metadata.extra {
            if key.is_empty() || KNOWN_METADATA.contains(&key.as_str()) {
                return invalid(
                    "metadata.extra",
                    "keys must be non-empty and not a known key",
                );
            }
            let mut d = Decoder::new(raw);
            if d.raw_value().and_then(|_| d.finish()).is_err() {
                return invalid(
                    "metadata.extra",
                    "values must be one canonical DAG-CBOR item",
                );
            }
        }
        Ok(())
    }

    /// Signs the manifest with the publisher's key, after checking [`Self::validate`] and the
    /// size cap.
    pub fn sign(self, key: &SigningKey) -> Result<Manifest, ManifestError> {
        self.validate()?;
        let publisher = key.verifying_key().to_bytes();
        let signature = key.sign(&signing_payload(&self, &publisher)).to_bytes();
        let m = Manifest {
            body: self,
            publisher,
            signature,
        };
        let len = m.encode().len();
        if len > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge(len));
        }
        Ok(m)
    }
}

fn signing_payload(body: &UnsignedManifest, publisher: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(SIGNATURE_DOMAIN);
    encode_into(&mut out, body, publisher, None);
    out
}

fn encode_into(
    out: &mut Vec<u8>,
    b: &UnsignedManifest,
    publisher: &[u8; 32],
    signature: Option<&[u8; 64]>,
) {
    let v = |o: &mut Vec<u8>| cbor::uint(o, FORMAT_VERSION);
    let seq = |o: &mut Vec<u8>| cbor::uint(o, b.seq);
    let sig = |o: &mut Vec<u8>| cbor::bytes(o, signature.map_or(&[][..], |s| &s[..]));
    let tag = |o: &mut Vec<u8>| cbor::text(o, &b.tag);
    let name = |o: &mut Vec<u8>| cbor::text(o, &b.name);
    let prev = |o: &mut Vec<u8>| b.prev.iter().for_each(|c| cbor::cid(o, c));
    let root = |o: &mut Vec<u8>| b.root.iter().for_each(|c| cbor::cid(o, c));
    let size = |o: &mut Vec<u8>| cbor::uint(o, b.size);
    let frozen = |o: &mut Vec<u8>| cbor::boolean(o, b.frozen);
    let sha256 = |o: &mut Vec<u8>| cbor::bytes(o, &b.sha256);
    let created = |o: &mut Vec<u8>| cbor::uint(o, b.created);
    let metadata = |o: &mut Vec<u8>| encode_metadata(o, &b.metadata);
    let publisher = |o: &mut Vec<u8>| cbor::bytes(o, publisher);
    let pushed_by = |o: &mut Vec<u8>| cbor::text(o, &b.pushed_by);
    let tombstone = |o: &mut Vec<u8>| cbor::boolean(o, b.tombstone);
    let collection = |o: &mut Vec<u8>| cbor::text(o, &b.collection);
    let federation = |o: &mut Vec<u8>| cbor::text(o, &b.federation);
    let media_type = |o: &mut Vec<u8>| cbor::text(o, &b.media_type);
    let mut entries: Vec<Entry<'_>> = vec![
        ("v", &v),
        ("seq", &seq),
        ("tag", &tag),
        ("name", &name),
        ("size", &size),
        ("frozen", &frozen),
        ("sha256", &sha256),
        ("created", &created),
        ("metadata", &metadata),
        ("publisher", &publisher),
        ("pushed_by", &pushed_by),
        ("tombstone", &tombstone),
        ("collection", &collection),
        ("federation", &federation),
        ("media_type", &media_type),
    ];
    if signature.is_some() {
        entries.push(("sig", &sig));
    }
    if b.prev.is_some() {
        entries.push(("prev", &prev));
    }
    if b.root.is_some() {
        entries.push(("root", &root));
    }
    cbor::map(out, &mut entries);
}

fn encode_metadata(out: &mut Vec<u8>, m: &Metadata) {
    let arch = |o: &mut Vec<u8>| opt_text(o, &m.arch);
    let deffile = |o: &mut Vec<u8>| opt_text(o, &m.deffile);
    let runscript = |o: &mut Vec<u8>| opt_text(o, &m.runscript);
    let environment = |o: &mut Vec<u8>| opt_text(o, &m.environment);
    let labels = |o: &mut Vec<u8>| {
        cbor::text_map(o, m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    };
    let extra: Vec<_> = m
        .extra
        .iter()
        .map(|(k, raw)| (k.as_str(), move |o: &mut Vec<u8>| o.extend_from_slice(raw)))
        .collect();
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(5 + extra.len());
    for (key, present, write) in [
        ("arch", m.arch.is_some(), &arch as &dyn Fn(&mut Vec<u8>)),
        ("labels", !m.labels.is_empty(), &labels),
        ("deffile", m.deffile.is_some(), &deffile),
        ("runscript", m.runscript.is_some(), &runscript),
        ("environment", m.environment.is_some(), &environment),
    ] {
        if present {
            entries.push((key, write));
        }
    }
    entries.extend(extra.iter().map(|(k, w)| (*k, w as &dyn Fn(&mut Vec<u8>))));
    cbor::map(out, &mut entries);
}

fn opt_text(out: &mut Vec<u8>, s: &Option<String>) {
    if let Some(s) = s {
        cbor::text(out, s);
    }
}

impl Manifest {
    /// The canonical DAG-CBOR encoding: the block whose CID is [`Manifest::cid`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(600);
        encode_into(&mut out, &self.body, &self.publisher, Some(&self.signature));
        out
    }

    /// The manifest's CID: CIDv1, dag-cbor, sha2-256 of [`Manifest::encode`].
    pub fn cid(&self) -> Cid {
        cid_for(DAG_CBOR, &self.encode())
    }

    /// Decodes a manifest, refusing anything that is not its one canonical encoding and any
    /// manifest that breaks [`UnsignedManifest::validate`]. The signature is not checked here:
    /// see [`Manifest::verify_signature`] and [`Manifest::verify_against`].
    pub fn decode(buf: &[u8]) -> Result<Self, ManifestError> {
        cbor::check_size(buf, MAX_MANIFEST_SIZE)?;
        let m = decode_fields(buf)?;
        m.body.validate()?;
        if m.encode() != buf {
            return Err(CborError::NonCanonical("re-encoding differs from the input").into());
        }
        Ok(m)
    }

    /// Checks the signature against the publisher key in the manifest.
    pub fn verify_signature(&self) -> Result<(), ManifestError> {
        let key = VerifyingKey::from_bytes(&self.publisher)
            .map_err(|_| ManifestError::BadPublisherKey)?;
        self.verify_signature_with(&key)
    }

    fn verify_signature_with(&self, key: &VerifyingKey) -> Result<(), ManifestError> {
        let payload = signing_payload(&self.body, &self.publisher);
        key.verify_strict(&payload, &Signature::from_bytes(&self.signature))
            .map_err(|_| ManifestError::BadSignature)
    }

    /// The checks that need neither key nor roster: federation id, then the field rules.
    fn check_fields(&self, federation_id: &str) -> Result<(), ManifestError> {
        if self.body.federation != federation_id {
            return Err(ManifestError::WrongFederation {
                expected: federation_id.to_owned(),
                found: self.body.federation.clone(),
            });
        }
        self.body.validate()
    }

    fn check_namespace<'r>(&self, member: &'r Member) -> Result<&'r Member, ManifestError> {
        if member.may_publish(&self.body.collection) {
            Ok(member)
        } else {
            Err(ManifestError::OutsideNamespace {
                collection: self.body.collection.clone(),
                member: member.id.clone(),
            })
        }
    }

    /// Checks everything a manifest must satisfy on its own against the current roster, in this
    /// order: the federation id, the field rules ([`UnsignedManifest::validate`], including the
    /// reference rules), the signature, that the publisher key belongs to a member, and that the
    /// collection is in that member's namespaces. Returns the member. To check many manifests
    /// against one roster, [`Verifier`] does the same faster.
    pub fn verify_against<'r>(
        &self,
        roster: &'r Roster,
        federation_id: &str,
    ) -> Result<&'r Member, ManifestError> {
        self.check_fields(federation_id)?;
        self.verify_signature()?;
        let member = roster
            .member_for_key(&self.publisher)
            .ok_or(ManifestError::UnknownPublisher)?;
        self.check_namespace(member)
    }

    /// `federation collection/name:tag`, for messages.
    fn tag_key(&self) -> String {
        format!(
            "{} {}/{}:{}",
            self.body.federation, self.body.collection, self.body.name, self.body.tag
        )
    }
}

/// Verifies many manifests against one roster version: [`Manifest::verify_against`] with the
/// publisher keys decompressed once and looked up by hash, so checking a manifest costs little
/// more than one ed25519 verification. Same checks, same order, same errors.
#[derive(Debug, Clone)]
pub struct Verifier<'r> {
    federation_id: String,
    keys: HashMap<[u8; 32], (VerifyingKey, &'r Member)>,
}

impl<'r> Verifier<'r> {
    /// Prepares to verify manifests of `federation_id` against `roster`.
    pub fn new(roster: &'r Roster, federation_id: &str) -> Self {
        let keys = roster
            .members
            .iter()
            .flat_map(|m| m.publisher_keys.iter().map(move |k| (k, m)))
            .filter_map(|(k, m)| Some((*k, (VerifyingKey::from_bytes(k).ok()?, m))))
            .collect();
        Verifier {
            federation_id: federation_id.to_owned(),
            keys,
        }
    }

    /// Checks one manifest; see [`Manifest::verify_against`].
    pub fn verify(&self, manifest: &Manifest) -> Result<&'r Member, ManifestError> {
        manifest.check_fields(&self.federation_id)?;
        match self.keys.get(&manifest.publisher) {
            Some((key, member)) => {
                manifest.verify_signature_with(key)?;
                manifest.check_namespace(member)
            }
            None => {
                manifest.verify_signature()?;
                Err(ManifestError::UnknownPublisher)
            }
        }
    }
}

fn decode_fields(buf: &[u8]) -> Result<Manifest, ManifestError> {
    let mut d = Decoder::new(buf);
    let mut keys = d.map("manifest", cbor::MAX_FIELDS)?;
    let mut b = UnsignedManifest::default();
    let (mut v, mut seq, mut sig, mut tag, mut name, mut size) =
        (None, None, None, None, None, None);
    let (mut frozen, mut sha256, mut created, mut metadata) = (None, None, None, None);
    let (mut publisher, mut pushed_by, mut tombstone) = (None, None, None);
    let (mut collection, mut federation, mut media_type) = (None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "v" => {
                // "v" sorts first, so an unknown version is reported before its unknown fields.
                let version = d.uint("v")?;
                if version != FORMAT_VERSION {
                    return Err(CborError::UnsupportedVersion(version).into());
                }
                v = Some(version);
            }
            "seq" => seq = Some(d.uint("seq")?),
            "sig" => sig = Some(d.byte_array::<64>("sig", "64 signature bytes")?),
            "tag" => tag = Some(d.text("tag")?.to_owned()),
            "name" => name = Some(d.text("name")?.to_owned()),
            "prev" => b.prev = Some(d.cid("prev")?),
            "root" => b.root = Some(d.cid("root")?),
            "size" => size = Some(d.uint("size")?),
            "frozen" => frozen = Some(d.boolean("frozen")?),
            "sha256" => sha256 = Some(d.byte_array::<32>("sha256", "32 digest bytes")?),
            "created" => created = Some(d.uint("created")?),
            "metadata" => metadata = Some(decode_metadata(&mut d)?),
            "publisher" => publisher = Some(d.byte_array::<32>("publisher", "32 key bytes")?),
            "pushed_by" => pushed_by = Some(d.text("pushed_by")?.to_owned()),
            "tombstone" => tombstone = Some(d.boolean("tombstone")?),
            "collection" => collection = Some(d.text("collection")?.to_owned()),
            "federation" => federation = Some(d.text("federation")?.to_owned()),
            "media_type" => media_type = Some(d.text("media_type")?.to_owned()),
            other => return Err(CborError::UnknownField(other.to_owned()).into()),
        }
    }
    d.finish()?;
    required(v, "v")?;
    b.seq = required(seq, "seq")?;
    b.tag = required(tag, "tag")?;
    b.name = required(name, "name")?;
    b.size = required(size, "size")?;
    b.frozen = required(frozen, "frozen")?;
    b.sha256 = required(sha256, "sha256")?;
    b.created = required(created, "created")?;
    b.metadata = required(metadata, "metadata")?;
    b.pushed_by = required(pushed_by, "pushed_by")?;
    b.tombstone = required(tombstone, "tombstone")?;
    b.collection = required(collection, "collection")?;
    b.federation = required(federation, "federation")?;
    b.media_type = required(media_type, "media_type")?;
    Ok(Manifest {
        body: b,
        publisher: required(publisher, "publisher")?,
        signature: required(sig, "sig")?,
    })
}

fn decode_metadata(d: &mut Decoder<'_>) -> Result<Metadata, CborError> {
    let mut m = Metadata::default();
    let mut keys = d.map("metadata", u64::MAX)?;
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "arch" => m.arch = Some(d.text("metadata.arch")?.to_owned()),
            "deffile" => m.deffile = Some(d.text("metadata.deffile")?.to_owned()),
            "runscript" => m.runscript = Some(d.text("metadata.runscript")?.to_owned()),
            "environment" => m.environment = Some(d.text("metadata.environment")?.to_owned()),
            "labels" => {
                let mut labels = d.map("metadata.labels", MAX_LABELS)?;
                while let Some(k) = d.key(&mut labels)? {
                    let v = d.text("metadata.labels")?;
                    m.labels.insert(k.to_owned(), v.to_owned());
                }
            }
            other => {
                m.extra.insert(other.to_owned(), d.raw_value()?.to_vec());
            }
        }
    }
    Ok(m)
}

/// Checks that `new` may succeed `head` as its tag's head (`head` is `None` for a tag never
/// seen). In order:
///
/// - `new` is the head itself → [`ManifestError::AlreadyKnown`] (callers treat it as a no-op);
/// - another federation or tag → [`ManifestError::DifferentTag`];
/// - a lower seq → [`ManifestError::SeqNotIncreasing`] (a replay);
/// - the same seq → [`ManifestError::Conflict`];
/// - the head is frozen → [`ManifestError::FrozenTag`], whether `new` replaces or deletes it;
/// - `prev` is not the head's CID (or, without a head, not `None`) → [`ManifestError::WrongPrev`].
///
/// A `WrongPrev` whose `found` is `Some` may mean this node missed manifests in between (with
/// no head: it never saw the tag's history): fetch `found` and apply the chain in order, or, when
/// history is not needed, pick the head with [`resolve`] over all verified manifests instead. That a tombstone has no root is checked by
/// [`UnsignedManifest::validate`], as every decoded manifest already was.
pub fn check_succession(head: Option<&Manifest>, new: &Manifest) -> Result<(), ManifestError> {
    let Some(head) = head else {
        return match new.body.prev {
            None => Ok(()),
            Some(found) => Err(ManifestError::WrongPrev {
                expected: None,
                found: Some(found.to_string()),
            }),
        };
    };
    let head_cid = head.cid();
    if head_cid == new.cid() {
        return Err(ManifestError::AlreadyKnown);
    }
    let (h, n) = (&head.body, &new.body);
    if (&h.federation, &h.collection, &h.name, &h.tag)
        != (&n.federation, &n.collection, &n.name, &n.tag)
    {
        return Err(ManifestError::DifferentTag {
            head: head.tag_key(),
            new: new.tag_key(),
        });
    }
    if n.seq < h.seq {
        return Err(ManifestError::SeqNotIncreasing {
            head: h.seq,
            new: n.seq,
        });
    }
    if n.seq == h.seq {
        return Err(ManifestError::Conflict { seq: n.seq });
    }
    if h.frozen {
        return Err(ManifestError::FrozenTag {
            tag: h.reference().tag_path(),
        });
    }
    if n.prev != Some(head_cid) {
        return Err(ManifestError::WrongPrev {
            expected: Some(head_cid.to_string()),
            found: n.prev.map(|c| c.to_string()),
        });
    }
    Ok(())
}

/// What a tag resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// The head is an image.
    Image(&'a Manifest),
    /// The head is a tombstone: the tag was deleted.
    Deleted(&'a Manifest),
}

impl<'a> Resolution<'a> {
    /// The head manifest, image or tombstone.
    pub fn manifest(&self) -> &'a Manifest {
        match self {
            Resolution::Image(m) | Resolution::Deleted(m) => m,
        }
    }
}

/// Resolves a tag from all of its valid manifests (the caller has verified each and filtered to
/// one tag): the head is the manifest with the highest `seq`, except that a frozen manifest is
/// final, so the frozen manifest with the lowest `seq`, if any, wins over everything after it.
/// Equal `seq`s (a [`ManifestError::Conflict`] some node let through) are broken by the smaller
/// CID bytes, so every node picks the same head. `None` when there are no manifests.
pub fn resolve<'a, I>(manifests: I) -> Option<Resolution<'a>>
where
    I: IntoIterator<Item = &'a Manifest>,
{
    let mut best: Option<&'a Manifest> = None;
    for m in manifests {
        let Some(b) = best else {
            best = Some(m);
            continue;
        };
        let better = match (b.body.frozen, m.body.frozen) {
            (true, false) => false,
            (false, true) => true,
            (true, true) => m.body.seq < b.body.seq,
            (false, false) => m.body.seq > b.body.seq,
        } || (m.body.frozen == b.body.frozen
            && m.body.seq == b.body.seq
            && m.cid().to_bytes() < b.cid().to_bytes());
        if better {
            best = Some(m);
        }
    }
    best.map(|m| {
        if m.body.tombstone {
            Resolution::Deleted(m)
        } else {
            Resolution::Image(m)
        }
    })
}
