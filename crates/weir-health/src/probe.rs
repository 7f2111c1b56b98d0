//! The probes: a TCP connect, or `GET path` on a fresh HTTP/1.1 connection; over TLS
//! for a pool with `tls`. The connection is opened by the pool's [`Transport`], the
//! connector the proxy's traffic uses, so a probe connects and verifies as a request
//! does.
//!
//! The HTTP probe is a small hand-written client rather than hyper's: it sends exactly one
//! request (`Connection: close`, `User-Agent: weir-health`), reads the response head only
//! through `weir-h1`, the data plane's parser, up to its final status (skipping
//! `1xx` interim responses) and never a body, with at most
//! [`MAX_HEAD_BYTES`] buffered, so a misbehaving backend cannot make a probe read without
//! bound. Every probe uses a fresh connection: a kept-alive one could hide a backend that
//! no longer accepts new connections. Only the configured path is ever requested, because
//! operators point health checks at endpoints that are safe to hit repeatedly.
//!
//! On a pool with `tls`, both probes run the pool's TLS handshake, verified as the
//! pool's traffic is: a `tcp` check passes once the handshake completes (HAProxy's
//! layer-6 check, `L6OK`, what its checks do on an `ssl` server), so a backend whose
//! certificate weir would refuse is down rather than up and failing every connection;
//! an `http` check then sends its request inside TLS, offering ALPN `http/1.1`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use weir_balance::Backend;
use weir_config::{HealthCheckConfig, HealthCheckKind};
use weir_h1::{Method, Parsed, ResponseHead};
use weir_upstream::{Alpn, ConnectError, Stream, Transport};

/// Most bytes of a response read while looking for its final status line.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Why a probe failed; its `Display` is the reason logged and shown in `/status`.
#[derive(Debug)]
pub enum ProbeError {
    /// The TCP connect failed (refused, unreachable, ...).
    Connect(io::Error),
    /// The TLS handshake failed or the backend's certificate was refused.
    Tls(io::Error),
    /// The probe did not finish within the check's `timeout`.
    Timeout(Duration),
    /// Writing the request failed.
    Send(io::Error),
    /// Reading the response failed.
    Read(io::Error),
    /// The backend closed the connection before a complete status line.
    Closed,
    /// The response is not HTTP/1.x or its head is too long.
    Malformed(&'static str),
    /// The response status is outside `expect_status`.
    Status {
        /// The status received.
        status: u16,
        /// The configured range.
        expect: RangeInclusive<u16>,
    },
    /// The configured path or host cannot be sent on the wire (control characters).
    InvalidRequest(&'static str),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Connect(e) => write!(f, "connect: {}", IoText(e)),
            ProbeError::Tls(e) => write!(f, "TLS handshake: {}", IoText(e)),
            ProbeError::Timeout(d) => write!(f, "timeout after {d:?}"),
            ProbeError::Send(e) => write!(f, "send request: {}", IoText(e)),
            ProbeError::Read(e) => write!(f, "read response: {}", IoText(e)),
            ProbeError::Closed => f.write_str("connection closed before the response status"),
            ProbeError::Malformed(what) => write!(f, "invalid response: {what}"),
            ProbeError::Status { status, expect } => write!(
                f,
                "status {status} not in {}-{}",
                expect.start(),
                expect.end()
            ),
            ProbeError::InvalidRequest(what) => write!(f, "invalid probe request: {what}"),
        }
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeError::Connect(e)
            | ProbeError::Tls(e)
            | ProbeError::Send(e)
            | ProbeError::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// An `io::Error` without the ` (os error N)` suffix: the reason reads like
/// `connect: Connection refused` in logs and `/status`.
struct IoText<'a>(&'a io::Error);

impl fmt::Display for IoText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        match text.find(" (os error") {
            Some(end) => f.write_str(&text[..end]),
            None => f.write_str(&text),
        }
    }
}

/// Probes `backend` once as `check` says, within `check.timeout` (connect and TLS
/// handshake included), connecting with its pool's `transport`.
///
/// # Errors
/// The reason the backend is not healthy; see [`ProbeError`].
pub async fn probe(
    backend: &Backend,
    check: &HealthCheckConfig,
    transport: &Transport,
) -> Result<(), ProbeError> {
    let attempt = async {
        match &check.kind {
            HealthCheckKind::Tcp => {
                // A bare handshake offers `h2` on an `h2` pool: h2-only servers
                // (grpc-go, Go's `crypto/tls` with `NextProtos: ["h2"]`) refuse a
                // client offering nothing else.
                let mut stream =
                    connect(backend, transport, Alpn::Handshake, check.timeout).await?;
                // Over TLS this sends close_notify, so the backend logs an orderly close
                // rather than a reset at every interval; a failure here is not the
                // backend's health.
                let _ = stream.shutdown().await;
                Ok(())
            }
            HealthCheckKind::Http {
                path,
                host,
                expect_status,
            } => {
                let host = host.as_deref().unwrap_or(backend.address());
                http(backend, transport, check.timeout, host, path, expect_status).await
            }
        }
    };
    match tokio::time::timeout(check.timeout, attempt).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProbeError::Timeout(check.timeout)),
    }
}

