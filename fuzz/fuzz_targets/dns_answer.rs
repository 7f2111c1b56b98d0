//! Raw DNS messages, as a name server could send them, through hickory-proto's parser
//! and weir's answer → backend-set rules (A, AAAA, SRV with targets, priorities, weights):
//! no panic, and every set sorted, unique, with weights in 1..=256 and a primary.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_discovery::fuzzing::dns_answer(data));
