//! Join requests: what a newcomer's node prints and an admin pastes into `federation admit`.
//!
//! The request is a DAG-CBOR map signed with the newcomer's publisher key (proving it holds the
//! key it asks to have admitted), written as one ASCII line:
//! [`JOIN_LINE_PREFIX`] followed by the unpadded base64url of the encoding. Mail clients wrap
//! long lines, so [`JoinRequest::from_line`] ignores all whitespace inside it. The peer id is
//! taken on the admin's trust: the admin vouches for the whole request by admitting it.
//!
//! Keys: `v` (format), `id` (institution id), `name`, `peer`, `sig`, `created`, `namespaces`,
//! `publisher`.
//!
//! It must not decide whether a newcomer is admitted: [`Roster::admit`] only adds a request an
//! admin chose, and the new version still needs the admins' signatures.

use super::{
    FORMAT_VERSION, MAX_NAMESPACES_PER_MEMBER, Member, Roster, RosterError, decode_texts, hex,
    validate_member,
};
use crate::manifest::cbor::{self, CborError, Decoder, Entry, required};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// What every join request line starts with; the version is in the prefix so a future format
/// is refused by name.
pub const JOIN_LINE_PREFIX: &str = "shubnet-join-v1.";
/// What a join request signature covers first.
pub const JOIN_SIGNATURE_DOMAIN: &[u8] = b"shubnet-join-v1\0";
/// Largest encoded join request.
pub const MAX_JOIN_SIZE: usize = 6 * 1024;
/// Longest join line accepted, whitespace excluded (the prefix and base64 of [`MAX_JOIN_SIZE`]).
pub const MAX_JOIN_LINE: usize = JOIN_LINE_PREFIX.len() + MAX_JOIN_SIZE.div_ceil(3) * 4;

/// What a newcomer asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsignedJoinRequest {
    /// The institution id it asks to be admitted as (see [`Member::id`]).
    pub institution: String,
    /// The institution's display name.
    pub name: String,
    /// The libp2p peer id of the newcomer's node.
    pub peer_id: String,
    /// Collection patterns it asks to publish.
    pub namespaces: Vec<String>,
    /// Unix seconds when the request was made.
    pub created: u64,
}

/// A join request signed by the publisher key it asks to have admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The request.
    pub body: UnsignedJoinRequest,
    /// The newcomer's publisher key.
    pub publisher_key: [u8; 32],
    /// Signature over [`JOIN_SIGNATURE_DOMAIN`] ‖ encoding without `sig`.
    pub signature: [u8; 64],
}

impl UnsignedJoinRequest {
    /// Signs the request with the newcomer's publisher key, after checking its fields.
    pub fn sign(self, key: &SigningKey) -> Result<JoinRequest, RosterError> {
        let publisher_key = key.verifying_key().to_bytes();
        let mut req = JoinRequest {
            body: self,
            publisher_key,
            signature: [0; 64],
        };
        req.validate()?;
        req.signature = key.sign(&req.signing_payload()).to_bytes();
        let len = req.encode().len();
        if len > MAX_JOIN_SIZE {
            return Err(CborError::TooLarge {
                len,
                max: MAX_JOIN_SIZE,
            }
            .into());
        }
        Ok(req)
    }
}

impl JoinRequest {
    /// The member this request would add, offering `storage_bytes`.
    pub fn to_member(&self, storage_bytes: u64) -> Member {
        Member {
            id: self.body.institution.clone(),
            name: self.body.name.clone(),
            peer_ids: vec![self.body.peer_id.clone()],
            publisher_keys: vec![self.publisher_key],
            namespaces: self.body.namespaces.clone(),
            storage_bytes,
            gateway: None,
        }
    }

    /// Checks the fields by the rules a roster member obeys.
    pub fn validate(&self) -> Result<(), RosterError> {
        validate_member(&self.to_member(0))?;
        Ok(())
    }

    /// Checks the signature against the publisher key in the request.
    pub fn verify_signature(&self) -> Result<(), RosterError> {
        let bad = || RosterError::BadSignature(hex(&self.publisher_key));
        let key = VerifyingKey::from_bytes(&self.publisher_key).map_err(|_| bad())?;
        key.verify_strict(
            &self.signing_payload(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| bad())
    }

    fn signing_payload(&self) -> Vec<u8> {
        let mut out = JOIN_SIGNATURE_DOMAIN.to_vec();
        self.encode_into(&mut out, false);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>, with_sig: bool) {
        let b = &self.body;
        let v = |o: &mut Vec<u8>| cbor::uint(o, FORMAT_VERSION);
        let id = |o: &mut Vec<u8>| cbor::text(o, &b.institution);
        let name = |o: &mut Vec<u8>| cbor::text(o, &b.name);
        let peer = |o: &mut Vec<u8>| cbor::text(o, &b.peer_id);
        let sig = |o: &mut Vec<u8>| cbor::bytes(o, &self.signature);
        let created = |o: &mut Vec<u8>| cbor::uint(o, b.created);
        let namespaces = |o: &mut Vec<u8>| {
            cbor::array(o, b.namespaces.len());
            b.namespaces.iter().for_each(|n| cbor::text(o, n));
        };
        let publisher = |o: &mut Vec<u8>| cbor::bytes(o, &self.publisher_key);
        let mut entries: Vec<Entry<'_>> = vec![
            ("v", &v),
            ("id", &id),
            ("name", &name),
            ("peer", &peer),
            ("created", &created),
            ("namespaces", &namespaces),
            ("publisher", &publisher),
        ];
        if with_sig {
            entries.push(("sig", &sig));
        }
        cbor::map(out, &mut entries);
    }

