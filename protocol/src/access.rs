//! Access state that the federation shares: a collection's visibility ([`SignedPolicy`]), the
//! read grants an institution hands its users ([`Capability`], a bearer token any member can
//! check offline), and the withdrawal of such a grant ([`Revocation`]).
//!
//! Each record is signed by a publisher key of the institution that owns the namespace it
//! speaks for, so a member can check it against the roster without asking anyone. Records are
//! canonical DAG-CBOR (the manifest codec) with a domain string in the signed payload, so a
//! signature made for one kind can never be replayed as another. Who may sign what is a roster
//! question, answered by the node when it accepts a record; this module only checks that each
//! signature was made by the key the record names.
//!
//! - A policy for collection `c` is in force when the signer may publish `c`. Of two policies
//!   for one collection, the one with the larger `seq` wins (ties: the larger signature bytes),
//!   so every member converges whatever order records arrive in.
//! - A capability grants `rights` on collections matching `collections` until `expires` (unix
//!   seconds), but only on collections its signer's institution owns: an institution cannot
//!   grant access to another's images.
//! - A revocation names a capability id and is in force for capabilities signed by the same
//!   institution. It carries the capability's expiry, after which both can be forgotten.
//!
//! It must not do I/O, read the clock, or know the roster's storage: the node does those.

use crate::manifest::cbor::{self, CborError, Decoder, required};
use crate::tokens::{CollectionPattern, Right};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Largest encoded record of any kind. A capability lists at most [`MAX_PATTERNS`] patterns.
pub const MAX_RECORD_SIZE: usize = 4096;
/// Most collection patterns in one capability.
pub const MAX_PATTERNS: usize = 32;
/// What every capability token's text starts with, so a node can tell one from a node-local
/// token (40 hex digits) without trying both.
pub const CAPABILITY_PREFIX: &str = "shubcap1_";
/// Length of a capability id, in bytes.
pub const CAPABILITY_ID_LEN: usize = 16;
/// Longest a capability may live, in seconds (a year and a day). Members refuse capabilities
/// and revocations that expire later than this from now: a revocation is kept until the
/// capability it withdraws expires, so this bounds how long any revocation is kept.
pub const MAX_LIFE_SECS: u64 = 366 * 86_400;

const POLICY_DOMAIN: &[u8] = b"shubnet collection policy v1\0";
const CAPABILITY_DOMAIN: &[u8] = b"shubnet capability v1\0";
const REVOCATION_DOMAIN: &[u8] = b"shubnet revocation v1\0";

/// Why a record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// The encoding is not a canonical record of this kind.
    #[error("malformed record: {0}")]
    Malformed(#[from] CborError),
    /// A field holds a value the rules forbid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature was not made by the key the record names.
    #[error("signature does not verify")]
    BadSignature,
    /// A capability token's text is not one.
    #[error("not a capability token")]
    NotACapability,
}

/// The visibility an institution sets on one of its collections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    /// The collection this policy covers.
    pub collection: String,
    /// True when pulls need a credential.
    pub private: bool,
    /// Ordering among policies for the same collection: larger wins.
    pub seq: u64,
    /// The publisher key that signed it.
    pub key: [u8; 32],
    /// ed25519 over the domain and the encoding without `sig`.
    pub sig: [u8; 64],
}

/// A read grant an institution issued to one of its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Unique per issuer; names the grant in revocations.
    pub id: [u8; CAPABILITY_ID_LEN],
    /// Who holds it (shown in logs and listings; not an authentication).
    pub user: String,
    /// What it covers, intersected with the issuer's namespaces.
    pub collections: Vec<CollectionPattern>,
    /// What it allows.
    pub rights: Vec<Right>,
    /// Unix seconds after which it no longer works.
    pub expires: u64,
    /// The issuing institution's publisher key.
    pub key: [u8; 32],
    /// ed25519 over the domain and the encoding without `sig`.
    pub sig: [u8; 64],
}

/// The withdrawal of a capability before its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked capability's id.
    pub id: [u8; CAPABILITY_ID_LEN],
    /// The revoked capability's expiry: after it the revocation can be dropped.
    pub expires: u64,
    /// A publisher key of the institution that issued the capability.
    pub key: [u8; 32],
    /// ed25519 over the domain and the encoding without `sig`.
    pub sig: [u8; 64],
}

