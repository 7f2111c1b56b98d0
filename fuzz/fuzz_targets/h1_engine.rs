//! weir's HTTP/1.1 codec against a reference reader: pipelined requests, their framing and
//! body boundaries agree, and no ambiguous request is accepted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_h1::fuzzing::h1_engine(data));
