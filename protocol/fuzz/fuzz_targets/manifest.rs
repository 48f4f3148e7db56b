//! Manifest decoding must never panic, and whatever decodes is the one canonical encoding: it
//! re-encodes to the same bytes and decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        let bytes = m.encode();
        assert_eq!(bytes, data);
        assert_eq!(Manifest::decode(&bytes).ok(), Some(m.clone()));
        let _ = m.verify_signature();
        let _ = m.cid();
    }
});
