//! Streaming UnixFS file import that reproduces `ipfs add --cid-version=1`, and the reading side
//! of UnixFS file DAGs.
//!
//! Goals: the same root CID as kubo's defaults (256 KiB fixed chunks, raw leaves, balanced
//! layout with 174 links, CIDv1 sha2-256) for any input, computed in one pass with memory that
//! does not grow with the file beyond one chunk and the open tree levels. The whole-file sha256
//! that registry clients speak is computed in the same pass.
//!
//! Non-goals: directories, trickle layout, CIDv0, mode/mtime.
//!
//! The balanced layout is built bottom-up: every `max_links` finished children at a level become
//! one dag-pb node one level up. At the end each level is closed from the bottom; a level that
//! is the highest and holds a single entry is the root. One chunk yields a raw-leaf root.
//!
//! It must not store blocks or open files: callers feed it bytes or a `Read`, and keep whichever
//! blocks they need.

use crate::cid::{DAG_PB, RAW, cid_for};
use crate::dagpb::{DagPbError, PbLink, PbNode, UnixfsData, data_type};
use cid::Cid;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Read;
use thiserror::Error;

/// kubo's default chunk size (`size-262144`).
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// kubo's default links per internal node (`Import.UnixFSFileMaxLinks`).
pub const DEFAULT_MAX_LINKS: usize = 174;
/// kubo's largest allowed chunk (2 MiB − 256 B), so every leaf fits a bitswap block.
pub const MAX_CHUNK_SIZE: usize = 2 * 1024 * 1024 - 256;

/// A layout that was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Chunk size must be in `1..=MAX_CHUNK_SIZE`.
    #[error("chunk size {0} is outside 1..={MAX_CHUNK_SIZE}")]
    ChunkSize(usize),
    /// A node needs at least two links for the tree to shrink toward a root.
    #[error("max links {0} must be at least 2")]
    MaxLinks(usize),
}

/// Chunking and tree shape. Production always uses [`Layout::default`]; other values exist so
/// tests can build deep trees from small inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    chunk_size: usize,
    max_links: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_links: DEFAULT_MAX_LINKS,
        }
    }
}

impl Layout {
    /// A non-default layout, validated.
    pub fn new(chunk_size: usize, max_links: usize) -> Result<Self, LayoutError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(LayoutError::ChunkSize(chunk_size));
        }
        if max_links < 2 {
            return Err(LayoutError::MaxLinks(max_links));
        }
        Ok(Self {
            chunk_size,
            max_links,
        })
    }

    /// Bytes per leaf.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Children per internal node.
    pub fn max_links(&self) -> usize {
        self.max_links
    }
}

/// A block produced by the importer, in the order the importer finishes them (leaves in file
/// order; each internal node after all its children).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A raw leaf: the bytes are `len` bytes of the input at `offset`. The importer does not keep
    /// them; the caller already has the input.
    Leaf {
        /// The leaf's CID (raw codec).
        cid: Cid,
        /// Offset of the leaf's bytes in the file.
        offset: u64,
        /// Length of the leaf in bytes.
        len: u64,
    },
    /// A dag-pb internal node with its encoded bytes.
    Node {
        /// The node's CID (dag-pb codec).
        cid: Cid,
        /// The encoded block.
        bytes: Vec<u8>,
    },
}

