//! Issue 8, defect 7: every response framing rule of RFC 9112 §6.3, each with a raw
//! backend writing exact bytes and a raw client reading exact bytes. After each odd
//! response the client asks again on the same connection: it must get exactly the next
//! response (or see its connection closed), never a piece of the previous body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawBackend, RawRequest};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const NEXT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext";
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How a response's body was delimited on the wire to the client.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length,
    Chunked,
    /// Read until the connection closed.
    Close,
    /// No body by its status or method.
    None,
}

#[derive(Debug)]
struct Exact {
    status: u16,
    head: String,
    body: Vec<u8>,
    framing: Framing,
}

impl Exact {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A client connection that reads responses byte-exact and keeps what follows them.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect to weir");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, version: &str) {
        let req = format!("{method} {path} {version}\r\nhost: framing.test\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await.expect("write");
    }

    /// Reads more bytes; 0 at EOF or reset.
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "weir sent nothing for {READ_TIMEOUT:?}; have {:?}",
                self.text()
            ),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await == 0 {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.drain(..i + 2).collect::<Vec<u8>>();
                return Some(line[..i].to_vec());
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// One whole response, framed as its head says; panics on a truncated one.
    async fn response(&mut self, head_request: bool) -> Exact {
        let mut head = String::new();
        loop {
            let line = self.line().await.expect("connection closed inside a head");
            if line.is_empty() {
                break;
            }
            head.push_str(&String::from_utf8_lossy(&line));
            head.push('\n');
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let mut r = Exact {
            status,
            head,
            body: Vec::new(),
            framing: Framing::None,
        };
        if head_request || status == 204 || status == 304 || status < 200 {
            return r;
        }
        if r.header("transfer-encoding").is_some() {
            assert_eq!(
                r.header("content-length"),
                None,
                "both framings: {}",
                r.head
            );
            r.framing = Framing::Chunked;
            loop {
                let size = self.line().await.expect("closed inside a chunked body");
                let size =
                    usize::from_str_radix(&String::from_utf8_lossy(&size), 16).expect("chunk size");
                if size == 0 {
                    assert_eq!(self.line().await.as_deref(), Some(&b""[..]), "trailers");
                    return r;
                }
                let data = self.take(size + 2).await.expect("closed inside a chunk");
                r.body.extend_from_slice(&data[..size]);
            }
        }
        if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            r.framing = Framing::Length;
            r.body = self
                .take(len)
                .await
                .unwrap_or_else(|| panic!("body cut short of its {len} bytes: {:?}", self.text()));
            return r;
        }
        r.framing = Framing::Close;
        while self.fill().await > 0 {}
        r.body = std::mem::take(&mut self.buf);
        r
    }

    /// Whether weir closed the connection (EOF or reset) without sending anything more.
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }
}

/// weir in front of a raw backend answering `/bad` with `bad` (closing after it when
/// `close`) and anything else with `next`.
async fn setup(bad: &[u8], close: bool) -> (Weir, SocketAddr, RawBackend) {
    let bad = bad.to_vec();
    let (addr, backend) = spawn_raw_backend(move |r: &RawRequest| {
        if r.head.contains(" /bad ") {
            if close {
                RawAction::WriteClose(bad.clone())
            } else {
                RawAction::Write(bad.clone())
            }
        } else {
            RawAction::Write(NEXT.to_vec())
        }
    })
    .await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[addr]), "")).await;
    let listen = weir.listener_addr("web");
    (weir, listen, backend)
}

/// Sends `/bad` then `/next` on one connection; returns the first response and checks
/// the second is exactly `next`.
async fn bad_then_next(listen: SocketAddr, method: &str) -> Exact {
    let mut c = Conn::open(listen).await;
    c.send(method, "/bad", "HTTP/1.1").await;
    let first = c.response(method == "HEAD").await;
    c.send("GET", "/next", "HTTP/1.1").await;
    let next = c.response(false).await;
    assert_eq!(
        (next.status, &next.body[..]),
        (200, &b"next"[..]),
        "{next:?}"
    );
    first
}

/// `bad` (behind a backend closing after it if `close`) is answered 502 and the next
/// request goes to a new connection; `what` names the case in a failure.
async fn gets_502_and_costs_the_connection(bad: &[u8], close: bool, what: &str) {
    let (_weir, listen, backend) = setup(bad, close).await;
    let r = bad_then_next(listen, "GET").await;
    assert_eq!(r.status, 502, "{what}: {r:?}");
    next_on_a_new_connection(&backend);
}

