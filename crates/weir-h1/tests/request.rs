//! Request heads: spans, kinds, Connection tokens, and every framing refusal, smuggling
//! classics included.

use weir_h1::{Framing, HeaderKind, Method, Parsed, Refusal, RequestHead, Version, MAX_HEAD_BYTES};

fn parse(raw: &[u8]) -> (Result<Parsed, Refusal>, RequestHead) {
    let mut head = RequestHead::default();
    let verdict = head.parse(raw);
    (verdict, head)
}

fn refused(raw: &[u8]) -> Refusal {
    match parse(raw).0 {
        Err(r) => r,
        Ok(p) => panic!("accepted ({p:?}): {}", String::from_utf8_lossy(raw)),
    }
}

fn reason(raw: &[u8]) -> (u16, &'static str) {
    let r = refused(raw);
    (r.status, r.reason)
}

/// A `POST` with the one header `name: value` is refused as `want`, for each of `values`.
#[track_caller]
fn assert_values_refused(name: &str, values: &[&str], want: (u16, &str)) {
    for value in values {
        let raw = format!("POST / HTTP/1.1\r\n{name}: {value}\r\n\r\n");
        assert_eq!(reason(raw.as_bytes()), want, "{value:?}");
    }
}

const MALFORMED: (u16, &str) = (400, "malformed request head");
const TOO_LARGE: (u16, &str) = (431, "request head too large");
const BOTH: (u16, &str) = (400, "request has both Transfer-Encoding and Content-Length");
const BAD_TE: (u16, &str) = (
    400,
    "unsupported Transfer-Encoding (only \"chunked\" is accepted)",
);
const BAD_CL: (u16, &str) = (400, "invalid or conflicting Content-Length");

#[test]
fn a_simple_get_parses_into_spans() {
    let raw = b"GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v  \r\n\r\nnext";
    let (verdict, head) = parse(raw);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert_eq!(head.len, raw.len() - 4);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.method_span.of(raw), b"GET");
    assert_eq!(head.target.of(raw), b"/a/b?q=1");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.framing, Framing::None);
    assert_eq!(head.host_count, 1);
    assert_eq!(head.host.map(|s| s.of(raw)), Some(&b"example.com"[..]));
    assert_eq!(head.headers.len(), 2);
    assert_eq!(head.headers[0].kind, HeaderKind::Host);
    assert_eq!(head.headers[1].name.of(raw), b"X-Thing");
    assert_eq!(head.headers[1].value.of(raw), b"v");
    assert_eq!(head.headers[1].kind, HeaderKind::Other);
    assert_eq!(head.origin_path(raw), Some(&b"/a/b"[..]));
}

#[test]
fn partial_heads_need_more_and_leading_blank_lines_are_skipped() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\n").0,
        Ok(Parsed::Partial)
    );
    assert_eq!(parse(b"").0, Ok(Parsed::Partial));
    let raw = b"\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    let (verdict, head) = parse(raw);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert_eq!(head.len, raw.len());
    assert_eq!(head.version, Version::Http10);
}

#[test]
fn methods_are_case_sensitive_tokens() {
    for (token, method) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("TRACE", Method::Trace),
        ("PATCH", Method::Patch),
        ("CONNECT", Method::Connect),
        ("get", Method::Other),
        ("PURGE", Method::Other),
    ] {
        let raw = format!("{token} / HTTP/1.1\r\n\r\n");
        let (verdict, head) = parse(raw.as_bytes());
        assert_eq!(verdict, Ok(Parsed::Complete), "{token}");
        assert_eq!(head.method, method, "{token}");
    }
    assert!(Method::Get.is_idempotent() && Method::Put.is_idempotent());
    assert!(!Method::Post.is_idempotent() && !Method::Patch.is_idempotent());
}

#[test]
fn origin_path_only_for_origin_form() {
    let cases: [(&[u8], Option<&[u8]>); 4] = [
        (b"GET /x#frag HTTP/1.1\r\n\r\n", Some(b"/x")),
        (b"GET / HTTP/1.1\r\n\r\n", Some(b"/")),
        (b"GET http://a/b HTTP/1.1\r\n\r\n", None),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", None),
    ];
    for (raw, want) in cases {
        let (verdict, head) = parse(raw);
        assert_eq!(verdict, Ok(Parsed::Complete));
        assert_eq!(head.origin_path(raw), want);
    }
}

#[test]
fn framing_by_length_and_chunked() {
    let (v, h) = parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert_eq!((v, h.framing), (Ok(Parsed::Complete), Framing::Length(5)));
    let (v, h) = parse(b"POST / HTTP/1.1\r\ncontent-length: 7\r\nContent-Length: 7\r\n\r\n");
    assert_eq!((v, h.framing), (Ok(Parsed::Complete), Framing::Length(7)));
    let (v, h) = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding:  CHUNKED \r\n\r\n");
    assert_eq!((v, h.framing), (Ok(Parsed::Complete), Framing::Chunked));
    let max = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", u64::MAX);
    let (v, h) = parse(max.as_bytes());
    assert_eq!(
        (v, h.framing),
        (Ok(Parsed::Complete), Framing::Length(u64::MAX))
    );
}