fn verify(key: &[u8; 32], domain: &[u8], body: &[u8], sig: &[u8; 64]) -> Result<(), AccessError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| AccessError::BadSignature)?;
    let mut payload = Vec::with_capacity(domain.len() + body.len());
    payload.extend_from_slice(domain);
    payload.extend_from_slice(body);
    key.verify_strict(&payload, &Signature::from_bytes(sig))
        .map_err(|_| AccessError::BadSignature)
}

fn sign(key: &SigningKey, domain: &[u8], body: &[u8]) -> [u8; 64] {
    let mut payload = Vec::with_capacity(domain.len() + body.len());
    payload.extend_from_slice(domain);
    payload.extend_from_slice(body);
    key.sign(&payload).to_bytes()
}

fn check_collection(name: &str) -> Result<(), AccessError> {
    crate::reference::validate_collection(name).map_err(|_| AccessError::Invalid {
        field: "collection",
        reason: "not a valid collection name",
    })
}

/// Decodes `buf` with `decode`, then checks that it is canonical and within the size cap.
fn decode_canonical<T>(
    buf: &[u8],
    decode: impl FnOnce(&mut Decoder<'_>) -> Result<T, AccessError>,
    encode: impl FnOnce(&T) -> Vec<u8>,
) -> Result<T, AccessError> {
    cbor::check_size(buf, MAX_RECORD_SIZE)?;
    let mut d = Decoder::new(buf);
    let v = decode(&mut d)?;
    d.finish()?;
    if encode(&v) != buf {
        return Err(CborError::NonCanonical("re-encoding differs from the input").into());
    }
    Ok(v)
}

impl SignedPolicy {
    /// Signs a policy for `collection` with `key`.
    pub fn sign(
        collection: &str,
        private: bool,
        seq: u64,
        key: &SigningKey,
    ) -> Result<Self, AccessError> {
        check_collection(collection)?;
        let mut p = SignedPolicy {
            collection: collection.to_owned(),
            private,
            seq,
            key: key.verifying_key().to_bytes(),
            sig: [0; 64],
        };
        p.sig = sign(key, POLICY_DOMAIN, &p.encode_with(None));
        Ok(p)
    }

    fn encode_with(&self, sig: Option<&[u8; 64]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        let c = |o: &mut Vec<u8>| cbor::text(o, &self.collection);
        let p = |o: &mut Vec<u8>| cbor::boolean(o, self.private);
        let s = |o: &mut Vec<u8>| cbor::uint(o, self.seq);
        let k = |o: &mut Vec<u8>| cbor::bytes(o, &self.key);
        let g = |o: &mut Vec<u8>| cbor::bytes(o, sig.map_or(&[][..], |s| &s[..]));
        let mut entries: Vec<cbor::Entry<'_>> = vec![("c", &c), ("k", &k), ("p", &p), ("s", &s)];
        if sig.is_some() {
            entries.push(("g", &g));
        }
        cbor::map(&mut out, &mut entries);
        out
    }

    /// The canonical encoding, signature included.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(Some(&self.sig))
    }

    /// Decodes and checks the signature against the key the policy names.
    pub fn decode(buf: &[u8]) -> Result<Self, AccessError> {
        let p = decode_canonical(buf, decode_policy, Self::encode)?;
        check_collection(&p.collection)?;
        verify(&p.key, POLICY_DOMAIN, &p.encode_with(None), &p.sig)?;
        Ok(p)
    }

    /// Decodes a policy this node verified when it accepted it, without checking the signature
    /// again: visibility reads a policy on every request, and the bytes never left the node's
    /// own database since they verified.
    pub fn decode_stored(buf: &[u8]) -> Result<Self, AccessError> {
        let p = decode_canonical(buf, decode_policy, Self::encode)?;
        check_collection(&p.collection)?;
        Ok(p)
    }

    /// True when `self` wins over `other` for the same collection.
    pub fn supersedes(&self, other: &SignedPolicy) -> bool {
        (self.seq, self.sig) > (other.seq, other.sig)
    }
}

