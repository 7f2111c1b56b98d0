//! Request smuggling: every framing a front end and a back end could read differently is
//! refused with 400, and nothing of it is forwarded.
//!
//! One weir and one recording backend serve every variant, each sent on a fresh
//! connection. A variant may carry a good request before the bad one (path `/ok...`), which
//! is rightly forwarded. After all of them a marker request on a fresh connection reaches
//! the backend: anything forwarded before it has arrived by then, so the backend's record
//! must hold the good requests and the marker, and nothing else.
//!
//! Out of scope here: a chunked body that goes wrong after its first chunk. weir streams
//! bodies, so that head has been forwarded by then; weir then aborts the upstream request
//! (the backend sees an incomplete body, never a second request). A chunk extension is
//! not parsed by hyper (`5;\0` passes); weir re-frames the body, so it cannot desync.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_e2e::client;
use weir_e2e::{until, Weir};

use crate::WEIR;

/// How long weir may take to close a connection after refusing a request on it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `(name, bytes)`: each is refused with 400 and the connection closed. No path but
/// `/ok...` may reach the backend (the smuggled inner requests use `/inner`).
const VARIANTS: &[(&str, &[u8])] = &[
    (
        "CL.TE",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    ),
    (
        "TE.CL",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
          1e\r\nGET /inner HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL.TE with other header-name case",
        b"POST /bad HTTP/1.1\r\nHost: x\r\ncontent-length: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL.TE with CL 0",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "CL.TE in HTTP/1.0",
        b"POST /bad HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL.TE smuggled after a good request",
        b"GET /ok-pipelined HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL.TE with bare LF line ends",
        b"POST /bad HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
    ),
    (
        "CL.TE with a tab before chunked",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL.TE on a GET",
        b"GET /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE in HTTP/1.0",
        b"POST /bad HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE identity with CL",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "TE xchunked",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE chunked then identity",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE chunked twice",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE chunked plus a second TE header",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE with space before the colon",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE folded onto a continuation line",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE hidden in a folded header",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE after a bare CR",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE with a vertical tab",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two different Content-Lengths",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        "a Content-Length list of two values",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    ),
    (
        "Content-Length with a plus sign",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    ),
    (
        "negative Content-Length",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
    ),
    (
        "hexadecimal Content-Length",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
    ),
    (
        "Content-Length with inner space",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1 5\r\n\r\nhello",
    ),
    (
        "Content-Length past u64",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\nhello",
    ),
    (
        "space inside a header name",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent Length: 5\r\n\r\nhello",
    ),
    (
        "NUL in a header value",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "chunk size not hexadecimal",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size past u64",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "negative chunk size",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "request line with a fourth field",
        b"POST /bad HTTP/1.1 x\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    ),
];

/// Every status line weir wrote on one connection carrying `bytes`, read to its end: a
/// refusal must also close the connection, so nothing after it can be read as a request.
async fn answers(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // weir may refuse and close before reading it all; the answer is what counts.
    let _ = stream.write_all(bytes).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(CLOSE_TIMEOUT, stream.read_to_end(&mut got)).await;
    read.map_err(|_| {
        let text = String::from_utf8_lossy(&got);
        format!("connection still open after {CLOSE_TIMEOUT:?}, having sent {text:?}")
    })?
    .or_else(|e| match e.kind() {
        // A reset after the answer still ends the connection.
        ErrorKind::ConnectionReset => Ok(0),
        _ => Err(e.to_string()),
    })?;
    // Bodies here are a backend's name or weir's short reasons: no status-line lookalikes.
    let text = String::from_utf8_lossy(&got);
    Ok(text
        .match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i..].split(' ').nth(1)?.parse().ok())
        .collect())
}

#[tokio::test]
async fn ambiguous_framings_are_refused_and_nothing_of_them_is_forwarded() {
    let (weir, backend) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");

    let mut wrong = Vec::new();
    for (name, bytes) in VARIANTS {
        // A good request in front (`/ok...`) is answered first, then the bad one refused.
        let good_first = bytes.starts_with(b"GET /ok");
        let expected: &[u16] = if good_first { &[200, 400] } else { &[400] };
        match answers(addr, bytes).await {
            Ok(statuses) if statuses == expected => {}
            Ok(statuses) => wrong.push(format!("{name}: answered {statuses:?}, want {expected:?}")),
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }

    assert_eq!(client::get(addr, "/marker").await.status, 200);
    until("the marker reaching the backend", || {
        backend.requests().iter().any(|r| r.path == "/marker")
    })
    .await;
    let forwarded: Vec<String> = backend
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| !p.starts_with("/ok") && p != "/marker")
        .collect();
    assert!(
        wrong.is_empty() && forwarded.is_empty(),
        "not refused with 400: {wrong:#?}\nforwarded to the backend: {forwarded:?}"
    );
}

/// A chunked body that breaks after a good first chunk: its head has been forwarded (weir
/// streams bodies), so the backend sees that request aborted, but never the bytes behind
/// the break as a request of their own; the client gets 400, and the backend is not
/// blamed for the client's body (no upstream error, no ejection).
#[tokio::test]
async fn a_chunked_body_breaking_mid_stream_smuggles_nothing_and_blames_no_backend() {
    let (weir, backend) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");

    let bad = b"POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nhelloGET /inner HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n";
    for _ in 0..4 {
        assert_eq!(answers(addr, bad).await, Ok(vec![400]));
    }
    assert_eq!(client::get(addr, "/marker").await.status, 200);
    until("the marker reaching the backend", || {
        backend.requests().iter().any(|r| r.path == "/marker")
    })
    .await;
    let paths: Vec<String> = backend.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().all(|p| p == "/late" || p == "/marker"),
        "the bytes after the broken chunk reached the backend as a request: {paths:?}"
    );
    let metrics = weir.metrics().await;
    assert_eq!(metrics.sum("weir_upstream_errors_total", &[]), 0.0);
    assert!(weir.logs_with("backend down").is_empty());
}
