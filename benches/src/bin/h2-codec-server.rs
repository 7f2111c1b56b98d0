//! `h2-codec-server`: the same fixed HTTP/2 (h2c) answer served two ways, to measure what
//! weir's own codec (`weir-h2`) saves over the hyper + h2 server weir uses today, with
//! nothing else in the way (no routing, no backend).
//!
//! Every request gets `200` with the head nginx sends for a 612-byte static file plus a
//! never-indexed `x-request-id`, and those 612 bytes: the response of
//! `benches/compare/h2.sh`. `benches/compare/h2_codec.sh` runs each mode under callgrind
//! with h2load and reports instructions per request.
//!
//! ```text
//! h2-codec-server weir|hyper ADDR
//! ```
//!
//! `weir` is a minimal loop around [`weir_h2::conn::Connection`] (one task per
//! connection, one read buffer, answers written as the frames are read); `hyper` is
//! hyper's HTTP/2 server with its defaults and a `service_fn`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_h2::conn::{Config, Connection, Event};

const BODY: [u8; 612] = [b'w'; 612];

/// nginx's head for the file, as weir forwards it.
const HEAD: [(&str, &str); 7] = [
    ("server", "nginx/1.22.1"),
    ("date", "Thu, 03 Dec 2026 17:05:04 GMT"),
    ("content-type", "text/html"),
    ("content-length", "612"),
    ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
    ("etag", "\"674c3a10-264\""),
    ("accept-ranges", "bytes"),
];
const REQUEST_ID: &str = "3f9c2a7d41e08b6c5d2e9f1a0b7c4d83";

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(addr)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: h2-codec-server weir|hyper ADDR");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let hyper = match mode.as_str() {
        "weir" => false,
        "hyper" => true,
        other => {
            eprintln!("mode is weir or hyper, not {other}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (sock, _) = listener.accept().await?;
            sock.set_nodelay(true)?;
            if hyper {
                tokio::spawn(serve_hyper(sock));
            } else {
                tokio::spawn(serve_weir(sock));
            }
        }
    })
}

async fn serve_weir(mut sock: TcpStream) {
    let mut conn = Connection::new(Config {
        max_concurrent_streams: 100,
        initial_stream_window: 65_535,
        initial_connection_window: 1 << 20,
        max_header_list_size: 64 * 1024,
        max_pending_reset_streams: 100,
        max_stream_errors: 100,
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    // Answers the flow-control windows held up, retried when they open.
    let mut waiting: Vec<(u32, usize)> = Vec::new();
    loop {
        if !conn.output().is_empty() {
            if sock.write_all(conn.output()).await.is_err() {
                return;
            }
            conn.output().clear();
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match sock.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut used = 0;
        loop {
            let (n, event) = match conn.receive(&buf[used..filled]) {
                Ok((0, _)) => break,
                Ok(step) => step,
                Err(_) => {
                    let _ = sock.write_all(conn.output()).await;
                    return;
                }
            };
            used += n;
            match event {
                Some(Event::Request { stream, .. }) => {
                    let fields = HEAD
                        .iter()
                        .map(|(n, v)| (n.as_bytes(), v.as_bytes(), false))
                        .chain([(&b"x-request-id"[..], REQUEST_ID.as_bytes(), true)]);
                    conn.send_response(stream, 200, fields, false);
                    let sent = conn.send_data(stream, &BODY, true);
                    if sent < BODY.len() {
                        waiting.push((stream, sent));
                    }
                }
                Some(Event::Data { stream, data, .. }) => conn.release(stream, data.len() as u32),
                Some(Event::WindowOpened) => {
                    waiting.retain_mut(|(stream, sent)| {
                        *sent += conn.send_data(*stream, &BODY[*sent..], true);
                        *sent < BODY.len()
                    });
                }
                Some(Event::Reset { stream, .. }) => waiting.retain(|(s, _)| *s != stream),
                _ => {}
            }
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
}

async fn serve_hyper(sock: TcpStream) {
    let svc = hyper::service::service_fn(|_req| async {
        let mut resp = http::Response::new(Full::new(Bytes::from_static(&BODY)));
        let headers = resp.headers_mut();
        for (n, v) in HEAD {
            headers.insert(n, http::HeaderValue::from_static(v));
        }
        let mut id = http::HeaderValue::from_static(REQUEST_ID);
        id.set_sensitive(true);
        headers.insert("x-request-id", id);
        Ok::<_, Infallible>(resp)
    });
    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
        .await;
}
