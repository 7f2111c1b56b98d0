//! weir's telemetry: log setup now; metric families and handle types belong here too.
//!
//! This crate depends on no other weir crate, so every layer can use it.

mod logging;

pub use logging::{init_logging, LogFormat, LoggingError};
