//! Heads weir writes: the request to the backend and the response to the client, each
//! straight into one output buffer from the spans of the head it received.
//!
//! Hop-by-hop headers and those a `Connection` header names go (RFC 9110 §7.6.1);
//! `Upgrade` survives on upgrade requests and their 101. The backend gets the client's
//! `Host` (or the authority of an absolute-form target, without userinfo),
//! `X-Forwarded-For` with the client's address appended to any it sent (one field),
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and the request's `X-Request-Id`; the body's
//! framing is weir's own (`Content-Length` as read, or chunked). The client gets the
//! backend's status line and end-to-end headers, the request id, and the framing and
//! `Connection` weir decided.
//!
//! A route's actions cost nothing when it has none: the target's prefix rewrite is
//! written in place of the target (no copy of it first), and header edits skip the
//! fields they remove or replace, by a comparison of names only for routes with edits,
//! then write their own lines after the kept ones.

use weir_balance::{HeaderEdits, Rewrite};
use weir_h1::{Framing, Header, HeaderKind, RequestHead, ResponseHead, Version};

/// What the request head needs beyond the client's head.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    /// Origin-form target to send (`None`: the client's, as sent).
    pub(crate) target: Option<&'a [u8]>,
    /// `Host` to send instead of the client's (absolute-form targets).
    pub(crate) host: Option<&'a [u8]>,
    pub(crate) request_id: &'a [u8],
    pub(crate) client_ip: &'a [u8],
    pub(crate) is_tls: bool,
    /// An upgrade request: `Upgrade` and `Connection: upgrade` are kept.
    pub(crate) upgrade: bool,
    /// The route's path prefix rewrite.
    pub(crate) rewrite: Option<&'a Rewrite>,
    /// The route's request header edits.
    pub(crate) edits: Option<&'a HeaderEdits>,
}

