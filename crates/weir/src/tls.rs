//! Every TLS object a configuration needs, built before anything changes.
//!
//! Certificates, keys and CA files are read here, at start-up, on every SIGHUP and in
//! `weir check`: a missing file, a bad PEM or a key that does not match its certificate
//! is then an error of the configuration, reported at its entry in the file, and a
//! reload with one is rejected before the running listeners are touched (they keep
//! serving the certificates they had).
//!
//! Each pool's transport (its TLS client settings and HTTP version) is built here too
//! and goes into the table with the pool ([`weir_balance::BackendRegistry::build_with`]),
//! so requests, TCP relays and health probes all reach a pool with `tls` through the
//! same settings, those of the table they run on.

use weir_config::{Config, ConfigError};
use weir_proxy::tls::ListenerTls;
use weir_upstream::Transports;

/// TLS for one configuration: per listener (in config order), and per pool.
#[derive(Debug, Default)]
pub(crate) struct TlsSet {
    /// `listeners[i]` of the config: `None` when it has no `tls`.
    pub(crate) listeners: Vec<Option<ListenerTls>>,
    /// Every pool's transport.
    pub(crate) upstream: Transports,
}

/// Reads every certificate and key of `config`. Blocking file I/O.
///
/// # Errors
///
/// Every unusable file, as configuration errors in file order.
pub(crate) fn load(config: &Config) -> Result<TlsSet, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let listeners = config
        .listeners
        .iter()
        .map(|l| {
            let tls = l.tls.as_ref()?;
            ListenerTls::load(tls, l.protocol)
                .map_err(|e| errors.push(e.config_error()))
                .ok()
        })
        .collect();
    let upstream = Transports::load(config).unwrap_or_else(|es| {
        errors.extend(es.iter().map(weir_upstream::TlsError::config_error));
        Transports::default()
    });
    if errors.is_empty() {
        Ok(TlsSet {
            listeners,
            upstream,
        })
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        Err(errors)
    }
}

/// The errors as `weir check` and the log print them, one per line.
pub(crate) fn describe(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
