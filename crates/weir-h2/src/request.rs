//! An HTTP/2 request's head (RFC 9113 §8.1–§8.3) from its decoded header block: the
//! checks that make a request malformed, and what forwarding it to an HTTP/1.1 backend
//! needs (the pseudo-header fields, the declared length, whether trailers are wanted).
//!
//! These are the rules h2 applies for weir today, plus the ones weir's own HTTP/1 path
//! applies to every request (a field value with NUL, CR or LF never reaches a backend,
//! a `Content-Length` must be one agreed number): a malformed request is a stream error
//! (`PROTOCOL_ERROR`, §8.1.1), answered on its stream and never forwarded, and the
//! connection goes on. Which host a request is for, and the `Host` rules, stay with the
//! data plane's host module, which both HTTP versions share.

use weir_h1::is_tchar;

/// A byte table built at compile time: `$e` of every byte `$b`. The checks below look
/// each byte up once instead of testing it against a list (they run over every field of
/// every request; comparisons made them about 1,250 instructions of an h2load request).
macro_rules! table {
    (|$b:ident| $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}

/// §8.2.1: a field name's bytes, RFC 9110's token characters without upper case.
static NAME: [bool; 256] = table!(|b| is_tchar(b) && !b.is_ascii_uppercase());
/// A method's bytes: token characters.
static TOKEN: [bool; 256] = table!(|b| is_tchar(b));
/// A scheme's bytes after its first (a letter): RFC 3986 §3.1.
static SCHEME: [bool; 256] =
    table!(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
/// `:path` and `:authority`: visible ASCII without `#`, which starts a fragment, never
/// sent (RFC 9110 §4.2.4).
static TARGET: [bool; 256] = table!(|b| b >= 0x21 && b <= 0x7e && b != b'#');
/// §8.2.1: bytes no field value may hold.
static NOT_IN_VALUE: [bool; 256] = table!(|b| matches!(b, 0 | b'\r' | b'\n'));

/// Whether every byte of `bytes` is in `set`.
#[inline]
fn all_in(set: &[bool; 256], bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| set[usize::from(b)])
}

use crate::hpack::{Block, Field};

/// Why a request is malformed (§8.1.1); each one is a stream error `PROTOCOL_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A pseudo-header after a regular field, repeated, unknown, or a response's.
    PseudoHeader,
    /// `:method`, `:scheme` or `:path` missing or empty (or, for CONNECT, present).
    MissingPseudoHeader,
    /// A name with upper case, a separator, a control character or nothing (§8.2.1).
    FieldName,
    /// A value with NUL, CR or LF, or leading or trailing whitespace (§8.2.1).
    FieldValue,
    /// `Connection`, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding` or
    /// `Upgrade` (§8.2.2), or `TE` other than `trailers`.
    ConnectionSpecific,
    /// `Content-Length` not digits, or two that differ.
    ContentLength,
    /// `:path` neither origin form (`/…`) nor `*` (§8.3.1).
    Path,
    /// A `:method` that is not a token, a `:scheme` that is not a scheme, or a `:path`
    /// or `:authority` with a space, a control byte, a byte above 0x7e or `#`: what
    /// would become the backend's request line or `Host`.
    PseudoValue,
    /// A connection-specific trailer (§8.2.2). Trailers that would frame or route the
    /// message (`Content-Length`, `Host`, RFC 9110 §6.5.1) are the caller's to drop:
    /// the client meant the rest, as h2 let them through.
    Trailer,
}

/// A well-formed request head: indexes of its fields in the [`Block`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`.
    pub method: Field,
    /// `:scheme`; absent for CONNECT.
    pub scheme: Option<Field>,
    /// `:authority`, when the client sent one.
    pub authority: Option<Field>,
    /// `:path`; absent for CONNECT.
    pub path: Option<Field>,
    /// Where the regular fields start in the block's fields (the pseudo-headers come
    /// first).
    pub first_regular: usize,
    /// The declared body length.
    pub content_length: Option<u64>,
    /// `TE: trailers`: the client takes trailers, which the backend may then send.
    pub te_trailers: bool,
}

impl RequestHead {
    /// The regular fields, in order.
    pub fn regular<'b>(&self, block: &'b Block) -> &'b [Field] {
        block.fields().get(self.first_regular..).unwrap_or_default()
    }

    /// Whether this is a CONNECT request (no `:scheme` or `:path`).
    pub fn is_connect(&self) -> bool {
        self.path.is_none()
    }
}

