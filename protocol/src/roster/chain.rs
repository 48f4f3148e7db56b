//! Signed roster versions and the rules that chain them.
//!
//! A signed roster is the DAG-CBOR map `{"body": <roster>, "sigs": [[key, signature], …]}`, the
//! signatures sorted by key with no key twice, each over [`SIGNATURE_DOMAIN`] ‖ body encoding.
//! It must not store or fetch versions: callers hand it the chain they hold, and no version
//! counts here without a threshold of the previous version's admin signatures.

use super::{
    MAX_ADMINS, MAX_ROSTER_SIZE, Roster, RosterError, SIGNATURE_DOMAIN, decode_roster,
    encode_roster, hex,
};
use crate::cid::{DAG_CBOR, cid_for};
use crate::manifest::cbor::{self, CborError, Decoder, required};
use cid::Cid;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// One admin's signature on a roster body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterSignature {
    /// The admin's ed25519 public key.
    pub key: [u8; 32],
    /// The signature over [`SIGNATURE_DOMAIN`] ‖ body encoding.
    pub signature: [u8; 64],
}

/// A roster body with the admin signatures gathered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    /// The version being signed.
    pub body: Roster,
    /// Signatures, sorted by key, at most one per key.
    pub signatures: Vec<RosterSignature>,
}

impl SignedRoster {
    /// A body with no signatures yet.
    pub fn new(body: Roster) -> Self {
        SignedRoster {
            body,
            signatures: Vec::new(),
        }
    }

    /// Adds (or replaces) `key`'s signature on the body: how admins co-sign a pending version
    /// when the threshold is above 1. Whether the key may sign is checked by verification.
    pub fn add_signature(&mut self, key: &SigningKey) {
        let sig = RosterSignature {
            key: key.verifying_key().to_bytes(),
            signature: key.sign(&signing_payload(&self.body)).to_bytes(),
        };
        match self.signatures.binary_search_by(|s| s.key.cmp(&sig.key)) {
            Ok(i) => self.signatures[i] = sig,
            Err(i) => self.signatures.insert(i, sig),
        }
    }

    /// The body's CID (what the next version's `prev` names).
    pub fn body_cid(&self) -> Cid {
        self.body.body_cid()
    }

    /// The canonical DAG-CBOR encoding, signatures included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.members.len() * 256);
        let body = |o: &mut Vec<u8>| encode_roster(o, &self.body);
        let sigs = |o: &mut Vec<u8>| {
            let mut sorted: Vec<&RosterSignature> = self.signatures.iter().collect();
            sorted.sort_by_key(|s| s.key);
            cbor::array(o, sorted.len());
            for s in sorted {
                cbor::array(o, 2);
                cbor::bytes(o, &s.key);
                cbor::bytes(o, &s.signature);
            }
        };
        cbor::map(&mut out, &mut [("body", &body), ("sigs", &sigs)]);
        out
    }

    /// CID of the whole signed encoding: how a node's log names this version.
    pub fn cid(&self) -> Cid {
        cid_for(DAG_CBOR, &self.encode())
    }

    /// Decodes a signed roster, refusing non-canonical encodings, unsorted or repeated signers
    /// and invalid bodies. Signatures are checked by [`verify_genesis`], [`verify_next`] and
    /// [`verify_chain`], which know whose signatures count.
    pub fn decode(buf: &[u8]) -> Result<Self, RosterError> {
        cbor::check_size(buf, MAX_ROSTER_SIZE)?;
        let mut d = Decoder::new(buf);
        let mut keys = d.map("signed roster", cbor::MAX_FIELDS)?;
        let (mut body, mut sigs) = (None, None);
        while let Some(key) = d.key(&mut keys)? {
            match key {
                "body" => body = Some(decode_roster(&mut d)?),
                "sigs" => sigs = Some(decode_signatures(&mut d)?),
                other => return Err(CborError::UnknownField(other.to_owned()).into()),
            }
        }
        d.finish()?;
        let r = SignedRoster {
            body: required(body, "body")?,
            signatures: required(sigs, "sigs")?,
        };
        r.body.validate()?;
        if r.encode() != buf {
            return Err(CborError::NonCanonical("re-encoding differs from the input").into());
        }
        Ok(r)
    }
}

