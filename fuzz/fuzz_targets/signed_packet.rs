//! cargo-fuzz target: the property is `mcast_tests::fuzz_checks::signed_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcast_tests::fuzz_checks::signed_packet(data);
});