/// Checks a decoded request header block.
pub fn request(block: &Block) -> Result<RequestHead, Malformed> {
    let fields = block.fields();
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut first_regular = fields.len();
    for (i, field) in fields.iter().enumerate() {
        let name = block.name(field);
        let Some(pseudo) = name.strip_prefix(b":") else {
            first_regular = i;
            break;
        };
        let slot = match pseudo {
            b"method" => &mut method,
            b"scheme" => &mut scheme,
            b"authority" => &mut authority,
            b"path" => &mut path,
            _ => return Err(Malformed::PseudoHeader),
        };
        if slot.replace(*field).is_some() {
            return Err(Malformed::PseudoHeader);
        }
        // They become the backend's request line: a space or a control byte in one
        // would let the client write a different line than weir routed. A value that
        // passes is a valid field value too; one that fails is refused as the first
        // rule it breaks.
        let value = block.value(field);
        let valid = match pseudo {
            b"method" => all_in(&TOKEN, value),
            b"scheme" => {
                value.first().is_some_and(u8::is_ascii_alphabetic) && all_in(&SCHEME, value)
            }
            _ => all_in(&TARGET, value),
        };
        if !valid {
            check_value(value)?;
            return Err(Malformed::PseudoValue);
        }
    }
    let method = method.ok_or(Malformed::MissingPseudoHeader)?;
    let connect = block.value(&method) == b"CONNECT";
    if block.value(&method).is_empty() {
        return Err(Malformed::MissingPseudoHeader);
    }
    if connect {
        // §8.5: CONNECT names only its target.
        if scheme.is_some() || path.is_some() || authority.is_none() {
            return Err(Malformed::MissingPseudoHeader);
        }
    } else {
        let (Some(s), Some(p)) = (scheme, path) else {
            return Err(Malformed::MissingPseudoHeader);
        };
        if block.value(&s).is_empty() {
            return Err(Malformed::MissingPseudoHeader);
        }
        let p = block.value(&p);
        let asterisk = p == b"*" && block.value(&method) == b"OPTIONS";
        if !(p.starts_with(b"/") || asterisk) {
            return Err(if p.is_empty() {
                Malformed::MissingPseudoHeader
            } else {
                Malformed::Path
            });
        }
    }
    // Userinfo in `:authority` (§8.3.1 says clients must not send it) is taken, as h2
    // took it and as weir takes it in an HTTP/1 absolute-form target: the proxy drops it
    // before the backend sees the host.
    let mut content_length = None;
    let mut te_trailers = false;
    for field in &fields[first_regular..] {
        let name = block.name(field);
        let value = block.value(field);
        check_name(name)?;
        check_value(value)?;
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => return Err(Malformed::ConnectionSpecific),
            b"te" => {
                if value != b"trailers" {
                    return Err(Malformed::ConnectionSpecific);
                }
                te_trailers = true;
            }
            b"content-length" => content_length = Some(length(content_length, value)?),
            _ => {}
        }
    }
    Ok(RequestHead {
        method,
        scheme,
        authority,
        path,
        first_regular,
        content_length,
        te_trailers,
    })
}

/// Checks a block of trailers (§8.1): no pseudo-headers, nothing connection-specific,
/// and the same rules for names and values as a request's fields, since they reach an
/// HTTP/1 backend as the chunked body's trailer section.
pub fn trailers(block: &Block) -> Result<(), Malformed> {
    for (name, value) in block.iter() {
        check_name(name)?;
        check_value(value)?;
        if matches!(
            name,
            b"connection"
                | b"keep-alive"
                | b"proxy-connection"
                | b"transfer-encoding"
                | b"upgrade"
                | b"te"
        ) {
            return Err(Malformed::Trailer);
        }
    }
    Ok(())
}

/// §8.2.1: a name is visible ASCII without upper case, and a pseudo-header (`:`) only at
/// the start of the block; RFC 9110's token characters, as HTTP/1 requires.
fn check_name(name: &[u8]) -> Result<(), Malformed> {
    if name.first() == Some(&b':') {
        return Err(Malformed::PseudoHeader);
    }
    if name.is_empty() || !all_in(&NAME, name) {
        return Err(Malformed::FieldName);
    }
    Ok(())
}

/// §8.2.1: no NUL, CR or LF, and no whitespace at either end.
fn check_value(value: &[u8]) -> Result<(), Malformed> {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if edge(value.first())
        || edge(value.last())
        || value.iter().any(|&b| NOT_IN_VALUE[usize::from(b)])
    {
        return Err(Malformed::FieldValue);
    }
    Ok(())
}

