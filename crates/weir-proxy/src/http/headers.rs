//! Header rewriting between clients and backends (RFC 9110 §7.6.1), and framing checks.
//!
//! A proxy owns hop-by-hop headers: they describe one connection, so they are removed in
//! both directions, along with every header a `Connection` header names. `Upgrade` and
//! `Connection: upgrade` survive only on upgrade requests and their 101, which is what
//! lets WebSockets through. Upstream requests carry `X-Forwarded-For/-Proto/-Host` and
//! the request's `X-Request-Id`, keep the client's `Host` (see [`super::host`]), and use
//! origin-form URIs over HTTP/1.1.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{request, Version};

use super::host;
use super::request_id::X_REQUEST_ID;

const TE_TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the legacy ones proxies still see.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");
const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// Refuses HTTP/1 framing that hyper lets through but that could be read two ways.
///
/// hyper already answers 400 itself to differing or non-numeric `Content-Length`s and to
/// a `Transfer-Encoding` whose last coding is not `chunked`. It accepts `gzip, chunked`
/// and `Transfer-Encoding` + `Content-Length` (see [`super::smuggling`]); weir accepts only
/// a single `chunked` coding, because it would otherwise have to forward a coding the
/// backend might frame differently.
pub(crate) fn check_framing(headers: &HeaderMap) -> Result<(), &'static str> {
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let single = te.next().is_none();
        if !single
            || !first
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err("unsupported Transfer-Encoding (only \"chunked\" is accepted)");
        }
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err("request has both Transfer-Encoding and Content-Length");
        }
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let ok = |v: &HeaderValue| !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit);
        if !ok(first) || lengths.any(|v| v != first) {
            return Err("invalid or conflicting Content-Length");
        }
    }
    Ok(())
}

/// Whether `Connection` lists `token` (case-insensitive, comma-separated lists).
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// An HTTP/1.1 upgrade request (WebSocket and friends).
pub(crate) fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(header::UPGRADE)
        && connection_has(headers, "upgrade")
}

/// Removes hop-by-hop headers and those the `Connection` header names (never `Host`).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Custom names are rare; the Vec only allocates when there is one.
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        {
            let token = token.trim_ascii();
            if token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
                || token.eq_ignore_ascii_case(b"upgrade")
            {
                continue;
            }
            match HeaderName::from_bytes(token) {
                Ok(name) if name != header::HOST => named.push(name),
                Ok(_) => {}
                Err(e) => tracing::trace!(error = %e, "ignoring invalid Connection token"),
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Rewrites a client request head into the one sent to the backend.
///
/// `client_ip` is the peer address, ready-made once per connection; `is_tls` (the client
/// came over TLS) makes `X-Forwarded-Proto` `https`; `request_id` replaces any
/// `X-Request-Id` the client sent (it is that one when it was valid).
pub(crate) fn prepare_request(
    parts: &mut request::Parts,
    client_ip: &HeaderValue,
    request_id: &HeaderValue,
    upgrade: bool,
    is_tls: bool,
) {
    let headers = &mut parts.headers;
    strip_hop_by_hop_keeping(headers, upgrade);
    // The client already got its `100 Continue` when weir read the body.
    headers.remove(header::EXPECT);

    // Host: an absolute-form target or HTTP/2 `:authority` wins over any Host header,
    // without its userinfo.
    if let Some(authority) = parts.uri.authority() {
        match host::forwarded(authority).map(HeaderValue::from_str) {
            Some(Ok(v)) => {
                headers.insert(header::HOST, v);
            }
            _ => tracing::debug!("authority is not a valid Host value"),
        }
    }
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), if is_tls { HTTPS } else { HTTP });
    append_forwarded_for(headers, client_ip);

    if parts.version == Version::HTTP_2 {
        join_cookies(headers);
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(pq);
    }
    parts.version = Version::HTTP_11;
}

/// What weir adds to a request head for its backend: the peer's address (ready-made once
/// per connection), the request id, and whether the client came over TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding<'a> {
    pub(crate) client_ip: &'a HeaderValue,
    pub(crate) request_id: &'a HeaderValue,
    pub(crate) is_tls: bool,
}

