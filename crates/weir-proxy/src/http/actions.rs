//! Route actions on hyper's request path (HTTP/2 clients), and the pieces the HTTP/1
//! engine's bridge to HTTP/2 pools shares: the request's facts for the match
//! conditions, the redirect answered by weir, the path prefix rewrite of the URI.
//!
//! The header edits are [`weir_balance::HeaderEdits::apply`] on the request's and the
//! response's `HeaderMap`; the pre-parsed names and values are cloned into the map
//! (a reference count, or a copy of a short name), so a route without edits pays
//! nothing and one with edits pays no parsing.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Response, StatusCode};
use weir_balance::{Redirect, RedirectFrom, RequestFacts, Rewrite};

use super::body::ResBody;
use super::host;
use crate::io::RequestGuard;

/// A request of hyper's, as the route conditions read it.
pub(crate) struct PartsFacts<'a>(pub(crate) &'a Parts);

impl RequestFacts for PartsFacts<'_> {
    #[inline]
    fn method(&self) -> &[u8] {
        self.0.method.as_str().as_bytes()
    }

    fn has_header(&self, name: &HeaderName, value: &[u8]) -> bool {
        self.0
            .headers
            .get_all(name)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() == value)
    }

    fn query(&self) -> Option<&[u8]> {
        self.0.uri.query().map(str::as_bytes)
    }
}

/// weir's answer for a redirect route: the code, `Location`, and an empty body.
pub(crate) fn redirect(
    r: &Redirect,
    parts: &Parts,
    is_tls: bool,
    guard: RequestGuard,
) -> Response<ResBody> {
    let host = match parts.uri.authority() {
        Some(a) => host::forwarded(a).map(str::as_bytes),
        None => parts.headers.get(header::HOST).map(HeaderValue::as_bytes),
    };
    let from = RedirectFrom {
        tls: is_tls,
        host,
        path: parts.uri.path().as_bytes(),
        query: parts.uri.query().map(str::as_bytes),
    };
    let mut location = Vec::with_capacity(128);
    r.location(&from, &mut location);
    let mut res = Response::new(ResBody::text(Bytes::new(), Some(guard)));
    *res.status_mut() = StatusCode::from_u16(r.code()).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    match HeaderValue::from_maybe_shared(Bytes::from(location)) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        // The request's host and path passed hyper's checks; the configured parts are
        // validated. Nothing else goes in.
        Err(e) => tracing::debug!(error = %e, "redirect location is not a header value"),
    }
    res
}

/// Replaces the route's matched prefix in `uri`'s path (the query kept).
pub(crate) fn rewrite(rw: &Rewrite, uri: &mut Uri) {
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let mut out = Vec::with_capacity(pq.len() + 16);
    rw.write(pq.as_bytes(), &mut out);
    let mut parts = std::mem::take(uri).into_parts();
    match PathAndQuery::from_maybe_shared(Bytes::from(out)) {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(e) => tracing::debug!(error = %e, "rewritten path refused; sent as it was"),
    }
    match Uri::from_parts(parts) {
        Ok(u) => *uri = u,
        Err(e) => tracing::debug!(error = %e, "rewritten URI refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_scheme_authority_and_query() {
        let mut uri: Uri = "https://a.test/api/users?id=1".parse().expect("uri");
        rewrite(&Rewrite::new("/api/".len(), "/v2/"), &mut uri);
        assert_eq!(uri.to_string(), "https://a.test/v2/users?id=1");
        let mut uri: Uri = "/api/x".parse().expect("uri");
        rewrite(&Rewrite::new("/api".len(), "/"), &mut uri);
        assert_eq!(uri.to_string(), "/x");
    }

    #[test]
    fn facts_read_method_headers_and_query() {
        let (parts, ()) = http::Request::builder()
            .method("PUT")
            .uri("/x?a=1&b=two")
            .header("X-Env", "canary")
            .body(())
            .expect("request")
            .into_parts();
        let f = PartsFacts(&parts);
        assert_eq!(f.method(), b"PUT");
        assert!(f.has_header(&HeaderName::from_static("x-env"), b"canary"));
        assert!(!f.has_header(&HeaderName::from_static("x-env"), b"prod"));
        assert_eq!(f.query(), Some(&b"a=1&b=two"[..]));
    }
}
