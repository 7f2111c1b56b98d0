//! The SNI certificate matcher, checked against the matching rules read plainly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_proxy::fuzzing::fuzz_sni(data));
