//! Request and response heads as spans into the read buffer.

use crate::framing::{scan, span_in, BAD_RESPONSE};
use crate::{MAX_HEADERS, MAX_HEAD_BYTES};

const MALFORMED: Refusal = Refusal::new(400, "malformed request head");
const TOO_LARGE: Refusal = Refusal::new(431, "request head too large");
const RESPONSE_TOO_LARGE: Refusal = Refusal::new(502, "response head too large");

/// Headers a response is first parsed with (more: parsed again with [`MAX_HEADERS`]).
const FEW_HEADERS: usize = 24;

/// A byte range of the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The bytes of `buf` this span covers (empty if out of range).
    #[inline]
    pub fn of(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// HTTP/1 minor version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    #[default]
    Http11,
}

/// The request methods weir treats differently; every other token is `Other`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// GET.
    #[default]
    Get,
    /// HEAD: its response has no body.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// OPTIONS: the only method an asterisk-form target may use.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
    /// CONNECT: weir answers it 501.
    Connect,
    /// Any other token (the method span has it).
    Other,
}

impl Method {
    /// Idempotent methods (RFC 9110 §9.2.2): replayable on another backend.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// The method a token names (methods are case-sensitive, RFC 9110 §9.1).
    fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// What the codec knows about a header's name, decided once as the head is parsed so
/// the writers never compare names again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderKind {
    /// Any end-to-end header: forwarded as it is.
    #[default]
    Other,
    /// A hop-by-hop header of RFC 9110 §7.6.1 or a legacy one (`Connection`,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
    /// `Proxy-Authenticate`, `Proxy-Authorization`).
    HopByHop,
    /// Named by a `Connection` token (other than `close`, `keep-alive`, `upgrade`; never
    /// `Host`): hop-by-hop for this message.
    ConnectionNamed,
    /// `Host`.
    Host,
    /// `Content-Length`.
    ContentLength,
    /// `Expect`.
    Expect,
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// `X-Forwarded-Proto`.
    XForwardedProto,
    /// `X-Forwarded-Host`.
    XForwardedHost,
    /// `X-Request-Id`.
    XRequestId,
}

/// One header field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The name as sent.
    pub name: Span,
    /// The value, without surrounding whitespace.
    pub value: Span,
    /// What the name is.
    pub kind: HeaderKind,
}

/// The tokens of all `Connection` headers that matter to a proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// `close`.
    pub close: bool,
    /// `keep-alive`.
    pub keep_alive: bool,
    /// `upgrade`.
    pub upgrade: bool,
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// No body: a request with neither header; HEAD, 1xx, 204 and 304 responses.
    #[default]
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// A single `Transfer-Encoding: chunked`.
    Chunked,
    /// Responses only: read until the backend closes.
    Close,
}

/// A complete head, or more bytes needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head ended; its length is in the head.
    Complete,
    /// More bytes are needed (and the limit is not reached yet).
    Partial,
}

/// Why a head is refused: the status weir answers (400, 431; 502 for a backend's) and a
/// short reason safe to show a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 431, or 502 for a response.
    pub status: u16,
    /// A generic reason, nothing from the input.
    pub reason: &'static str,
}

impl Refusal {
    /// A refusal answered with `status` and `reason`.
    pub const fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal { status, reason }
    }
}

/// A parsed request head. Reused across requests: parsing clears it without freeing.
#[derive(Debug, Default)]
pub struct RequestHead {
    /// Bytes of the head, final blank line included (leading blank lines too).
    pub len: usize,
    /// The method.
    pub method: Method,
    /// The method token as sent.
    pub method_span: Span,
    /// The request target as sent.
    pub target: Span,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every header field, in order.
    pub headers: Vec<Header>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Number of `Host` fields.
    pub host_count: u8,
    /// The (first) `Host` value.
    pub host: Option<Span>,
    /// `Connection` tokens.
    pub connection: Connection,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `TE` lists `trailers` (the client accepts trailers; forwarded as `TE: trailers`).
    pub te_trailers: bool,
    /// The `Upgrade` value.
    pub upgrade: Option<Span>,
    /// The (first) `X-Request-Id` value.
    pub request_id: Option<Span>,
}

