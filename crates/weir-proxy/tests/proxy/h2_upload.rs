//! HTTP/2 clients streaming a request body to an HTTP/1 backend through weir's engine:
//! the framing the backend sees (chunked, or the client's `Content-Length`), trailers,
//! a backend answering before the upload ends, and a client resetting its stream.
//!
//! The backend here is raw TCP so the tests see the bytes weir wrote, not what a
//! server library made of them; the client is hyper's HTTP/2 client with a body fed
//! frame by frame from the test.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::support::*;

/// A request body the test feeds: each item is one frame (one DATA frame on the wire),
/// an `Err` resets the stream.
struct Fed(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

type Feed = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

async fn h2(addr: SocketAddr) -> SendRequest<Fed> {
    h2_with_window(addr, None).await
}

/// An HTTP/2 client; `window`: its per-stream receive window (else hyper's default).
async fn h2_with_window(
    addr: SocketAddr,
    window: Option<u32>,
) -> hyper::client::conn::http2::SendRequest<Fed> {
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    if let Some(w) = window {
        builder.initial_stream_window_size(w);
    }
    let (tx, conn) = builder
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("test h2 client connection: {e}");
        }
    });
    tx
}

/// A raw backend in `mode`, a proxy in front of it, and an HTTP/2 client of the proxy.
async fn start(mode: Mode) -> (RawBackend, Proxy, SendRequest<Fed>) {
    let b = RawBackend::start(mode).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let c = h2(proxy.addr).await;
    (b, proxy, c)
}

type Answer = JoinHandle<hyper::Result<http::Response<hyper::body::Incoming>>>;

/// Starts an upload on `c` (of `length` if given) and the task awaiting its answer.
fn send_upload(c: &mut SendRequest<Fed>, length: Option<usize>) -> (Answer, Feed) {
    let (req, tx) = upload(length);
    (tokio::spawn(c.send_request(req)), tx)
}

/// The answer of `res`, within `WAIT` (`what` names it in the failure).
async fn answered(res: Answer, what: &str) -> hyper::Result<http::Response<hyper::body::Incoming>> {
    tokio::time::timeout(WAIT, res)
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
        .expect("client task")
}

/// The response of `res`, within `WAIT`.
async fn response(res: Answer, what: &str) -> http::Response<hyper::body::Incoming> {
    answered(res, what).await.expect("response")
}

fn assert_same_body(seen: &Seen, sent: &[u8]) {
    assert!(
        seen.data == sent,
        "body differs ({} bytes)",
        seen.data.len()
    );
}

fn upload(length: Option<usize>) -> (Request<Fed>, Feed) {
    let (tx, rx) = mpsc::channel(4);
    let mut req = Request::post("http://up.test/upload")
        .version(http::Version::HTTP_2)
        .body(Fed(rx))
        .expect("request");
    if let Some(n) = length {
        req.headers_mut()
            .insert("content-length", HeaderValue::from(n));
    }
    (req, tx)
}

async fn feed(tx: &Feed, frame: Frame<Bytes>) {
    tokio::time::timeout(WAIT, tx.send(Ok(frame)))
        .await
        .expect("client body taken in time")
        .expect("client body still open");
}

/// What the raw backend saw of one request.
#[derive(Debug, Default)]
struct Seen {
    head: String,
    data: Vec<u8>,
    /// Chunks (chunked) or reads (`Content-Length`) the body came in.
    pieces: usize,
    trailers: String,
    conn: usize,
}

#[derive(Debug)]
enum Event {
    /// Body bytes arrived (this many).
    Data(usize),
    /// A whole request was read (and answered `200`, unless the backend answers early).
    Request(Seen),
    /// A connection ended (weir closed it), with the connection's number.
    Closed(usize),
}

#[derive(Clone, Copy)]
enum Mode {
    /// Reads each request whole, then answers `200 got N`.
    Read,
    /// Answers `413` right after the head, then keeps reading what comes.
    Early413,
    /// Answers `200` chunked right after the head, then echoes each request chunk as
    /// it arrives, ending its body with the request's.
    Echo,
    /// Answers `101 Switching Protocols` (unasked), then reads until EOF.
    Switch,
}

struct RawBackend {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    events: mpsc::UnboundedReceiver<Event>,
}

