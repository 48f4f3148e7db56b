//! shubnet's formats: everything that must be byte-identical across nodes and with IPFS.
//!
//! This crate is pure: bytes in, bytes out. It never touches a network or a disk beyond the
//! `Read`/`Write` handed to it, so every format here can be tested with known answers and fuzzed.
//!
//! - [`cid`]: how shubnet names blocks (CIDv1, sha2-256) and checks a block against its name.
//! - [`varint`]: the unsigned LEB128 varints used by protobuf, CIDs and CAR.
//! - [`dagpb`]: the canonical dag-pb codec (links before data, as kubo writes it).
//! - [`unixfs`]: the streaming UnixFS file importer that reproduces `ipfs add --cid-version=1`.
//! - [`car`]: CAR v1 reading and writing, streaming.
//! - [`fetch`]: `/shubnet/fetch/1` frames, bulk leaf transfer between federation members.
//! - [`reference`](mod@reference): `collection/name:tag@digest` and library paths, with the rules clients impose.
//! - [`manifest`]: the signed image manifest (canonical DAG-CBOR), succession and resolution rules.
//! - [`access`]: collection policies, capability tokens and revocations, signed by the owning institution.
//! - [`roster`]: the federation charter: hash-chained, threshold-signed versions; join requests.
//! - [`sif`]: SIF inspection: header, descriptors, and the image metadata a manifest carries.
//! - [`sync`]: `/shubnet/sync/1` anti-entropy messages and gossip announcements.
//! - [`time`]: Unix times as UTC strings.

pub mod access;
pub mod admin;
pub mod badleaf;
pub mod bitswap;
pub mod car;
pub mod cid;
pub mod dagpb;
pub mod fetch;
pub mod manifest;
pub mod reference;
pub mod roster;
pub mod search;
pub mod sif;
pub mod sync;
pub mod time;
pub mod tokens;
pub mod unixfs;
pub mod varint;

pub use ::cid::Cid;
