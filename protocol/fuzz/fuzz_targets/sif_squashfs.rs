//! The whole SIF inspection, squashfs fallback included, over arbitrary bytes: errors are fine,
//! panics and large allocations are not. The squashfs reader inflates attacker-chosen blocks,
//! so this checks that its decompression budget holds (`-rss_limit_mb` in run.sh turns an
//! allocation past it into a crash). The corpus starts from a decompression bomb
//! (`seeds/sif_squashfs/squashfs-bomb.sif`: 290 KB inflating to 264 MB unbounded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shubnet_protocol::sif::inspect;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let _ = inspect(Cursor::new(data));
});
