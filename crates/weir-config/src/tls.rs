//! TLS settings: certificates a listener serves, and how a pool talks TLS to backends.
//!
//! Validation checks what it can without cryptography: fields present, durations valid,
//! files readable. Whether a key matches its certificate is only known once the
//! certificate is parsed (in `weir-proxy`), so every certificate keeps the [`Origin`]
//! of its entry in the file: a mismatch found there is still reported as
//! `FILE:LINE:COLUMN: FIELD.PATH: message`, by `weir check` as much as at start-up.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

/// Where a setting was written, for errors found after validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the entry.
    pub line: usize,
    /// 1-based column of the entry.
    pub column: usize,
    /// Dotted field path, e.g. `listeners[0].tls.certificates[1]`.
    pub path: String,
}

impl Origin {
    /// A configuration error at this place.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// TLS termination on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTlsConfig {
    /// At least one. A client's SNI picks the certificate whose own names (subject
    /// alternative names, wildcards included) match; the first is served when the name
    /// is absent or matches none.
    pub certificates: Vec<CertificateConfig>,
    /// The TLS handshake must finish within this. Default 10 s.
    pub handshake_timeout: Duration,
}

/// One certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// The chain, leaf first; relative paths in the file are taken from the config
    /// file's directory, and stored here already joined to it.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1); relative as `cert`.
    pub key: PathBuf,
    /// Where this entry is in the file.
    pub origin: Origin,
}

/// TLS from weir to a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsConfig {
    /// The name sent as SNI and checked against the backend's certificate. Default: the
    /// host part of each backend's address as written (a name or an IP address).
    pub server_name: Option<String>,
    /// PEM file of the certificate authorities trusted for backends. Required while
    /// `verify` is on: this build does not read the system's trust store.
    pub ca: Option<PathBuf>,
    /// Verify the backend's certificate chain and name. Default `true`; `false` accepts
    /// any certificate (testing only: it gives up the protection TLS exists for).
    pub verify: bool,
    /// Where the pool's `tls` entry is in the file.
    pub origin: Origin,
}
