//! The federation roster: who is in the federation, who may publish what, and who may change that.
//!
//! Goals: a charter every node can check alone, with no coordinator: a hash-chained list of
//! versions where version n+1 counts only with a threshold of signatures from the admins of
//! version n, so a stolen node or publisher key cannot rewrite the federation and an old version
//! cannot be replayed; namespaces that give every collection at most one publishing member; and
//! join requests short enough to paste into an email. Non-goals: gossip, storage, choosing
//! holders (the replication policy is data here; placement lives in the node), key rotation
//! ceremonies beyond "publish the next version".
//!
//! Spec: shared/DESIGN.md, "Data model → Roster"; the encoding rules are those of
//! [`crate::manifest`] (canonical DAG-CBOR, strict decode).
//!
//! # Versions and the federation id
//!
//! A [`Roster`] is the body of one version. Its [`Roster::body_cid`] is the CIDv1 (dag-cbor,
//! sha2-256) of its encoding. Version 1 has no `prev`; the base32 text of its body CID is the
//! **federation id**, the one value a node needs to trust everything else. Version n+1 has
//! `version = n + 1` and `prev = body_cid(n)`. A [`SignedRoster`] is a body plus admin signatures
//! over [`SIGNATURE_DOMAIN`] ‖ body encoding; version 1 needs `threshold` signatures of its own
//! admins, version n+1 `threshold(n)` signatures of the admins *of version n*. Every signature
//! present must verify and come from such an admin: a roster carrying a stray or broken
//! signature is refused rather than trusted for the valid ones. See [`verify_chain`],
//! [`verify_next`]. Two different versions n+1 can both gather signatures if `threshold` is at
//! most half the admins; federations that fear that pick a majority threshold.
//!
//! # Namespaces
//!
//! A member's `namespaces` are collection patterns:
//!
//! - `lab-a`: exactly the collection `lab-a`;
//! - `lab-a-*`: every collection starting with `lab-a-` (the prefix must be a possible start of a
//!   collection name, see [`crate::reference`]);
//! - `*`: every collection.
//!
//! No collection may match patterns of two different members ([`InvalidRoster::NamespaceOverlap`]),
//! so every collection has at most one member allowed to publish it; `*` therefore only fits a
//! federation where no other member publishes. A member's own patterns may overlap. Members with
//! no namespaces are storage-only mirrors. Publisher keys and peer ids belong to one member only.
//!
//! It must not do I/O or read a clock (callers pass `created`), and it never decides on its own
//! which version a node trusts: callers hold the chain and ask it to verify the next version.

mod chain;
mod codec;
mod join;
#[cfg(test)]
mod tests;

use crate::cid::{DAG_CBOR, SHA2_256, cid_for};
use crate::manifest::cbor::{self, CborError, Decoder};
use crate::reference;
use cid::Cid;
use codec::{decode_roster, decode_texts, encode_roster};
use ed25519_dalek::VerifyingKey;
use std::collections::HashSet;
use thiserror::Error;

pub use chain::{RosterSignature, SignedRoster, verify_chain, verify_genesis, verify_next};
pub use join::{
    JOIN_LINE_PREFIX, JOIN_SIGNATURE_DOMAIN, JoinRequest, MAX_JOIN_LINE, MAX_JOIN_SIZE,
    UnsignedJoinRequest,
};

/// The roster format this code writes and the only one it reads.
pub const FORMAT_VERSION: u64 = 1;
/// Largest encoded signed roster accepted or produced.
pub const MAX_ROSTER_SIZE: usize = 1024 * 1024;
/// What admin signatures cover first, so they can never be replayed as anything else.
pub const SIGNATURE_DOMAIN: &[u8] = b"shubnet-roster-v1\0";
/// Most admin keys in one version (and so most signatures on it).
pub const MAX_ADMINS: usize = 64;
/// Most members in one version.
pub const MAX_MEMBERS: usize = 1024;
/// Most peer ids (nodes) per member.
pub const MAX_PEERS_PER_MEMBER: usize = 16;
/// Most publisher keys per member.
pub const MAX_KEYS_PER_MEMBER: usize = 16;
/// Most namespace patterns per member.
pub const MAX_NAMESPACES_PER_MEMBER: usize = 256;
/// Longest federation or institution display name, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 128;
/// Longest institution id.
pub const MAX_MEMBER_ID_LEN: usize = 63;
/// Longest peer id text (an ed25519 libp2p peer id is 52 characters).
pub const MAX_PEER_ID_LEN: usize = 128;
/// Longest gateway URL.
pub const MAX_URL_LEN: usize = 256;
/// Largest replication factor.
pub const MAX_REPLICATION: u32 = 64;

