//! Limits against bad clients: smuggling attempts, oversized heads, idle connections.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::*;

async fn refused_without_reaching_backend(request: &[u8]) -> String {
    let (b, proxy) = Proxy::http_to_a().await;
    let response = raw(proxy.addr, request).await;
    assert_eq!(
        b.hits(),
        0,
        "backend saw the request; client got {response:?}"
    );
    assert_eq!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "backend contacted"
    );
    response
}

/// [`refused_without_reaching_backend`], and the answer is a 400 (which it returns).
async fn refused_with_400(request: &[u8]) -> String {
    let res = refused_without_reaching_backend(request).await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    res
}

#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400() {
    for request in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    ] {
        let res = refused_with_400(request).await;
        assert!(res.contains("Transfer-Encoding and Content-Length"), "{res}");
    }
}

#[tokio::test]
async fn smuggled_second_request_after_a_good_one_is_refused() {
    let (b, proxy) = Proxy::http_to_a().await;
    let res = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("HTTP/1.1 400"), "{res}");
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn conflicting_content_lengths_get_400() {
    refused_with_400(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello").await;
}

#[tokio::test]
async fn bad_chunk_size_gets_400() {
    refused_with_400(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn transfer_coding_other_than_chunked_gets_400() {
    for request in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ] {
        refused_with_400(request).await;
    }
}

#[tokio::test]
async fn oversized_header_gets_431() {
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 70 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let res = refused_without_reaching_backend(&request).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
}

#[tokio::test]
async fn idle_client_connection_is_closed() {
    let b = backend(Behaviour::Name("a")).await;
    let mut listener = http_listener("app");
    listener.timeouts.idle = Duration::from_millis(200);
    let proxy = Proxy::start(config(listener, vec![pool("app", &[b.addr])])).await;
    let mut c = client(proxy.addr).await;
    assert_eq!(send(&mut c, get("/")).await.0, http::StatusCode::OK);
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0, "idle connection closed without a response");
    tokio::time::timeout(WAIT, async {
        while !c.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("kept-alive connection closed once idle");
}
