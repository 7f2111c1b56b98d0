//! The access log: one `weir::access` event per request, on listeners with
//! `access_log: true`.
//!
//! Off (the default) it costs one `bool` test per request: no record is allocated and
//! nothing is formatted. On, the request's facts are captured in an [`Access`] record
//! that travels with the response body and is logged when that body ends or is dropped,
//! so `duration_ms` and `bytes_out` cover the whole exchange (the latency histogram,
//! by contrast, stops at the response headers). Fields are structured, so
//! `--log-format json` gives one JSON object per request with no extra work:
//!
//! ```text
//! request_id client method host path status backend pool listener duration_ms bytes_in
//! bytes_out retries error
//! ```
//! `request_id` is the `X-Request-Id` the client and the backend saw. `backend` is the
//! address as written in the config, or `-` when weir answered itself; `host` and `pool`
//! are `-` when unknown. `bytes_in`/`bytes_out` count body bytes. `error` is why no
//! backend answered (address and OS error included: the client only got a generic
//! reason), `-` when one did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{HeaderValue, Method, Request};
use tokio::time::Instant;

/// The tracing target of access-log events (filter with `WEIR_LOG=weir::access=off`).
pub(crate) const TARGET: &str = "weir::access";

/// One request's access-log record, logged when dropped.
#[derive(Debug)]
pub(crate) struct Access {
    start: Instant,
    request_id: HeaderValue,
    client: SocketAddr,
    listener: Arc<str>,
    method: Method,
    host: Option<String>,
    path: String,
    pub(crate) pool: Option<Arc<str>>,
    pub(crate) backend: Option<String>,
    pub(crate) status: u16,
    pub(crate) retries: u32,
    /// The upstream failure weir answered for, in full.
    pub(crate) error: Option<String>,
    /// Request body bytes sent on: counted by the request body as the backend reads it.
    pub(crate) bytes_in: Arc<AtomicU64>,
    /// Response body bytes handed to the client.
    pub(crate) bytes_out: u64,
}

impl Access {
    /// A record for this request if the listener logs access and the `weir::access`
    /// target is enabled at INFO; `None` (nothing captured) otherwise.
    #[inline]
    pub(crate) fn begin<B>(
        enabled: bool,
        start: Instant,
        client: SocketAddr,
        listener: &Arc<str>,
        request_id: &HeaderValue,
        req: &Request<B>,
    ) -> Option<Box<Access>> {
        if !Self::enabled(enabled) {
            return None;
        }
        let host = super::host::request_host(req.uri(), req.headers());
        Some(Self::record(
            start,
            client,
            listener,
            request_id.clone(),
            req.method().clone(),
            host,
            req.uri().path(),
        ))
    }

    /// Whether a listener with `access_log: enabled` logs now (the target may be off).
    #[inline]
    pub(crate) fn enabled(enabled: bool) -> bool {
        enabled && tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// A record from the request's facts (call only when [`Access::enabled`]).
    #[cold]
    pub(crate) fn record(
        start: Instant,
        client: SocketAddr,
        listener: &Arc<str>,
        request_id: HeaderValue,
        method: Method,
        host: Option<&str>,
        path: &str,
    ) -> Box<Access> {
        Box::new(Access {
            start,
            request_id,
            client,
            listener: Arc::clone(listener),
            method,
            host: host.map(str::to_owned),
            path: path.to_owned(),
            pool: None,
            backend: None,
            status: 0,
            retries: 0,
            error: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
        })
    }
}

/// Logs a request no backend answered, once, at warn with the request id (the client got
/// only a generic reason), and puts the detail in its access-log record.
pub(crate) fn upstream_failed(
    err: &super::UpstreamError,
    request_id: &str,
    pool: &str,
    access: Option<&mut Access>,
) {
    tracing::warn!(
        request_id,
        pool,
        backend = err.backend().unwrap_or("-"),
        status = err.status().as_u16(),
        error = %err,
        "request failed"
    );
    if let Some(a) = access {
        a.backend = err.backend().map(str::to_owned);
        a.error = Some(err.to_string());
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: TARGET,
            request_id = self.request_id.to_str().unwrap_or("-"),
            client = %self.client,
            method = %self.method,
            host = self.host.as_deref().unwrap_or("-"),
            path = %self.path,
            status = self.status,
            backend = self.backend.as_deref().unwrap_or("-"),
            pool = self.pool.as_deref().unwrap_or("-"),
            listener = %self.listener,
            duration_ms,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out,
            retries = self.retries,
            error = self.error.as_deref().unwrap_or("-"),
            "request"
        );
    }
}
