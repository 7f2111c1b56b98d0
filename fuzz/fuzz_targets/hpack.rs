//! HPACK header blocks (weir-h2's decoder): what decodes is within the list limit and re-encodes to the same fields; a connection error ends the sequence.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_h2::fuzzing::hpack(data));