/// A rule a roster body breaks on its own, whatever its signatures.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvalidRoster {
    /// The federation name is empty, too long or has control characters.
    #[error(
        "the federation name must be 1-{MAX_DISPLAY_NAME_LEN} bytes without control characters"
    )]
    BadName,
    /// Version 0 does not exist.
    #[error("roster versions start at 1")]
    ZeroVersion,
    /// Version 1 has a `prev`, or a later version has none.
    #[error("version 1 has no prev and every later version has one")]
    PrevPresence,
    /// `prev` is not a dag-cbor sha2-256 CIDv1.
    #[error("prev must be a CIDv1 dag-cbor block with sha2-256")]
    BadPrev,
    /// No admin keys.
    #[error("a roster needs at least one admin")]
    NoAdmins,
    /// A list is longer than its cap.
    #[error("{what}: {len} entries, at most {max} allowed")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The same admin key twice.
    #[error("admin key {0} is listed twice")]
    DuplicateAdmin(String),
    /// A key that is not a usable ed25519 public key (invalid or small-order point).
    #[error("{what} key {key} is not a valid ed25519 public key")]
    BadKey {
        /// Admin or publisher.
        what: &'static str,
        /// The key, hex.
        key: String,
    },
    /// The threshold is 0 or above the number of admins.
    #[error("threshold {threshold} must be between 1 and the {admins} admins")]
    Threshold {
        /// The threshold.
        threshold: u32,
        /// How many admins there are.
        admins: usize,
    },
    /// The replication policy is impossible.
    #[error("replication: {0}")]
    Replication(&'static str),
    /// An institution id that is not `[a-z0-9]` runs joined by single `-`, 1-63 characters.
    #[error(
        "member id {0:?} must be a-z/0-9 runs joined by single '-', at most {MAX_MEMBER_ID_LEN} characters"
    )]
    BadMemberId(String),
    /// Two members with one id.
    #[error("member id {0:?} is listed twice")]
    DuplicateMember(String),
    /// A member field breaks its rule.
    #[error("member {member}: {field} {reason}")]
    BadMemberField {
        /// The member's id.
        member: String,
        /// The field.
        field: &'static str,
        /// The rule.
        reason: &'static str,
    },
    /// A publisher key used twice (by one member or two).
    #[error("publisher key {key} is listed twice (member {member})")]
    DuplicatePublisherKey {
        /// The second member listing it.
        member: String,
        /// The key, hex.
        key: String,
    },
    /// A peer id used twice.
    #[error("peer id {peer} is listed twice (member {member})")]
    DuplicatePeerId {
        /// The second member listing it.
        member: String,
        /// The peer id.
        peer: String,
    },
    /// A namespace pattern that is not a collection, `prefix*` or `*`.
    #[error(
        "member {member}: namespace {pattern:?} is not a collection name, a collection prefix followed by '*', or '*'"
    )]
    BadNamespace {
        /// The member's id.
        member: String,
        /// The pattern.
        pattern: String,
    },
    /// Some collection matches patterns of two members.
    #[error("namespace {pattern_a:?} of {member_a} overlaps {pattern_b:?} of {member_b}")]
    NamespaceOverlap {
        /// One member.
        member_a: String,
        /// Its pattern.
        pattern_a: String,
        /// The other member.
        member_b: String,
        /// Its pattern.
        pattern_b: String,
    },
}