#[test]
fn smuggling_classics_are_refused() {
    // CL.TE and TE.CL: both headers, in either order.
    let cl_te = b"POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(reason(cl_te), BOTH);
    let te_cl = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(reason(te_cl), BOTH);
    // TE lists, other codings, duplicates.
    assert_values_refused(
        "Transfer-Encoding",
        &[
            "chunked, identity",
            "gzip, chunked",
            "identity",
            "chunked;q=1",
            "xchunked",
            "",
        ],
        BAD_TE,
    );
    let two =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(reason(two), BAD_TE);
    // A bad TE is reported before its combination with CL (weir's order).
    let both_bad = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(reason(both_bad), BAD_TE);
    // Space before the colon, vertical tab, NUL, obs-fold: not HTTP.
    for raw in [
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
    ] {
        assert_eq!(reason(raw.as_bytes()), MALFORMED, "{raw:?}");
    }
}

#[test]
fn bad_content_lengths_are_refused() {
    assert_values_refused(
        "Content-Length",
        &[
            "+5",
            "-1",
            "5, 5",
            "0x10",
            "5 5",
            "",
            "18446744073709551616",
            "1e3",
        ],
        BAD_CL,
    );
    let differ = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(reason(differ), BAD_CL);
    let zeros = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n";
    assert_eq!(reason(zeros), BAD_CL);
}

#[test]
fn heads_over_the_limits_get_431() {
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD_BYTES + 10, b'a');
    assert_eq!(reason(&big), TOO_LARGE);
    // Exactly at the limit with no end yet: it can only grow past it.
    big.truncate(MAX_HEAD_BYTES);
    assert_eq!(reason(&big), TOO_LARGE);
    big.truncate(MAX_HEAD_BYTES - 1);
    assert_eq!(parse(&big).0, Ok(Parsed::Partial));
    // A head whose end lies past the limit is refused even though it is complete.
    let mut past = big.clone();
    past.extend_from_slice(b"aaaa\r\n\r\n");
    assert_eq!(reason(&past), TOO_LARGE);
    // One within it parses.
    big.truncate(MAX_HEAD_BYTES - 4);
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse(&big).0, Ok(Parsed::Complete));

    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=weir_h1::MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(reason(&many), TOO_LARGE);
}

#[test]
fn kinds_and_connection_tokens() {
    let raw = b"GET / HTTP/1.1\r\n\
        HOST: a\r\nhost: b\r\n\
        Connection: Keep-Alive, X-Secret\r\nconnection: upgrade ,close, host, te\r\n\
        Upgrade: websocket\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: gzip, Trailers\r\n\
        Trailer: x\r\nProxy-Authenticate: x\r\nProxy-Authorization: x\r\n\
        Content-Length: 0\r\nExpect: 100-Continue\r\nX-Forwarded-For: 1.2.3.4\r\n\
        X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Request-Id: id1\r\n\
        X-Request-Id: id2\r\nx-secret: s\r\nX-Other: o\r\n\r\n";
    let (verdict, head) = parse(raw);
    assert_eq!(verdict, Ok(Parsed::Complete));
    let kinds: Vec<_> = head.headers.iter().map(|h| h.kind).collect();
    use HeaderKind as K;
    assert_eq!(
        kinds,
        [
            K::Host,
            K::Host,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::HopByHop,
            K::ContentLength,
            K::Expect,
            K::XForwardedFor,
            K::XForwardedProto,
            K::XForwardedHost,
            K::XRequestId,
            K::XRequestId,
            K::ConnectionNamed,
            K::Other,
        ]
    );
    assert_eq!(head.host_count, 2);
    assert_eq!(head.host.map(|s| s.of(raw)), Some(&b"a"[..]));
    assert!(head.connection.close && head.connection.keep_alive && head.connection.upgrade);
    assert_eq!(head.upgrade.map(|s| s.of(raw)), Some(&b"websocket"[..]));
    assert_eq!(head.request_id.map(|s| s.of(raw)), Some(&b"id1"[..]));
    assert!(head.expect_continue);
    assert!(head.te_trailers);
}

#[test]
fn connection_names_end_to_end_headers_only() {
    let raw = b"GET / HTTP/1.1\r\nConnection: x-forwarded-for, content-length\r\n\
        X-Forwarded-For: 1.1.1.1\r\nContent-Length: 0\r\n\r\n";
    let (verdict, head) = parse(raw);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert_eq!(head.headers[1].kind, HeaderKind::ConnectionNamed);
    // The framing header keeps its kind: the body is still framed by it.
    assert_eq!(head.headers[2].kind, HeaderKind::ContentLength);
}

#[test]
fn flags_need_their_exact_tokens() {
    let raw = b"GET / HTTP/1.1\r\nTE: trailersx\r\nExpect: 100-continue-ish\r\n\r\n";
    let (verdict, head) = parse(raw);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert!(!head.te_trailers && !head.expect_continue);
    assert_eq!(head.connection, weir_h1::Connection::default());
}

#[test]
fn a_reused_head_is_cleared() {
    let mut head = RequestHead::default();
    let first = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\n";
    assert_eq!(head.parse(first), Ok(Parsed::Complete));
    let cap = head.headers.capacity();
    let second = b"GET /b HTTP/1.1\r\n\r\n";
    assert_eq!(head.parse(second), Ok(Parsed::Complete));
    assert!(head.headers.is_empty());
    assert!(head.headers.capacity() >= cap);
    assert_eq!(head.framing, Framing::None);
    assert_eq!(head.host, None);
    assert_eq!(head.host_count, 0);
    assert!(!head.connection.close);
}
