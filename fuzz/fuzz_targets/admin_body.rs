//! The runtime API's body parser: any bytes give a change or a refusal, never a panic,
//! and an accepted change is in range and survives a round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_admin::api::fuzz_one(data));
