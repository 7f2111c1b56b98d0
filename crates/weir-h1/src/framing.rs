//! Content-Length and Transfer-Encoding rules (RFC 9112 §6).
//!
//! Both heads go through one pass over `httparse`'s fields ([`scan`]): it turns them into
//! [`Header`]s, classifies each name once, and gathers what framing needs, so the
//! request and response verdicts below only look at a few counters.

use crate::head::{Connection, Framing, Header, HeaderKind, Refusal, Span};

/// A name that matters beyond its [`HeaderKind`] (several are plain `HopByHop`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Connection,
    Te,
    TransferEncoding,
    Upgrade,
    Plain,
}

/// What framing and the head's summary fields need from its header fields.
#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) connection: Connection,
    pub(crate) host_count: u8,
    pub(crate) host: Option<Span>,
    pub(crate) upgrade: Option<Span>,
    pub(crate) request_id: Option<Span>,
    pub(crate) expect_continue: bool,
    pub(crate) te_trailers: bool,
    /// `Transfer-Encoding` fields seen.
    te_fields: u32,
    /// The first `Transfer-Encoding` value is exactly `chunked`.
    te_chunked: bool,
    /// `Content-Length`: absent, one agreed value, or unusable.
    length: Length,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Length {
    #[default]
    Absent,
    Valid(u64, Span),
    Invalid,
}

/// The offset of `part` inside `buf` as a span (empty at 0 if it is not inside).
pub(crate) fn span_in(buf: &[u8], part: &[u8]) -> Span {
    // Runs for every field of every head: one subtraction and one comparison. Heads are
    // parsed from windows of at most a few hundred KiB, so the offsets fit in u32.
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    let end = start.wrapping_add(part.len());
    if start <= end && end <= buf.len() && end <= u32::MAX as usize {
        Span {
            start: start as u32,
            end: end as u32,
        }
    } else {
        Span::default()
    }
}

fn is(name: &[u8], lower: &[u8]) -> bool {
    name.eq_ignore_ascii_case(lower)
}

/// The kind of a header name (case-insensitive), matched by length first.
fn classify(name: &[u8]) -> (HeaderKind, Name) {
    use HeaderKind as K;
    let hop = (K::HopByHop, Name::Plain);
    match name.len() {
        2 if is(name, b"te") => (K::HopByHop, Name::Te),
        4 if is(name, b"host") => (K::Host, Name::Plain),
        6 if is(name, b"expect") => (K::Expect, Name::Plain),
        7 if is(name, b"upgrade") => (K::HopByHop, Name::Upgrade),
        7 if is(name, b"trailer") => hop,
        10 if is(name, b"connection") => (K::HopByHop, Name::Connection),
        10 if is(name, b"keep-alive") => hop,
        12 if is(name, b"x-request-id") => (K::XRequestId, Name::Plain),
        14 if is(name, b"content-length") => (K::ContentLength, Name::Plain),
        15 if is(name, b"x-forwarded-for") => (K::XForwardedFor, Name::Plain),
        16 if is(name, b"proxy-connection") => hop,
        16 if is(name, b"x-forwarded-host") => (K::XForwardedHost, Name::Plain),
        17 if is(name, b"transfer-encoding") => (K::HopByHop, Name::TransferEncoding),
        17 if is(name, b"x-forwarded-proto") => (K::XForwardedProto, Name::Plain),
        18 if is(name, b"proxy-authenticate") => hop,
        19 if is(name, b"proxy-authorization") => hop,
        _ => (K::Other, Name::Plain),
    }
}

