//! weir's configuration: YAML in, validated plain data out.
//!
//! The chain is `weir.yaml -> Raw* (serde mirror of the file) -> Config (validated)`.
//! Parsing, checking and building each get their own type, so a bad file can never
//! reach the data plane: [`load`] returns either a [`Config`] whose invariants all hold,
//! or every error found, each with file, line, column and field path.
//!
//! This crate knows nothing of sockets or tokio. The only I/O it does is reading the
//! file and resolving backend hostnames, once, at load time.
//!
//! ```
//! let yaml = "
//! listeners:
//!   - name: web
//!     listen: 127.0.0.1:0
//!     routes:
//!       - pool: web
//! pools:
//!   web:
//!     backends:
//!       - { address: 127.0.0.1:8081 }
//! ";
//! let config = weir_config::parse(yaml, "weir.yaml".as_ref()).expect("valid");
//! assert_eq!(config.pools[0].name, "web");
//! ```
//!
//! # Errors
//!
//! Each error prints as `FILE:LINE:COLUMN: FIELD.PATH: message` (lines and columns from 1):
//!
//! ```text
//! weir.yaml:19:7: pools.web.health_check.timeout: invalid duration "fast" (expected a number and a unit: 250ms, 2s, 1m, 1h)
//! weir.yaml:12:9: pools.web.backends[0]: unknown field `wieght`, expected one of `address`, `weight`, `backup`
//! ```
//!
//! Checking happens in two passes. The first (serde) checks the file's *structure*:
//! YAML syntax, unknown fields (reported at the parent's path, naming the unknown key),
//! a list where a mapping belongs. serde cannot resume after such an error, so that pass
//! reports only the first one. The second pass checks every *value* (durations,
//! addresses, ranges, references between listeners and pools) and reports all of its
//! errors at once, sorted by position.
//!
//! # Limits
//!
//! A file over 16 MiB, nesting deeper than 64 levels, or aliases that expand more than
//! 10,000 times (or to more than 1,000,000 nodes) is refused before serde parses it:
//! configurations are read while serving, at every reload.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
mod affinity;
mod cidr;
mod discovery;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod model;
mod parse;
mod position;
mod raw;
mod route;
#[cfg(feature = "test-util")]
pub mod test_util;
mod tls;
mod validate;
mod walk;

use std::path::Path;

pub use admin::{ApiConfig, ApiToken};
pub use affinity::{
    ConsistentHashConfig, HashOn, StickyConfig, StickySecret, DEFAULT_BALANCE_FACTOR,
};
pub use discovery::{
    DiscoveryConfig, DnsDiscoveryConfig, DnsRecordType, KubernetesDiscoveryConfig, KubernetesPort,
};
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use route::{HeaderEdits, RedirectConfig, RedirectScheme};
pub use tls::{CertificateConfig, ListenerTlsConfig, Origin, UpstreamTlsConfig};

/// Parses and validates a configuration held in memory. `file` only names the source in
/// errors and in [`Config::source`].
///
/// Backend and listener hostnames are resolved here (blocking DNS), so call this off any
/// async runtime's worker threads, e.g. in `spawn_blocking`.
///
/// # Errors
///
/// Every problem found, in file order: one structural error (syntax, unknown field, wrong
/// shape), or else every validation error.
pub fn parse(source: &str, file: &Path) -> Result<Config, ConfigErrors> {
    parse::parse(source, file, validate::Io::Real)
}

/// Reads `path` and [`parse`]s it.
///
/// # Errors
///
/// As [`parse`] and [`read_source`].
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    parse(&read_source(path)?, path)
}

/// Reads the text of the configuration file at `path`, and no more of it than the
/// 16 MiB [`parse`] accepts.
///
/// # Errors
///
/// One error at line 0, column 0: unreadable (naming the OS error), not UTF-8, or too
/// large.
pub fn read_source(path: &Path) -> Result<String, ConfigErrors> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut source = String::new();
    let cap = u64::try_from(walk::MAX_SOURCE_BYTES).map_or(u64::MAX, |n| n + 1);
    file.take(cap)
        .read_to_string(&mut source)
        .map_err(unreadable)?;
    if source.len() > walk::MAX_SOURCE_BYTES {
        return Err(parse::too_large(path));
    }
    Ok(source)
}
