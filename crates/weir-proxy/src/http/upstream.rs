//! Connections to backends: per-backend idle pools, connecting, sending, retrying.
//!
//! Each backend keeps its idle HTTP/1.1 keep-alive connections in its own lock-free
//! queue ([`UpstreamPool`], stored in the backend's extension slot), so concurrent
//! requests never contend on a global lock and a backend kept across a reload keeps its
//! warm connections. A request takes an idle connection or opens one; when the response
//! body has been read to its end, the connection goes back (see [`super::body`]).
//!
//! Retries follow the pool's `retries` on *other* backends (`Pool::pick_excluding`):
//! always after a connect failure, since nothing left weir; after a reset only if the
//! request can be replayed (idempotent method, no body or a fully buffered one). A
//! pooled connection the backend closed between requests hands the request back
//! unsent (`try_send_request`), and it is sent again on a fresh connection for free.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use weir_balance::{Backend, InFlight, Pool, PoolSettings, MAX_ATTEMPTS};

use super::body::ReqBody;
use super::error::UpstreamError;

/// The sending half of one backend connection.
pub(crate) type Sender = http1::SendRequest<ReqBody>;

/// Idle connections kept per backend; more are closed when they come back.
const IDLE_PER_BACKEND: usize = 256;

/// How long a returned connection may take to become ready again: hyper's connection
/// task marks it idle just after the body's last frame was handed over.
const READY_GRACE: Duration = Duration::from_millis(100);

/// A backend's idle keep-alive connections (lives in `Backend::extension`).
#[derive(Debug)]
pub struct UpstreamPool {
    idle: ArrayQueue<Sender>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            idle: ArrayQueue::new(IDLE_PER_BACKEND),
        }
    }
}

impl UpstreamPool {
    /// Idle connections currently held (some may have been closed by the backend).
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

/// Returns a connection whose response was read fully to its backend's idle queue.
pub(crate) fn give_back(backend: &Backend, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    match backend.extension::<UpstreamPool>() {
        Some(pool) => {
            if pool.idle.push(sender).is_err() {
                tracing::trace!(backend = backend.address(), "idle queue full, closing");
            }
        }
        None => tracing::error!(backend = backend.address(), "backend extension slot taken"),
    }
}

/// Takes a live idle connection to `backend`, if it has one.
async fn checkout(backend: &Backend) -> Option<Sender> {
    let pool = backend.extension::<UpstreamPool>()?;
    while let Some(mut sender) = pool.idle.pop() {
        if sender.is_closed() {
            continue;
        }
        if sender.is_ready() {
            return Some(sender);
        }
        match tokio::time::timeout(READY_GRACE, sender.ready()).await {
            Ok(Ok(())) => return Some(sender),
            Ok(Err(e)) => tracing::trace!(error = %e, "idle connection closed"),
            Err(_) => tracing::debug!(backend = backend.address(), "idle connection not ready"),
        }
    }
    None
}

/// Opens a new HTTP/1.1 connection to `backend` within `timeout`.
async fn connect(backend: &Backend, timeout: Duration) -> Result<Sender, UpstreamError> {
    let addr = backend.addr();
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(UpstreamError::Connect {
                backend: Arc::from(backend.address()),
                source,
            })
        }
        Err(_) => {
            return Err(UpstreamError::ConnectTimeout {
                backend: Arc::from(backend.address()),
                timeout,
            })
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend = %addr, error = %e, "TCP_NODELAY failed");
    }
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| UpstreamError::Reset {
            backend: Arc::from(backend.address()),
            source,
            request_sent: false,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend = %addr, error = %e, "backend connection failed");
        }
    });
    Ok(sender)
}

/// A request ready to go upstream, rebuildable for retries when it is replayable.
#[derive(Debug)]
pub(crate) struct Outgoing {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: BodySource,
    replayable: bool,
}

