//! SIF (Singularity Image Format) inspection: the global header, the descriptor table, and the
//! image metadata a registry shows (architecture, definition file, labels, environment,
//! runscript, help).
//!
//! Goals: read any file through `Read + Seek` without ever holding the image in memory; every
//! allocation is capped ([`MAX_DESCRIPTORS`], [`MAX_OBJECT_SIZE`]); a truncated file or a
//! descriptor that lies (an object past the end of the file, overlapping another, a huge count)
//! is a [`SifError`], never a panic. A file that is not a SIF at all is not an error:
//! [`inspect`] reports it as opaque ([`Inspection::sif`] is false) with empty metadata.
//! Non-goals: writing SIF, verifying SIF signatures, encrypted partitions.
//!
//! Spec: sylabs/sif `pkg/sif/{sif,descriptor,load,arch}.go`, summarised in
//! shared/reference/client-protocols.md §5. All integers are little-endian.
//!
//! Where metadata comes from, in order (see [`inspect`]):
//! 1. the architecture from the header, else from the primary system partition's descriptor;
//! 2. the definition file from the `Deffile` object;
//! 3. labels, environment, runscript, help (and the definition file when there is no `Deffile`)
//!    from the generic JSON object `inspect-metadata.json` that Apptainer writes;
//! 4. when that object is absent: the same files read from `/.singularity.d` in the squashfs
//!    primary system partition ([`squashfs`]).

mod metadata;
pub mod squashfs;
#[cfg(test)]
mod tests;

pub use metadata::{
    HELP_KEY, Inspection, MetadataSource, TRUNCATED_KEY, fit_metadata, help, inspect,
    inspect_without_squashfs, truncated,
};

use std::io::{self, Read, Seek, SeekFrom};
use thiserror::Error;

/// Media type of an image that is not a SIF: published as opaque bytes with empty metadata.
pub const MEDIA_TYPE_OPAQUE: &str = "application/octet-stream";
/// Bytes of the global header at offset 0.
pub const HEADER_SIZE: u64 = 128;
/// Bytes of one descriptor in the descriptor table.
pub const DESCRIPTOR_SIZE: u64 = 585;
/// The magic at header offset 32.
pub const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
/// The only header version sif reads (`"01\0"`).
pub const VERSION: &[u8; 3] = b"01\0";
/// Most descriptor slots accepted (sif's default is 48). Bounds the table scan, not memory:
/// only used descriptors are kept.
pub const MAX_DESCRIPTORS: u64 = 4096;
/// Largest object read into memory (definition file, JSON metadata, files from `/.singularity.d`).
pub const MAX_OBJECT_SIZE: u64 = 4 * 1024 * 1024;
/// Name of the generic JSON object Apptainer writes with `apptainer inspect`'s data.
pub const INSPECT_METADATA_NAME: &str = "inspect-metadata.json";

/// A descriptor's data type (`sif.go: Datatype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// The definition file (`0x4001`).
    Deffile,
    /// Environment variables (`0x4002`; builders do not write it).
    EnvVar,
    /// JSON labels (`0x4003`; builders do not write it).
    Labels,
    /// A filesystem partition (`0x4004`).
    Partition,
    /// A signature (`0x4005`).
    Signature,
    /// Generic JSON, e.g. `inspect-metadata.json` (`0x4006`).
    GenericJson,
    /// Generic bytes (`0x4007`).
    Generic,
    /// An encrypted message (`0x4008`).
    CryptoMessage,
    /// A software bill of materials (`0x4009`).
    Sbom,
    /// An OCI root index (`0x400A`).
    OciRootIndex,
    /// An OCI blob (`0x400B`).
    OciBlob,
    /// A type this version does not know; kept so its bytes still count for overlap checks.
    Other(i32),
}

impl DataType {
    fn from_raw(v: i32) -> Self {
        match v {
            0x4001 => Self::Deffile,
            0x4002 => Self::EnvVar,
            0x4003 => Self::Labels,
            0x4004 => Self::Partition,
            0x4005 => Self::Signature,
            0x4006 => Self::GenericJson,
            0x4007 => Self::Generic,
            0x4008 => Self::CryptoMessage,
            0x4009 => Self::Sbom,
            0x400A => Self::OciRootIndex,
            0x400B => Self::OciBlob,
            other => Self::Other(other),
        }
    }
}