impl RawBackend {
    async fn start(mode: Mode) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let (tx, events) = mpsc::unbounded_channel();
        let counted = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    serve_raw(stream, n, mode, &tx).await;
                    let _ = tx.send(Event::Closed(n));
                });
            }
        });
        RawBackend {
            addr,
            conns,
            events,
        }
    }

    async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("backend event in time")
            .expect("backend running")
    }

    async fn data(&mut self) -> usize {
        match self.next().await {
            Event::Data(n) => n,
            other => panic!("expected body bytes, got {other:?}"),
        }
    }

    async fn request(&mut self) -> Seen {
        loop {
            match self.next().await {
                Event::Data(_) => {}
                Event::Request(seen) => return seen,
                other @ Event::Closed(_) => panic!("expected a request, got {other:?}"),
            }
        }
    }

    async fn closed(&mut self) -> usize {
        loop {
            match self.next().await {
                Event::Closed(n) => return n,
                Event::Data(_) => {}
                other @ Event::Request(_) => {
                    panic!("expected the connection to close, got {other:?}")
                }
            }
        }
    }
}

/// One backend connection: requests read with their framing decoded, until EOF.
async fn serve_raw(stream: TcpStream, conn: usize, mode: Mode, tx: &mpsc::UnboundedSender<Event>) {
    let mut rd = BufReader::new(stream);
    loop {
        let mut seen = Seen {
            conn,
            ..Seen::default()
        };
        loop {
            let mut line = String::new();
            match rd.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            seen.head.push_str(&line.to_ascii_lowercase());
        }
        // Modes that answer right after the head, then only read what comes.
        let early: Option<&[u8]> = match mode {
            Mode::Switch => Some(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n",
            ),
            Mode::Early413 => {
                Some(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!")
            }
            Mode::Read | Mode::Echo => None,
        };
        if let Some(answer) = early {
            if rd.get_mut().write_all(answer).await.is_err() {
                return;
            }
            let mut sink = [0u8; 4096];
            while let Ok(n @ 1..) = rd.read(&mut sink).await {
                let _ = tx.send(Event::Data(n));
            }
            return;
        }
        let echo = matches!(mode, Mode::Echo);
        if echo {
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if rd.get_mut().write_all(head).await.is_err() {
                return;
            }
        }
        let length = seen
            .head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().expect("numeric length"));
        if let Some(mut left) = length {
            while left > 0 {
                let mut piece = vec![0u8; left.min(64 * 1024)];
                let Ok(n @ 1..) = rd.read(&mut piece).await else {
                    return;
                };
                seen.data.extend_from_slice(&piece[..n]);
                seen.pieces += 1;
                left -= n;
                let _ = tx.send(Event::Data(n));
            }
        } else if seen.head.contains("transfer-encoding: chunked") {
            loop {
                let mut size = String::new();
                if rd.read_line(&mut size).await.unwrap_or(0) == 0 {
                    return;
                }
                let size = usize::from_str_radix(size.trim_end(), 16).expect("hex chunk size");
                if size == 0 {
                    loop {
                        let mut t = String::new();
                        if rd.read_line(&mut t).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if t == "\r\n" {
                            break;
                        }
                        seen.trailers.push_str(&t);
                    }
                    break;
                }
                let mut chunk = vec![0u8; size + 2];
                if rd.read_exact(&mut chunk).await.is_err() {
                    return;
                }
                assert_eq!(&chunk[size..], b"\r\n", "chunk not closed by CRLF");
                if echo {
                    let mut back = format!("{size:x}\r\n").into_bytes();
                    back.extend_from_slice(&chunk);
                    if rd.get_mut().write_all(&back).await.is_err() {
                        return;
                    }
                }
                seen.data.extend_from_slice(&chunk[..size]);
                seen.pieces += 1;
                let _ = tx.send(Event::Data(size));
            }
        }
        if echo {
            if rd.get_mut().write_all(b"0\r\n\r\n").await.is_err() {
                return;
            }
            let _ = tx.send(Event::Request(seen));
            continue;
        }
        let body = format!("got {}", seen.data.len());
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if rd.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let _ = tx.send(Event::Request(seen));
    }
}

fn piece(i: usize) -> Bytes {
    Bytes::from(vec![b'a' + (i % 26) as u8; 1000 + i])
}

/// Sends `pieces` one DATA frame at a time, each once the backend got the one before
/// (so they are several frames, not one buffered body).
async fn feed_in_steps(b: &mut RawBackend, tx: &Feed, pieces: usize) -> Vec<u8> {
    let mut sent = Vec::new();
    for i in 0..pieces {
        let p = piece(i);
        sent.extend_from_slice(&p);
        feed(tx, Frame::data(p)).await;
        let mut got = 0;
        while got < 1000 + i {
            got += b.data().await;
        }
    }
    sent
}

/// The answer to `res` is a 200 whose body is exactly `sent` (the echo backend's).
async fn assert_echoed(res: Answer, what: &str, sent: &[u8]) {
    let res = response(res, what).await;
    assert_eq!(res.status(), StatusCode::OK);
    let echoed = tokio::time::timeout(WAIT, res.into_body().collect())
        .await
        .expect("answer in time")
        .expect("answer")
        .to_bytes();
    assert!(echoed == sent, "echo differs ({} bytes)", echoed.len());
}