/// Comma-separated tokens of a list value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Fills `out` from `raw` (every field of a head parsed out of `buf`) and gathers the
/// summary. `out` is cleared first and keeps its capacity.
pub(crate) fn scan(buf: &[u8], raw: &[httparse::Header<'_>], out: &mut Vec<Header>) -> Scan {
    out.clear();
    let mut s = Scan::default();
    let mut names_others = false;
    for field in raw {
        let name = field.name.as_bytes();
        let value = field.value.trim_ascii();
        let value_span = if value.is_empty() {
            let end = span_in(buf, field.value).end;
            Span { start: end, end }
        } else {
            span_in(buf, value)
        };
        let (kind, special) = classify(name);
        match (kind, special) {
            (_, Name::Connection) => {
                for token in tokens(value) {
                    if is(token, b"close") {
                        s.connection.close = true;
                    } else if is(token, b"keep-alive") {
                        s.connection.keep_alive = true;
                    } else if is(token, b"upgrade") {
                        s.connection.upgrade = true;
                    } else {
                        names_others = true;
                    }
                }
            }
            (_, Name::Te) => s.te_trailers |= tokens(value).any(|t| is(t, b"trailers")),
            (_, Name::TransferEncoding) => {
                if s.te_fields == 0 {
                    s.te_chunked = is(value, b"chunked");
                }
                s.te_fields = s.te_fields.saturating_add(1);
            }
            (_, Name::Upgrade) => s.upgrade = s.upgrade.or(Some(value_span)),
            (HeaderKind::Host, _) => {
                s.host_count = s.host_count.saturating_add(1);
                s.host = s.host.or(Some(value_span));
            }
            (HeaderKind::XRequestId, _) => s.request_id = s.request_id.or(Some(value_span)),
            (HeaderKind::Expect, _) => s.expect_continue |= is(value, b"100-continue"),
            (HeaderKind::ContentLength, _) => s.length = length(s.length, value, value_span, buf),
            _ => {}
        }
        out.push(Header {
            name: span_in(buf, name),
            value: value_span,
            kind,
        });
    }
    if names_others {
        mark_connection_named(buf, out);
    }
    s
}

/// Folds one `Content-Length` value into what the earlier ones said: every value must be
/// digits only, the same bytes as the first, and fit a u64.
fn length(so_far: Length, value: &[u8], span: Span, buf: &[u8]) -> Length {
    match so_far {
        Length::Invalid => Length::Invalid,
        Length::Valid(n, first) if first.of(buf) == value => Length::Valid(n, first),
        Length::Valid(..) => Length::Invalid,
        Length::Absent => {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Length::Invalid;
            }
            let parsed = value.iter().try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            parsed.map_or(Length::Invalid, |n| Length::Valid(n, span))
        }
    }
}

/// The second pass, only when a `Connection` header names something: the headers it
/// names become [`HeaderKind::ConnectionNamed`]. Hop-by-hop headers stay so, and `Host`,
/// `Content-Length` and `Expect` keep their kinds: the head's framing and routing were
/// decided by them, and a client must not be able to hide them from the writer's rules.
fn mark_connection_named(buf: &[u8], headers: &mut [Header]) {
    for i in 0..headers.len() {
        let h = headers[i];
        if matches!(
            h.kind,
            HeaderKind::HopByHop
                | HeaderKind::Host
                | HeaderKind::ContentLength
                | HeaderKind::Expect
        ) {
            continue;
        }
        let name = h.name.of(buf);
        let named = headers.iter().any(|c| {
            c.kind == HeaderKind::HopByHop
                && is(c.name.of(buf), b"connection")
                && tokens(c.value.of(buf)).any(|t| is(t, name))
        });
        if named {
            headers[i].kind = HeaderKind::ConnectionNamed;
        }
    }
}

const UNSUPPORTED_TE: Refusal = Refusal::new(
    400,
    "unsupported Transfer-Encoding (only \"chunked\" is accepted)",
);
const TE_AND_CL: Refusal =
    Refusal::new(400, "request has both Transfer-Encoding and Content-Length");
const BAD_CL: Refusal = Refusal::new(400, "invalid or conflicting Content-Length");
pub(crate) const BAD_RESPONSE: Refusal = Refusal::new(502, "malformed response head");
const RESPONSE_TE: Refusal = Refusal::new(502, "Transfer-Encoding other than a single chunked");

impl Scan {
    /// A request's framing, in the order weir has always checked it: the
    /// Transfer-Encoding first, then its combination with Content-Length, then the lengths.
    pub(crate) fn request_framing(&self) -> Result<Framing, Refusal> {
        if self.te_fields > 0 {
            if self.te_fields != 1 || !self.te_chunked {
                return Err(UNSUPPORTED_TE);
            }
            if self.length != Length::Absent {
                return Err(TE_AND_CL);
            }
            return Ok(Framing::Chunked);
        }
        match self.length {
            Length::Absent => Ok(Framing::None),
            Length::Valid(n, _) => Ok(Framing::Length(n)),
            Length::Invalid => Err(BAD_CL),
        }
    }

    /// A response's framing once its status allows a body (RFC 9112 §6.3), and whether it
    /// carried both codings (read as chunked, connection not reused).
    pub(crate) fn response_framing(&self) -> Result<(Framing, bool), Refusal> {
        if self.te_fields > 0 {
            if self.te_fields != 1 || !self.te_chunked {
                return Err(RESPONSE_TE);
            }
            return Ok((Framing::Chunked, self.length != Length::Absent));
        }
        match self.length {
            Length::Absent => Ok((Framing::Close, false)),
            Length::Valid(n, _) => Ok((Framing::Length(n), false)),
            Length::Invalid => Err(BAD_RESPONSE),
        }
    }
}