/// Filesystem of a squashfs partition (`FsSquash`).
pub const FS_SQUASH: i32 = 1;
/// Partition type of the primary system partition (`PartPrimSys`), the image's root filesystem.
pub const PART_PRIMSYS: i32 = 2;

/// Why a SIF could not be read. Every variant is about the file, none is a panic in disguise.
#[derive(Debug, Error)]
pub enum SifError {
    /// Reading the underlying file failed.
    #[error("reading SIF: {0}")]
    Io(#[from] io::Error),
    /// The file ends before a structure it declares.
    #[error("SIF is truncated: {0}")]
    Truncated(&'static str),
    /// The header carries a version other than `01`.
    #[error("SIF version {0:?} is not supported (only 01)")]
    UnsupportedVersion(String),
    /// The header is self-contradictory.
    #[error("SIF header is invalid: {0}")]
    BadHeader(&'static str),
    /// The descriptor table declares more slots than [`MAX_DESCRIPTORS`].
    #[error("SIF declares {0} descriptors; at most {MAX_DESCRIPTORS} are accepted")]
    TooManyDescriptors(i64),
    /// A descriptor names bytes outside the file, or inside the header or descriptor table.
    #[error(
        "SIF object {id} claims bytes {offset}+{size}, outside the data area of a {file_len}-byte file"
    )]
    OutOfBounds {
        /// The descriptor's id.
        id: u32,
        /// Its declared offset.
        offset: i64,
        /// Its declared size.
        size: i64,
        /// The file's length.
        file_len: u64,
    },
    /// Two descriptors claim the same bytes.
    #[error("SIF objects {0} and {1} overlap")]
    Overlap(u32, u32),
    /// An object that would be read into memory is larger than [`MAX_OBJECT_SIZE`].
    #[error("SIF object {name:?} is {size} bytes; at most {MAX_OBJECT_SIZE} are read")]
    ObjectTooLarge {
        /// What the object is.
        name: String,
        /// Its size.
        size: u64,
    },
    /// `inspect-metadata.json` (or `labels.json`) is not the JSON Apptainer writes.
    #[error("SIF metadata {name} is invalid: {reason}")]
    BadMetadata {
        /// Which object or file.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The squashfs partition could not be read.
    #[error("SIF squashfs partition: {0}")]
    Squashfs(String),
    /// Reading the squashfs metadata would inflate more than the budget allows.
    #[error("SIF squashfs partition inflates to more than {budget} bytes of metadata")]
    OverBudget {
        /// The decompression budget, in bytes.
        budget: u64,
    },
}

/// The global header (`sif.go: header`), 128 bytes at offset 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The launch script (`#!/usr/bin/env run-singularity`), without NUL padding.
    pub launch_script: String,
    /// The architecture code (`"02"` for amd64), without NUL.
    pub arch_code: String,
    /// The image UUID, raw RFC 4122 bytes.
    pub id: [u8; 16],
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of last modification.
    pub modified_at: i64,
    /// Unused descriptor slots.
    pub descriptors_free: i64,
    /// Descriptor slots in the table.
    pub descriptors_total: i64,
    /// Absolute offset of the descriptor table.
    pub descriptors_offset: i64,
    /// Bytes of the descriptor table.
    pub descriptors_size: i64,
    /// Absolute offset of the data area.
    pub data_offset: i64,
    /// Bytes of the data area.
    pub data_size: i64,
}

impl Header {
    /// The architecture as Go names it (`amd64`, `arm64`…), `None` for `00` or an unknown code.
    pub fn arch(&self) -> Option<&'static str> {
        arch_name(self.arch_code.as_bytes())
    }
}