#[derive(Debug)]
pub(crate) enum BodySource {
    Empty,
    Buffered {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Sent at most once; `None` once taken.
    Streaming(Option<ReqBody>),
}

impl Outgoing {
    /// A prepared head and body. Idempotent methods with a body that can be sent
    /// again are replayable after a reset.
    pub(crate) fn new(method: Method, uri: Uri, headers: HeaderMap, body: BodySource) -> Self {
        let idempotent = matches!(
            method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let replayable = idempotent && !matches!(body, BodySource::Streaming(_));
        Outgoing {
            method,
            uri,
            headers,
            body,
            replayable,
        }
    }

    /// Builds the request for one attempt; a replayable request keeps its parts (the
    /// header map is cloned), any other hands them over since it is sent only once.
    fn build(&mut self) -> Request<ReqBody> {
        let body = match &mut self.body {
            BodySource::Empty => ReqBody::Empty,
            BodySource::Buffered { data, trailers } => ReqBody::Buffered {
                data: (!data.is_empty()).then(|| data.clone()),
                trailers: trailers.clone(),
            },
            BodySource::Streaming(body) => {
                debug_assert!(body.is_some(), "a streaming body is never sent twice");
                body.take().unwrap_or(ReqBody::Empty)
            }
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.version_mut() = Version::HTTP_11;
        if self.replayable {
            *req.uri_mut() = self.uri.clone();
            *req.headers_mut() = self.headers.clone();
        } else {
            *req.uri_mut() = std::mem::take(&mut self.uri);
            *req.headers_mut() = std::mem::take(&mut self.headers);
        }
        req
    }
}

/// A backend's response head and what its body must release.
#[derive(Debug)]
pub(crate) struct Forwarded {
    pub(crate) response: Response<Incoming>,
    pub(crate) sender: Sender,
    pub(crate) in_flight: InFlight,
}

/// Sends `out` to `first`, retrying on other backends of `pool` as its settings allow.
///
/// # Errors
///
/// The last attempt's error once no attempt may follow.
pub(crate) async fn forward(
    pool: &Pool,
    first: &Arc<Backend>,
    mut out: Outgoing,
) -> Result<Forwarded, UpstreamError> {
    let settings = pool.settings();
    let max_attempts = usize::try_from(settings.retries)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_ATTEMPTS);
    let mut tried: [&Arc<Backend>; MAX_ATTEMPTS] = [first; MAX_ATTEMPTS];
    let mut attempts = 0;
    let mut backend = first;
    let mut pending = None;
    loop {
        if let Some(slot) = tried.get_mut(attempts) {
            *slot = backend;
        }
        attempts += 1;
        let in_flight = backend.start_request();
        let err = match attempt(backend, settings, &mut out, &mut pending).await {
            Ok((response, sender)) => {
                return Ok(Forwarded {
                    response,
                    sender,
                    in_flight,
                })
            }
            Err(err) => err,
        };
        drop(in_flight);
        let retry = attempts < max_attempts && err.is_retryable(out.replayable);
        let next = if retry {
            pool.pick_excluding(tried.get(..attempts).unwrap_or_default())
        } else {
            None
        };
        match next {
            Some(b) => {
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = err.kind(),
                    error = %err, next = b.address(), "upstream attempt failed, retrying");
                backend = b;
            }
            None => {
                tracing::warn!(pool = pool.name(), backend = backend.address(), kind = err.kind(),
                    error = %err, attempts, "upstream request failed");
                return Err(err);
            }
        }
    }
}

/// One attempt on one backend: an idle connection or a new one, then the response head.
async fn attempt(
    backend: &Backend,
    settings: &PoolSettings,
    out: &mut Outgoing,
    pending: &mut Option<Request<ReqBody>>,
) -> Result<(Response<Incoming>, Sender), UpstreamError> {
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            checkout(backend).await
        };
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => s,
            None => connect(backend, settings.connect_timeout).await?,
        };
        let req = match pending.take() {
            Some(req) => req,
            None => out.build(),
        };
        let sent = sender.try_send_request(req);
        let mut err = match tokio::time::timeout(settings.response_timeout, sent).await {
            Ok(Ok(response)) => return Ok((response, sender)),
            Ok(Err(err)) => err,
            Err(_) => {
                return Err(UpstreamError::ResponseTimeout {
                    backend: Arc::from(backend.address()),
                    timeout: settings.response_timeout,
                })
            }
        };
        let unsent = err.take_message();
        let request_sent = unsent.is_none();
        if reused && (unsent.is_some() || out.replayable) {
            // The backend closed a kept-alive connection as we used it: that says
            // nothing about its health. Go again on a fresh connection to it.
            tracing::debug!(backend = backend.address(), error = %err.error(), "pooled connection closed, reconnecting");
            *pending = unsent;
            fresh_only = true;
            continue;
        }
        *pending = unsent;
        return Err(UpstreamError::Reset {
            backend: Arc::from(backend.address()),
            source: err.into_error(),
            request_sent,
        });
    }
}