/// Why a roster, roster chain or join request was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RosterError {
    /// The bytes are not a canonical roster or join request.
    #[error("not a canonical roster encoding: {0}")]
    Decode(#[from] CborError),
    /// The body breaks a rule of its own.
    #[error("invalid roster: {0}")]
    Invalid(#[from] InvalidRoster),
    /// Not enough valid admin signatures.
    #[error("{have} admin signatures, {need} needed")]
    TooFewSignatures {
        /// Valid signatures from distinct admins.
        have: usize,
        /// The threshold that applies.
        need: u32,
    },
    /// The next version is not current + 1.
    #[error("expected roster version {expected}, got {found}")]
    SkippedVersion {
        /// The version that may come next.
        expected: u64,
        /// The version offered.
        found: u64,
    },
    /// A version at or below the current one: a replay.
    #[error("roster version {found} is not newer than the current version {current}")]
    StaleVersion {
        /// The current version.
        current: u64,
        /// The version offered.
        found: u64,
    },
    /// `prev` is not the current version's body CID.
    #[error("prev is {found:?}, expected {expected}")]
    WrongPrev {
        /// The current version's body CID, as text.
        expected: String,
        /// The `prev` offered, as text.
        found: Option<String>,
    },
    /// A signature by a key that is not an admin of the version that authorises this one.
    #[error("signature by {0}, who is not an admin of the authorising version")]
    UnknownSigner(String),
    /// The same admin signed twice.
    #[error("admin {0} signed twice")]
    DuplicateSigner(String),
    /// A signature that does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    /// The chain does not start at this federation's version 1.
    #[error("the roster chain is for federation {found}, not {expected}")]
    WrongFederation {
        /// The federation id expected.
        expected: String,
        /// The body CID of the chain's version 1.
        found: String,
    },
    /// No versions at all.
    #[error("the roster chain is empty")]
    EmptyChain,
    /// A join request line that is not one.
    #[error("not a join request line: {0}")]
    BadJoinLine(&'static str),
}

/// The replication policy every node applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// How many members hold each image (besides the publisher's own copy).
    pub k: u32,
    /// Of those, how many distinct institutions at least, when enough members offer storage.
    pub min_institutions: u32,
}

impl Default for Replication {
    /// Three copies on at least two institutions.
    fn default() -> Self {
        Replication {
            k: 3,
            min_institutions: 2,
        }
    }
}

/// One institution in the federation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Stable institution id (`[a-z0-9]` runs joined by single `-`): it names the member in
    /// placement, so it never changes.
    pub id: String,
    /// Display name.
    pub name: String,
    /// libp2p peer ids of the institution's nodes (base58 text); federation protocols accept
    /// connections only from these.
    pub peer_ids: Vec<String>,
    /// ed25519 keys that sign this member's manifests.
    pub publisher_keys: Vec<[u8; 32]>,
    /// Collection patterns this member alone may publish (see the module doc).
    pub namespaces: Vec<String>,
    /// Bytes of storage offered to hold other members' images; 0 for none.
    pub storage_bytes: u64,
    /// Public base URL of the institution's gateway (`https://…`), shown to users and usable by
    /// `shubnet pull --from`; `None` when it has none.
    pub gateway: Option<String>,
}

/// One version of the federation charter (the part that is signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Federation name.
    pub name: String,
    /// 1 for the founding version, then +1 per change.
    pub version: u64,
    /// Body CID of the previous version; `None` exactly for version 1.
    pub prev: Option<Cid>,
    /// ed25519 keys of the admins who may authorise the next version.
    pub admins: Vec<[u8; 32]>,
    /// How many of `admins` must sign the next version (and, for version 1, this one).
    pub threshold: u32,
    /// The institutions.
    pub members: Vec<Member>,
    /// The replication policy.
    pub replication: Replication,
    /// Unix seconds when the proposing admin wrote this version.
    pub created: u64,
}

impl Member {
    /// True when one of this member's patterns matches `collection`.
    pub fn may_publish(&self, collection: &str) -> bool {
        self.namespaces
            .iter()
            .any(|p| pattern_matches(p, collection))
    }
}

/// True when namespace pattern `pattern` matches `collection` (see the module doc).
pub fn pattern_matches(pattern: &str, collection: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => collection.starts_with(prefix),
        None => pattern == collection,
    }
}

/// Checks a namespace pattern: a valid collection, a prefix a collection can start with
/// followed by `*`, or `*`.
pub fn validate_pattern(pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        // A prefix is valid when some collection starts with it: appending a letter makes one.
        Some(prefix) => reference::validate_collection(&format!("{prefix}a")).is_ok(),
        None => reference::validate_collection(pattern).is_ok(),
    }
}

impl Roster {
    /// A founding version with no members yet.
    pub fn genesis(name: &str, admins: Vec<[u8; 32]>, threshold: u32, created: u64) -> Self {
        Roster {
            name: name.to_owned(),
            version: 1,
            prev: None,
            admins,
            threshold,
            members: Vec::new(),
            replication: Replication::default(),
            created,
        }
    }

    /// The start of the next version: a copy with `version + 1` and `prev` set to this body's
    /// CID, to be edited and then signed by this version's admins.
    pub fn successor(&self, created: u64) -> Self {
        Roster {
            version: self.version + 1,
            prev: Some(self.body_cid()),
            created,
            ..self.clone()
        }
    }

