//! The cookie reader behind `hash_on: cookie:NAME`, checked against what it must return.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_proxy::fuzzing::fuzz_affinity_cookie(data));