/// Whether [`write_prepared`] can write `parts`' head for the backend straight from the
/// client's map: an HTTP/2 request, which carries no `Connection` (h2 refuses it and the
/// other connection-specific fields, RFC 9113 §8.2.2) and so names no header to drop.
pub(crate) fn writes_directly(parts: &request::Parts) -> bool {
    parts.version == Version::HTTP_2 && !parts.headers.contains_key(header::CONNECTION)
}

/// Writes the header lines [`prepare_request`] would leave in `parts` (every one but
/// `Content-Length`, which the caller frames), without rebuilding the map: removing nine
/// hop-by-hop names and inserting four fields cost an HTTP/2 request more than its whole
/// HTTP/1 head. Only for requests [`writes_directly`] accepts.
pub(crate) fn write_prepared(parts: &request::Parts, fwd: Forwarding<'_>, out: &mut Vec<u8>) {
    let headers = &parts.headers;
    let authority_host = parts.uri.authority().and_then(|a| {
        let v = host::forwarded(a);
        if v.is_none() {
            tracing::debug!("authority is not a valid Host value");
        }
        v
    });
    let mut te_trailers = false;
    let mut cookies = 0usize;
    let mut forwarded_for = 0usize;
    for (name, value) in headers {
        if name == header::TE {
            te_trailers |= value.as_bytes().eq_ignore_ascii_case(b"trailers");
            continue;
        }
        if name == header::COOKIE {
            cookies += 1;
            continue;
        }
        if name == X_FORWARDED_FOR {
            forwarded_for += 1;
            continue;
        }
        if name == header::CONTENT_LENGTH
            || name == header::EXPECT
            || name == X_REQUEST_ID
            || name == X_FORWARDED_HOST
            || name == X_FORWARDED_PROTO
            || (name == header::HOST && authority_host.is_some())
            || HOP_BY_HOP.iter().any(|h| h == name)
        {
            continue;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if te_trailers {
        line(out, b"te", b"trailers");
    }
    if let Some(host) = &authority_host {
        line(out, b"host", host.as_bytes());
    }
    if cookies > 0 {
        // One `Cookie` line, as HTTP/1.1 wants (RFC 9113 §8.2.3 splits it for h2).
        joined(out, b"cookie", headers.get_all(header::COOKIE), b"; ", None);
    }
    line(
        out,
        X_REQUEST_ID.as_str().as_bytes(),
        fwd.request_id.as_bytes(),
    );
    if let Some(host) = authority_host
        .map(str::as_bytes)
        .or_else(|| headers.get(header::HOST).map(HeaderValue::as_bytes))
    {
        line(out, X_FORWARDED_HOST.as_str().as_bytes(), host);
    }
    let proto = if fwd.is_tls { HTTPS } else { HTTP };
    line(out, X_FORWARDED_PROTO.as_str().as_bytes(), proto.as_bytes());
    let ip = fwd.client_ip.as_bytes();
    if forwarded_for == 0 {
        line(out, X_FORWARDED_FOR.as_str().as_bytes(), ip);
    } else {
        let name = X_FORWARDED_FOR.as_str().as_bytes();
        joined(
            out,
            name,
            headers.get_all(&X_FORWARDED_FOR),
            b", ",
            Some(ip),
        );
    }
}

/// `name: value\r\n`.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One line for every value of a field, joined by `sep`, with `last` after them.
fn joined(
    out: &mut Vec<u8>,
    name: &[u8],
    values: header::GetAll<'_, HeaderValue>,
    sep: &[u8],
    last: Option<&[u8]>,
) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for (i, v) in values
        .iter()
        .map(HeaderValue::as_bytes)
        .chain(last)
        .enumerate()
    {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(v);
    }
    out.extend_from_slice(b"\r\n");
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let mut existing = headers.get_all(&X_FORWARDED_FOR).iter();
    let Some(first) = existing.next() else {
        headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
        return;
    };
    let mut joined = Vec::with_capacity(first.len() + client_ip.len() + 16);
    joined.extend_from_slice(first.as_bytes());
    for v in existing {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(client_ip.as_bytes());
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        Err(e) => {
            tracing::debug!(error = %e, "invalid X-Forwarded-For replaced");
            headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
        }
    }
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 needs one (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        headers.insert(header::COOKIE, v);
    }
}

/// Refuses a backend response whose body weir cannot pass on faithfully: one with a
/// `Transfer-Encoding` other than a single `chunked`. weir never forwards a `TE` other
/// than `trailers`, so a backend may not apply any other transfer coding (RFC 9110
/// §10.1.4); hyper would read such a body to the connection's end and hand over the coded
/// bytes, and the client would take them for the content. (Differing or invalid
/// `Content-Length`s hyper refuses itself: the attempt fails and its connection closes.)
pub(crate) fn check_response_framing(headers: &HeaderMap) -> Result<(), &'static str> {
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    match (te.next(), te.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err("Transfer-Encoding other than a single chunked"),
    }
}

