//! Sync messages, access-exchange messages and records, and gossip announcements must never panic on any input, and whatever decodes
//! re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::access::{Capability, Revocation, SignedPolicy};
use shubnet_protocol::sync::{AccessRequest, AccessResponse, Announcement, Request, Response};

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
    if let Ok(r) = AccessRequest::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(r) = AccessResponse::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(p) = SignedPolicy::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(c) = Capability::decode(data) {
        assert_eq!(c.encode(), data);
    }
    if let Ok(r) = Revocation::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