async fn body_text(res: http::Response<hyper::body::Incoming>) -> String {
    let body = tokio::time::timeout(WAIT, res.into_body().collect())
        .await
        .expect("response body in time")
        .expect("response body");
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

#[tokio::test]
async fn streamed_h2_upload_of_unknown_length_reaches_the_backend_chunked() {
    let (mut b, _proxy, mut c) = start(Mode::Read).await;
    for round in 0..2 {
        let (res, tx) = send_upload(&mut c, None);
        let sent = feed_in_steps(&mut b, &tx, 3).await;
        drop(tx);
        let seen = b.request().await;
        assert!(
            seen.head.starts_with("post /upload http/1.1\r\n"),
            "{}",
            seen.head
        );
        assert!(
            seen.head.contains("transfer-encoding: chunked\r\n"),
            "{}",
            seen.head
        );
        assert!(!seen.head.contains("content-length"), "{}", seen.head);
        assert_eq!(
            seen.head.matches("\r\nhost: up.test\r\n").count(),
            1,
            "{}",
            seen.head
        );
        assert_same_body(&seen, &sent);
        assert_eq!(seen.pieces, 3, "one chunk per DATA frame");
        assert_eq!(seen.conn, 1, "round {round}: the connection was reused");
        let res = response(res, "response").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_text(res).await, format!("got {}", sent.len()));
    }
    assert_eq!(b.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streamed_h2_upload_with_content_length_keeps_it() {
    let (mut b, _proxy, mut c) = start(Mode::Read).await;
    let total: usize = (0..3).map(|i| piece(i).len()).sum();
    let (res, tx) = send_upload(&mut c, Some(total));
    let sent = feed_in_steps(&mut b, &tx, 3).await;
    drop(tx);
    let seen = b.request().await;
    assert!(
        seen.head.contains(&format!("content-length: {total}\r\n")),
        "{}",
        seen.head
    );
    assert!(!seen.head.contains("transfer-encoding"), "{}", seen.head);
    assert_same_body(&seen, &sent);
    let res = response(res, "response").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, format!("got {total}"));
}

#[tokio::test]
async fn trailers_of_a_streamed_h2_upload_are_sent_as_chunked_trailers() {
    let (mut b, _proxy, mut c) = start(Mode::Read).await;
    let (res, tx) = send_upload(&mut c, None);
    let sent = feed_in_steps(&mut b, &tx, 2).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    // Framing, routing, hop-by-hop and weir's own fields may not come as trailers:
    // dropped.
    trailers.insert("content-length", HeaderValue::from_static("5"));
    trailers.insert("proxy-authorization", HeaderValue::from_static("basic x"));
    trailers.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
    trailers.insert("x-request-id", HeaderValue::from_static("spoofed"));
    feed(&tx, Frame::trailers(trailers)).await;
    drop(tx);
    let seen = b.request().await;
    assert_same_body(&seen, &sent);
    assert_eq!(seen.trailers, "x-checksum: abc123\r\n");
    let res = response(res, "response").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_backend_answering_413_mid_upload_reaches_the_client_at_once() {
    let (mut b, _proxy, mut c) = start(Mode::Early413).await;
    let (res, tx) = send_upload(&mut c, None);
    feed(&tx, Frame::data(piece(0))).await;
    b.data().await;
    // The client has not ended its body and never will: the answer must not wait for it.
    let res = response(res, "early response").await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_text(res).await, "too big!");
    // Left mid-request, the backend connection is closed, not pooled.
    assert_eq!(b.closed().await, 1);
    drop(tx);
}

#[tokio::test]
async fn a_backend_switching_protocols_unasked_is_a_502_and_its_connection_is_closed() {
    let (mut b, _proxy, mut c) = start(Mode::Switch).await;
    let (req, tx) = upload(None);
    drop(tx);
    let res = tokio::time::timeout(WAIT, c.send_request(req))
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    // The connection speaks another protocol now: closed, never pooled for the next
    // request.
    assert_eq!(b.closed().await, 1);
}

#[tokio::test]
async fn a_client_resetting_its_upload_closes_the_backend_connection() {
    let (mut b, _proxy, mut c) = start(Mode::Read).await;
    let (res, tx) = send_upload(&mut c, None);
    feed_in_steps(&mut b, &tx, 1).await;
    // An error from the body makes hyper's client reset the stream.
    tx.send(Err(std::io::Error::other("client gave up")))
        .await
        .expect("client body still open");
    assert_eq!(b.closed().await, 1, "the half-sent request's connection");
    let res = answered(res, "client told").await;
    assert!(res.is_err(), "a reset stream got a response: {res:?}");
    // The next stream on the same client connection gets a new backend connection.
    let (res, tx) = send_upload(&mut c, None);
    let sent = feed_in_steps(&mut b, &tx, 1).await;
    drop(tx);
    let seen = b.request().await;
    assert!(seen.data == sent);
    assert_eq!(seen.conn, 2);
    let res = response(res, "response").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_backend_echoing_as_it_reads_gets_the_rest_while_its_answer_streams() {
    let (mut b, _proxy, mut c) = start(Mode::Echo).await;
    for round in 0..2 {
        let (res, tx) = send_upload(&mut c, None);
        feed(&tx, Frame::data(piece(0))).await;
        // The answer's head comes before the upload ended.
        let res = response(res, "response head").await;
        assert_eq!(res.status(), StatusCode::OK);
        let mut body = res.into_body();
        let mut echoed = Vec::new();
        for i in 0..3 {
            if i > 0 {
                feed(&tx, Frame::data(piece(i))).await;
            }
            // Each piece comes back before the next is sent: both directions move at once.
            while echoed.len() < (0..=i).map(|j| piece(j).len()).sum::<usize>() {
                let frame = tokio::time::timeout(WAIT, body.frame())
                    .await
                    .expect("echo in time")
                    .expect("body not ended")
                    .expect("body frame");
                echoed.extend_from_slice(frame.data_ref().expect("data"));
            }
        }
        drop(tx);
        let rest = tokio::time::timeout(WAIT, body.collect())
            .await
            .expect("end in time")
            .expect("body end");
        assert!(rest.to_bytes().is_empty());
        let sent: Vec<u8> = (0..3).flat_map(|i| piece(i).to_vec()).collect();
        assert!(echoed == sent, "echo differs ({} bytes)", echoed.len());
        let seen = b.request().await;
        assert!(seen.data == sent);
        assert_eq!(seen.conn, 1, "round {round}: the connection was reused");
    }
}

#[tokio::test]
async fn an_early_answer_does_not_hold_up_an_upload_the_client_sends_before_reading() {
    // The client sends its whole body before it reads any of the answer, which the
    // backend echoes as it reads: far more than the client's 64 KiB stream window.
    let mut b = RawBackend::start(Mode::Echo).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let mut c = h2_with_window(proxy.addr, Some(65_535)).await;
    let (res, tx) = send_upload(&mut c, None);
    let pieces: Vec<Bytes> = (0..24)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; 16 * 1024]))
        .collect();
    for p in &pieces {
        // Times out if weir stopped taking the upload once the answer filled the window.
        feed(&tx, Frame::data(p.clone())).await;
    }
    drop(tx);
    let seen = b.request().await;
    let sent: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
    assert!(
        seen.data == sent,
        "upload differs ({} bytes)",
        seen.data.len()
    );
    assert_echoed(res, "response", &sent).await;
}