fn decode_policy(d: &mut Decoder<'_>) -> Result<SignedPolicy, AccessError> {
    let mut keys = d.map("policy", 8)?;
    let (mut c, mut p, mut s, mut k, mut g) = (None, None, None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "c" => c = Some(d.text("collection")?.to_owned()),
            "g" => g = Some(d.byte_array::<64>("sig", "64 signature bytes")?),
            "k" => k = Some(d.byte_array::<32>("key", "32 key bytes")?),
            "p" => p = Some(d.boolean("private")?),
            "s" => s = Some(d.uint("seq")?),
            other => return Err(CborError::UnknownField(other.to_owned()).into()),
        }
    }
    Ok(SignedPolicy {
        collection: required(c, "collection")?,
        private: required(p, "private")?,
        seq: required(s, "seq")?,
        key: required(k, "key")?,
        sig: required(g, "sig")?,
    })
}

impl Capability {
    /// Issues a capability signed by `key`.
    pub fn issue(
        id: [u8; CAPABILITY_ID_LEN],
        user: &str,
        collections: Vec<CollectionPattern>,
        rights: Vec<Right>,
        expires: u64,
        key: &SigningKey,
    ) -> Result<Self, AccessError> {
        let mut c = Capability {
            id,
            user: user.to_owned(),
            collections,
            rights,
            expires,
            key: key.verifying_key().to_bytes(),
            sig: [0; 64],
        };
        c.validate()?;
        c.sig = sign(key, CAPABILITY_DOMAIN, &c.encode_with(None));
        if c.encode().len() > MAX_RECORD_SIZE {
            return Err(AccessError::Invalid {
                field: "capability",
                reason: "too large",
            });
        }
        Ok(c)
    }

    fn validate(&self) -> Result<(), AccessError> {
        crate::tokens::validate_user(&self.user).map_err(|_| AccessError::Invalid {
            field: "user",
            reason: "not a valid user name",
        })?;
        if self.collections.is_empty() || self.collections.len() > MAX_PATTERNS {
            return Err(AccessError::Invalid {
                field: "collections",
                reason: "between 1 and 32 patterns",
            });
        }
        if self.rights.is_empty() {
            return Err(AccessError::Invalid {
                field: "rights",
                reason: "at least one right",
            });
        }
        Ok(())
    }

    fn encode_with(&self, sig: Option<&[u8; 64]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let i = |o: &mut Vec<u8>| cbor::bytes(o, &self.id);
        let u = |o: &mut Vec<u8>| cbor::text(o, &self.user);
        let c = |o: &mut Vec<u8>| {
            cbor::array(o, self.collections.len());
            self.collections
                .iter()
                .for_each(|p| cbor::text(o, p.as_str()));
        };
        let r = |o: &mut Vec<u8>| {
            cbor::array(o, self.rights.len());
            self.rights.iter().for_each(|r| cbor::text(o, r.as_str()));
        };
        let e = |o: &mut Vec<u8>| cbor::uint(o, self.expires);
        let k = |o: &mut Vec<u8>| cbor::bytes(o, &self.key);
        let g = |o: &mut Vec<u8>| cbor::bytes(o, sig.map_or(&[][..], |s| &s[..]));
        let mut entries: Vec<cbor::Entry<'_>> = vec![
            ("c", &c),
            ("e", &e),
            ("i", &i),
            ("k", &k),
            ("r", &r),
            ("u", &u),
        ];
        if sig.is_some() {
            entries.push(("g", &g));
        }
        cbor::map(&mut out, &mut entries);
        out
    }

    /// The canonical encoding, signature included.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(Some(&self.sig))
    }

    /// Decodes and checks the signature against the key the capability names.
    pub fn decode(buf: &[u8]) -> Result<Self, AccessError> {
        let c = decode_canonical(buf, decode_capability, Self::encode)?;
        c.validate()?;
        verify(&c.key, CAPABILITY_DOMAIN, &c.encode_with(None), &c.sig)?;
        Ok(c)
    }

    /// The bearer token text: [`CAPABILITY_PREFIX`] and the encoding in unpadded base64url.
    pub fn to_token(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.encode());
        format!("{CAPABILITY_PREFIX}{b64}")
    }

    /// Parses and checks a bearer token made by [`Self::to_token`].
    pub fn from_token(text: &str) -> Result<Self, AccessError> {
        let b64 = text
            .trim()
            .strip_prefix(CAPABILITY_PREFIX)
            .ok_or(AccessError::NotACapability)?;
        if b64.len() > MAX_RECORD_SIZE * 4 / 3 + 4 {
            return Err(AccessError::NotACapability);
        }
        let buf = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| AccessError::NotACapability)?;
        Self::decode(&buf)
    }

    /// The id as the 32 hex digits `shubnet token list` shows and `revoke` takes.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// True when the grant, read on its own, covers `right` on `collection` at `now`. The node
    /// also checks that the signer owns `collection` and that the grant is not revoked.
    pub fn grants(&self, collection: &str, right: Right, now: u64) -> bool {
        now < self.expires
            && self.rights.contains(&right)
            && self.collections.iter().any(|p| p.matches(collection))
    }
}

