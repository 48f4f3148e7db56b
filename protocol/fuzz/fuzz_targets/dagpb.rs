//! dag-pb and UnixFS decoding must never panic, and what decodes must re-encode to a block that
//! decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::dagpb::{PbNode, UnixfsData};

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = PbNode::decode(data) {
        assert_eq!(PbNode::decode(&node.encode()).ok(), Some(node));
    }
    let _ = UnixfsData::decode(data);
});
