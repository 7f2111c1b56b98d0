//! The sending half of a backend connection: HTTP/1.1, or HTTP/2 for pools with
//! `upstream_protocol: h2`.
//!
//! An HTTP/1.1 connection carries one request at a time and goes back to the backend's
//! idle queue after its response; an HTTP/2 connection is shared by every request to
//! the backend (one multiplexed connection per backend, as gRPC clients hold), so it is
//! cloned out and never queued. Requests going out over HTTP/2 are rewritten into the
//! form HTTP/2 needs: absolute URI (`:scheme`, `:authority` from `Host`), no
//! connection-specific headers (RFC 9113 §8.2.2), so an `Upgrade` cannot cross an
//! HTTP/2 backend connection.

use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};

use super::body::ReqBody;

/// One backend connection's sending half.
#[derive(Debug)]
pub(crate) enum Sender {
    /// A keep-alive HTTP/1.1 connection, used by one request at a time.
    H1(http1::SendRequest<ReqBody>),
    /// A clone of the backend's shared HTTP/2 connection.
    H2(http2::SendRequest<ReqBody>),
}

impl Sender {
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    pub(crate) fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    /// Sends `req`; a request the connection could not take is handed back unsent.
    pub(crate) async fn try_send_request(
        &mut self,
        req: Request<ReqBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ReqBody>>> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => {
                let mut response = s.try_send_request(req).await?;
                // The client's own connection decides the version it is answered in.
                *response.version_mut() = Version::HTTP_11;
                Ok(response)
            }
        }
    }
}

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
