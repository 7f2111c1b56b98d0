//! The HTTP/1 framing scanner (request smuggling defence): its verdict does not depend on how reads split the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_proxy::fuzzing::fuzz_head_scanner(data));
