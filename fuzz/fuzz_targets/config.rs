//! The YAML config loader (`weir check`'s path), offline: no DNS, no file opened.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_config::fuzzing::fuzz_parse(data));
