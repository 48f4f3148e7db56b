//! The SIF parser and its metadata extraction (without the squashfs fallback, whose reader is a
//! dependency) over arbitrary bytes: errors are fine, panics and huge allocations are not. Sizes
//! and counts in the input are attacker-chosen, so this also checks every read is capped before
//! it allocates (`-rss_limit_mb` in run.sh turns a large allocation into a crash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shubnet_protocol::sif::{Sif, inspect_without_squashfs};
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut r = Cursor::new(data);
    if let Ok(Some(sif)) = Sif::read(&mut r) {
        for d in &sif.descriptors {
            assert!(d.offset + d.size <= data.len() as u64);
            let _ = sif.read_object(&mut r, d, 1 << 20);
        }
    }
    let _ = inspect_without_squashfs(Cursor::new(data));
});
