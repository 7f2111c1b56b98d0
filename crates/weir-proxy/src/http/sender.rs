//! Requests to `upstream_protocol: h2` backends, in the form HTTP/2 needs.
//!
//! An HTTP/2 backend connection is shared by every request to the backend (one
//! multiplexed connection per backend, as gRPC clients hold), so it is cloned out and
//! never queued (HTTP/1 backends are the engine's, [`crate::h1`]). Requests going out
//! over it are rewritten: absolute URI (`:scheme`, `:authority` from `Host`), no
//! connection-specific headers (RFC 9113 §8.2.2), so an `Upgrade` cannot cross an
//! HTTP/2 backend connection.

use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Request, Uri, Version};

use super::body::ReqBody;

/// Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
];

/// Rewrites an HTTP/1.1-shaped upstream request for an HTTP/2 connection. Idempotent,
/// so a request handed back unsent can go through it again.
pub(crate) fn to_h2(req: &mut Request<ReqBody>, tls: bool) {
    if req.version() == Version::HTTP_2 {
        return;
    }
    *req.version_mut() = Version::HTTP_2;
    let headers = req.headers_mut();
    for name in &CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    headers.remove(header::HeaderName::from_static("proxy-connection"));
    if headers
        .get(header::TE)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    let authority = headers
        .remove(header::HOST)
        .and_then(|h: HeaderValue| Authority::try_from(h.as_bytes()).ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
    parts.authority = authority.or_else(|| Some(Authority::from_static("localhost")));
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => tracing::debug!(error = %e, "cannot build the HTTP/2 request URI"),
    }
}
