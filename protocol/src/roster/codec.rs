//! The canonical DAG-CBOR form of a roster body and its members.
//!
//! Keys: body `v`, `name`, `prev` (absent for version 1), `admins`, `created`, `members`,
//! `version`, `threshold`, `replication` (`k`, `min_institutions`); member `id`, `name`,
//! `peers`, `gateway` (absent when `None`), `storage`, `namespaces`, `publishers`.
//!
//! Encoding only: it must not check signatures or roster rules (that is `chain` and the
//! parent's validation).

use super::{
    FORMAT_VERSION, MAX_ADMINS, MAX_KEYS_PER_MEMBER, MAX_MEMBERS, MAX_NAMESPACES_PER_MEMBER,
    MAX_PEERS_PER_MEMBER, Member, Replication, Roster,
};
use crate::manifest::cbor::{self, CborError, Decoder, Entry, required};

// ---- encoding -------------------------------------------------------------------------------

fn key_array(out: &mut Vec<u8>, keys: &[[u8; 32]]) {
    cbor::array(out, keys.len());
    keys.iter().for_each(|k| cbor::bytes(out, k));
}

fn text_array(out: &mut Vec<u8>, items: &[String]) {
    cbor::array(out, items.len());
    items.iter().for_each(|s| cbor::text(out, s));
}

pub(crate) fn encode_roster(out: &mut Vec<u8>, r: &Roster) {
    let v = |o: &mut Vec<u8>| cbor::uint(o, FORMAT_VERSION);
    let name = |o: &mut Vec<u8>| cbor::text(o, &r.name);
    let prev = |o: &mut Vec<u8>| r.prev.iter().for_each(|c| cbor::cid(o, c));
    let admins = |o: &mut Vec<u8>| key_array(o, &r.admins);
    let created = |o: &mut Vec<u8>| cbor::uint(o, r.created);
    let members = |o: &mut Vec<u8>| {
        cbor::array(o, r.members.len());
        r.members.iter().for_each(|m| encode_member(o, m));
    };
    let version = |o: &mut Vec<u8>| cbor::uint(o, r.version);
    let threshold = |o: &mut Vec<u8>| cbor::uint(o, u64::from(r.threshold));
    let replication = |o: &mut Vec<u8>| {
        let k = |o: &mut Vec<u8>| cbor::uint(o, u64::from(r.replication.k));
        let min = |o: &mut Vec<u8>| cbor::uint(o, u64::from(r.replication.min_institutions));
        cbor::map(o, &mut [("k", &k), ("min_institutions", &min)]);
    };
    let mut entries: Vec<Entry<'_>> = vec![
        ("v", &v),
        ("name", &name),
        ("admins", &admins),
        ("created", &created),
        ("members", &members),
        ("version", &version),
        ("threshold", &threshold),
        ("replication", &replication),
    ];
    if r.prev.is_some() {
        entries.push(("prev", &prev));
    }
    cbor::map(out, &mut entries);
}

fn encode_member(out: &mut Vec<u8>, m: &Member) {
    let id = |o: &mut Vec<u8>| cbor::text(o, &m.id);
    let name = |o: &mut Vec<u8>| cbor::text(o, &m.name);
    let peers = |o: &mut Vec<u8>| text_array(o, &m.peer_ids);
    let gateway = |o: &mut Vec<u8>| m.gateway.iter().for_each(|g| cbor::text(o, g));
    let storage = |o: &mut Vec<u8>| cbor::uint(o, m.storage_bytes);
    let namespaces = |o: &mut Vec<u8>| text_array(o, &m.namespaces);
    let publishers = |o: &mut Vec<u8>| key_array(o, &m.publisher_keys);
    let mut entries: Vec<Entry<'_>> = vec![
        ("id", &id),
        ("name", &name),
        ("peers", &peers),
        ("storage", &storage),
        ("namespaces", &namespaces),
        ("publishers", &publishers),
    ];
    if m.gateway.is_some() {
        entries.push(("gateway", &gateway));
    }
    cbor::map(out, &mut entries);
}

// ---- decoding -------------------------------------------------------------------------------

