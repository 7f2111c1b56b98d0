//! Every TLS object a configuration needs, built before anything changes.
//!
//! Certificates, keys and CA files are read here, at start-up, on every SIGHUP and in
//! `weir check`: a missing file, a bad PEM or a key that does not match its certificate
//! is then an error of the configuration, reported at its entry in the file, and a
//! reload with one is rejected before the running listeners are touched (they keep
//! serving the certificates they had).
//!
//! Health probes reach a pool with `tls` through the same settings ([`ProbeTls`]).

use tokio::net::TcpStream;
use weir_balance::Backend;
use weir_config::{Config, ConfigError};
use weir_health::{ProbeKind, ProbeStream, Secured, Transport};
use weir_proxy::tls::{Alpn, ListenerTls, UpstreamTlsSet};

/// TLS for one configuration: per listener (in config order), and per pool.
#[derive(Debug, Default)]
pub(crate) struct TlsSet {
    /// `listeners[i]` of the config: `None` when it has no `tls`.
    pub(crate) listeners: Vec<Option<ListenerTls>>,
    /// Pools with `tls`.
    pub(crate) upstream: UpstreamTlsSet,
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
    let upstream = UpstreamTlsSet::load(config).unwrap_or_else(|es| {
        errors.extend(es.iter().map(weir_proxy::tls::TlsError::config_error));
        UpstreamTlsSet::default()
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

/// Probes over the TLS settings the proxy attached to each backend (`apply_upstream`),
/// so a probe and the pool's traffic verify the backend alike; plain TCP for a pool
/// without `tls`. Read at each probe: a reload that changes a pool's `tls` applies to
/// the next probe.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProbeTls;

impl Transport for ProbeTls {
    fn secure<'a>(
        &'a self,
        backend: &'a Backend,
        stream: TcpStream,
        kind: ProbeKind,
    ) -> Secured<'a> {
        Box::pin(async move {
            let Some(tls) = weir_proxy::tls::backend_tls(backend) else {
                return Ok(Box::new(stream) as Box<dyn ProbeStream>);
            };
            let alpn = match kind {
                ProbeKind::Http => Alpn::Http1,
                ProbeKind::Tcp => Alpn::Handshake,
            };
            let stream = tls.connect_as(backend, stream, alpn).await?;
            Ok(Box::new(stream) as Box<dyn ProbeStream>)
        })
    }
}