fn decode_capability(d: &mut Decoder<'_>) -> Result<Capability, AccessError> {
    let mut keys = d.map("capability", 10)?;
    let (mut i, mut u, mut c, mut r, mut e, mut k, mut g) =
        (None, None, None, None, None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "c" => {
                let n = d.array("collections", MAX_PATTERNS as u64)?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let text = d.text("collection pattern")?;
                    v.push(
                        CollectionPattern::parse(text).map_err(|_| AccessError::Invalid {
                            field: "collections",
                            reason: "not a collection pattern",
                        })?,
                    );
                }
                c = Some(v);
            }
            "e" => e = Some(d.uint("expires")?),
            "g" => g = Some(d.byte_array::<64>("sig", "64 signature bytes")?),
            "i" => i = Some(d.byte_array::<CAPABILITY_ID_LEN>("id", "16 id bytes")?),
            "k" => k = Some(d.byte_array::<32>("key", "32 key bytes")?),
            "r" => {
                let n = d.array("rights", 8)?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let text = d.text("right")?;
                    let parsed = Right::parse_list(text).map_err(|_| AccessError::Invalid {
                        field: "rights",
                        reason: "unknown right",
                    })?;
                    v.extend(parsed);
                }
                r = Some(v);
            }
            "u" => u = Some(d.text("user")?.to_owned()),
            other => return Err(CborError::UnknownField(other.to_owned()).into()),
        }
    }
    Ok(Capability {
        id: required(i, "id")?,
        user: required(u, "user")?,
        collections: required(c, "collections")?,
        rights: required(r, "rights")?,
        expires: required(e, "expires")?,
        key: required(k, "key")?,
        sig: required(g, "sig")?,
    })
}

impl Revocation {
    /// Revokes capability `id` (which expires at `expires`), signed by `key`.
    pub fn sign(id: [u8; CAPABILITY_ID_LEN], expires: u64, key: &SigningKey) -> Self {
        let mut r = Revocation {
            id,
            expires,
            key: key.verifying_key().to_bytes(),
            sig: [0; 64],
        };
        r.sig = sign(key, REVOCATION_DOMAIN, &r.encode_with(None));
        r
    }

    fn encode_with(&self, sig: Option<&[u8; 64]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        let i = |o: &mut Vec<u8>| cbor::bytes(o, &self.id);
        let e = |o: &mut Vec<u8>| cbor::uint(o, self.expires);
        let k = |o: &mut Vec<u8>| cbor::bytes(o, &self.key);
        let g = |o: &mut Vec<u8>| cbor::bytes(o, sig.map_or(&[][..], |s| &s[..]));
        let mut entries: Vec<cbor::Entry<'_>> = vec![("e", &e), ("i", &i), ("k", &k)];
        if sig.is_some() {
            entries.push(("g", &g));
        }
        cbor::map(&mut out, &mut entries);
        out
    }