/// A fresh connection to `backend` with its pool's `transport`, offering `alpn` if it
/// is TLS (a TCP check passes here).
async fn connect(
    backend: &Backend,
    transport: &Transport,
    alpn: Alpn,
    timeout: Duration,
) -> Result<Stream, ProbeError> {
    let addr: SocketAddr = backend.addr();
    transport
        .connect(addr, backend.address(), alpn, None, timeout)
        .await
        .map_err(|e| match e {
            ConnectError::Connect(e) | ConnectError::Preamble(e) => ProbeError::Connect(e),
            ConnectError::Tls(e) => ProbeError::Tls(e),
            ConnectError::Timeout => ProbeError::Timeout(timeout),
        })
}

/// Healthy when `GET path` answers a final status within `expect`.
async fn http(
    backend: &Backend,
    transport: &Transport,
    timeout: Duration,
    host: &str,
    path: &str,
    expect: &RangeInclusive<u16>,
) -> Result<(), ProbeError> {
    if !is_token_text(path) || !path.starts_with('/') {
        return Err(ProbeError::InvalidRequest("path"));
    }
    if !is_token_text(host) {
        return Err(ProbeError::InvalidRequest("host"));
    }
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         User-Agent: weir-health\r\nAccept: */*\r\n\r\n"
    );
    // HTTP/1.1 whatever the pool speaks: ALPN `http/1.1`.
    let mut stream = connect(backend, transport, Alpn::Http1, timeout).await?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ProbeError::Send)?;
    stream.flush().await.map_err(ProbeError::Send)?;
    let status = read_status(&mut stream).await?;
    if expect.contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::Status {
            status,
            expect: expect.clone(),
        })
    }
}

/// Visible ASCII only: nothing that could end the request line or a header early.
fn is_token_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads until the final (non-`1xx`) status line is complete; never reads the body.
async fn read_status<S: AsyncRead + Unpin + ?Sized>(stream: &mut S) -> Result<u16, ProbeError> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut filled = 0;
    loop {
        match parse_final_status(&buf[..filled]) {
            Head::Status(status) => return Ok(status),
            Head::Invalid(what) => return Err(ProbeError::Malformed(what)),
            Head::Incomplete if filled == buf.len() => {
                return Err(ProbeError::Malformed("response head too long"))
            }
            Head::Incomplete => {}
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(ProbeError::Read)?;
        if n == 0 {
            return Err(ProbeError::Closed);
        }
        filled += n;
    }
}

/// What the bytes received so far say about the response.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// More bytes are needed.
    Incomplete,
    /// The final status code.
    Status(u16),
    /// Not an HTTP/1.x response.
    Invalid(&'static str),
}

/// Finds the final status in `buf`, skipping complete `1xx` interim responses
/// (`101` is final: it ends HTTP on this connection). Heads are read by `weir-h1`, the
/// parser the data plane uses, so a probe and the proxy judge a response the same way.
fn parse_final_status(buf: &[u8]) -> Head {
    let mut head = ResponseHead::default();
    let mut rest = buf;
    loop {
        match head.parse(rest, MAX_HEAD_BYTES, Method::Get) {
            Ok(Parsed::Partial) => return Head::Incomplete,
            Err(refusal) => return Head::Invalid(refusal.reason),
            Ok(Parsed::Complete) => {}
        }
        if !(100..200).contains(&head.status) || head.status == 101 {
            return Head::Status(head.status);
        }
        rest = rest.get(head.len..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parses_code() {
        assert_eq!(
            parse_final_status(b"HTTP/1.1 200 OK\r\n\r\n"),
            Head::Status(200)
        );
        assert_eq!(
            parse_final_status(b"HTTP/1.0 503\r\n\r\n"),
            Head::Status(503)
        );
        assert_eq!(
            parse_final_status(b"HTTP/1.1 204 No Content\n\n"),
            Head::Status(204)
        );
    }

    #[test]
    fn partial_status_line_needs_more_bytes() {
        assert_eq!(parse_final_status(b""), Head::Incomplete);
        assert_eq!(parse_final_status(b"HTTP/1.1 20"), Head::Incomplete);
        assert_eq!(parse_final_status(b"HTTP/1.1 200 OK\r\n"), Head::Incomplete);
    }

    #[test]
    fn garbage_is_invalid() {
        for raw in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
        ] {
            assert!(
                matches!(parse_final_status(raw), Head::Invalid(_)),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let head = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Busy\r\n\r\n";
        assert_eq!(parse_final_status(head), Head::Status(503));
        let partial = b"HTTP/1.1 100 Continue\r\n";
        assert_eq!(parse_final_status(partial), Head::Incomplete);
        assert_eq!(
            parse_final_status(b"HTTP/1.1 101 Switching\r\n\r\n"),
            Head::Status(101)
        );
    }

    #[test]
    fn reasons_read_as_operators_expect() {
        let refused = io::Error::from_raw_os_error(111);
        let text = ProbeError::Connect(refused).to_string();
        assert!(text.starts_with("connect: "), "{text}");
        assert!(!text.contains("os error"), "{text}");
        assert_eq!(
            ProbeError::Timeout(Duration::from_secs(1)).to_string(),
            "timeout after 1s"
        );
        let status = ProbeError::Status {
            status: 503,
            expect: 200..=399,
        };
        assert_eq!(status.to_string(), "status 503 not in 200-399");
    }

    #[test]
    fn control_characters_are_never_sent() {
        assert!(is_token_text("/healthz?x=1"));
        assert!(!is_token_text("/a b"));
        assert!(!is_token_text("/a\r\nX: y"));
        assert!(!is_token_text(""));
    }
}
