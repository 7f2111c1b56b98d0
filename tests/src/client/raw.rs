//! Raw bytes on a socket: malformed requests, upgrades, and "is this port refusing?".
//!
//! hyper will not send a request with both `Content-Length` and `Transfer-Encoding`, so the
//! smuggling tests write their bytes themselves and parse just enough of the answer.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::BoxError;

/// Longest one read may wait for bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `bytes` to `stream` and asserts that exactly they come back within `wait`: one
/// round trip through an echo at the far end (a TCP relay, an upgraded tunnel).
///
/// # Panics
/// When the write fails, or the echo is late, short or different.
pub async fn assert_echoed<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    wait: Duration,
) {
    stream.write_all(bytes).await.expect("write to the echo");
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(wait, stream.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .expect("read the echo");
    assert_eq!(back, bytes);
}

/// A response read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code from the status line.
    pub status: u16,
    /// Status line and headers, as text, without the blank line.
    pub head: String,
    /// The body; for `101 Switching Protocols`, whatever tunnel bytes followed the head.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Whether connecting to `addr` is refused right now.
pub async fn is_refused(addr: SocketAddr) -> bool {
    match tokio::time::timeout(READ_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Opens a connection, writes `request` and reads one response.
///
/// A write error (the server may close early, e.g. on oversized headers) is tolerated as
/// long as a response can still be read.
///
/// # Errors
/// When connecting fails, or no complete response head arrives.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Result<RawResponse, BoxError> {
    let mut stream = tokio::time::timeout(READ_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))??;
    let write_err = stream.write_all(request).await.err();
    match read_response(&mut stream).await {
        Ok(resp) => Ok(resp),
        Err(e) => match write_err {
            Some(w) => Err(format!("{e} (the write had failed too: {w})").into()),
            None => Err(e),
        },
    }
}

/// Reads one response from `stream`: the head, then a body framed by `Content-Length`,
/// chunked encoding (read up to the last chunk), or the end of the connection.
///
/// # Errors
/// When the connection ends before a whole head arrives, or a read waits 5 s.
pub async fn read_response(stream: &mut TcpStream) -> Result<RawResponse, BoxError> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if read_more(stream, &mut buf).await? == 0 {
            return Err(format!(
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&buf)
            )
            .into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let mut resp = RawResponse {
        status,
        head,
        body: buf[head_end + 4..].to_vec(),
    };
    if status == 101 || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        while resp.body.len() < len {
            if read_more(stream, &mut resp.body).await.unwrap_or(0) == 0 {
                break;
            }
        }
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    while !(chunked && resp.body.ends_with(b"0\r\n\r\n")) {
        match read_more(stream, &mut resp.body).await {
            Ok(0) => break,
            Ok(_) => {}
            // The head is what these tests check; a reset or stall after it ends the body.
            Err(_) => break,
        }
    }
    Ok(resp)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, BoxError> {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk))
        .await
        .map_err(|_| format!("no bytes for {READ_TIMEOUT:?} (have {})", buf.len()))??;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