#[tokio::test]
async fn an_upload_stalled_after_the_answer_is_reset_after_the_idle_timeout() {
    let mut b = RawBackend::start(Mode::Echo).await;
    let mut listener = http_listener("app");
    listener.timeouts.idle = std::time::Duration::from_millis(300);
    let proxy = Proxy::start(config(listener, vec![pool("app", &[b.addr])])).await;
    let mut c = h2(proxy.addr).await;
    let (res, tx) = send_upload(&mut c, None);
    feed(&tx, Frame::data(piece(0))).await;
    let res = response(res, "response head").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    // The echo of what was sent keeps the stream alive; then the client sends nothing
    // more and never ends its body, and the backend waits for it.
    let end = tokio::time::timeout(WAIT, async {
        let mut echoed = 0;
        loop {
            match body.frame().await {
                Some(Ok(f)) => echoed += f.data_ref().map_or(0, |d| d.len()),
                Some(Err(e)) => return (echoed, Err(e)),
                None => return (echoed, Ok(())),
            }
        }
    })
    .await
    .expect("the stalled stream ended within the test's bound");
    assert_eq!(end.0, piece(0).len(), "the echo came before the reset");
    assert!(
        end.1.is_err(),
        "a stalled upload's answer ended as if complete"
    );
    // Left mid-request and mid-answer, the backend connection is closed, not pooled.
    assert_eq!(b.closed().await, 1);
    drop(tx);
    // The client's connection still serves: the next upload gets a new backend connection.
    let (res, tx) = send_upload(&mut c, None);
    let sent = feed_in_steps(&mut b, &tx, 1).await;
    drop(tx);
    assert_echoed(res, "next response", &sent).await;
}
