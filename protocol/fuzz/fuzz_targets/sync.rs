//! Sync messages and gossip announcements must never panic on any input, and whatever decodes
//! re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::sync::{Announcement, Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(a) = Announcement::decode(data) {
        assert_eq!(a.encode(), data);
    }
});
