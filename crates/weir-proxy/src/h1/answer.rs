//! What weir answers itself and what it records of every answer: the request id, the
//! route's metrics and the access-log record ([`Answer`]), and the short text responses
//! weir writes when no backend answers.

use std::sync::Arc;

use http::StatusCode;
use tokio::time::Instant;
use weir_balance::{Backend, Route};
use weir_h1::{Framing, Method, RequestHead, Version};
use weir_telemetry::RouteMetrics;

use super::body::{self};
use super::buf::Buf;
use super::request::{Next, Scratch, BAD_BODY};
use super::server::{ClientStream, Ctx};
use super::write::{self};
use crate::http::access::Access;
use crate::http::request_id;

/// The request's `X-Request-Id`: the client's single valid one, else a fresh one.
pub(crate) struct RequestId {
    bytes: [u8; 128],
    len: usize,
}

impl RequestId {
    pub(crate) fn of(head: &RequestHead, src: &[u8]) -> RequestId {
        let mut ids = head
            .headers
            .iter()
            .filter(|h| h.kind == weir_h1::HeaderKind::XRequestId);
        let mut id = RequestId {
            bytes: [0; 128],
            len: 0,
        };
        if let (Some(h), None) = (ids.next(), ids.next()) {
            let v = h.value.of(src);
            if request_id::is_valid(v) {
                if let Some(slot) = id.bytes.get_mut(..v.len()) {
                    slot.copy_from_slice(v);
                    id.len = v.len();
                    return id;
                }
            }
        }
        id.fresh();
        id
    }

    fn fresh(&mut self) {
        let made = request_id::fresh();
        if let Some(slot) = self.bytes.get_mut(..made.len()) {
            slot.copy_from_slice(&made);
        }
        self.len = made.len();
    }

    pub(crate) fn new_fresh() -> RequestId {
        let mut id = RequestId {
            bytes: [0; 128],
            len: 0,
        };
        id.fresh();
        id
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("-")
    }
}

/// How a request was answered, for its metrics and access-log record.
pub(crate) struct Answer<'t> {
    route: Option<&'t RouteMetrics>,
    counted: bool,
    pub(crate) access: Option<Box<Access>>,
    pub(crate) start: Instant,
    finished: bool,
}

impl<'t> Answer<'t> {
    /// A request that arrived at `start`, counted in `route` (the listener's unrouted
    /// metrics until a route matches).
    pub(crate) fn new(route: Option<&'t RouteMetrics>, start: Instant) -> Self {
        Answer {
            route,
            counted: false,
            access: None,
            start,
            finished: false,
        }
    }

    pub(crate) fn routed(&mut self, route: &'t Route) {
        self.route = route.metrics();
        if let (Some(a), Some(pool)) = (self.access.as_mut(), route.pool()) {
            a.pool = Some(Arc::clone(pool.name_arc()));
        }
    }

    pub(crate) fn backend_answered(&mut self, backend: &Backend, status: u16) {
        if let (Some(route), Some(m)) = (self.route, backend.metrics()) {
            route.count(m, status);
            self.counted = true;
        }
        if let Some(a) = self.access.as_mut() {
            a.backend = Some(backend.address().to_owned());
        }
    }

    /// The response head is handed over: latency, and weir's own answer if no backend's
    /// was counted.
    pub(crate) fn head_sent(&mut self, status: u16) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(route) = self.route {
            route.observe_request(self.start.elapsed());
            if !self.counted {
                route.count_without_backend(status);
            }
        }
        if let Some(a) = self.access.as_mut() {
            a.status = status;
        }
    }
}

/// Answers weir's own response to a request whose body has not been read: the body is
/// skipped if it is already here and short; otherwise the connection closes after.
#[allow(clippy::too_many_arguments)]
pub(super) async fn body_then_reply<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    buf: &mut Buf,
    status: u16,
    msg: &str,
    id: &RequestId,
    answer: &mut Answer<'_>,
    keep: bool,
    retry_after: Option<u64>,
) -> Next {
    let version = sc.req.version;
    let close = match skippable(&sc.req, buf.len()) {
        Some(n) => {
            buf.consume(n);
            !keep
        }
        None => true,
    };
    let own = Own {
        status,
        reason: msg,
        id,
        version,
        close,
        retry_after,
    };
    reply(stream, ctx, sc, own, Some(answer)).await
}