/// Partition details from a descriptor's extra bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Filesystem ([`FS_SQUASH`] = 1, ext3 = 2, …).
    pub fs_type: i32,
    /// Partition type ([`PART_PRIMSYS`] = 2, system = 1, data = 3, overlay = 4).
    pub part_type: i32,
    /// Architecture as Go names it, when known.
    pub arch: Option<&'static str>,
}

/// One used descriptor (`descriptor.go: rawDescriptor`), checked to lie inside the data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// What the object is.
    pub data_type: DataType,
    /// Object id (1-based).
    pub id: u32,
    /// Group id with the group flag removed; `None` for "no group".
    pub group: Option<u32>,
    /// Raw link field.
    pub link: u32,
    /// Absolute offset of the object.
    pub offset: u64,
    /// Bytes of the object.
    pub size: u64,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Logical name (e.g. `inspect-metadata.json`), without NUL padding.
    pub name: String,
    /// Partition details when `data_type` is [`DataType::Partition`].
    pub partition: Option<Partition>,
}

/// A parsed SIF: its header and used descriptors, all checked against the file's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sif {
    /// The global header.
    pub header: Header,
    /// Used descriptors, in table order.
    pub descriptors: Vec<Descriptor>,
    /// Length of the file they were checked against.
    pub file_len: u64,
}

const GROUP_MASK: u32 = 0xF000_0000;

impl Sif {
    /// Reads the header and descriptor table of `r`. `Ok(None)` when the file is not a SIF (too
    /// short for the magic, or another magic); errors when it claims to be one but is truncated
    /// or lies. Reads at most 128 + [`MAX_DESCRIPTORS`] × 585 bytes, one descriptor at a time.
    pub fn read<R: Read + Seek>(r: &mut R) -> Result<Option<Self>, SifError> {
        let file_len = r.seek(SeekFrom::End(0))?;
        r.seek(SeekFrom::Start(0))?;
        let mut h = [0u8; HEADER_SIZE as usize];
        let got = read_up_to(r, &mut h)?;
        if got < 42 || &h[32..42] != MAGIC {
            return Ok(None);
        }
        if got < h.len() {
            return Err(SifError::Truncated("the global header"));
        }
        if &h[42..45] != VERSION {
            return Err(SifError::UnsupportedVersion(cstr(&h[42..45])));
        }
        let header = Header {
            launch_script: cstr(&h[0..32]),
            arch_code: cstr(&h[45..48]),
            id: h[48..64].try_into().unwrap_or([0; 16]),
            created_at: le_i64(&h, 64),
            modified_at: le_i64(&h, 72),
            descriptors_free: le_i64(&h, 80),
            descriptors_total: le_i64(&h, 88),
            descriptors_offset: le_i64(&h, 96),
            descriptors_size: le_i64(&h, 104),
            data_offset: le_i64(&h, 112),
            data_size: le_i64(&h, 120),
        };
        let total = header.descriptors_total;
        if total < 0 || total as u64 > MAX_DESCRIPTORS {
            return Err(SifError::TooManyDescriptors(total));
        }
        let total = total as u64;
        let table_off = u64::try_from(header.descriptors_offset)
            .map_err(|_| SifError::BadHeader("negative descriptor table offset"))?;
        if table_off < HEADER_SIZE {
            return Err(SifError::BadHeader("descriptor table overlaps the header"));
        }
        let table_len = total * DESCRIPTOR_SIZE;
        let table_end = table_off
            .checked_add(table_len)
            .ok_or(SifError::BadHeader("descriptor table offset overflows"))?;
        if table_end > file_len {
            return Err(SifError::Truncated("the descriptor table"));
        }
        r.seek(SeekFrom::Start(table_off))?;
        let mut descriptors = Vec::new();
        let mut raw = [0u8; DESCRIPTOR_SIZE as usize];
        for _ in 0..total {
            r.read_exact(&mut raw).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => SifError::Truncated("the descriptor table"),
                _ => SifError::Io(e),
            })?;
            if raw[4] == 0 {
                continue;
            }
            descriptors.push(parse_descriptor(&raw, table_end, file_len)?);
        }
        check_overlaps(&descriptors)?;
        Ok(Some(Self {
            header,
            descriptors,
            file_len,
        }))
    }

    /// The architecture: the header's when known, else the primary system partition's.
    pub fn arch(&self) -> Option<&'static str> {
        self.header
            .arch()
            .or_else(|| self.primary_partition().and_then(|(_, p)| p.arch))
    }

    /// The primary system partition (the image's root filesystem), if any.
    pub fn primary_partition(&self) -> Option<(&Descriptor, Partition)> {
        self.descriptors
            .iter()
            .filter_map(|d| d.partition.map(|p| (d, p)))
            .find(|(_, p)| p.part_type == PART_PRIMSYS)
    }

    /// The first descriptor of `data_type`, optionally with `name`.
    pub fn find(&self, data_type: DataType, name: Option<&str>) -> Option<&Descriptor> {
        self.descriptors
            .iter()
            .find(|d| d.data_type == data_type && name.is_none_or(|n| d.name == n))
    }

    /// Reads one object into memory, refusing objects over `max` bytes before allocating.
    pub fn read_object<R: Read + Seek>(
        &self,
        r: &mut R,
        d: &Descriptor,
        max: u64,
    ) -> Result<Vec<u8>, SifError> {
        if d.size > max {
            return Err(SifError::ObjectTooLarge {
                name: d.name.clone(),
                size: d.size,
            });
        }
        r.seek(SeekFrom::Start(d.offset))?;
        let mut out = Vec::with_capacity(d.size as usize);
        r.take(d.size).read_to_end(&mut out)?;
        if (out.len() as u64) < d.size {
            return Err(SifError::Truncated("a data object"));
        }
        Ok(out)
    }
}

