//! Why weir answers a request itself ([`Refusal`]) and how that answer is written.
//!
//! Each phase of [`super::request`] says what stopped the request and leaves the
//! writing to [`Refusal::answer`], so the phases read as decisions and every early
//! answer (status, text, `Connection: close`, access-log fields) is written in one
//! place. A refusal holds only `&'static` text and what the request already owned: it
//! costs nothing more than the answer it replaces.

use weir_balance::{Pool, Refused};

use super::answer::{bad_body, body_then_reply, reply_for, Answer, RequestId};
use super::buf::Buf;
use super::request::{Next, Scratch};
use super::server::{ClientStream, Ctx};
use crate::http::UpstreamError;

/// What stopped a request before a backend's answer could be sent on.
#[derive(Debug)]
pub(super) enum Refusal<'t> {
    /// Answered, then the connection closes: the bytes after the head cannot be told
    /// apart from it (CONNECT, a bad target or `Host`, the body's late arrival).
    Close { status: u16, reason: &'static str },
    /// Answered before the body was read: it is skipped if already here and short
    /// (the connection may stay open), else the connection closes.
    Unread { status: u16, reason: &'static str },
    /// The client's body was malformed or broke off: 400, and the connection closes.
    BadBody,
    /// No backend of the pool is up, or every one up is at its `max_in_flight` and the
    /// pool's queue refused the request (full, timed out, pool removed): 503, and the
    /// access log records the error.
    Unavailable(&'t Pool, Refused),
    /// The last attempt failed: its status and text, the warning line and the
    /// access-log fields of [`crate::http::access::upstream_failed`].
    Upstream {
        err: UpstreamError,
        pool: &'t Pool,
        close: bool,
    },
    /// A rate limit refused the request: 429 with `Retry-After` (seconds), answered
    /// like [`Refusal::Unread`].
    Limited { retry_after: u64 },
    /// The client is gone (or could not be written to): closed without an answer.
    Gone,
}

impl Refusal<'_> {
    /// Writes the answer this refusal stands for; `keep` is whether the connection
    /// could have stayed open had a backend answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer<S: ClientStream>(
        self,
        stream: &mut S,
        ctx: &Ctx,
        sc: &mut Scratch,
        buf: &mut Buf,
        id: &RequestId,
        answer: &mut Answer<'_>,
        keep: bool,
    ) -> Next {
        let version = sc.req.version;
        match self {
            Refusal::Close { status, reason } => {
                reply_for(stream, ctx, sc, status, reason, id, version, true, answer).await
            }
            Refusal::Unread { status, reason } => {
                body_then_reply(stream, ctx, sc, buf, status, reason, id, answer, keep, None).await
            }
            Refusal::Limited { retry_after } => {
                let (status, reason) = (429, crate::policy::LIMITED);
                let retry = Some(retry_after);
                body_then_reply(
                    stream, ctx, sc, buf, status, reason, id, answer, keep, retry,
                )
                .await
            }
            Refusal::BadBody => bad_body(stream, ctx, sc, id, version, answer).await,
            Refusal::Unavailable(pool, why) => {
                let Some(err) = UpstreamError::refused(pool, why) else {
                    return Next::Close;
                };
                if let Some(a) = answer.access.as_mut() {
                    a.error = Some(err.to_string());
                }
                let msg = err.reason(pool.name());
                body_then_reply(stream, ctx, sc, buf, 503, &msg, id, answer, keep, None).await
            }
            Refusal::Upstream { err, pool, close } => {
                crate::http::access::upstream_failed(
                    &err,
                    id.as_str(),
                    pool.name(),
                    answer.access.as_deref_mut(),
                );
                let msg = err.reason(pool.name());
                let status = err.status().as_u16();
                reply_for(stream, ctx, sc, status, &msg, id, version, close, answer).await
            }
            Refusal::Gone => Next::Close,
        }
    }
}
