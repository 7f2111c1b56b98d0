//! Response heads: framing by status and method, the 502 refusals, reuse.

use weir_h1::{Framing, HeaderKind, Method, Parsed, Refusal, ResponseHead, Version};

const MAX: usize = 8 * 1024;

fn parse(raw: &[u8], method: Method) -> (Result<Parsed, Refusal>, ResponseHead) {
    let mut head = ResponseHead::default();
    let verdict = head.parse(raw, MAX, method);
    (verdict, head)
}

fn framing(raw: &[u8], method: Method) -> Framing {
    let (verdict, head) = parse(raw, method);
    assert_eq!(
        verdict,
        Ok(Parsed::Complete),
        "{}",
        String::from_utf8_lossy(raw)
    );
    head.framing
}

fn reason(raw: &[u8]) -> &'static str {
    match parse(raw, Method::Get).0 {
        Err(r) => {
            assert_eq!(r.status, 502);
            r.reason
        }
        Ok(p) => panic!("accepted ({p:?}): {}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn status_reason_and_headers() {
    let raw = b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\nConnection: close, x-a\r\nX-A: 1\r\n\r\nabc";
    let (verdict, head) = parse(raw, Method::Get);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert_eq!(head.len, raw.len() - 3);
    assert_eq!(head.version, Version::Http10);
    assert_eq!(head.status, 404);
    assert_eq!(head.reason.of(raw), b"Not Found");
    assert_eq!(head.framing, Framing::Length(3));
    assert!(head.connection.close);
    assert_eq!(head.headers[0].kind, HeaderKind::ContentLength);
    assert_eq!(head.headers[2].kind, HeaderKind::ConnectionNamed);
    assert!(!head.reusable());
}

#[test]
fn bodiless_statuses_and_head() {
    for status in [100, 101, 103, 204, 304] {
        let raw =
            format!("HTTP/1.1 {status} X\r\nContent-Length: 10\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            framing(raw.as_bytes(), Method::Get),
            Framing::None,
            "{status}"
        );
    }
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(framing(raw, Method::Head), Framing::None);
    assert_eq!(framing(raw, Method::Get), Framing::Length(10));
}

#[test]
fn chunked_length_and_close() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (_, head) = parse(chunked, Method::Get);
    assert_eq!(head.framing, Framing::Chunked);
    assert!(!head.length_and_chunked && head.reusable());

    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (verdict, head) = parse(both, Method::Get);
    assert_eq!(verdict, Ok(Parsed::Complete));
    assert_eq!(head.framing, Framing::Chunked);
    assert!(head.length_and_chunked && !head.reusable());

    let close = b"HTTP/1.1 200 OK\r\n\r\n";
    let (_, head) = parse(close, Method::Get);
    assert_eq!(head.framing, Framing::Close);
    assert!(!head.reusable());

    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert!(parse(ok, Method::Get).1.reusable());
}

#[test]
fn bad_framing_is_502() {
    let te = "Transfer-Encoding other than a single chunked";
    assert_eq!(
        reason(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        te
    );
    assert_eq!(
        reason(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        te
    );
    let bad = "malformed response head";
    for cl in ["+1", "", "1,1", "99999999999999999999"] {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(reason(raw.as_bytes()), bad, "{cl:?}");
    }
    assert_eq!(
        reason(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        bad
    );
    for (why, raw) in [
        ("not HTTP", &b"SSH-2.0-OpenSSH\r\n\r\n"[..]),
        ("four-digit status", b"HTTP/1.1 2000 OK\r\n\r\n"),
        ("status not a number", b"HTTP/1.1 abc OK\r\n\r\n"),
        ("status under 100", b"HTTP/1.1 099 OK\r\n\r\n"),
        ("HTTP/2 status line", b"HTTP/2 200 OK\r\n\r\n"),
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
        ("NUL in a value", b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n"),
    ] {
        assert_eq!(reason(raw), bad, "{why}");
    }
}

#[test]
fn the_limit_bounds_the_head() {
    let mut raw = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    raw.resize(MAX - 1, b'a');
    assert_eq!(parse(&raw, Method::Get).0, Ok(Parsed::Partial));
    raw.push(b'a');
    assert_eq!(reason(&raw), "response head too large");
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\n", Method::Get).0,
        Ok(Parsed::Partial)
    );
}
