//! `/shubnet/fetch/1` frames must never panic, and what decodes must re-encode to the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::fetch::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = Frame::decode(data) {
        assert_eq!(Frame::decode(&f.encode()).ok(), Some(f));
    }
    if let Ok(Some((f, n))) = Frame::decode_framed(data) {
        assert!(n <= data.len());
        assert_eq!(Frame::decode(&f.encode()).ok(), Some(f));
    }
});