/// Writes the upstream request head for `head` (parsed from `src`) into `out`.
pub(crate) fn request(head: &RequestHead, src: &[u8], fwd: &Forwarding<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method_span.of(src));
    out.push(b' ');
    let target = fwd.target.unwrap_or_else(|| head.target.of(src));
    match fwd.rewrite {
        None => out.extend_from_slice(target),
        Some(rw) => rw.write(target, out),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for = false;
    let mut host_value: Option<&[u8]> = fwd.host;
    let mut runs = Runs::new(src, &head.headers, head.len);
    for (i, h) in head.headers.iter().enumerate() {
        match h.kind {
            // Edits never name the other kinds (validation refuses them).
            HeaderKind::Other if fwd.edits.is_some_and(|e| e.drops(h.name.of(src))) => {}
            HeaderKind::Other => runs.keep(i, out),
            HeaderKind::Host if fwd.host.is_none() => {
                host_value = Some(h.value.of(src));
                runs.keep(i, out);
            }
            HeaderKind::XForwardedFor => forwarded_for = true,
            _ => {}
        }
    }
    runs.flush(out);
    if let Some(e) = fwd.edits {
        edited(out, e);
    }
    // One field: every earlier hop, then this client.
    out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for {
        for h in head
            .headers
            .iter()
            .filter(|h| h.kind == HeaderKind::XForwardedFor)
        {
            out.extend_from_slice(h.value.of(src));
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    if let Some(host) = fwd.host {
        field(out, b"host", host);
    }
    if head.te_trailers {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    if let (true, Some(up)) = (fwd.upgrade, head.upgrade) {
        field(out, b"upgrade", up.of(src));
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    field(out, b"x-request-id", fwd.request_id);
    if let Some(host) = host_value {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(if fwd.is_tls {
        b"x-forwarded-proto: https\r\n"
    } else {
        b"x-forwarded-proto: http\r\n"
    });
    framing(out, head.framing);
    out.extend_from_slice(b"\r\n");
}

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// No body, or `Content-Length` (copied from the backend).
    AsIs,
    /// Chunked (the backend's chunked body, or one it ends by closing).
    Chunked,
    /// Until weir closes the connection (HTTP/1.0 clients without a length).
    Close,
}

/// What weir adds to or edits in a response head besides its framing: the route's
/// header edits and the pool's sticky cookie.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stamps<'a> {
    /// The route's response header edits.
    pub(crate) edits: Option<&'a HeaderEdits>,
    /// The `Set-Cookie` value naming the backend that answered (sticky pools).
    pub(crate) set_cookie: Option<&'a [u8]>,
}

/// Writes the client's response head for `head` (parsed from `src`) into `out`.
/// `keep_alive`: `None` closes (`Connection: close`), `Some(true)` says `keep-alive`
/// (HTTP/1.0 clients), `Some(false)` says nothing (HTTP/1.1's default).
#[allow(clippy::too_many_arguments)]
pub(crate) fn response(
    head: &ResponseHead,
    src: &[u8],
    version: Version,
    body: Out,
    request_id: &[u8],
    keep_alive: Option<bool>,
    stamps: Stamps<'_>,
    out: &mut Vec<u8>,
) {
    let edits = stamps.edits;
    out.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    status_code(out, head.status);
    out.push(b' ');
    out.extend_from_slice(head.reason.of(src));
    out.extend_from_slice(b"\r\n");
    let switching = head.status == 101;
    // A 204 has no content, so no length either (RFC 9110 §8.6); a 304's is the length
    // the full response would have, and stays.
    let length_kept = body == Out::AsIs && head.status != 204 && !switching;
    let mut runs = Runs::new(src, &head.headers, head.len);
    for (i, h) in head.headers.iter().enumerate() {
        match h.kind {
            HeaderKind::ContentLength if length_kept => runs.keep(i, out),
            HeaderKind::Other
            | HeaderKind::Host
            | HeaderKind::Expect
            | HeaderKind::XForwardedFor
            | HeaderKind::XForwardedProto
            | HeaderKind::XForwardedHost
                if edits.is_some_and(|e| e.drops(h.name.of(src))) => {}
            HeaderKind::Other
            | HeaderKind::Host
            | HeaderKind::Expect
            | HeaderKind::XForwardedFor
            | HeaderKind::XForwardedProto
            | HeaderKind::XForwardedHost => runs.keep(i, out),
            _ => {}
        }
    }
    runs.flush(out);
    if let Some(e) = edits {
        edited(out, e);
    }
    if let Some(cookie) = stamps.set_cookie {
        field(out, b"set-cookie", cookie);
    }
    if let (true, Some(up)) = (switching, head.upgrade) {
        field(out, b"upgrade", up.of(src));
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    if body == Out::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    field(out, b"x-request-id", request_id);
    if !switching {
        match keep_alive {
            None => out.extend_from_slice(b"connection: close\r\n"),
            Some(true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
            Some(false) => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Header lines passed on as they were received: consecutive ones in one copy (a head
/// is mostly such lines), instead of four appends per field. A line that does not end
/// in CRLF (httparse also takes a bare LF) is written again as `name: value` CRLF.
struct Runs<'s> {
    src: &'s [u8],
    headers: &'s [Header],
    head_len: usize,
    run: (usize, usize),
}

impl<'s> Runs<'s> {
    fn new(src: &'s [u8], headers: &'s [Header], head_len: usize) -> Self {
        Runs {
            src,
            headers,
            head_len,
            run: (0, 0),
        }
    }

    /// Passes header `i` on.
    fn keep(&mut self, i: usize, out: &mut Vec<u8>) {
        let Some(h) = self.headers.get(i) else {
            return;
        };
        let start = h.name.start as usize;
        let end = self
            .headers
            .get(i + 1)
            .map_or(self.head_len.saturating_sub(2), |n| n.name.start as usize);
        let whole = self
            .src
            .get(start..end)
            .is_some_and(|line| line.len() > 2 && line.ends_with(b"\r\n"));
        if !whole {
            self.flush(out);
            field(out, h.name.of(self.src), h.value.of(self.src));
            return;
        }
        if self.run.1 == start && self.run.1 > self.run.0 {
            self.run.1 = end;
        } else {
            self.flush(out);
            self.run = (start, end);
        }
    }

    /// Writes the pending run.
    fn flush(&mut self, out: &mut Vec<u8>) {
        if self.run.1 > self.run.0 {
            out.extend_from_slice(self.src.get(self.run.0..self.run.1).unwrap_or_default());
        }
        self.run = (0, 0);
    }
}

/// The fields a route's edits set or add, after the kept ones.
fn edited(out: &mut Vec<u8>, edits: &HeaderEdits) {
    for (name, value) in edits.lines() {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// The request body's framing header.
fn framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
}

#[inline]
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn status_code(out: &mut Vec<u8>, code: u16) {
    let code = code.clamp(100, 999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]);
}

/// Appends `n` in decimal.
pub(crate) fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}
