//! Sending a request to a backend and retrying it: attempts, what each one reports.
//!
//! Retries follow the pool's `retries` and `retry_on` on *other* backends
//! (`Pool::pick_excluding`), each one taken from the pool's retry budget
//! ([`crate::retry`]): after a connect failure, since nothing left weir; after a reset
//! only if the request can be replayed (idempotent method, no body or a fully buffered
//! one); after a 502/503 response, if `retry_on` lists it, for replayable requests (that
//! response is discarded, its connection closed). A reset on a reused connection with no
//! other backend left is retried on a new connection to the same backend, under the same
//! rules. The only free resend is a request that provably never left weir: one the
//! engine could not write a byte of on a pooled connection, or one hyper hands back
//! unwritten (`try_send_request`) from a shared HTTP/2 connection found closed. Every
//! other attempt's outcome is reported to passive health checking ([`crate::outlier`])
//! and to the backend's metrics (response latency to headers, or the error's kind); each
//! retry is counted in the pool's metrics. A response whose framing cannot be forwarded
//! faithfully is refused by the attempt (`InvalidResponse`, `502`): the backend answered,
//! so it is counted against it once and never replayed.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;
use weir_balance::{Backend, InFlight, Pool, Reserved};
use weir_telemetry::UpstreamErrorKind;

use super::body::ReqBody;
use super::error::UpstreamError;
use super::upstream::{checkout, connect};
use crate::retry::{Attempts, Cost, Decision, Failure};

/// A request ready to go upstream, rebuildable for retries when it is replayable.
#[derive(Debug)]
pub(crate) struct Outgoing {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: BodySource,
    replayable: bool,
    /// The body is streamed from the client (not held whole by weir).
    streaming: bool,
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
        let streaming = matches!(body, BodySource::Streaming(_));
        let replayable = idempotent && !streaming;
        Outgoing {
            method,
            uri,
            headers,
            body,
            replayable,
            streaming,
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

/// One way of sending a request to a backend: hyper's (HTTP/2 backends) or weir's own
/// HTTP/1 engine ([`crate::h1`], every HTTP/1 backend). [`forward`] drives either the
/// same way, so both follow one set of retry rules.
pub(crate) trait Attempt {
    /// A response head, with the connection its body comes on.
    type Response;

    /// Whether the request may be sent again after it left weir (idempotent method, no
    /// body or one held whole).
    fn replayable(&self) -> bool;

    /// Whether the body is streamed from the client (the response timer also covers it).
    fn streaming(&self) -> bool;

    /// One attempt on `backend` of `pool`: an idle connection (unless `fresh`) or a new
    /// one made with the pool's transport, then the response head. `reused` is set when
    /// the request went out on a pooled connection. A response whose framing cannot be
    /// forwarded is an error here.
    fn attempt(
        &mut self,
        backend: &Backend,
        pool: &Pool,
        fresh: bool,
        reused: &mut bool,
    ) -> impl std::future::Future<Output = Result<Self::Response, UpstreamError>> + Send;

    /// The response's status code.
    fn status(response: &Self::Response) -> u16;
}

/// Sends the request to `first` (its slot reserved by the pick), retrying on other
/// backends of `pool` as its settings and retry budget allow. `retries` is set to the
/// number of further attempts made.
///
/// # Errors
///
/// The last attempt's error once no attempt may follow.
pub(crate) async fn forward<'p, A: Attempt>(
    pool: &'p Pool,
    first: Reserved<'p>,
    out: &mut A,
    retries: &mut u32,
) -> Result<(A::Response, InFlight), UpstreamError> {
    let settings = pool.settings();
    let mut attempts = Attempts::new(pool, first);
    // The next attempt goes to the same backend on a new connection (see `Failure`).
    let mut fresh = false;
    let mut reused = false;
    loop {
        let (backend, in_flight) = attempts.start();
        if attempts.made() > 1 {
            *retries += 1;
        }
        let sent_at = Instant::now();
        let result = out.attempt(backend, pool, fresh, &mut reused).await;
        fresh = false;
        let err = match result {
            Ok(response) => {
                if let Some(m) = backend.metrics() {
                    m.observe_response(sent_at.elapsed());
                }
                attempts.succeeded();
                let status = A::status(&response);
                if settings.retry_on.status(status) {
                    if let Some(next) = attempts.retry_status(out.replayable()) {
                        tracing::debug!(
                            pool = pool.name(),
                            backend = backend.address(),
                            status,
                            next = next.address(),
                            "backend answered a retryable status, retrying"
                        );
                        // Dropping the response and its connection discards the body.
                        drop((response, in_flight));
                        continue;
                    }
                }
                return Ok((response, in_flight));
            }
            Err(err) => err,
        };
        let counted = err.counts_against_backend().then(|| error_kind(&err));
        // The response timer also runs while the client's body is still being written:
        // a client that stalls its upload would otherwise make a healthy backend time
        // out, and a few such clients could get it ejected.
        let client_may_be_slow =
            out.streaming() && matches!(err, UpstreamError::ResponseTimeout { .. });
        let failure = Failure {
            retryable: err.is_retryable_on(out.replayable(), &settings.retry_on),
            cost: if err.kind() == "connect" {
                Cost::Free
            } else {
                Cost::Budgeted
            },
            counted,
            passive: !client_may_be_slow,
            reset_on_reused: reused && matches!(err, UpstreamError::Reset { .. }),
        };
        match attempts.failed(failure, &err, in_flight) {
            Decision::Retry(b) => {
                fresh = Arc::ptr_eq(b, backend);
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = err.kind(),
                    error = %err, next = b.address(), "upstream attempt failed, retrying");
            }
            Decision::Stop(stop) => {
                // The caller logs the failure once, with the request id, at warn.
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = err.kind(),
                    error = %err, attempts = attempts.made(), stop = stop.as_str(), "upstream request failed");
                return Err(err);
            }
        }
    }
}

