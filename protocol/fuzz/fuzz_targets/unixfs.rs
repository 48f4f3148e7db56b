//! Import is independent of how the input is split into writes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::unixfs::{Importer, Layout, import_reader};

fuzz_target!(|input: (u8, u8, Vec<u8>)| {
    let (chunk, links, data) = input;
    let Ok(layout) = Layout::new(usize::from(chunk.max(1)), usize::from(links.max(2))) else {
        return;
    };
    let whole = import_reader(&data[..], layout).ok();
    let mut imp = Importer::new(layout);
    for piece in data.chunks(usize::from(chunk) + 3) {
        imp.update(piece);
    }
    assert_eq!(Some(imp.finish().1), whole);
});
