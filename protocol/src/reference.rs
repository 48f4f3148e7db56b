//! Image references: `collection/name:tag@digest`, and the library forms `[entity/][collection/]name:tag`.
//!
//! Goals: one grammar that every stock client can both send and accept, so a name that shubnet
//! lets a publisher push can be pulled with `shub://`, `library://` and the `sregistry` client
//! alike; typed errors that name the rule a reference broke. Non-goals: hostnames, schemes and
//! registry prefixes (the gateway strips those before it parses), and OCI references.
//!
//! Spec: shared/reference/client-protocols.md §1.6, §2.1, §2.3 and §6. The rules are the
//! intersection of what the clients impose:
//!
//! | part       | characters                | separators     | length | source                                    |
//! |------------|---------------------------|----------------|--------|-------------------------------------------|
//! | collection | `a-z 0-9`                 | `-`            | 1–39   | apptainer `isShubPullRef` (no `_` or `.`) |
//! | name       | `a-z 0-9`                 | `.` `_` `-`    | 1–64   | `isShubPullRef`, library `IsLibraryPushRef` |
//! | tag        | `a-z 0-9`                 | `.` `_` `-`    | 1–64   | same; default `latest`                    |
//! | entity     | `a-z 0-9`                 | `.` `_` `-`    | 1–64   | library only; ignored by shubnet          |
//!
//! Everything is lowercase, because the `sregistry` client lowercases collection, name and tag
//! before it sends them and `apptainer push` refuses uppercase. A part starts and ends with a
//! letter or digit and never has two separators in a row (the library grammar
//! `[a-z0-9]+(?:[._-][a-z0-9]+)*`). A tag may not start with `sha256`: sregistry's library API
//! and the library clients read such a tag as a content hash. [`Reference::parse_lenient`]
//! lowercases the path first, for clients such as `apptainer pull shub://` that keep the case
//! the user typed.
//!
//! Digests ([`Digest`]) come in the forms the clients send: `sha256.<hex>` (shub `version`,
//! library `hash`), `sha256:<hex>`, a bare 64-hex sha256 (shub `commit`), a CID, or the 32/40-hex
//! md5/git digests of the original Singularity Hub, kept as [`Digest::Legacy`] so a gateway can
//! answer "not found" instead of "bad request".
//!
//! Parsing and formatting only: it must not resolve a reference to content or do I/O; the
//! registry resolves tags.

use crate::cid;
use ::cid::Cid;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The tag a reference without one means.
pub const DEFAULT_TAG: &str = "latest";
/// The collection a one-component library reference (`library://name`) means; it is also the
/// `sregistry` client's default collection.
pub const DEFAULT_COLLECTION: &str = "library";
/// Longest collection: apptainer's `isShubPullRef` allows `{1,39}`.
pub const MAX_COLLECTION_LEN: usize = 39;
/// Longest container name: `isShubPullRef` allows `{1,64}`.
pub const MAX_NAME_LEN: usize = 64;
/// Longest tag: `isShubPullRef` allows `{1,64}`.
pub const MAX_TAG_LEN: usize = 64;
/// Longest library entity (not used by shubnet beyond validation).
pub const MAX_ENTITY_LEN: usize = 64;
/// Longest text [`Reference::parse`] and [`LibraryRef::parse`] look at.
pub const MAX_REFERENCE_LEN: usize = 512;
/// Prefix a tag may not have, because clients read it as a content hash.
const RESERVED_TAG_PREFIX: &str = "sha256";

/// Which part of a reference a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The library entity (`entity/collection/name`).
    Entity,
    /// The collection.
    Collection,
    /// The container name.
    Name,
    /// The tag.
    Tag,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Entity => "entity",
            Part::Collection => "collection",
            Part::Name => "name",
            Part::Tag => "tag",
        })
    }
}

