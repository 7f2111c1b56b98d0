//! Between weir-h2's fields and the `http` types the request path works on.
//!
//! A request's fields are copied once, as one buffer, and every value (and the URI's
//! parts) is a slice of it, as h2 does: no copy per field. weir-h2 has already refused
//! what RFC 9113 calls malformed; what is left here are the `http` crate's own checks
//! (a control character in a value, say), which reset the stream as h2 would.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri, Version};
use weir_h2::hpack::{Block, Field};
use weir_h2::request::RequestHead;

use super::body::RequestBody;

/// The request the handler gets, or `None` when `http` refuses a part of it.
pub(super) fn request(
    block: &Block,
    head: &RequestHead,
    body: RequestBody,
) -> Option<Request<RequestBody>> {
    let bytes = Bytes::copy_from_slice(block.bytes());
    let value = |f: &Field| bytes.slice(f.value.start as usize..f.value.end as usize);
    let method = Method::from_bytes(block.value(&head.method)).ok()?;
    let mut parts = uri::Parts::default();
    if let Some(a) = &head.authority {
        parts.authority = Some(Authority::from_maybe_shared(value(a)).ok()?);
    }
    if let Some(p) = &head.path {
        parts.path_and_query = Some(PathAndQuery::from_maybe_shared(value(p)).ok()?);
    }
    // Without `:authority` (allowed: `Host` then names the host) the URI is the path
    // alone, as an HTTP/1 request's origin form.
    if let (Some(s), true) = (&head.scheme, parts.authority.is_some()) {
        parts.scheme = Some(Scheme::try_from(block.value(s)).ok()?);
    }
    let uri = Uri::from_parts(parts).ok()?;
    let regular = head.regular(block);
    // `try_`: past 24,576 fields `http` panics, and a 1 MiB `max_header_list_size`
    // takes more (h2 0.4.20 fixed the same panic the same way).
    let mut headers = HeaderMap::try_with_capacity(regular.len()).ok()?;
    fill(block, regular, &bytes, &mut headers)?;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers;
    Some(req)
}

/// The request's trailers, or `None` when `http` refuses one.
pub(super) fn trailers(block: &Block) -> Option<HeaderMap> {
    let bytes = Bytes::copy_from_slice(block.bytes());
    let mut map = HeaderMap::try_with_capacity(block.fields().len()).ok()?;
    fill(block, block.fields(), &bytes, &mut map)?;
    Some(map)
}

fn fill(block: &Block, fields: &[Field], bytes: &Bytes, map: &mut HeaderMap) -> Option<()> {
    for f in fields {
        let name = HeaderName::from_bytes(block.name(f)).ok()?;
        let slice = bytes.slice(f.value.start as usize..f.value.end as usize);
        let mut value = HeaderValue::from_maybe_shared(slice).ok()?;
        // Kept for re-encoding: what the client would not let a table hold.
        value.set_sensitive(f.never_indexed);
        map.try_append(name, value).ok()?;
    }
    Some(())
}

/// Whether a response field is connection-specific, which HTTP/2 forbids (RFC 9113
/// §8.2.2): dropped, as hyper's server dropped them (weir's response phase has already
/// removed the backend's hop-by-hop fields; this guards the rest).
pub(super) fn connection_specific(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == TE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_h2::hpack::{Decoder, Encoder};

    fn block(fields: &[(&str, &str)]) -> Block {
        let mut enc = Encoder::new();
        let mut src = Vec::new();
        enc.begin(&mut src);
        for (n, v) in fields {
            enc.field(n.as_bytes(), v.as_bytes(), false, &mut src);
        }
        let mut b = Block::new();
        Decoder::new(4096)
            .decode(&src, 1 << 20, &mut b)
            .expect("decodes");
        b
    }

    #[test]
    fn a_request_keeps_its_uri_fields_and_sensitivity() {
        let b = block(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "example.com:8443"),
            (":path", "/a?b=c"),
            ("cookie", "x=1"),
            ("x-custom", "v"),
        ]);
        let head = weir_h2::request::request(&b).expect("well formed");
        let req = request(&b, &head, RequestBody::empty()).expect("converts");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "https://example.com:8443/a?b=c");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()["cookie"], "x=1");
        assert_eq!(req.headers()["x-custom"], "v");
    }

    #[test]
    fn without_authority_the_uri_is_the_path_and_host_names_the_host() {
        let b = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/p"),
            ("host", "h.example"),
        ]);
        let head = weir_h2::request::request(&b).expect("well formed");
        let req = request(&b, &head, RequestBody::empty()).expect("converts");
        assert_eq!(req.uri(), "/p");
        assert_eq!(req.headers()["host"], "h.example");
    }

    #[test]
    fn more_fields_than_a_header_map_holds_refuse_the_request_without_a_panic() {
        let mut fields = vec![(":method", "GET"), (":scheme", "http"), (":path", "/")];
        fields.extend(std::iter::repeat_n(("x-a", "b"), 25_000));
        let b = block(&fields);
        let head = weir_h2::request::request(&b).expect("well formed");
        assert!(request(&b, &head, RequestBody::empty()).is_none());
        assert!(trailers(&b).is_none());
    }

    #[test]
    fn a_value_http_refuses_refuses_the_request() {
        let b = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("x-bad", "a\u{1}b"),
        ]);
        // weir-h2 refuses only what breaks framing (NUL, CR, LF); `http` the rest.
        let head = weir_h2::request::request(&b).expect("weir-h2 takes it");
        assert!(request(&b, &head, RequestBody::empty()).is_none());
    }
}