pub(crate) fn decode_keys(
    d: &mut Decoder<'_>,
    field: &'static str,
    max: usize,
) -> Result<Vec<[u8; 32]>, CborError> {
    let n = d.array(field, max as u64)?;
    (0..n)
        .map(|_| d.byte_array::<32>(field, "32 key bytes"))
        .collect()
}

pub(crate) fn decode_texts(
    d: &mut Decoder<'_>,
    field: &'static str,
    max: usize,
) -> Result<Vec<String>, CborError> {
    let n = d.array(field, max as u64)?;
    (0..n).map(|_| d.text(field).map(str::to_owned)).collect()
}

pub(crate) fn decode_roster(d: &mut Decoder<'_>) -> Result<Roster, CborError> {
    let mut keys = d.map("roster", cbor::MAX_FIELDS)?;
    let (mut v, mut name, mut prev, mut admins, mut created) = (None, None, None, None, None);
    let (mut members, mut version, mut threshold, mut replication) = (None, None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "v" => {
                let fv = d.uint("v")?;
                if fv != FORMAT_VERSION {
                    return Err(CborError::UnsupportedVersion(fv));
                }
                v = Some(fv);
            }
            "name" => name = Some(d.text("name")?.to_owned()),
            "prev" => prev = Some(d.cid("prev")?),
            "admins" => admins = Some(decode_keys(d, "admins", MAX_ADMINS)?),
            "created" => created = Some(d.uint("created")?),
            "members" => {
                let n = d.array("members", MAX_MEMBERS as u64)?;
                members = Some((0..n).map(|_| decode_member(d)).collect::<Result<_, _>>()?);
            }
            "version" => version = Some(d.uint("version")?),
            "threshold" => threshold = Some(d.u32("threshold")?),
            "replication" => replication = Some(decode_replication(d)?),
            other => return Err(CborError::UnknownField(other.to_owned())),
        }
    }
    required(v, "v")?;
    Ok(Roster {
        name: required(name, "name")?,
        version: required(version, "version")?,
        prev,
        admins: required(admins, "admins")?,
        threshold: required(threshold, "threshold")?,
        members: required(members, "members")?,
        replication: required(replication, "replication")?,
        created: required(created, "created")?,
    })
}

fn decode_replication(d: &mut Decoder<'_>) -> Result<Replication, CborError> {
    let mut keys = d.map("replication", cbor::MAX_FIELDS)?;
    let (mut k, mut min) = (None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "k" => k = Some(d.u32("replication.k")?),
            "min_institutions" => min = Some(d.u32("replication.min_institutions")?),
            other => return Err(CborError::UnknownField(format!("replication.{other}"))),
        }
    }
    Ok(Replication {
        k: required(k, "replication.k")?,
        min_institutions: required(min, "replication.min_institutions")?,
    })
}

fn decode_member(d: &mut Decoder<'_>) -> Result<Member, CborError> {
    let mut keys = d.map("member", cbor::MAX_FIELDS)?;
    let mut m = Member::default();
    let (mut id, mut name, mut peers, mut storage, mut namespaces, mut publishers) =
        (None, None, None, None, None, None);
    while let Some(key) = d.key(&mut keys)? {
        match key {
            "id" => id = Some(d.text("member.id")?.to_owned()),
            "name" => name = Some(d.text("member.name")?.to_owned()),
            "peers" => peers = Some(decode_texts(d, "member.peers", MAX_PEERS_PER_MEMBER)?),
            "gateway" => m.gateway = Some(d.text("member.gateway")?.to_owned()),
            "storage" => storage = Some(d.uint("member.storage")?),
            "namespaces" => {
                namespaces = Some(decode_texts(
                    d,
                    "member.namespaces",
                    MAX_NAMESPACES_PER_MEMBER,
                )?);
            }
            "publishers" => {
                publishers = Some(decode_keys(d, "member.publishers", MAX_KEYS_PER_MEMBER)?);
            }
            other => return Err(CborError::UnknownField(format!("member.{other}"))),
        }
    }
    m.id = required(id, "member.id")?;
    m.name = required(name, "member.name")?;
    m.peer_ids = required(peers, "member.peers")?;
    m.storage_bytes = required(storage, "member.storage")?;
    m.namespaces = required(namespaces, "member.namespaces")?;
    m.publisher_keys = required(publishers, "member.publishers")?;
    Ok(m)
}