/// Which rule a reference broke.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("the reference is empty")]
    Empty,
    /// The text is longer than any valid reference.
    #[error("the reference is {0} bytes long; at most {MAX_REFERENCE_LEN} are accepted")]
    TooLong(usize),
    /// Wrong number of `/`-separated components.
    #[error("expected {expected}, found {found} '/'-separated components")]
    Components {
        /// The accepted shape.
        expected: &'static str,
        /// How many components the text had.
        found: usize,
    },
    /// A part is present but empty (`c/:t`, `c/n:`, `/n`).
    #[error("the {0} is empty")]
    EmptyPart(Part),
    /// A part is longer than the clients accept.
    #[error("the {part} is {len} characters long; clients accept at most {max}")]
    PartTooLong {
        /// The part.
        part: Part,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A part has uppercase letters; every client path is lowercase.
    #[error("the {part} {value:?} has uppercase letters; names are lowercase")]
    Uppercase {
        /// The part.
        part: Part,
        /// The offending value.
        value: String,
    },
    /// A part has a character outside its alphabet.
    #[error("the {part} may only contain a-z, 0-9 and {allowed}; found {ch:?}")]
    InvalidChar {
        /// The part.
        part: Part,
        /// The first character outside the alphabet.
        ch: char,
        /// The separators this part allows, for the message.
        allowed: &'static str,
    },
    /// A part starts or ends with a separator, or has two in a row.
    #[error(
        "the {part} {value:?} must start and end with a letter or digit, with one separator between runs"
    )]
    Separator {
        /// The part.
        part: Part,
        /// The offending value.
        value: String,
    },
    /// A tag that clients would read as a content hash.
    #[error("the tag {0:?} starts with \"sha256\", which clients read as a content hash")]
    ReservedTag(String),
    /// The text after `@` (or a library `:sha256.` hash) is not a digest form clients send.
    #[error(
        "the digest {0:?} is not sha256.<64 hex>, sha256:<64 hex>, <64 hex>, a CID, or a 32/40-hex legacy digest"
    )]
    BadDigest(String),
}

/// A content digest in a reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Digest {
    /// The sha256 of the whole image file; displayed as `sha256.<hex>`.
    Sha256([u8; 32]),
    /// The image's root CID.
    Cid(Cid),
    /// An md5 (32 hex) or git commit (40 hex) digest of the original Singularity Hub; shubnet has
    /// no such digests, so these never match, but they are well-formed.
    Legacy(String),
}

impl Digest {
    /// Parses `sha256.<hex>`, `sha256:<hex>`, a bare 64-hex sha256, a 32/40-hex legacy digest,
    /// or a CID. Hex is lowercase, as the clients send it.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let bad = || ReferenceError::BadDigest(text.to_owned());
        let hex_part = text
            .strip_prefix("sha256.")
            .or_else(|| text.strip_prefix("sha256:"));
        if let Some(h) = hex_part {
            return decode_hex32(h).map(Digest::Sha256).ok_or_else(bad);
        }
        if is_lower_hex(text) {
            return match text.len() {
                64 => decode_hex32(text).map(Digest::Sha256).ok_or_else(bad),
                32 | 40 => Ok(Digest::Legacy(text.to_owned())),
                _ => Err(bad()),
            };
        }
        if text.len() > 128 {
            return Err(bad());
        }
        cid::parse(text).map(Digest::Cid).map_err(|_| bad())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Sha256(d) => {
                f.write_str("sha256.")?;
                write_hex(f, d)
            }
            Digest::Cid(c) => write!(f, "{c}"),
            Digest::Legacy(h) => f.write_str(h),
        }
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// A shub/sregistry reference: `collection/name[:tag][@digest]`.
///
/// The fields are public for convenience; [`Reference::new`], [`Reference::parse`] and
/// [`Reference::validate`] are the ways to know they obey the rules in the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The collection (the namespace roster members own).
    pub collection: String,
    /// The container name.
    pub name: String,
    /// The tag; [`DEFAULT_TAG`] when the text had none.
    pub tag: String,
    /// A digest pinning the exact image. When present it, not the tag, selects the image; the
    /// tag stays `latest` for a digest-only reference (`c/n@sha256.…`), as apptainer sends no tag
    /// then.
    pub digest: Option<Digest>,
}

impl Reference {
    /// A reference without a digest, after checking every part.
    pub fn new(collection: &str, name: &str, tag: &str) -> Result<Self, ReferenceError> {
        let r = Reference {
            collection: collection.to_owned(),
            name: name.to_owned(),
            tag: tag.to_owned(),
            digest: None,
        };
        r.validate()?;
        Ok(r)
    }

