//! Reading and admitting a request head: the head read within its timeouts (the HTTP/2
//! preface recognised on a connection's first bytes), the codec's refusals answered and
//! counted, and the target's form and `Host` rules checked before routing.

use tokio::time::Instant;
use weir_h1::{Method, Parsed, RequestHead, Version};

use super::answer::{reply, Own, RequestId};
use super::body;
use super::buf::Buf;
use super::refusal::Refusal;
use super::request::{Next, Scratch};
use super::server::{ClientStream, Ctx};
use crate::http::host;
use crate::io::H2_PREFACE;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Reads until a whole head is in `buf` and parsed into `sc.req`; `Some` when the
/// connection ends instead (answered or not).
pub(super) async fn read_head<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    served: u64,
    wait: std::time::Duration,
) -> Option<Next> {
    // A refusal before the head parses must not read the last request's method
    // (a HEAD would leave its body out).
    sc.req.method = Method::Get;
    let limit = ctx.limits.timeouts.header_read;
    // Set when a head needs a second read (most arrive in one).
    let mut deadline = None;
    if buf.is_empty() {
        // Woken by readiness that may have been a false positive: the first byte
        // still gets only the wait it was due.
        let first = super::within(wait, buf.read_from(stream));
        let read = if S::READINESS {
            first.await
        } else {
            // The wait is this read (TLS): a drain, or the grace after a first request,
            // must end it as it ends a wait (see `server`).
            let stop = if served == 0 {
                ctx.scope.drain.cancelled()
            } else {
                ctx.scope.winding_down.cancelled()
            };
            tokio::select! {
                r = first => r,
                () = stop => return Some(Next::Close),
            }
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Some(Next::Close),
        }
    }
    loop {
        if served == 0 {
            let seen = buf.filled();
            let n = seen.len().min(H2_PREFACE.len());
            if n > 0 && seen.get(..n) == H2_PREFACE.get(..n) {
                if n == H2_PREFACE.len() {
                    return Some(Next::Http2);
                }
            } else {
                match sc.req.parse(seen) {
                    Ok(Parsed::Complete) => return None,
                    Ok(Parsed::Partial) => {}
                    Err(refusal) => return Some(refuse(stream, ctx, sc, refusal).await),
                }
            }
        } else {
            match sc.req.parse(buf.filled()) {
                Ok(Parsed::Complete) => return None,
                Ok(Parsed::Partial) => {}
                Err(refusal) => return Some(refuse(stream, ctx, sc, refusal).await),
            }
        }
        if buf.is_full() {
            buf.grow(weir_h1::MAX_HEAD_BYTES + 1);
        }
        let d = *deadline.get_or_insert_with(|| Instant::now() + limit);
        let read = if limit.is_zero() {
            Ok(buf.read_from(stream).await)
        } else {
            tokio::time::timeout_at(d, buf.read_from(stream)).await
        };
        match read {
            Err(_) => {
                tracing::debug!(peer = %ctx.peer, "request head did not arrive in time");
                if buf.is_empty() {
                    return Some(Next::Close);
                }
                let id = RequestId::new_fresh();
                let msg = "request head did not arrive in time";
                return Some(
                    reply(
                        stream,
                        ctx,
                        sc,
                        Own::closing(408, msg, &id, Version::Http11),
                        None,
                    )
                    .await,
                );
            }
            Ok(Ok(0) | Err(_)) => return Some(Next::Close),
            Ok(Ok(_)) => {}
        }
    }
}

/// Answers a head the codec refused, and counts it as a protocol error.
#[cold]
pub(super) async fn refuse<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    refusal: weir_h1::Refusal,
) -> Next {
    tracing::debug!(peer = %ctx.peer, reason = refusal.reason, "refused request head");
    if let Some(m) = &ctx.limits.metrics {
        m.protocol_error();
    }
    let id = RequestId::new_fresh();
    let own = Own::closing(refusal.status, refusal.reason, &id, Version::Http11);
    reply(stream, ctx, sc, own, None).await
}

/// Where a request goes, read from its target and `Host`.
pub(super) struct Target {
    /// Origin-form target to send instead of the client's (absolute-form requests).
    pub(super) origin: Option<Vec<u8>>,
    /// `Host` to send instead of the client's (absolute-form requests).
    pub(super) host: Option<Vec<u8>>,
    pub(super) route_host: Option<String>,
    pub(super) path: String,
}

/// The target's form and the `Host` rules of RFC 9112 §3.2 (see [`host`]).
pub(super) fn target(head: &RequestHead, src: &[u8]) -> Result<Target, &'static str> {
    let raw = head.target.of(src);
    let mut t = Target {
        origin: None,
        host: None,
        route_host: None,
        path: String::new(),
    };
    let mut authority_host = None;
    if let Some(path) = head.origin_path(src) {
        t.path = std::str::from_utf8(path)
            .map_err(|_| "malformed request head")?
            .to_owned();
    } else if raw == b"*" {
        if head.method != Method::Options {
            return Err("asterisk-form request target outside OPTIONS");
        }
        "*".clone_into(&mut t.path);
    } else {
        let uri = http::Uri::try_from(raw).map_err(|_| "malformed request head")?;
        match (uri.scheme(), uri.authority()) {
            (None, Some(_)) => return Err("authority-form request target outside CONNECT"),
            (Some(_), Some(authority)) => {
                authority_host = Some(host::strip_root_dot(authority.host()).to_owned());
                t.host = host::forwarded(authority).map(|v| v.as_bytes().to_vec());
                let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
                t.origin = Some(pq.as_bytes().to_vec());
            }
            _ => return Err("malformed request head"),
        }
        uri.path().clone_into(&mut t.path);
    }
    match (head.host_count, head.host) {
        (2.., _) => return Err("more than one Host header"),
        (1, Some(h)) if !host::is_valid_host(h.of(src)) => return Err("invalid Host header"),
        (0, _) if head.version == Version::Http11 => return Err("HTTP/1.1 request without Host"),
        _ => {}
    }
    t.route_host = authority_host.or_else(|| {
        let h = std::str::from_utf8(head.host?.of(src)).ok()?;
        Some(host::strip_root_dot(host::strip_port(h)).to_owned())
    });
    Ok(t)
}

/// Waits for the first body bytes (after `100 Continue` if the client asked for it);
/// the refusal when the connection ends or the body is late instead.
pub(super) async fn first_bytes<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    version: Version,
    expect: bool,
    idle: std::time::Duration,
) -> Result<(), Refusal<'static>> {
    if expect && version == Version::Http11 && body::write(stream, CONTINUE, idle).await.is_err() {
        return Err(Refusal::Gone);
    }
    match super::within(idle, buf.read_from(stream)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(_) => {
            tracing::debug!(peer = %ctx.peer, "client closed before its request body");
            Err(Refusal::Gone)
        }
        Err(_) => Err(Refusal::Close {
            status: 408,
            reason: "request body did not arrive in time",
        }),
    }
}
