//! Route actions on weir's HTTP/1 engine that are not part of writing the head: the
//! request's facts for the match conditions (methods, headers, query), read from the
//! spans of the parsed head in place, and the redirect weir answers itself.
//!
//! The rewrite and the header edits are written with the heads ([`super::write`]).

use weir_balance::{Redirect, RedirectFrom, RequestFacts};
use weir_h1::{RequestHead, Version};

use super::admit::Target;
use super::answer::{skippable, Answer, RequestId};
use super::body;
use super::buf::Buf;
use super::request::{Next, Scratch};
use super::server::{ClientStream, Ctx};
use super::write;

/// A parsed head and the bytes it was parsed from, as the route conditions read it.
pub(super) struct HeadFacts<'a> {
    head: &'a RequestHead,
    src: &'a [u8],
}

impl<'a> HeadFacts<'a> {
    pub(super) fn new(head: &'a RequestHead, src: &'a [u8]) -> Self {
        HeadFacts { head, src }
    }
}

impl RequestFacts for HeadFacts<'_> {
    #[inline]
    fn method(&self) -> &[u8] {
        self.head.method_span.of(self.src)
    }

    fn has_header(&self, name: &http::HeaderName, value: &[u8]) -> bool {
        let name = name.as_str().as_bytes();
        self.head.headers.iter().any(|h| {
            h.name.of(self.src).eq_ignore_ascii_case(name) && h.value.of(self.src) == value
        })
    }

    fn query(&self) -> Option<&[u8]> {
        split_query(self.head.target.of(self.src)).1
    }
}

/// A target's path and its query (after `?`, before any `#`).
fn split_query(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let target = target
        .iter()
        .position(|&b| b == b'#')
        .map_or(target, |i| &target[..i]);
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    }
}

/// Answers a redirect route: the code, `Location` (the request's query kept) and an
/// empty body. A body the request brought is skipped when it is all here, as for weir's
/// other early answers; else the connection closes after the answer.
#[allow(clippy::too_many_arguments)]
pub(super) async fn redirect<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    r: &Redirect,
    owned: Option<&Target>,
    answer: &mut Answer<'_>,
    keep: bool,
) -> Next {
    let skip = skippable(&sc.req, buf.len());
    let close = skip.is_none() || !keep || ctx.scope.says_close();
    let src = buf.filled();
    let head = &sc.req;
    // An absolute-form target's origin-form part and authority, else the head's own.
    let target = owned
        .and_then(|t| t.origin.as_deref())
        .unwrap_or_else(|| head.target.of(src));
    let (path, query) = split_query(target);
    let host = owned
        .and_then(|t| t.host.as_deref())
        .or_else(|| head.host.map(|h| h.of(src)));
    let from = RedirectFrom {
        tls: ctx.is_tls,
        host,
        path,
        query,
    };
    let code = r.code();
    let out = &mut sc.out;
    out.clear();
    out.extend_from_slice(match head.version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    write::decimal(out, u64::from(code));
    out.push(b' ');
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Redirect");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nlocation: ");
    r.location(&from, out);
    out.extend_from_slice(b"\r\ncontent-length: 0\r\nx-request-id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(match (close, head.version) {
        (true, _) => b"\r\nconnection: close\r\n\r\n".as_slice(),
        (false, Version::Http10) => b"\r\nconnection: keep-alive\r\n\r\n",
        (false, Version::Http11) => b"\r\n\r\n",
    });
    if let Some(n) = skip {
        buf.consume(n);
    }
    answer.head_sent(code);
    let idle = ctx.limits.timeouts.idle;
    if body::write(stream, &sc.out, idle).await.is_err() || close {
        return Next::Close;
    }
    Next::KeepAlive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_what_follows_the_question_mark() {
        assert_eq!(split_query(b"/a?b=1"), (&b"/a"[..], Some(&b"b=1"[..])));
        assert_eq!(split_query(b"/a"), (&b"/a"[..], None));
        assert_eq!(split_query(b"/a?"), (&b"/a"[..], Some(&b""[..])));
        assert_eq!(split_query(b"/a?x#f"), (&b"/a"[..], Some(&b"x"[..])));
    }
}
