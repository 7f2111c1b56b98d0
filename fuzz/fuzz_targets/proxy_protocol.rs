//! The PROXY protocol v1 and v2 header parsers: a parsed header re-encodes to the same addresses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_proxy::fuzzing::fuzz_proxy_protocol(data));