impl Block {
    /// The block's CID.
    pub fn cid(&self) -> &Cid {
        match self {
            Block::Leaf { cid, .. } | Block::Node { cid, .. } => cid,
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The root CID, identical to `ipfs add --cid-version=1`.
    pub root: Cid,
    /// File length in bytes.
    pub size: u64,
    /// sha256 of the whole file, unless disabled with [`Importer::without_file_hash`].
    pub sha256: Option<[u8; 32]>,
    /// Number of leaves.
    pub leaves: u64,
    /// Number of dag-pb nodes.
    pub nodes: u64,
}

#[derive(Debug, Clone)]
struct Child {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

/// The streaming importer. Feed it bytes with [`update`](Self::update), drain finished blocks
/// with [`take_blocks`](Self::take_blocks), and call [`finish`](Self::finish) at the end.
#[derive(Debug)]
pub struct Importer {
    layout: Layout,
    pending: Vec<u8>,
    offset: u64,
    levels: Vec<Vec<Child>>,
    file_hash: Option<Sha256>,
    out: VecDeque<Block>,
    leaves: u64,
    nodes: u64,
}

impl Importer {
    /// A new importer with the given layout, computing the whole-file sha256 as well.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            pending: Vec::with_capacity(layout.chunk_size),
            offset: 0,
            levels: vec![Vec::new()],
            file_hash: Some(Sha256::new()),
            out: VecDeque::new(),
            leaves: 0,
            nodes: 0,
        }
    }

    /// Skips the whole-file sha256, for callers that hash on another thread.
    pub fn without_file_hash(mut self) -> Self {
        self.file_hash = None;
        self
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes consumed so far.
    pub fn bytes_in(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        if let Some(h) = &mut self.file_hash {
            h.update(data);
        }
        let cs = self.layout.chunk_size;
        if !self.pending.is_empty() {
            let take = (cs - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == cs {
                let chunk = std::mem::take(&mut self.pending);
                self.leaf(&chunk);
                self.pending = chunk;
                self.pending.clear();
            }
        }
        while data.len() >= cs {
            let (chunk, rest) = data.split_at(cs);
            self.leaf(chunk);
            data = rest;
        }
        self.pending.extend_from_slice(data);
    }

    /// Removes and returns the blocks finished so far.
    pub fn take_blocks(&mut self) -> impl Iterator<Item = Block> + '_ {
        self.out.drain(..)
    }

    fn leaf(&mut self, chunk: &[u8]) {
        let cid = cid_for(RAW, chunk);
        let len = chunk.len() as u64;
        self.out.push_back(Block::Leaf {
            cid,
            offset: self.offset,
            len,
        });
        self.offset += len;
        self.leaves += 1;
        self.push_child(
            0,
            Child {
                cid,
                tsize: len,
                filesize: len,
            },
        );
    }

    fn push_child(&mut self, level: usize, child: Child) {
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        self.levels[level].push(child);
        if self.levels[level].len() == self.layout.max_links {
            let children = std::mem::take(&mut self.levels[level]);
            let parent = self.node(&children);
            self.push_child(level + 1, parent);
        }
    }

    fn node(&mut self, children: &[Child]) -> Child {
        let data = UnixfsData {
            kind: data_type::FILE,
            data: None,
            filesize: Some(children.iter().map(|c| c.filesize).sum()),
            blocksizes: children.iter().map(|c| c.filesize).collect(),
        };
        let node = PbNode {
            links: children
                .iter()
                .map(|c| PbLink {
                    hash: c.cid,
                    name: Some(String::new()),
                    tsize: Some(c.tsize),
                })
                .collect(),
            data: Some(data.encode()),
        };
        let bytes = node.encode();
        let cid = cid_for(DAG_PB, &bytes);
        let child = Child {
            cid,
            tsize: bytes.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>(),
            filesize: data.filesize.unwrap_or(0),
        };
        self.nodes += 1;
        self.out.push_back(Block::Node { cid, bytes });
        child
    }

    /// Closes the tree. Returns the blocks not yet taken (the last leaf and the nodes above it)
    /// and the summary with the root CID.
    pub fn finish(mut self) -> (Vec<Block>, Imported) {
        if !self.pending.is_empty() || self.leaves == 0 {
            let chunk = std::mem::take(&mut self.pending);
            self.leaf(&chunk);
        }
        let mut level = 0;
        let root = loop {
            let top = level + 1 >= self.levels.len()
                || self.levels[level + 1..].iter().all(Vec::is_empty);
            let entries = std::mem::take(&mut self.levels[level]);
            if top && entries.len() == 1 {
                break entries.into_iter().next();
            }
            if !entries.is_empty() {
                let parent = self.node(&entries);
                if self.levels.len() <= level + 1 {
                    self.levels.push(Vec::new());
                }
                // Closing never fills a level, so push directly without the eager flush.
                self.levels[level + 1].push(parent);
            }
            level += 1;
            if level >= self.levels.len() {
                break None;
            }
        };
        let root = root.map(|c| c.cid).unwrap_or_else(|| cid_for(RAW, b""));
        let summary = Imported {
            root,
            size: self.offset,
            sha256: self.file_hash.take().map(|h| h.finalize().into()),
            leaves: self.leaves,
            nodes: self.nodes,
        };
        (self.out.into_iter().collect(), summary)
    }
}

/// Imports everything `reader` yields without storing it, as `shubnet cid` does.
pub fn import_reader<R: Read>(mut reader: R, layout: Layout) -> std::io::Result<Imported> {
    let mut imp = Importer::new(layout);
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        imp.update(&buf[..n]);
        imp.take_blocks().for_each(drop);
    }
    Ok(imp.finish().1)
}

/// One node of a UnixFS file DAG, as a reader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileNode {
    /// A raw leaf: the block itself is file data.
    Raw,
    /// A dag-pb file node: optional inline data first, then each child with its file length.
    Branch {
        /// File bytes held inside this node, before the children.
        data: Vec<u8>,
        /// Children with the number of file bytes under each.
        children: Vec<(Cid, u64)>,
    },
}

impl FileNode {
    /// Interprets a block as part of a UnixFS file.
    pub fn decode(cid: &Cid, bytes: &[u8]) -> Result<Self, DagPbError> {
        match cid.codec() {
            RAW => Ok(FileNode::Raw),
            DAG_PB => {
                let node = PbNode::decode(bytes)?;
                let data = UnixfsData::decode(
                    node.data
                        .as_deref()
                        .ok_or(DagPbError::Malformed("dag-pb node without UnixFS data"))?,
                )?;
                if data.kind != data_type::FILE && data.kind != data_type::RAW {
                    return Err(DagPbError::NotAFile(data.kind));
                }
                if data.blocksizes.len() != node.links.len() {
                    return Err(DagPbError::Malformed("blocksizes do not match links"));
                }
                Ok(FileNode::Branch {
                    data: data.data.unwrap_or_default(),
                    children: node
                        .links
                        .into_iter()
                        .zip(data.blocksizes)
                        .map(|(l, s)| (l.hash, s))
                        .collect(),
                })
            }
            _ => Err(DagPbError::Malformed("codec is neither raw nor dag-pb")),
        }
    }
}

#[cfg(test)]
mod tests;