    /// Parses `collection/name[:tag][@digest]` strictly: lowercase only.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        check_len(text)?;
        let (path, digest) = split_digest(text)?;
        let components: Vec<&str> = path.split('/').collect();
        let [collection, name_tag] = components[..] else {
            return Err(ReferenceError::Components {
                expected: "collection/name[:tag]",
                found: components.len(),
            });
        };
        let (name, tag) = split_tag(name_tag)?;
        let r = Reference {
            collection: collection.to_owned(),
            name: name.to_owned(),
            tag: tag.unwrap_or(DEFAULT_TAG).to_owned(),
            digest,
        };
        r.validate()?;
        Ok(r)
    }

    /// Like [`Reference::parse`], after lowercasing everything before the `@` (the digest keeps
    /// its case: base58 CIDs are case-sensitive).
    pub fn parse_lenient(text: &str) -> Result<Self, ReferenceError> {
        check_len(text)?;
        match text.split_once('@') {
            Some((path, digest)) => {
                Reference::parse(&format!("{}@{digest}", path.to_ascii_lowercase()))
            }
            None => Reference::parse(&text.to_ascii_lowercase()),
        }
    }

    /// Checks every part against the rules in the module doc.
    pub fn validate(&self) -> Result<(), ReferenceError> {
        validate_collection(&self.collection)?;
        validate_name(&self.name)?;
        validate_tag(&self.tag)
    }

    /// `collection/name:tag`, without the digest: the key a tag resolves under.
    pub fn tag_path(&self) -> String {
        format!("{}/{}:{}", self.collection, self.name, self.tag)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.collection, self.name, self.tag)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// What a library reference selects after the `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LibraryVersion {
    /// One or more tags (`apptainer push` accepts `:t1,t2`); `[latest]` when the text had none.
    Tags(Vec<String>),
    /// `:sha256.<hex>`: the image with this whole-file sha256.
    Hash([u8; 32]),
}

/// A library API path: `[entity/][collection/]name[:tag[,tag…]|:sha256.<hex>]`.
///
/// shubnet has no entities: like sregistry's library API it ignores the entity and treats the
/// middle component as the collection; a one-component path means [`DEFAULT_COLLECTION`].
/// Leading slashes are dropped (`library:///c/n` reaches the server as `//c/n`); empty
/// components elsewhere are an error. Parts follow the same rules as [`Reference`], the entity
/// the name rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LibraryRef {
    /// The entity of a three-component path.
    pub entity: Option<String>,
    /// The collection of a two- or three-component path.
    pub collection: Option<String>,
    /// The container name.
    pub name: String,
    /// The tags or hash after the `:`.
    pub version: LibraryVersion,
}

impl LibraryRef {
    /// Parses a library path in any of its 1-, 2- and 3-component forms.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        check_len(text)?;
        let path = text.trim_start_matches('/');
        if path.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let components: Vec<&str> = path.split('/').collect();
        let (entity, collection, name_tag) = match components[..] {
            [n] => (None, None, n),
            [c, n] => (None, Some(c), n),
            [e, c, n] => (Some(e), Some(c), n),
            _ => {
                return Err(ReferenceError::Components {
                    expected: "[entity/][collection/]name[:tag]",
                    found: components.len(),
                });
            }
        };
        let (name, version) = match name_tag.split_once(':') {
            None => (name_tag, LibraryVersion::Tags(vec![DEFAULT_TAG.to_owned()])),
            Some((n, v)) => {
                let version = if v.starts_with("sha256.") {
                    match Digest::parse(v)? {
                        Digest::Sha256(h) => LibraryVersion::Hash(h),
                        _ => return Err(ReferenceError::BadDigest(v.to_owned())),
                    }
                } else {
                    LibraryVersion::Tags(v.split(',').map(str::to_owned).collect())
                };
                (n, version)
            }
        };
        let r = LibraryRef {
            entity: entity.map(str::to_owned),
            collection: collection.map(str::to_owned),
            name: name.to_owned(),
            version,
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks every part against the rules in the module doc.
    pub fn validate(&self) -> Result<(), ReferenceError> {
        if let Some(e) = &self.entity {
            check_part(Part::Entity, e)?;
            if self.collection.is_none() {
                return Err(ReferenceError::EmptyPart(Part::Collection));
            }
        }
        if let Some(c) = &self.collection {
            validate_collection(c)?;
        }
        validate_name(&self.name)?;
        match &self.version {
            LibraryVersion::Tags(tags) if tags.is_empty() => {
                Err(ReferenceError::EmptyPart(Part::Tag))
            }
            LibraryVersion::Tags(tags) => tags.iter().try_for_each(|t| validate_tag(t)),
            LibraryVersion::Hash(_) => Ok(()),
        }
    }

    /// The shubnet references this path names: one per tag, or one pinned by digest.
    pub fn references(&self) -> Vec<Reference> {
        let collection = self
            .collection
            .clone()
            .unwrap_or_else(|| DEFAULT_COLLECTION.to_owned());
        let make = |tag: &str, digest| Reference {
            collection: collection.clone(),
            name: self.name.clone(),
            tag: tag.to_owned(),
            digest,
        };
        match &self.version {
            LibraryVersion::Tags(tags) => tags.iter().map(|t| make(t, None)).collect(),
            LibraryVersion::Hash(h) => vec![make(DEFAULT_TAG, Some(Digest::Sha256(*h)))],
        }
    }
}

impl fmt::Display for LibraryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.entity {
            write!(f, "{e}/")?;
        }
        if let Some(c) = &self.collection {
            write!(f, "{c}/")?;
        }
        write!(f, "{}:", self.name)?;
        match &self.version {
            LibraryVersion::Tags(tags) => f.write_str(&tags.join(",")),
            LibraryVersion::Hash(h) => {
                f.write_str("sha256.")?;
                write_hex(f, h)
            }
        }
    }
}

