//! EndpointSlice JSON, one object per line as the Kubernetes API server's list items and
//! watch events carry them, through serde (k8s-openapi's types) and weir's slice →
//! backend-set rules for ports by name and number: no panic, and every set sorted,
//! unique, weight 1, no backups, no port 0.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_discovery::fuzzing::endpoint_slice(data));
