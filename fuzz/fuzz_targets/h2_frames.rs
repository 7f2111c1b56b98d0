//! A client's HTTP/2 byte stream as weir-h2 reads it: frames checked, header blocks joined (bounded) and HPACK-decoded; what weir can write re-parses alike.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_h2::fuzzing::frames(data));