    /// The canonical DAG-CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out, true);
        out
    }

    /// Decodes a request, refusing non-canonical encodings and invalid fields. The signature is
    /// not checked here; [`JoinRequest::from_line`] does.
    pub fn decode(buf: &[u8]) -> Result<Self, RosterError> {
        cbor::check_size(buf, MAX_JOIN_SIZE)?;
        let mut d = Decoder::new(buf);
        let mut keys = d.map("join request", cbor::MAX_FIELDS)?;
        let mut b = UnsignedJoinRequest::default();
        let (mut v, mut id, mut name, mut peer, mut sig) = (None, None, None, None, None);
        let (mut created, mut namespaces, mut publisher) = (None, None, None);
        while let Some(key) = d.key(&mut keys)? {
            match key {
                "v" => {
                    let fv = d.uint("v")?;
                    if fv != FORMAT_VERSION {
                        return Err(CborError::UnsupportedVersion(fv).into());
                    }
                    v = Some(fv);
                }
                "id" => id = Some(d.text("id")?.to_owned()),
                "name" => name = Some(d.text("name")?.to_owned()),
                "peer" => peer = Some(d.text("peer")?.to_owned()),
                "sig" => sig = Some(d.byte_array::<64>("sig", "64 signature bytes")?),
                "created" => created = Some(d.uint("created")?),
                "namespaces" => {
                    namespaces = Some(decode_texts(
                        &mut d,
                        "namespaces",
                        MAX_NAMESPACES_PER_MEMBER,
                    )?);
                }
                "publisher" => {
                    publisher = Some(d.byte_array::<32>("publisher", "32 key bytes")?);
                }
                other => return Err(CborError::UnknownField(other.to_owned()).into()),
            }
        }
        d.finish()?;
        required(v, "v")?;
        b.institution = required(id, "id")?;
        b.name = required(name, "name")?;
        b.peer_id = required(peer, "peer")?;
        b.created = required(created, "created")?;
        b.namespaces = required(namespaces, "namespaces")?;
        let req = JoinRequest {
            body: b,
            publisher_key: required(publisher, "publisher")?,
            signature: required(sig, "sig")?,
        };
        req.validate()?;
        if req.encode() != buf {
            return Err(CborError::NonCanonical("re-encoding differs from the input").into());
        }
        Ok(req)
    }

    /// One ASCII line, safe to paste into an email: [`JOIN_LINE_PREFIX`] ‖ base64url(encoding).
    pub fn to_line(&self) -> String {
        format!(
            "{JOIN_LINE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.encode())
        )
    }

    /// Parses a line from [`JoinRequest::to_line`] (whitespace anywhere is ignored, so a line
    /// wrapped by a mail client still works), then checks fields and signature.
    pub fn from_line(text: &str) -> Result<Self, RosterError> {
        if text.len() > 2 * MAX_JOIN_LINE {
            return Err(RosterError::BadJoinLine("longer than any join request"));
        }
        let line: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if line.len() > MAX_JOIN_LINE {
            return Err(RosterError::BadJoinLine("longer than any join request"));
        }
        let payload = line
            .strip_prefix(JOIN_LINE_PREFIX)
            .ok_or(RosterError::BadJoinLine(
                "it does not start with shubnet-join-v1.",
            ))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| RosterError::BadJoinLine("the text after the prefix is not base64url"))?;
        let req = JoinRequest::decode(&bytes)?;
        req.verify_signature()?;
        Ok(req)
    }
}

impl Roster {
    /// Adds the member a (signature-checked) join request asks for, offering `storage_bytes`,
    /// then checks the roster is still valid (so an overlapping namespace or a reused key is
    /// refused). A request for an institution already in the roster adds the new node: its peer
    /// id, publisher key and namespaces join the member's, and its storage is added to the
    /// member's. Call it on a [`Roster::successor`], then gather signatures.
    pub fn admit(&mut self, request: &JoinRequest, storage_bytes: u64) -> Result<(), RosterError> {
        request.verify_signature()?;
        let new = request.to_member(storage_bytes);
        match self.members.iter_mut().find(|m| m.id == new.id) {
            None => self.members.push(new),
            Some(m) => {
                for p in new.peer_ids {
                    if !m.peer_ids.contains(&p) {
                        m.peer_ids.push(p);
                    }
                }
                for k in new.publisher_keys {
                    if !m.publisher_keys.contains(&k) {
                        m.publisher_keys.push(k);
                    }
                }
                for n in new.namespaces {
                    if !m.namespaces.contains(&n) {
                        m.namespaces.push(n);
                    }
                }
                m.storage_bytes = m.storage_bytes.saturating_add(storage_bytes);
            }
        }
        self.validate()?;
        Ok(())
    }
}
