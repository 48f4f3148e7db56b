//! The CAR reader must never panic or allocate past its caps, whatever the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shubnet_protocol::car::CarReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = CarReader::new(data) {
        while let Ok(Some(_)) = r.next_verified_block() {}
    }
});
