//! cargo-fuzz target: the property is `mcast_tests::fuzz_checks::server_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcast_tests::fuzz_checks::server_request(data);
});