    /// The canonical DAG-CBOR encoding of the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.members.len() * 256);
        encode_roster(&mut out, self);
        out
    }

    /// Decodes a body on its own (a signed roster is decoded with [`SignedRoster::decode`]),
    /// refusing non-canonical encodings and invalid rosters.
    pub fn decode(buf: &[u8]) -> Result<Self, RosterError> {
        cbor::check_size(buf, MAX_ROSTER_SIZE)?;
        let mut d = Decoder::new(buf);
        let r = decode_roster(&mut d)?;
        d.finish()?;
        r.validate()?;
        if r.encode() != buf {
            return Err(CborError::NonCanonical("re-encoding differs from the input").into());
        }
        Ok(r)
    }

    /// CIDv1 (dag-cbor, sha2-256) of [`Roster::encode`]; the next version's `prev`.
    pub fn body_cid(&self) -> Cid {
        cid_for(DAG_CBOR, &self.encode())
    }

    /// The federation id this body founds: its body CID as text, for version 1 only.
    pub fn federation_id(&self) -> Option<String> {
        (self.version == 1).then(|| self.body_cid().to_string())
    }

    /// The member owning a publisher key.
    pub fn member_for_key(&self, publisher_key: &[u8; 32]) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.publisher_keys.contains(publisher_key))
    }

    /// The member with an institution id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The member that owns `publisher_key` if that member may publish `collection`.
    pub fn may_publish(&self, publisher_key: &[u8; 32], collection: &str) -> Option<&Member> {
        self.member_for_key(publisher_key)
            .filter(|m| m.may_publish(collection))
    }

    /// The member whose namespaces cover `collection`, if any.
    pub fn owner_of(&self, collection: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.may_publish(collection))
    }

    /// True when `key` is an admin of this version.
    pub fn is_admin(&self, key: &[u8; 32]) -> bool {
        self.admins.contains(key)
    }

    /// Checks every rule a body obeys on its own: names, version/prev, admins and threshold,
    /// members (ids, keys, peer ids, namespaces), replication.
    pub fn validate(&self) -> Result<(), InvalidRoster> {
        if !display_name_ok(&self.name) {
            return Err(InvalidRoster::BadName);
        }
        match (self.version, &self.prev) {
            (0, _) => return Err(InvalidRoster::ZeroVersion),
            (1, None) => {}
            (1, Some(_)) | (_, None) => return Err(InvalidRoster::PrevPresence),
            (_, Some(p)) => {
                if p.version() != cid::Version::V1
                    || p.codec() != DAG_CBOR
                    || p.hash().code() != SHA2_256
                {
                    return Err(InvalidRoster::BadPrev);
                }
            }
        }
        if self.admins.is_empty() {
            return Err(InvalidRoster::NoAdmins);
        }
        cap("admins", self.admins.len(), MAX_ADMINS)?;
        let mut seen = HashSet::new();
        for a in &self.admins {
            if !seen.insert(a) {
                return Err(InvalidRoster::DuplicateAdmin(hex(a)));
            }
            check_key("admin", a)?;
        }
        if self.threshold == 0 || self.threshold as usize > self.admins.len() {
            return Err(InvalidRoster::Threshold {
                threshold: self.threshold,
                admins: self.admins.len(),
            });
        }
        let Replication {
            k,
            min_institutions,
        } = self.replication;
        if k == 0 || k > MAX_REPLICATION {
            return Err(InvalidRoster::Replication("k must be between 1 and 64"));
        }
        if min_institutions == 0 || min_institutions > k {
            return Err(InvalidRoster::Replication(
                "min_institutions must be between 1 and k",
            ));
        }
        cap("members", self.members.len(), MAX_MEMBERS)?;
        let (mut ids, mut keys, mut peers) = (HashSet::new(), HashSet::new(), HashSet::new());
        for m in &self.members {
            validate_member(m)?;
            if !ids.insert(m.id.as_str()) {
                return Err(InvalidRoster::DuplicateMember(m.id.clone()));
            }
            for k in &m.publisher_keys {
                if !keys.insert(k) {
                    return Err(InvalidRoster::DuplicatePublisherKey {
                        member: m.id.clone(),
                        key: hex(k),
                    });
                }
            }
            for p in &m.peer_ids {
                if !peers.insert(p.as_str()) {
                    return Err(InvalidRoster::DuplicatePeerId {
                        member: m.id.clone(),
                        peer: p.clone(),
                    });
                }
            }
        }
        check_overlaps(&self.members)
    }
}