/// Where the request ends in a buffer of `buffered` bytes when its body is all there
/// (none, or a length already read), so it can be skipped; `None` when it is not.
pub(super) fn skippable(head: &RequestHead, buffered: usize) -> Option<usize> {
    match head.framing {
        Framing::None | Framing::Close => Some(head.len),
        // Saturating: a huge length must not wrap into "already read".
        Framing::Length(n) if (buffered.saturating_sub(head.len) as u64) >= n => {
            usize::try_from(n).ok().map(|n| head.len + n)
        }
        _ => None,
    }
}

/// One of weir's own answers: `{status}: {reason}` and the request id, in `version`;
/// `close` ends the connection after it.
pub(super) struct Own<'a> {
    pub(super) status: u16,
    pub(super) reason: &'a str,
    pub(super) id: &'a RequestId,
    pub(super) version: Version,
    pub(super) close: bool,
    /// `Retry-After` in seconds (a 429 of a rate limit).
    pub(super) retry_after: Option<u64>,
}

impl<'a> Own<'a> {
    /// An answer after which the connection closes.
    pub(super) fn closing(
        status: u16,
        reason: &'a str,
        id: &'a RequestId,
        version: Version,
    ) -> Self {
        Own {
            status,
            reason,
            id,
            version,
            close: true,
            retry_after: None,
        }
    }
}

/// Writes a short text response of weir's own: `{status}: {reason}` and the request
/// id, so a client's error report leads to the log line with the detail.
pub(super) async fn reply<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    own: Own<'_>,
    answer: Option<&mut Answer<'_>>,
) -> Next {
    let Own {
        status,
        reason,
        id,
        version,
        close,
        retry_after,
    } = own;
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!("{code}: {reason}\nrequest id: {}\n", id.as_str());
    let out = &mut sc.out;
    out.clear();
    out.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    out.extend_from_slice(code.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(code.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    write::decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(id.as_bytes());
    if let Some(secs) = retry_after {
        out.extend_from_slice(b"\r\nretry-after: ");
        write::decimal(out, secs);
    }
    // A drain closes after this answer too.
    let close = close || ctx.scope.says_close();
    out.extend_from_slice(match (close, version) {
        (true, _) => b"\r\nconnection: close\r\n\r\n".as_slice(),
        (false, Version::Http10) => b"\r\nconnection: keep-alive\r\n\r\n",
        (false, Version::Http11) => b"\r\n\r\n",
    });
    if sc.req.method != Method::Head {
        out.extend_from_slice(body.as_bytes());
    }
    if let Some(a) = answer {
        a.head_sent(status);
        if let Some(rec) = a.access.as_mut() {
            rec.bytes_out = body.len() as u64;
        }
    }
    let idle = ctx.limits.timeouts.idle;
    if body::write(stream, out, idle).await.is_err() || close {
        return Next::Close;
    }
    Next::KeepAlive
}

/// The client's own body was malformed or broke off: 400, and the connection closes
/// (where the next request starts is unknown).
pub(super) async fn bad_body<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    id: &RequestId,
    version: Version,
    answer: &mut Answer<'_>,
) -> Next {
    reply_for(stream, ctx, sc, 400, BAD_BODY, id, version, true, answer).await
}

/// [`reply`] for a request whose answer is recorded.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reply_for<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    status: u16,
    reason: &str,
    id: &RequestId,
    version: Version,
    close: bool,
    answer: &mut Answer<'_>,
) -> Next {
    let own = Own {
        status,
        reason,
        id,
        version,
        close,
        retry_after: None,
    };
    reply(stream, ctx, sc, own, Some(answer)).await
}