impl FromStr for LibraryRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LibraryRef::parse(s)
    }
}

/// Checks a collection name: `a-z 0-9` runs joined by single `-`, at most
/// [`MAX_COLLECTION_LEN`] characters.
pub fn validate_collection(collection: &str) -> Result<(), ReferenceError> {
    check_part(Part::Collection, collection)
}

/// Checks a container name: `a-z 0-9` runs joined by single `.`, `_` or `-`, at most
/// [`MAX_NAME_LEN`] characters.
pub fn validate_name(name: &str) -> Result<(), ReferenceError> {
    check_part(Part::Name, name)
}

/// Checks a tag: the name rules with [`MAX_TAG_LEN`], and no leading `sha256`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    check_part(Part::Tag, tag)?;
    if tag.starts_with(RESERVED_TAG_PREFIX) {
        return Err(ReferenceError::ReservedTag(tag.to_owned()));
    }
    Ok(())
}

fn check_len(text: &str) -> Result<(), ReferenceError> {
    if text.is_empty() {
        Err(ReferenceError::Empty)
    } else if text.len() > MAX_REFERENCE_LEN {
        Err(ReferenceError::TooLong(text.len()))
    } else {
        Ok(())
    }
}

fn split_digest(text: &str) -> Result<(&str, Option<Digest>), ReferenceError> {
    match text.split_once('@') {
        None => Ok((text, None)),
        Some((path, d)) => Ok((path, Some(Digest::parse(d)?))),
    }
}

fn split_tag(name_tag: &str) -> Result<(&str, Option<&str>), ReferenceError> {
    match name_tag.split_once(':') {
        None => Ok((name_tag, None)),
        Some((_, "")) => Err(ReferenceError::EmptyPart(Part::Tag)),
        Some((n, t)) => Ok((n, Some(t))),
    }
}

