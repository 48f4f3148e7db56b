//! Roster and join request decoding must never panic, and whatever decodes is the one canonical
//! encoding: it re-encodes to the same bytes and decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::roster::{JoinRequest, Roster, SignedRoster, verify_genesis};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SignedRoster::decode(data) {
        let bytes = r.encode();
        assert_eq!(bytes, data);
        assert_eq!(SignedRoster::decode(&bytes).ok(), Some(r.clone()));
        let _ = verify_genesis(&r);
    }
    if let Ok(r) = Roster::decode(data) {
        assert_eq!(r.encode(), data);
        assert_eq!(Roster::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(j) = JoinRequest::decode(data) {
        assert_eq!(j.encode(), data);
        assert_eq!(JoinRequest::from_line(&j.to_line()).ok().is_some(), j.verify_signature().is_ok());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = JoinRequest::from_line(text);
    }
});
