//! The sticky cookie reader behind `sticky: { cookie }`, checked against what it must
//! return for valid ids (`@0`..`@2` in the input), tampered ones and missing cookies.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_proxy::fuzzing::fuzz_sticky_cookie(data));