/// The `/next` request reached the backend on a connection of its own: the one that
/// carried the bad response was not reused.
fn next_on_a_new_connection(backend: &RawBackend) {
    let reqs = backend.requests();
    let next = reqs
        .iter()
        .find(|r| r.head.contains(" /next "))
        .expect("/next");
    assert_eq!(
        next.index, 0,
        "backend connection reused after a bad response: {reqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_chunked_is_forwarded_chunked_without_the_length() {
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n\
                5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n";
    let (_weir, listen, backend) = setup(bad, false).await;
    let r = bad_then_next(listen, "GET").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"0123456789"[..]), "{r:?}");
    assert_eq!(r.framing, Framing::Chunked);
    next_on_a_new_connection(&backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differing_or_invalid_content_lengths_get_502_and_cost_the_connection() {
    for (case, bad) in [
        (
            "differing lengths",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"[..],
        ),
        (
            "invalid length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
        ),
        (
            "invalid length",
            b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        ),
    ] {
        gets_502_and_costs_the_connection(bad, false, case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_codings_other_than_a_single_chunked_get_502() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n\x1f\x8b\x08\x00",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
    ] {
        gets_502_and_costs_the_connection(bad, true, "transfer coding").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_response_keeps_its_length_and_sends_no_body() {
    let (_weir, listen, backend) =
        setup(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false).await;
    let r = bad_then_next(listen, "HEAD").await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    // A well-formed HEAD answer leaves the backend connection reusable.
    let reqs = backend.requests();
    assert_eq!(reqs.last().map(|r| r.index), Some(1), "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_after_a_head_response_is_not_taken_for_the_next_response() {
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    let (_weir, listen, backend) = setup(bad, false).await;
    let r = bad_then_next(listen, "HEAD").await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    next_on_a_new_connection(&backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_and_not_modified_carry_no_body() {
    for (bad, status) in [
        (
            &b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"[..],
            204,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            304,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",
            304,
        ),
    ] {
        let (_weir, listen, _backend) = setup(bad, false).await;
        let r = bad_then_next(listen, "GET").await;
        assert_eq!(r.status, status, "{r:?}");
        if status == 204 {
            assert_eq!(r.header("content-length"), None, "RFC 9110 §8.6: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_responses_before_the_final_one_are_consumed() {
    let bad = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\
                link: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let (_weir, listen, _backend) = setup(bad, false).await;
    let r = bad_then_next(listen, "GET").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_body_is_rechunked_or_closed() {
    let bad = b"HTTP/1.1 200 OK\r\n\r\nuntil-close";
    let (_weir, listen, _backend) = setup(bad, true).await;
    // HTTP/1.1 client: chunked, and the connection goes on.
    let r = bad_then_next(listen, "GET").await;
    assert_eq!(
        (r.framing, &r.body[..]),
        (Framing::Chunked, &b"until-close"[..])
    );
    // HTTP/1.0 client: no chunked coding, so delimited by weir closing.
    let mut c = Conn::open(listen).await;
    c.send("GET", "/bad", "HTTP/1.0").await;
    let r = c.response(false).await;
    assert_eq!(
        (r.framing, &r.body[..]),
        (Framing::Close, &b"until-close"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_closes_the_client_connection() {
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234";
    let (_weir, listen, _backend) = setup(bad, true).await;
    let mut c = Conn::open(listen).await;
    c.send("GET", "/bad", "HTTP/1.1").await;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(c.take(1).await.expect("a response head"));
    }
    let got = c.take(5).await.expect("the 5 bytes the backend sent");
    assert_eq!(got, b"01234");
    assert!(
        c.closed().await,
        "connection left open after a short body: {:?}",
        c.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_content_length_body_are_not_the_next_response() {
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nforge";
    let (_weir, listen, backend) = setup(bad, false).await;
    let r = bad_then_next(listen, "GET").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    next_on_a_new_connection(&backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_over_16_kib_gets_502() {
    let head = |n: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
            "a".repeat(n)
        )
    };
    let (_weir, listen, _backend) = setup(head(12 * 1024).as_bytes(), false).await;
    assert_eq!(bad_then_next(listen, "GET").await.status, 200);
    // Far past it too: a read may fill past the buffer's size, so the parsed head's
    // size is checked as well (with a 32 KiB buffer, a 40 KiB head passed).
    for n in [20, 40] {
        gets_502_and_costs_the_connection(head(n * 1024).as_bytes(), false, &format!("{n} KiB"))
            .await;
    }
}
