//! cargo-fuzz target: the property is `mcast_tests::fuzz_checks::capture_analysis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcast_tests::fuzz_checks::capture_analysis(data);
});
