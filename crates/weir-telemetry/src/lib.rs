//! weir's telemetry: log setup, and the Prometheus metric families with the handle types
//! every layer bumps.
//!
//! This crate depends on no other weir crate, so every layer can use it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod logging;
pub mod metrics;

pub use logging::{init_logging, LogFormat, LoggingError};
pub use metrics::{
    config_hash, BackendMetrics, ConfigMetrics, ConnectionGuard, DiscoveryMetrics, ListenerMetrics,
    LookupResult, Metrics, MetricsError, PolicyMetrics, PoolMetrics, RouteMetrics, StickyResult,
    UpstreamErrorKind, NO_BACKEND, TEXT_CONTENT_TYPE,
};
