//! The squashfs fallback: reading `/.singularity.d` metadata files from a SIF's primary system
//! partition when the SIF has no `inspect-metadata.json`.
//!
//! The partition is read through [`Window`], a `Read + Seek` view limited to the partition's
//! bytes, so the squashfs reader can neither see nor seek outside them. The reader is `backhand`
//! (gzip only, Apptainer's default compression): it loads the partition's directory and inode
//! tables (proportional to the number of files, not their size) and decompresses only the files
//! asked for, each capped at [`MAX_OBJECT_SIZE`]. backhand panics on some corrupt tables, so the
//! read runs under `catch_unwind` and a panic becomes [`SifError::Squashfs`].
//!
//! Tables are proportional to the number of files only if the blocks are honest: a 32 KiB zlib
//! block can inflate to 32 MiB, and backhand inflates with an unbounded `read_to_end`. So every
//! block goes through [`Budgeted`] instead of backhand's own compressor: no block inflates past
//! the largest squashfs block (1 MiB), and one read inflates at most [`DECOMPRESSION_BUDGET`]
//! bytes in all, after which it fails with [`SifError::OverBudget`].
//!
//! It must not read outside the partition, inflate past the budget, nor let a panic from the
//! reader escape.

use super::{MAX_OBJECT_SIZE, SifError};
use backhand::compression::{CompressionAction, Compressor};
use backhand::kind::Kind;
use backhand::{BackhandError, FilesystemCompressor, FilesystemReader, InnerNode, SuperBlock};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The most one read of a squashfs partition inflates, tables and files together.
pub const DECOMPRESSION_BUDGET: u64 = 64 * 1024 * 1024;
/// The largest block squashfs writes (data blocks; metadata blocks are 8 KiB).
const MAX_BLOCK: u64 = 1024 * 1024;

thread_local! {
    /// What the read running on this thread may still inflate. backhand (without its
    /// `parallel` feature) inflates on the calling thread, and its compressor hook is a
    /// `&'static`, so the budget of the one read in progress lives here.
    static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// backhand's gzip decompression, bounded by the thread's budget. Anything but gzip and
/// uncompressed blocks is refused, as without the hook (backhand is built with gzip only).
#[derive(Debug)]
struct Budgeted;

static BUDGETED: Budgeted = Budgeted;

impl CompressionAction for Budgeted {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        let left = LEFT.get().unwrap_or(0);
        let cap = left.min(MAX_BLOCK);
        let start = out.len();
        match compressor {
            Compressor::Uncompressed => {
                if bytes.len() as u64 > cap {
                    return Err(over_budget(left));
                }
                out.extend_from_slice(bytes);
            }
            Compressor::Gzip => {
                // One byte past the cap tells a block that is too big from one that fits.
                flate2::read::ZlibDecoder::new(bytes)
                    .take(cap + 1)
                    .read_to_end(out)?;
            }
            other => {
                return Err(BackhandError::UnsupportedCompression(format!("{other:?}")));
            }
        }
        let got = (out.len() - start) as u64;
        if got > cap {
            out.truncate(start);
            return Err(over_budget(left));
        }
        LEFT.set(Some(left - got));
        Ok(())
    }

    fn compress(
        &self,
        _bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        Err(BackhandError::UnsupportedCompression(
            "this reader does not write squashfs".into(),
        ))
    }
}

/// Marks the budget spent (so the caller reports [`SifError::OverBudget`], whatever error
/// backhand wraps this in) and gives backhand an error to stop with.
fn over_budget(left: u64) -> BackhandError {
    LEFT.set(Some(0));
    BackhandError::StdIo(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("squashfs block inflates past the {left} bytes left of the budget"),
    ))
}

/// Where Apptainer keeps its metadata inside the image.
pub const SINGULARITY_D: &str = "/.singularity.d";

/// A `Read + Seek` view of `len` bytes of `inner` starting at `start`: position 0 is `start`,
/// reads stop at `len`, and seeks past the end read nothing.
#[derive(Debug)]
pub struct Window<R> {
    inner: R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: Seek> Window<R> {
    /// A view of `inner[start..start + len]`.
    pub fn new(mut inner: R, start: u64, len: u64) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(Self {
            inner,
            start,
            len,
            pos: 0,
        })
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the window"))?;
        let abs = self
            .start
            .checked_add(target.min(self.len))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek overflows"))?;
        self.inner.seek(SeekFrom::Start(abs))?;
        self.pos = target;
        Ok(target)
    }
}

/// The `/.singularity.d` files the fallback reads, by path inside the image.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SingularityD {
    /// Each wanted regular file found, path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Is `path` one of the files the fallback wants: `labels.json`, `Singularity`, `runscript`,
/// `runscript.help`, or an environment script `env/*environment.sh` (the files Apptainer's
/// inspect lists under `environment`: `90-environment.sh` and `91-environment.sh`).
pub fn is_wanted(path: &str) -> bool {
    let Some(rest) = path
        .strip_prefix(SINGULARITY_D)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    match rest {
        "labels.json" | "Singularity" | "runscript" | "runscript.help" => true,
        _ => rest
            .strip_prefix("env/")
            .is_some_and(|name| !name.contains('/') && name.ends_with("environment.sh")),
    }
}

/// Reads the wanted `/.singularity.d` files from the squashfs at `inner[start..start + len]`,
/// inflating at most [`DECOMPRESSION_BUDGET`] bytes.
pub fn read_singularity_d<R: Read + Seek + Send>(
    inner: R,
    start: u64,
    len: u64,
) -> Result<SingularityD, SifError> {
    read_within(inner, start, len, DECOMPRESSION_BUDGET)
}

/// [`read_singularity_d`] with another budget.
pub fn read_within<R: Read + Seek + Send>(
    inner: R,
    start: u64,
    len: u64,
    budget: u64,
) -> Result<SingularityD, SifError> {
    let window = Window::new(inner, start, len)?;
    let before = LEFT.replace(Some(budget));
    let outcome = catch_unwind(AssertUnwindSafe(move || read_impl(window)));
    let spent = LEFT.replace(before) == Some(0);
    match outcome {
        Err(_) => Err(SifError::Squashfs(
            "the squashfs reader gave up on a corrupt filesystem".into(),
        )),
        Ok(Err(_)) if spent => Err(SifError::OverBudget { budget }),
        Ok(r) => r,
    }
}

fn read_impl<R: Read + Seek + Send>(window: Window<R>) -> Result<SingularityD, SifError> {
    let kind = Kind::new_v4(&BUDGETED);
    let fs = FilesystemReader::from_reader_with_offset_and_kind(BufReader::new(window), 0, kind)
        .map_err(|e| SifError::Squashfs(e.to_string()))?;
    let mut out = SingularityD::default();
    for node in fs.files() {
        let Some(path) = node.fullpath.to_str() else {
            continue;
        };
        if !is_wanted(path) {
            continue;
        }
        let InnerNode::File(file) = &node.inner else {
            continue;
        };
        let size = file.file_len() as u64;
        if size > MAX_OBJECT_SIZE {
            return Err(SifError::ObjectTooLarge {
                name: path.to_owned(),
                size,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        fs.file(file)
            .reader()
            .take(MAX_OBJECT_SIZE)
            .read_to_end(&mut buf)
            .map_err(|e| SifError::Squashfs(format!("reading {path}: {e}")))?;
        out.files.insert(path.to_owned(), buf);
    }
    Ok(out)
}