    /// The canonical encoding, signature included.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(Some(&self.sig))
    }

    /// Decodes and checks the signature against the key the revocation names.
    pub fn decode(buf: &[u8]) -> Result<Self, AccessError> {
        let r = decode_canonical(buf, decode_revocation, Self::encode)?;
        verify(&r.key, REVOCATION_DOMAIN, &r.encode_with(None), &r.sig)?;
        Ok(r)
    }
}

fn decode_revocation(d: &mut Decoder<'_>) -> Result<Revocation, AccessError> {
    let mut keys = d.map("revocation", 8)?;
    let (mut i, mut e, mut k, mut g) = (None, None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "e" => e = Some(d.uint("expires")?),
            "g" => g = Some(d.byte_array::<64>("sig", "64 signature bytes")?),
            "i" => i = Some(d.byte_array::<CAPABILITY_ID_LEN>("id", "16 id bytes")?),
            "k" => k = Some(d.byte_array::<32>("key", "32 key bytes")?),
            other => return Err(CborError::UnknownField(other.to_owned()).into()),
        }
    }
    Ok(Revocation {
        id: required(i, "id")?,
        expires: required(e, "expires")?,
        key: required(k, "key")?,
        sig: required(g, "sig")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn a_policy_round_trips_and_a_changed_byte_breaks_it() {
        let p = SignedPolicy::sign("priv-a", true, 7, &key(1)).unwrap();
        let enc = p.encode();
        assert_eq!(SignedPolicy::decode(&enc).unwrap(), p);
        let flipped = SignedPolicy::sign("priv-a", false, 7, &key(1)).unwrap();
        let mut forged = flipped.clone();
        forged.sig = p.sig;
        assert_eq!(
            SignedPolicy::decode(&forged.encode()),
            Err(AccessError::BadSignature)
        );
    }

    #[test]
    fn newer_policies_win_in_any_order() {
        let a = SignedPolicy::sign("c", true, 1, &key(1)).unwrap();
        let b = SignedPolicy::sign("c", false, 2, &key(1)).unwrap();
        assert!(b.supersedes(&a));
        assert!(!a.supersedes(&b));
        assert!(!a.supersedes(&a));
    }

    #[test]
    fn a_capability_token_round_trips_and_checks_expiry_rights_and_patterns() {
        let c = Capability::issue(
            [3; 16],
            "alice",
            vec![CollectionPattern::parse("priv-a").unwrap()],
            vec![Right::Pull],
            1000,
            &key(2),
        )
        .unwrap();
        let t = c.to_token();
        assert!(t.starts_with(CAPABILITY_PREFIX));
        let back = Capability::from_token(&t).unwrap();
        assert_eq!(back, c);
        assert!(back.grants("priv-a", Right::Pull, 999));
        assert!(!back.grants("priv-a", Right::Pull, 1000));
        assert!(!back.grants("priv-a", Right::Push, 999));
        assert!(!back.grants("priv-b", Right::Pull, 999));
    }

    #[test]
    fn a_tampered_capability_token_is_refused() {
        let c = Capability::issue(
            [3; 16],
            "alice",
            vec![CollectionPattern::parse("priv-a").unwrap()],
            vec![Right::Pull],
            1000,
            &key(2),
        )
        .unwrap();
        let mut longer = c.clone();
        longer.expires = u64::MAX;
        assert_eq!(
            Capability::from_token(&longer.to_token()),
            Err(AccessError::BadSignature)
        );
        assert_eq!(
            Capability::from_token("0123456789abcdef0123456789abcdef01234567"),
            Err(AccessError::NotACapability)
        );
        assert_eq!(
            Capability::from_token("shubcap1_!!"),
            Err(AccessError::NotACapability)
        );
    }

    #[test]
    fn a_revocation_round_trips_and_its_signature_is_domain_bound() {
        let r = Revocation::sign([9; 16], 55, &key(4));
        assert_eq!(Revocation::decode(&r.encode()).unwrap(), r);
        let p = SignedPolicy::sign("c", true, 1, &key(4)).unwrap();
        let mut cross = r.clone();
        cross.sig = p.sig;
        assert_eq!(
            Revocation::decode(&cross.encode()),
            Err(AccessError::BadSignature)
        );
    }
}