fn check_part(part: Part, value: &str) -> Result<(), ReferenceError> {
    let (max, seps, allowed): (usize, &[u8], &'static str) = match part {
        Part::Collection => (MAX_COLLECTION_LEN, b"-", "'-'"),
        Part::Name => (MAX_NAME_LEN, b"._-", "'.', '_', '-'"),
        Part::Tag => (MAX_TAG_LEN, b"._-", "'.', '_', '-'"),
        Part::Entity => (MAX_ENTITY_LEN, b"._-", "'.', '_', '-'"),
    };
    if value.is_empty() {
        return Err(ReferenceError::EmptyPart(part));
    }
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase {
            part,
            value: value.to_owned(),
        });
    }
    if let Some(ch) = value.chars().find(|&c| {
        !(c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || (c.is_ascii() && seps.contains(&(c as u8))))
    }) {
        return Err(ReferenceError::InvalidChar { part, ch, allowed });
    }
    let bytes = value.as_bytes();
    let is_sep = |b: &u8| seps.contains(b);
    let doubled = bytes.windows(2).any(|w| is_sep(&w[0]) && is_sep(&w[1]));
    if doubled || bytes.first().is_some_and(is_sep) || bytes.last().is_some_and(is_sep) {
        return Err(ReferenceError::Separator {
            part,
            value: value.to_owned(),
        });
    }
    if value.len() > max {
        return Err(ReferenceError::PartTooLong {
            part,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !is_lower_hex(s) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::{RAW, cid_for};
    use proptest::prelude::*;

    const SHA: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    #[test]
    fn parses_the_forms_clients_send() {
        let r = Reference::parse("lab-a/blast:2.14").unwrap();
        assert_eq!(
            (r.collection.as_str(), r.name.as_str(), r.tag.as_str()),
            ("lab-a", "blast", "2.14")
        );
        assert_eq!(r.digest, None);
        assert_eq!(Reference::parse("lab-a/blast").unwrap().tag, "latest");

        let digest = Digest::Sha256(decode_hex32(SHA).unwrap());
        for text in [
            format!("lab-a/blast:2.14@sha256.{SHA}"),
            format!("lab-a/blast:2.14@sha256:{SHA}"),
            format!("lab-a/blast:2.14@{SHA}"),
        ] {
            assert_eq!(
                Reference::parse(&text).unwrap().digest.as_ref(),
                Some(&digest)
            );
        }
        let only_digest = Reference::parse(&format!("lab-a/blast@sha256.{SHA}")).unwrap();
        assert_eq!(only_digest.tag, DEFAULT_TAG);

        let cid = cid_for(RAW, b"hello world");
        let r = Reference::parse(&format!("c/n:t@{cid}")).unwrap();
        assert_eq!(r.digest, Some(Digest::Cid(cid)));
        let r = Reference::parse(&format!("c/n:t@{}", "a".repeat(40))).unwrap();
        assert_eq!(r.digest, Some(Digest::Legacy("a".repeat(40))));
        assert_eq!(r.to_string(), format!("c/n:t@{}", "a".repeat(40)));
    }

    #[test]
    fn each_rule_has_its_error() {
        use ReferenceError as E;
        let err = |s: &str| Reference::parse(s).unwrap_err();
        assert_eq!(err(""), E::Empty);
        assert_eq!(err(&"a".repeat(600)), E::TooLong(600));
        assert!(matches!(err("blast"), E::Components { found: 1, .. }));
        assert!(matches!(err("a/b/c"), E::Components { found: 3, .. }));
        assert_eq!(err("/blast"), E::EmptyPart(Part::Collection));
        assert_eq!(err("c/"), E::EmptyPart(Part::Name));
        assert_eq!(err("c/n:"), E::EmptyPart(Part::Tag));
        assert!(matches!(
            err("Lab/n"),
            E::Uppercase {
                part: Part::Collection,
                ..
            }
        ));
        assert!(matches!(
            err("c/n:Latest"),
            E::Uppercase {
                part: Part::Tag,
                ..
            }
        ));
        assert!(matches!(
            err("lab_a/n"),
            E::InvalidChar {
                part: Part::Collection,
                ch: '_',
                ..
            }
        ));
        assert!(matches!(
            err("lab.a/n"),
            E::InvalidChar {
                part: Part::Collection,
                ch: '.',
                ..
            }
        ));
        assert!(matches!(
            err("c/n:a:b"),
            E::InvalidChar {
                part: Part::Tag,
                ch: ':',
                ..
            }
        ));
        assert!(matches!(
            err("c/blåst"),
            E::InvalidChar {
                part: Part::Name,
                ch: 'å',
                ..
            }
        ));
        for bad in [
            "-lab/n", "lab-/n", "la--b/n", "c/.n", "c/n_", "c/a._b", "c/n:-t",
        ] {
            assert!(matches!(err(bad), E::Separator { .. }), "{bad}");
        }
        assert!(matches!(
            err(&format!("{}/n", "a".repeat(40))),
            E::PartTooLong {
                part: Part::Collection,
                len: 40,
                max: 39
            }
        ));
        assert!(Reference::parse(&format!("{}/n", "a".repeat(39))).is_ok());
        assert!(matches!(
            err(&format!("c/{}", "n".repeat(65))),
            E::PartTooLong {
                part: Part::Name,
                ..
            }
        ));
        assert!(matches!(
            err(&format!("c/n:{}", "t".repeat(65))),
            E::PartTooLong {
                part: Part::Tag,
                ..
            }
        ));
        assert_eq!(
            err("c/n:sha256.abc"),
            E::ReservedTag("sha256.abc".to_owned())
        );
        for bad in [
            "c/n@",
            "c/n@sha256.abc",
            "c/n@sha256:ABCDEF",
            &format!("c/n@{}", SHA.to_uppercase()),
            "c/n@abc",
            "c/n@not-a-cid",
        ] {
            assert!(matches!(err(bad), E::BadDigest(_)), "{bad}");
        }
    }

    #[test]
    fn lenient_parse_lowercases_the_path_only() {
        let cid = crate::cid::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap();
        let r = Reference::parse_lenient(&format!("Lab-A/BLAST:Latest@{cid}")).unwrap();
        assert_eq!(r.to_string(), format!("lab-a/blast:latest@{cid}"));
        assert!(Reference::parse(&format!("Lab-A/BLAST:Latest@{cid}")).is_err());
    }

    #[test]
    fn library_refs_in_every_form() {
        let r = LibraryRef::parse("entity/coll/name:tag").unwrap();
        assert_eq!(r.entity.as_deref(), Some("entity"));
        assert_eq!(r.collection.as_deref(), Some("coll"));
        assert_eq!(
            r.references(),
            vec![Reference::new("coll", "name", "tag").unwrap()]
        );

        let r = LibraryRef::parse("coll/name").unwrap();
        assert_eq!(r.entity, None);
        assert_eq!(
            r.references(),
            vec![Reference::new("coll", "name", "latest").unwrap()]
        );

        let r = LibraryRef::parse("//name:1.0,latest").unwrap();
        assert_eq!(
            r.references(),
            vec![
                Reference::new(DEFAULT_COLLECTION, "name", "1.0").unwrap(),
                Reference::new(DEFAULT_COLLECTION, "name", "latest").unwrap()
            ]
        );
        assert_eq!(r.to_string(), "name:1.0,latest");

        let r = LibraryRef::parse(&format!("e/c/n:sha256.{SHA}")).unwrap();
        assert_eq!(r.version, LibraryVersion::Hash(decode_hex32(SHA).unwrap()));
        assert_eq!(
            r.references()[0].digest,
            Some(Digest::Sha256(decode_hex32(SHA).unwrap()))
        );

        use ReferenceError as E;
        assert!(matches!(
            LibraryRef::parse("a/b/c/d"),
            Err(E::Components { found: 4, .. })
        ));
        assert_eq!(LibraryRef::parse("///"), Err(E::Empty));
        assert_eq!(
            LibraryRef::parse("e//n"),
            Err(E::EmptyPart(Part::Collection))
        );
        assert_eq!(LibraryRef::parse("c/n:a,,b"), Err(E::EmptyPart(Part::Tag)));
        assert!(matches!(
            LibraryRef::parse("E/c/n"),
            Err(E::Uppercase {
                part: Part::Entity,
                ..
            })
        ));
        assert!(matches!(
            LibraryRef::parse("c/n:sha256.zz"),
            Err(E::BadDigest(_))
        ));
    }

    fn part(max: usize, sep: &'static str) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[a-z0-9]{{1,8}}([{sep}][a-z0-9]{{1,8}}){{0,4}}"))
            .unwrap()
            .prop_filter("length", move |s| s.len() <= max)
    }

    fn digest() -> impl Strategy<Value = Option<Digest>> {
        prop_oneof![
            Just(None),
            any::<[u8; 32]>().prop_map(|d| Some(Digest::Sha256(d))),
            any::<u64>().prop_map(|s| Some(Digest::Cid(cid_for(RAW, &s.to_le_bytes())))),
            "[0-9a-f]{40}".prop_map(|h| Some(Digest::Legacy(h))),
        ]
    }

    proptest! {
        #[test]
        fn display_roundtrips(collection in part(MAX_COLLECTION_LEN, "-"),
                              name in part(MAX_NAME_LEN, "._-"),
                              tag in part(MAX_TAG_LEN, "._-").prop_filter("reserved", |t| !t.starts_with("sha256")),
                              digest in digest()) {
            let r = Reference { collection, name, tag, digest };
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
            prop_assert_eq!(Reference::parse_lenient(&r.to_string()), Ok(r));
        }

        #[test]
        fn library_display_roundtrips(entity in proptest::option::of(part(MAX_ENTITY_LEN, "._-")),
                                      collection in part(MAX_COLLECTION_LEN, "-"),
                                      name in part(MAX_NAME_LEN, "._-"),
                                      tags in proptest::collection::vec(
                                          part(MAX_TAG_LEN, "._-").prop_filter("reserved", |t| !t.starts_with("sha256")), 1..4),
                                      hash in proptest::option::of(any::<[u8; 32]>())) {
            let collection = if entity.is_some() || name.len() % 2 == 0 { Some(collection) } else { None };
            let version = hash.map_or(LibraryVersion::Tags(tags), LibraryVersion::Hash);
            let r = LibraryRef { entity, collection, name, version };
            prop_assert_eq!(LibraryRef::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Reference::parse(&s);
            let _ = Reference::parse_lenient(&s);
            let _ = LibraryRef::parse(&s);
        }
    }
}
