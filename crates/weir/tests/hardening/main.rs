//! Issue 8, "already sound, keep it so": the probes an attack run made against the release
//! binary, turned into tests so they stay true. One test binary for all of them, to keep
//! CI's link time down; each module is one probe.
//!
//! - [`smuggling`]: CL.TE, TE.CL and 31 other ambiguous framings are refused and nothing
//!   of them reaches the backend; a chunked body breaking mid-stream smuggles nothing.
//! - [`pipelining`]: 1,000 pipelined requests on one connection are answered in order and
//!   each reaches the backend once.
//! - [`reload_storm`]: 100 SIGHUPs alternating valid and invalid files under load: zero
//!   failed requests, every reload counted, only the valid ones applied.
//! - [`descriptors`]: weir run out of descriptors (`prlimit`) serves again once the flood
//!   of connections is gone.

mod descriptors;
mod pipelining;
mod reload_storm;
mod smuggling;

/// The weir binary under test.
pub(crate) const WEIR: &str = env!("CARGO_BIN_EXE_weir");