fn cap(what: &'static str, len: usize, max: usize) -> Result<(), InvalidRoster> {
    if len > max {
        Err(InvalidRoster::TooMany { what, len, max })
    } else {
        Ok(())
    }
}

fn check_key(what: &'static str, key: &[u8; 32]) -> Result<(), InvalidRoster> {
    match VerifyingKey::from_bytes(key) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(InvalidRoster::BadKey {
            what,
            key: hex(key),
        }),
    }
}

pub(crate) fn display_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_DISPLAY_NAME_LEN && !s.chars().any(char::is_control)
}

fn member_id_ok(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_MEMBER_ID_LEN
        && b.iter()
            .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
        && !id.contains("--")
}

fn peer_id_ok(p: &str) -> bool {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    !p.is_empty() && p.len() <= MAX_PEER_ID_LEN && p.bytes().all(|c| BASE58.contains(&c))
}

fn gateway_ok(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    url.len() <= MAX_URL_LEN
        && rest.is_some_and(|r| !r.is_empty())
        && url.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks one member's own fields (not uniqueness across members).
pub(crate) fn validate_member(m: &Member) -> Result<(), InvalidRoster> {
    if !member_id_ok(&m.id) {
        return Err(InvalidRoster::BadMemberId(m.id.clone()));
    }
    let bad = |field, reason| InvalidRoster::BadMemberField {
        member: m.id.clone(),
        field,
        reason,
    };
    if !display_name_ok(&m.name) {
        return Err(bad(
            "name",
            "must be 1-128 bytes without control characters",
        ));
    }
    cap("peer_ids", m.peer_ids.len(), MAX_PEERS_PER_MEMBER)?;
    cap(
        "publisher_keys",
        m.publisher_keys.len(),
        MAX_KEYS_PER_MEMBER,
    )?;
    cap("namespaces", m.namespaces.len(), MAX_NAMESPACES_PER_MEMBER)?;
    if !m.peer_ids.iter().all(|p| peer_id_ok(p)) {
        return Err(bad(
            "peer_ids",
            "must be base58 text of at most 128 characters",
        ));
    }
    for k in &m.publisher_keys {
        check_key("publisher", k)?;
    }
    if let Some(p) = m.namespaces.iter().find(|p| !validate_pattern(p)) {
        return Err(InvalidRoster::BadNamespace {
            member: m.id.clone(),
            pattern: p.clone(),
        });
    }
    if m.gateway.as_deref().is_some_and(|g| !gateway_ok(g)) {
        return Err(bad(
            "gateway",
            "must be an http:// or https:// URL of at most 256 printable characters",
        ));
    }
    Ok(())
}

/// Refuses patterns of two members that some collection matches both of.
///
/// Patterns are sorted by their literal text (the prefix of a glob), globs before the exact name
/// with the same text. Everything a glob `p*` matches then sorts in one run right after it, and
/// equal exact names are neighbours; the scans stop at the first foreign member, so the cost is
/// the sort plus each member's own nested patterns.
fn check_overlaps(members: &[Member]) -> Result<(), InvalidRoster> {
    struct Pat<'a> {
        text: &'a str,
        glob: bool,
        member: usize,
        pattern: &'a str,
    }
    let mut pats: Vec<Pat<'_>> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            m.namespaces.iter().map(move |p| Pat {
                text: p.strip_suffix('*').unwrap_or(p),
                glob: p.ends_with('*'),
                member: i,
                pattern: p,
            })
        })
        .collect();
    pats.sort_by(|a, b| a.text.cmp(b.text).then(b.glob.cmp(&a.glob)));
    let overlap = |a: &Pat<'_>, b: &Pat<'_>| InvalidRoster::NamespaceOverlap {
        member_a: members[a.member].id.clone(),
        pattern_a: a.pattern.to_owned(),
        member_b: members[b.member].id.clone(),
        pattern_b: b.pattern.to_owned(),
    };
    for (i, a) in pats.iter().enumerate() {
        for b in &pats[i + 1..] {
            let within = if a.glob {
                b.text.starts_with(a.text)
            } else {
                b.text == a.text
            };
            if !within {
                break;
            }
            if b.member != a.member {
                return Err(overlap(a, b));
            }
        }
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