/// Rewrites a backend response head for the client; a 101 keeps its upgrade headers.
///
/// A chunked response that also carries `Content-Length` is forwarded as chunked, its
/// `Content-Length` removed, as RFC 9112 §6.3 asks of an intermediary that forwards it
/// (and HAProxy does): hyper read it as chunked, and the backend's length would make
/// weir's side cut the body short on a connection that stays open.
pub(crate) fn prepare_response(headers: &mut HeaderMap, switching: bool) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop_keeping(headers, switching);
}

/// [`strip_hop_by_hop`], keeping what an intermediary may still forward: `TE: trailers`,
/// and with `upgrade` the `Upgrade` header and a `Connection: upgrade` naming it.
fn strip_hop_by_hop_keeping(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    // `TE: trailers` is the one TE value a proxy may forward (RFC 9110 §10.1.4), and gRPC
    // servers insist on it; every other TE value is hop-by-hop and goes.
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    strip_hop_by_hop(headers);
    if te_trailers {
        headers.insert(header::TE, TE_TRAILERS);
    }
    if let Some(value) = upgrade_value {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, UPGRADE_TOKEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: HeaderValue = HeaderValue::from_static("req-1");

    fn parts(req: http::Request<()>) -> request::Parts {
        req.into_parts().0
    }

    /// The lines of `p` once prepared, but `Content-Length`, sorted: what both ways of
    /// writing a backend's head must agree on.
    fn prepared_lines(mut p: request::Parts, ip: &HeaderValue, tls: bool) -> Vec<String> {
        prepare_request(&mut p, ip, &ID, false, tls);
        let mut lines: Vec<String> = p
            .headers
            .iter()
            .filter(|(n, _)| *n != header::CONTENT_LENGTH)
            .map(|(n, v)| format!("{}: {}", n, String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.sort();
        lines
    }

    fn direct_lines(p: &request::Parts, ip: &HeaderValue, tls: bool) -> Vec<String> {
        let fwd = Forwarding {
            client_ip: ip,
            request_id: &ID,
            is_tls: tls,
        };
        let mut out = Vec::new();
        write_prepared(p, fwd, &mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
        let mut lines: Vec<String> = text.split_terminator("\r\n").map(str::to_owned).collect();
        lines.sort();
        lines
    }

    #[test]
    fn http2_heads_written_directly_match_the_prepared_map() {
        let h2 = |uri: &str| {
            let mut b = http::Request::post(uri);
            b = b.version(Version::HTTP_2);
            b
        };
        let cases = [
            ("plain", h2("http://api.test/x?y=1").header("accept", "*/*")),
            (
                "userinfo, client x-forwarded-*, id, expect, te: trailers",
                h2("https://user:pw@api.test:8443/p")
                    .header("host", "other.test")
                    .header("x-forwarded-host", "evil.test")
                    .header("x-forwarded-proto", "https")
                    .header("x-request-id", "theirs")
                    .header("expect", "100-continue")
                    .header("te", "trailers")
                    .header("content-length", "5"),
            ),
            (
                "two x-forwarded-for, three cookies, hop-by-hop leftovers",
                h2("http://api.test/")
                    .header("x-forwarded-for", "10.0.0.1")
                    .header("x-forwarded-for", "10.0.0.2, 10.0.0.3")
                    .header("cookie", "a=1")
                    .header("cookie", "b=2")
                    .header("cookie", "c=3")
                    .header("trailer", "x-sum")
                    .header("proxy-authorization", "basic x")
                    .header("te", "gzip")
                    .header("x-custom", "1")
                    .header("x-custom", "2"),
            ),
            ("one cookie", h2("http://api.test/").header("cookie", "a=1")),
            (
                "no authority: the Host header is kept",
                h2("/rel").header("host", "h.test:81"),
            ),
        ];
        let ip = HeaderValue::from_static("192.0.2.7");
        for (name, builder) in cases {
            for tls in [false, true] {
                let p = parts(builder_clone(&builder).body(()).unwrap_or_default());
                assert!(writes_directly(&p), "{name}");
                let direct = direct_lines(&p, &ip, tls);
                assert_eq!(direct, prepared_lines(p, &ip, tls), "{name} (tls {tls})");
            }
        }
    }

    /// A fresh builder with the same method, URI, version and headers.
    fn builder_clone(b: &http::request::Builder) -> http::request::Builder {
        let mut out = http::Request::builder();
        if let Some(m) = b.method_ref() {
            out = out.method(m.clone());
        }
        if let Some(u) = b.uri_ref() {
            out = out.uri(u.clone());
        }
        if let Some(v) = b.version_ref() {
            out = out.version(*v);
        }
        if let Some(h) = b.headers_ref() {
            for (n, v) in h {
                out = out.header(n, v);
            }
        }
        out
    }

    #[test]
    fn only_http2_heads_without_connection_are_written_directly() {
        let p = parts(http::Request::get("/").body(()).unwrap_or_default());
        assert!(!writes_directly(&p), "HTTP/1.1");
        let p = parts(
            http::Request::get("http://a.test/")
                .version(Version::HTTP_2)
                .header("connection", "x-secret")
                .body(())
                .unwrap_or_default(),
        );
        assert!(
            !writes_directly(&p),
            "a Connection header names fields to drop"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut p = parts(
            http::Request::get("/x?y=1")
                .header("host", "example.com:8080")
                .header("connection", "keep-alive, x-secret, host")
                .header("keep-alive", "timeout=5")
                .header("x-secret", "1")
                .header("te", "deflate")
                .header("proxy-authorization", "basic")
                .header("x-forwarded-for", "10.0.0.1")
                .header("x-forwarded-for", "10.0.0.2")
                .body(())
                .unwrap_or_default(),
        );
        let ip = HeaderValue::from_static("127.0.0.1");
        prepare_request(&mut p, &ip, &ID, false, false);
        let h = &p.headers;
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "proxy-authorization",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h["host"], "example.com:8080");
        assert_eq!(h["x-forwarded-host"], "example.com:8080");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(h["x-request-id"], "req-1");
        assert_eq!(p.uri, "/x?y=1");
    }

    #[test]
    fn http2_authority_becomes_host_and_origin_form() {
        let mut p = parts(
            http::Request::get("http://api.example.com/v1/a")
                .version(Version::HTTP_2)
                .body(())
                .unwrap_or_default(),
        );
        prepare_request(&mut p, &HeaderValue::from_static("::1"), &ID, false, false);
        assert_eq!(p.headers["host"], "api.example.com");
        assert_eq!(p.uri, "/v1/a");
        assert_eq!(p.version, Version::HTTP_11);
    }

    #[test]
    fn upgrade_headers_survive_only_on_upgrades() {
        let req = || {
            parts(
                http::Request::get("/ws")
                    .header("connection", "Upgrade")
                    .header("upgrade", "websocket")
                    .body(())
                    .unwrap_or_default(),
            )
        };
        let mut p = req();
        assert!(is_upgrade(p.version, &p.headers));
        prepare_request(
            &mut p,
            &HeaderValue::from_static("1.2.3.4"),
            &ID,
            true,
            false,
        );
        assert_eq!(p.headers["upgrade"], "websocket");
        assert_eq!(p.headers["connection"], "upgrade");
        let mut p = req();
        prepare_request(
            &mut p,
            &HeaderValue::from_static("1.2.3.4"),
            &ID,
            false,
            false,
        );
        assert!(!p.headers.contains_key("upgrade"));
    }

    #[test]
    fn framing_checks_refuse_ambiguous_lengths() {
        let mut h = HeaderMap::new();
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip, chunked"),
        );
        assert!(check_framing(&h).is_err());
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("Chunked"),
        );
        assert!(check_framing(&h).is_ok());
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        assert!(check_framing(&h).is_err());
    }

    #[test]
    fn responses_are_forwarded_chunked_or_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(check_response_framing(&h).is_ok());
        prepare_response(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
        for te in ["gzip", "gzip, chunked", "chunked, gzip"] {
            let mut h = HeaderMap::new();
            h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static(te));
            assert!(check_response_framing(&h).is_err(), "{te}");
        }
    }
}