/// One more `Content-Length` value: digits, and the same number as any before it.
fn length(so_far: Option<u64>, value: &[u8]) -> Result<u64, Malformed> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Malformed::ContentLength);
    }
    let n = value
        .iter()
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(Malformed::ContentLength)?;
    match so_far {
        Some(m) if m != n => Err(Malformed::ContentLength),
        _ => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::{Decoder, Encoder};

    /// The block a client would send for `fields`.
    fn block(fields: &[(&str, &str)]) -> Block {
        let e = Encoder::new();
        let mut bytes = Vec::new();
        for (n, v) in fields {
            e.field(n.as_bytes(), v.as_bytes(), false, &mut bytes);
        }
        let mut out = Block::new();
        Decoder::new(4096)
            .decode(&bytes, 1 << 20, &mut out)
            .expect("a valid block");
        out
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "api.test"),
        (":path", "/v1?q=1"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        GET.iter().chain(extra).copied().collect()
    }

    #[test]
    fn a_plain_request_gives_its_pseudo_headers_and_fields() {
        let b = block(&with(&[
            ("content-length", "5"),
            ("content-length", "5"),
            ("te", "trailers"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]));
        let head = request(&b).expect("well formed");
        assert_eq!(b.value(&head.method), b"GET");
        assert_eq!(head.path.map(|p| b.value(&p)), Some(&b"/v1?q=1"[..]));
        assert_eq!(head.authority.map(|a| b.value(&a)), Some(&b"api.test"[..]));
        assert_eq!((head.content_length, head.te_trailers), (Some(5), true));
        assert_eq!(head.regular(&b).len(), 5);
        assert!(!head.is_connect());
        let options = block(&[(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")]);
        assert!(
            request(&options).is_ok(),
            "OPTIONS * has no authority to give"
        );
    }

    #[test]
    fn malformed_requests_are_refused_with_their_reason() {
        use Malformed as M;
        let cases: Vec<(Vec<(&str, &str)>, Malformed)> = vec![
            (
                vec![(":method", "GET"), (":path", "/")],
                M::MissingPseudoHeader,
            ),
            (
                vec![(":method", "GET"), (":scheme", "https"), (":path", "")],
                M::MissingPseudoHeader,
            ),
            (
                vec![(":scheme", "https"), (":path", "/")],
                M::MissingPseudoHeader,
            ),
            (
                vec![(":method", "GET"), (":scheme", "https"), (":path", "v1")],
                M::Path,
            ),
            (
                vec![(":method", "GET"), (":scheme", "https"), (":path", "*")],
                M::Path,
            ),
            (with(&[(":path", "/again")]), M::PseudoHeader),
            (
                vec![
                    (":method", "GET"),
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                ],
                M::PseudoHeader,
            ),
            (
                vec![
                    (":method", "GET"),
                    (":status", "200"),
                    (":scheme", "http"),
                    (":path", "/"),
                ],
                M::PseudoHeader,
            ),
            (with(&[("Host", "api.test")]), M::FieldName),
            (with(&[("bad name", "x")]), M::FieldName),
            (with(&[("x-a", "1\r\nx-b: 2")]), M::FieldValue),
            (with(&[("x-a", " padded")]), M::FieldValue),
            (with(&[("x-a", "nul\0")]), M::FieldValue),
            (with(&[("connection", "close")]), M::ConnectionSpecific),
            (
                with(&[("transfer-encoding", "chunked")]),
                M::ConnectionSpecific,
            ),
            (with(&[("upgrade", "websocket")]), M::ConnectionSpecific),
            (with(&[("keep-alive", "5")]), M::ConnectionSpecific),
            (with(&[("te", "gzip")]), M::ConnectionSpecific),
            (
                with(&[("content-length", "5"), ("content-length", "6")]),
                M::ContentLength,
            ),
            (with(&[("content-length", "+5")]), M::ContentLength),
            (
                with(&[("content-length", "99999999999999999999999")]),
                M::ContentLength,
            ),
            (
                vec![
                    (":method", "CONNECT"),
                    (":authority", "api.test:443"),
                    (":path", "/"),
                ],
                M::MissingPseudoHeader,
            ),
            (vec![(":method", "CONNECT")], M::MissingPseudoHeader),
            (
                vec![
                    (":method", "GET /internal"),
                    (":scheme", "http"),
                    (":path", "/public"),
                ],
                M::PseudoValue,
            ),
            (
                vec![(":method", "GET"), (":scheme", "http"), (":path", "/a b")],
                M::PseudoValue,
            ),
            (
                vec![(":method", "GET"), (":scheme", "http"), (":path", "/a\tb")],
                M::PseudoValue,
            ),
            (
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/a#frag"),
                ],
                M::PseudoValue,
            ),
            (
                vec![(":method", "GET"), (":scheme", "ht tp"), (":path", "/")],
                M::PseudoValue,
            ),
            (
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "a.test\x01"),
                    (":path", "/"),
                ],
                M::PseudoValue,
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(request(&block(&fields)), Err(want), "{fields:?}");
        }
    }

    #[test]
    fn connect_names_only_its_authority() {
        let b = block(&[(":method", "CONNECT"), (":authority", "db.test:5432")]);
        let head = request(&b).expect("CONNECT is well formed");
        assert!(head.is_connect());
        assert_eq!(head.scheme, None);
    }

    #[test]
    fn trailers_may_not_name_the_connection() {
        assert_eq!(
            trailers(&block(&[("grpc-status", "0"), ("x-sum", "9")])),
            Ok(())
        );
        // The proxy drops these before a backend sees them.
        assert_eq!(
            trailers(&block(&[("content-length", "5"), ("host", "h")])),
            Ok(())
        );
        for name in ["transfer-encoding", "connection", "te"] {
            assert_eq!(
                trailers(&block(&[(name, "1")])),
                Err(Malformed::Trailer),
                "{name}"
            );
        }
        assert_eq!(
            trailers(&block(&[(":status", "200")])),
            Err(Malformed::PseudoHeader)
        );
    }
}