fn decode_signatures(d: &mut Decoder<'_>) -> Result<Vec<RosterSignature>, CborError> {
    let n = d.array("sigs", MAX_ADMINS as u64)?;
    let mut out: Vec<RosterSignature> = Vec::new();
    for _ in 0..n {
        if d.array("sigs", 2)? != 2 {
            return Err(CborError::WrongType {
                field: "sigs",
                expected: "[key, signature] pairs",
            });
        }
        let key = d.byte_array::<32>("sigs", "32 key bytes")?;
        let signature = d.byte_array::<64>("sigs", "64 signature bytes")?;
        if out.last().is_some_and(|last| last.key >= key) {
            return Err(CborError::NonCanonical(
                "signatures must be sorted by key, one per key",
            ));
        }
        out.push(RosterSignature { key, signature });
    }
    Ok(out)
}

fn signing_payload(body: &Roster) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 256 + body.members.len() * 256);
    out.extend_from_slice(SIGNATURE_DOMAIN);
    encode_roster(&mut out, body);
    out
}

/// Every signature must be by a distinct key in `admins` and verify; at least `threshold` of
/// them.
fn check_signatures(
    signed: &SignedRoster,
    admins: &[[u8; 32]],
    threshold: u32,
) -> Result<(), RosterError> {
    let payload = signing_payload(&signed.body);
    let mut seen: Vec<&[u8; 32]> = Vec::with_capacity(signed.signatures.len());
    for s in &signed.signatures {
        if !admins.contains(&s.key) {
            return Err(RosterError::UnknownSigner(hex(&s.key)));
        }
        if seen.contains(&&s.key) {
            return Err(RosterError::DuplicateSigner(hex(&s.key)));
        }
        seen.push(&s.key);
        let key =
            VerifyingKey::from_bytes(&s.key).map_err(|_| RosterError::BadSignature(hex(&s.key)))?;
        key.verify_strict(&payload, &Signature::from_bytes(&s.signature))
            .map_err(|_| RosterError::BadSignature(hex(&s.key)))?;
    }
    if seen.len() < threshold as usize {
        return Err(RosterError::TooFewSignatures {
            have: seen.len(),
            need: threshold,
        });
    }
    Ok(())
}

/// Checks a founding version: version 1, valid, and signed by at least `threshold` of its own
/// admins.
pub fn verify_genesis(genesis: &SignedRoster) -> Result<(), RosterError> {
    if genesis.body.version != 1 {
        return Err(RosterError::SkippedVersion {
            expected: 1,
            found: genesis.body.version,
        });
    }
    genesis.body.validate()?;
    check_signatures(genesis, &genesis.body.admins, genesis.body.threshold)
}

/// Checks that `next` may follow `current` (itself already verified): it is valid, its version
/// is `current.version + 1`, its `prev` is `current`'s body CID, and it carries at least
/// `current.threshold` valid signatures, all by distinct admins of `current`.
pub fn verify_next(current: &Roster, next: &SignedRoster) -> Result<(), RosterError> {
    let found = next.body.version;
    if found <= current.version {
        return Err(RosterError::StaleVersion {
            current: current.version,
            found,
        });
    }
    if found != current.version + 1 {
        return Err(RosterError::SkippedVersion {
            expected: current.version + 1,
            found,
        });
    }
    next.body.validate()?;
    let expected = current.body_cid();
    if next.body.prev != Some(expected) {
        return Err(RosterError::WrongPrev {
            expected: expected.to_string(),
            found: next.body.prev.map(|c| c.to_string()),
        });
    }
    check_signatures(next, &current.admins, current.threshold)
}

/// Verifies a whole chain from version 1 against the federation id and returns the latest
/// version's body.
pub fn verify_chain(federation_id: &str, chain: &[SignedRoster]) -> Result<Roster, RosterError> {
    let (genesis, rest) = chain.split_first().ok_or(RosterError::EmptyChain)?;
    if genesis.body.version != 1 {
        return Err(RosterError::SkippedVersion {
            expected: 1,
            found: genesis.body.version,
        });
    }
    let found = genesis.body_cid().to_string();
    if found != federation_id {
        return Err(RosterError::WrongFederation {
            expected: federation_id.to_owned(),
            found,
        });
    }
    verify_genesis(genesis)?;
    let mut current = &genesis.body;
    for next in rest {
        verify_next(current, next)?;
        current = &next.body;
    }
    Ok(current.clone())
}