fn parse_descriptor(raw: &[u8], table_end: u64, file_len: u64) -> Result<Descriptor, SifError> {
    let data_type = DataType::from_raw(le_i32(raw, 0));
    let id = le_u32(raw, 5);
    let group_raw = le_u32(raw, 9);
    let offset = le_i64(raw, 17);
    let size = le_i64(raw, 25);
    let oob = SifError::OutOfBounds {
        id,
        offset,
        size,
        file_len,
    };
    let (Ok(off), Ok(sz)) = (u64::try_from(offset), u64::try_from(size)) else {
        return Err(oob);
    };
    match off.checked_add(sz) {
        Some(end) if end <= file_len && (sz == 0 || off >= table_end) => {}
        _ => return Err(oob),
    }
    let partition = (data_type == DataType::Partition).then(|| Partition {
        fs_type: le_i32(raw, 201),
        part_type: le_i32(raw, 205),
        arch: arch_name(cstr(&raw[209..212]).as_bytes()),
    });
    Ok(Descriptor {
        data_type,
        id,
        group: (group_raw != GROUP_MASK).then_some(group_raw & !GROUP_MASK),
        link: le_u32(raw, 13),
        offset: off,
        size: sz,
        created_at: le_i64(raw, 41),
        name: cstr(&raw[73..201]),
        partition,
    })
}

/// Fails when two non-empty objects share a byte.
fn check_overlaps(descriptors: &[Descriptor]) -> Result<(), SifError> {
    let mut spans: Vec<(u64, u64, u32)> = descriptors
        .iter()
        .filter(|d| d.size > 0)
        .map(|d| (d.offset, d.offset + d.size, d.id))
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(SifError::Overlap(w[0].2, w[1].2));
        }
    }
    Ok(())
}

/// Go's `runtime.GOARCH` name for a SIF architecture code (`arch.go`).
fn arch_name(code: &[u8]) -> Option<&'static str> {
    Some(match code {
        b"01" => "386",
        b"02" => "amd64",
        b"03" => "arm",
        b"04" => "arm64",
        b"05" => "ppc64",
        b"06" => "ppc64le",
        b"07" => "mips",
        b"08" => "mipsle",
        b"09" => "mips64",
        b"10" => "mips64le",
        b"11" => "s390x",
        b"12" => "riscv64",
        b"13" => "loong64",
        _ => return None,
    })
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A NUL-padded string field, lossily decoded.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
