//! weir-h2's connection against a real HTTP/2 client: h2's (the one hyper uses, and so
//! curl-like clients in Rust), over an in-memory pipe. Concurrent streams, downloads
//! larger than every window (the server waits for WINDOW_UPDATEs), uploads larger than
//! its own windows (the client waits for weir's), trailers, a client's reset and GOAWAY.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use weir_h2::conn::{Config, Connection, Event};
use weir_h2::frame::Reason;

const CONFIG: Config = Config {
    max_concurrent_streams: 100,
    initial_stream_window: 65_535,
    initial_connection_window: 1 << 20,
    max_header_list_size: 64 * 1024,
    max_pending_reset_streams: 20,
    max_stream_errors: 20,
};

/// A response still being sent: its stream, its body and how much went.
struct Sending {
    stream: u32,
    body: Vec<u8>,
    sent: usize,
}

/// Serves one connection: `GET /N` answers N bytes; `POST` echoes its body, with a
/// trailer counting it.
async fn serve(io: DuplexStream) -> Result<(), Reason> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut conn = Connection::new(CONFIG);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    let mut sending: Vec<Sending> = Vec::new();
    let mut uploads: HashMap<u32, Vec<u8>> = HashMap::new();
    loop {
        for s in &mut sending {
            s.sent += conn.send_data(s.stream, &s.body[s.sent..], false);
            if s.sent == s.body.len() {
                let count = s.body.len().to_string();
                conn.send_trailers(s.stream, [(&b"x-sent"[..], count.as_bytes())]);
            }
        }
        sending.retain(|s| s.sent < s.body.len());
        let out = std::mem::take(conn.output());
        if !out.is_empty() {
            wr.write_all(&out)
                .await
                .map_err(|_| Reason::INTERNAL_ERROR)?;
        }
        let n = rd
            .read(&mut chunk)
            .await
            .map_err(|_| Reason::INTERNAL_ERROR)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        loop {
            let (n, event) = match conn.receive(&buf[used..]) {
                Ok((0, _)) => break,
                Ok(step) => step,
                Err(fatal) => {
                    let out = std::mem::take(conn.output());
                    let _ = wr.write_all(&out).await;
                    return Err(fatal.reason);
                }
            };
            used += n;
            match event {
                Some(Event::Request {
                    stream,
                    head,
                    end_stream,
                }) => {
                    let block = conn.block();
                    let path = head
                        .path
                        .map(|p| block.value(&p).to_vec())
                        .unwrap_or_default();
                    let method = block.value(&head.method).to_vec();
                    if method == b"POST" {
                        uploads.insert(stream, Vec::new());
                        if end_stream {
                            conn.send_response(stream, 200, [], true);
                        }
                        continue;
                    }
                    let size: usize = std::str::from_utf8(&path[1..])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let length = size.to_string();
                    conn.send_response(
                        stream,
                        200,
                        [(&b"content-length"[..], length.as_bytes(), false)],
                        false,
                    );
                    sending.push(Sending {
                        stream,
                        body: vec![b'w'; size],
                        sent: 0,
                    });
                }
                Some(Event::Data {
                    stream,
                    data,
                    end_stream,
                }) => {
                    let len = data.len() as u32;
                    if let Some(body) = uploads.get_mut(&stream) {
                        body.extend_from_slice(data);
                    }
                    conn.release(stream, len);
                    if end_stream {
                        let body = uploads.remove(&stream).unwrap_or_default();
                        conn.send_response(stream, 200, [], false);
                        sending.push(Sending {
                            stream,
                            body,
                            sent: 0,
                        });
                    }
                }
                Some(Event::Reset { stream, .. }) => sending.retain(|s| s.stream != stream),
                _ => {}
            }
        }
        buf.drain(..used);
    }
}

async fn client() -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), Reason>>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(b));
    let (send, conn) = h2::client::handshake(a).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, server)
}

async fn get(send: &mut h2::client::SendRequest<Bytes>, size: usize) -> (u16, usize) {
    let req = Request::get(format!("http://a.test/{size}"))
        .body(())
        .expect("request");
    let (resp, _) = send.send_request(req, true).expect("sent");
    let resp = resp.await.expect("response");
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut got = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        got += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.expect("trailers");
    let sent = trailers.and_then(|t| {
        t.get("x-sent")
            .map(|v| v.to_str().unwrap_or("").to_string())
    });
    assert_eq!(sent, Some(got.to_string()), "the trailer counts the body");
    (status, got)
}

#[tokio::test]
async fn concurrent_downloads_larger_than_every_window_arrive_whole() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (send, _server) = client().await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let mut send = send.clone();
            tasks.push(tokio::spawn(async move {
                get(&mut send, 100_000 + i * 1000).await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("task"), (200, 100_000 + i * 1000));
        }
    })
    .await
    .expect("within 30 s");
}

#[tokio::test]
async fn an_upload_larger_than_weirs_windows_is_echoed() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (mut send, _server) = client().await;
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let req = Request::builder()
            .method(Method::POST)
            .uri("http://a.test/echo")
            .body(())
            .expect("request");
        let (resp, mut stream) = send.send_request(req, false).expect("sent");
        let upload = body.clone();
        let uploader = tokio::spawn(async move {
            let mut rest = Bytes::from(upload);
            while !rest.is_empty() {
                stream.reserve_capacity(rest.len());
                let cap = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                    .await
                    .expect("capacity")
                    .expect("no error");
                let part = rest.split_to(cap.min(rest.len()));
                stream.send_data(part, rest.is_empty()).expect("data");
            }
        });
        let resp = resp.await.expect("response");
        assert_eq!(resp.status(), 200);
        let mut got = Vec::new();
        let mut body_in = resp.into_body();
        while let Some(chunk) = body_in.data().await {
            let chunk = chunk.expect("data");
            let _ = body_in.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        uploader.await.expect("uploader");
        assert_eq!(got, body);
    })
    .await
    .expect("within 30 s");
}

#[tokio::test]
async fn a_reset_stream_ends_and_the_connection_goes_on() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (mut send, server) = client().await;
        let req = Request::get("http://a.test/5000000")
            .body(())
            .expect("request");
        let (resp, _) = send.send_request(req, true).expect("sent");
        let resp = resp.await.expect("response");
        drop(resp); // h2 resets a stream whose body is dropped unread (CANCEL)
        assert_eq!(get(&mut send, 1234).await, (200, 1234));
        drop(send);
        assert_eq!(
            server.await.expect("server task"),
            Ok(()),
            "no protocol error"
        );
    })
    .await
    .expect("within 30 s");
}