/// The `kind` label of `weir_upstream_errors_total` for a failed attempt.
fn error_kind(err: &UpstreamError) -> UpstreamErrorKind {
    match err {
        UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } => {
            UpstreamErrorKind::Connect
        }
        UpstreamError::ResponseTimeout { .. } => UpstreamErrorKind::Timeout,
        UpstreamError::Reset { .. }
        | UpstreamError::InvalidResponse { .. }
        | UpstreamError::NoBackend { .. }
        | UpstreamError::Busy { .. } => UpstreamErrorKind::Reset,
    }
}

/// A request sent through hyper's HTTP/2 client, to an `upstream_protocol: h2` backend.
#[derive(Debug)]
pub(crate) struct HyperAttempt {
    pub(crate) out: Outgoing,
    /// A request hyper handed back unsent, to go again as it is.
    pending: Option<Request<ReqBody>>,
}

impl HyperAttempt {
    pub(crate) fn new(out: Outgoing) -> Self {
        HyperAttempt { out, pending: None }
    }
}

impl Attempt for HyperAttempt {
    type Response = Response<Incoming>;

    fn replayable(&self) -> bool {
        self.out.replayable
    }

    fn streaming(&self) -> bool {
        self.out.streaming
    }

    fn status(response: &Self::Response) -> u16 {
        response.status().as_u16()
    }

    /// The one free resend: a shared connection that hyper finds closed before it
    /// started writing hands the request back (`take_message`), and it goes again on a
    /// fresh connection. Anything else, a reset after the request left weir included, is
    /// the caller's to count and to retry only as `retry_on` allows.
    async fn attempt(
        &mut self,
        backend: &Backend,
        pool: &Pool,
        fresh: bool,
        reused: &mut bool,
    ) -> Result<Self::Response, UpstreamError> {
        let response = self.send(backend, pool, fresh, reused).await?;
        match super::headers::check_response_framing(response.headers()) {
            Ok(()) => Ok(response),
            // Dropping the response resets its stream.
            Err(reason) => Err(UpstreamError::InvalidResponse {
                backend: Arc::from(backend.address()),
                reason,
            }),
        }
    }
}

impl HyperAttempt {
    async fn send(
        &mut self,
        backend: &Backend,
        pool: &Pool,
        fresh: bool,
        reused: &mut bool,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let settings = pool.settings();
        let transport = pool.transport();
        let mut fresh_only = fresh;
        loop {
            let pooled = if fresh_only {
                None
            } else {
                checkout(backend, transport)
            };
            *reused = pooled.is_some();
            let mut sender = match pooled {
                Some(s) => s,
                None => connect(backend, transport, settings.connect_timeout).await?,
            };
            let mut req = match self.pending.take() {
                Some(req) => req,
                None => self.out.build(),
            };
            super::sender::to_h2(&mut req, transport.is_tls());
            let sent = sender.try_send_request(req);
            let mut err = match tokio::time::timeout(settings.response_timeout, sent).await {
                Ok(Ok(mut response)) => {
                    // The client's own connection decides the version it is answered in.
                    *response.version_mut() = Version::HTTP_11;
                    return Ok(response);
                }
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
            self.pending = unsent;
            if *reused && !request_sent {
                // The backend closed its shared connection before weir wrote a byte of
                // this request on it: that says nothing about its health.
                tracing::debug!(backend = backend.address(), error = %err.error(), "pooled connection closed, reconnecting");
                fresh_only = true;
                continue;
            }
            let source = err.into_error();
            return Err(UpstreamError::Reset {
                backend: Arc::from(backend.address()),
                source: source.into(),
                request_sent,
            });
        }
    }
}
