//! The admin HTTP server: `/` (the dashboard), `/metrics`, `/status`, `/healthz`, and
//! the runtime API's `POST /pools/{pool}/backends/{address}` ([`crate::api`]).
//!
//! Plain HTTP/1.1 on a loopback address by default: `/status` reveals the topology, so
//! it is not meant to face clients. Each connection gets its own task; a slow scraper
//! cannot hold up the data plane, which never waits on this server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use weir_balance::SharedTable;
use weir_telemetry::{Metrics, TEXT_CONTENT_TYPE};

use crate::api::RebuildRequests;

/// Every endpoint answers these methods only (the `Allow` header of a 405).
const ALLOWED_METHODS: &str = "GET, HEAD";

/// The dashboard: one page, its script and style inline, so it works with no network
/// and no build step.
const DASHBOARD: &str = include_str!("dashboard.html");

/// The page may run its one inline script (by hash: an event-handler attribute or any
/// other script is refused, even if a string from `/status` were ever rendered as markup
/// by mistake) and inline style, and fetch from the admin origin; nothing else: no
/// external script, image, frame or form target.
///
/// The hash is the base64 SHA-256 of the text inside `<script>…</script>`; after editing
/// the script, weir-admin's `tests/dashboard.rs` fails and prints the new value.
pub const DASHBOARD_CSP: &str = "default-src 'none'; \
     script-src 'sha256-ZHY/xIFGSo9YFXUfehGXmt1n+FOjt+g9p97QA773x3k='; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// What `/status` shows about one running listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// `http` or `tcp`.
    pub protocol: &'static str,
    /// The configured address (may have port 0).
    pub listen: SocketAddr,
    /// The address actually bound.
    pub bound: SocketAddr,
    /// Client connections open now.
    pub active_connections: usize,
}

/// Supplies the running listeners, read on each `/status` request.
pub type ListenerView = Box<dyn Fn() -> Vec<ListenerStatus> + Send + Sync>;

/// What `/status` says about the configuration file being served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigStamp {
    /// `weir_telemetry::config_hash` of the file's bytes (the `weir_config_info` label).
    pub hash: String,
    /// Unix time in milliseconds when this configuration was loaded or reloaded.
    pub loaded_unix_ms: u64,
}

/// Everything the admin server reads.
pub struct AdminState {
    table: SharedTable,
    draining: AtomicBool,
    listeners: ListenerView,
    metrics: Metrics,
    /// Written on start and on each applied reload only, read by `/status`.
    config: Mutex<ConfigStamp>,
    /// Where the runtime API asks for a table rebuilt with new weights.
    rebuild: Option<RebuildRequests>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

// === impl AdminState ===

impl AdminState {
    /// Admin state over the live table, a listener view and the metrics registry that
    /// `/metrics` encodes.
    pub fn new(table: SharedTable, listeners: ListenerView, metrics: Metrics) -> Self {
        AdminState {
            table,
            draining: AtomicBool::new(false),
            listeners,
            metrics,
            config: Mutex::new(ConfigStamp::default()),
            rebuild: None,
        }
    }

    /// The same state, with the runtime API's weight changes rebuilt through `requests`
    /// (the binary serialises them with reloads). Without it a new weight is recorded
    /// but reaches the strategies only with the next reload.
    #[must_use]
    pub fn with_rebuild(mut self, requests: RebuildRequests) -> Self {
        self.rebuild = Some(requests);
        self
    }

    pub(crate) fn rebuild_requests(&self) -> Option<&RebuildRequests> {
        self.rebuild.as_ref()
    }

    /// Records the configuration now being served (call at start and after each
    /// applied reload; a rejected reload leaves the old stamp, as it leaves the old table).
    pub fn set_config(&self, stamp: ConfigStamp) {
        *lock(&self.config) = stamp;
    }

    /// The configuration now being served.
    pub fn config(&self) -> ConfigStamp {
        lock(&self.config).clone()
    }

    /// The registry `/metrics` encodes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// From now on `/healthz` answers 503, so an outer balancer or keepalived moves
    /// traffic away while weir drains.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether weir is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn table(&self) -> &SharedTable {
        &self.table
    }

    pub(crate) fn listeners(&self) -> Vec<ListenerStatus> {
        (self.listeners)()
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    if crate::api::is_api_path(req.uri().path()) {
                        return Ok::<_, Infallible>(crate::api::handle(&state, req, peer).await);
                    }
                    Ok(handle(&state, &req))
                }
            });
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "admin connection ended with error");
            }
        });
    }
}

fn handle(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        // RFC 9110 §15.5.6: a 405 names the methods the resource supports.
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        resp.headers_mut().insert(
            header::ALLOW,
            header::HeaderValue::from_static(ALLOWED_METHODS),
        );
        return resp;
    }
    match req.uri().path() {
        "/healthz" if state.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/" => dashboard(),
        "/metrics" => metrics(state),
        "/status" => {
            let body = crate::status::status_json(
                &state.table().load(),
                &state.listeners(),
                state.is_draining(),
                &state.config(),
            );
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /metrics, /healthz, /status or POST /pools/{pool}/backends/{address}\n",
        ),
    }
}

fn dashboard() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(DASHBOARD.as_bytes())));
    let headers = resp.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    resp
}

/// The Prometheus text exposition; a 500 naming the cause if encoding fails (a scraper
/// then records the target as down instead of reading a partial page).
fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    match state.metrics().encode() {
        Ok(body) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(TEXT_CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics failed: {e}\n"),
            )
        }
    }
}

/// A poisoned stamp is still a whole value (it is replaced, never edited in place).
fn lock(m: &Mutex<ConfigStamp>) -> std::sync::MutexGuard<'_, ConfigStamp> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