impl RequestHead {
    /// Parses the request head at the start of `buf` (blank lines before it are skipped,
    /// as RFC 9112 §2.2 allows).
    ///
    /// Refuses, with nothing forwarded: a malformed head (`httparse`'s rules: NUL, CR or
    /// LF in a value, obs-fold, bad tokens) 400; a head over [`crate::MAX_HEAD_BYTES`] or
    /// with more than [`crate::MAX_HEADERS`] fields 431; `Content-Length` with
    /// `Transfer-Encoding` 400; a `Transfer-Encoding` other than one `chunked` 400;
    /// differing, empty or non-numeric `Content-Length`s 400.
    ///
    /// # Errors
    ///
    /// The refusal, when the head must not be forwarded.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, Refusal> {
        // Never look past the limit: a head that has not ended within it is refused.
        let window = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf);
        // Uninitialised: filling 100 empty headers per parse cost more than the parse.
        let mut raw =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(window, &mut raw) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => return Err(TOO_LARGE),
            Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
            Err(httparse::Error::TooManyHeaders) => return Err(TOO_LARGE),
            Err(_) => return Err(MALFORMED),
        };
        let method = req.method.unwrap_or_default().as_bytes();
        let target = req.path.unwrap_or_default().as_bytes();
        let version = match req.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(MALFORMED),
        };
        let s = scan(buf, req.headers, &mut self.headers);
        self.len = len;
        self.method = Method::from_token(method);
        self.method_span = span_in(buf, method);
        self.target = span_in(buf, target);
        self.version = version;
        self.host_count = s.host_count;
        self.host = s.host;
        self.connection = s.connection;
        self.expect_continue = s.expect_continue;
        self.te_trailers = s.te_trailers;
        self.upgrade = s.upgrade;
        self.request_id = s.request_id;
        self.framing = s.request_framing()?;
        Ok(Parsed::Complete)
    }

    /// The path of an origin-form target (`/a/b?q` → `/a/b`); `None` for other forms.
    pub fn origin_path<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        let target = self.target.of(buf);
        if !target.starts_with(b"/") {
            return None;
        }
        let end = target
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(target.len());
        Some(&target[..end])
    }
}

/// A parsed response head. Reused across responses.
#[derive(Debug, Default)]
pub struct ResponseHead {
    /// Bytes of the head, final blank line included.
    pub len: usize,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase as sent.
    pub reason: Span,
    /// Every header field, in order.
    pub headers: Vec<Header>,
    /// How the body is delimited (given the request's method).
    pub framing: Framing,
    /// `Connection` tokens.
    pub connection: Connection,
    /// The `Upgrade` value.
    pub upgrade: Option<Span>,
    /// Both `Transfer-Encoding: chunked` and `Content-Length` (RFC 9112 §6.3): read as
    /// chunked, and the connection is not reused.
    pub length_and_chunked: bool,
}

impl ResponseHead {
    /// Parses the response head at the start of `buf`, for a request made with `method`
    /// (a HEAD response has no body). `max` bounds the head (over it: 502 "response head
    /// too large").
    ///
    /// Refuses (status 502): a malformed head ("malformed response head", differing or
    /// invalid `Content-Length`s included), a `Transfer-Encoding` other than a single
    /// `chunked` ("Transfer-Encoding other than a single chunked").
    ///
    /// # Errors
    ///
    /// The refusal, when the response must not be forwarded.
    pub fn parse(&mut self, buf: &[u8], max: usize, method: Method) -> Result<Parsed, Refusal> {
        let window = buf.get(..max).unwrap_or(buf);
        // httparse has no uninitialised form for responses: most have few headers, so
        // a short array is tried first (filling 100 empty ones cost more than the parse).
        let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
        let mut many;
        let mut resp = httparse::Response::new(&mut few);
        let mut parsed = resp.parse(window);
        if parsed == Err(httparse::Error::TooManyHeaders) {
            many = [httparse::EMPTY_HEADER; MAX_HEADERS];
            resp = httparse::Response::new(&mut many);
            parsed = resp.parse(window);
        }
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= max => return Err(RESPONSE_TOO_LARGE),
            Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
            Err(httparse::Error::TooManyHeaders) => return Err(RESPONSE_TOO_LARGE),
            Err(_) => return Err(BAD_RESPONSE),
        };
        let version = match resp.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(BAD_RESPONSE),
        };
        let status = resp.code.unwrap_or_default();
        if !(100..=999).contains(&status) {
            return Err(BAD_RESPONSE);
        }
        let reason = span_in(buf, resp.reason.unwrap_or_default().as_bytes());
        let s = scan(buf, resp.headers, &mut self.headers);
        self.len = len;
        self.version = version;
        self.status = status;
        self.reason = reason;
        self.connection = s.connection;
        self.upgrade = s.upgrade;
        let bodiless = (100..200).contains(&status)
            || status == 204
            || status == 304
            || method == Method::Head;
        (self.framing, self.length_and_chunked) = if bodiless {
            (Framing::None, false)
        } else {
            s.response_framing()?
        };
        Ok(Parsed::Complete)
    }

    /// Whether the backend keeps the connection open after this response and weir may
    /// reuse it: HTTP/1.1, no `Connection: close`, not [`ResponseHead::length_and_chunked`],
    /// not [`Framing::Close`], and not a `101` (the connection speaks another protocol
    /// from then on, even when weir refuses the switch).
    pub fn reusable(&self) -> bool {
        self.status != 101
            && self.version == Version::Http11
            && !self.connection.close
            && !self.length_and_chunked
            && self.framing != Framing::Close
    }
}
