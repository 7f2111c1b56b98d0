//! Malformed and ambiguous requests are refused at the edge and never reach a backend
//! (no request smuggling, DESIGN.md §4 "Limits against bad clients").
//!
//! Each test sends a good request, the bad one, then another good one on a fresh
//! connection. The backend must see exactly the two good ones: the last one is the event
//! that proves anything forwarded before it would have arrived already.

use std::net::SocketAddr;

use weir_e2e::client::{self, raw};
use weir_e2e::config::one_backend_listener;
use weir_e2e::{eventually, spawn_backend, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

async fn setup() -> (Weir, SocketAddr, BackendHandle) {
    let (weir, ha) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");
    let resp = client::get(addr, "/before").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    (weir, addr, ha)
}

/// Sends `bad`, expects `status`, then checks the backend only ever saw the good requests.
async fn refused_before_the_backend(bad: &[u8], status: u16) -> raw::RawResponse {
    let (_weir, addr, backend) = setup().await;
    let resp = raw::exchange(addr, bad)
        .await
        .unwrap_or_else(|e| panic!("no answer to the malformed request: {e}"));
    assert_eq!(resp.status, status, "{}\n{}", resp.head, resp.text());

    let after = client::get(addr, "/after").await;
    assert_eq!(after.status, 200, "weir still serves after the bad request");
    eventually(
        "the good request after the bad one reaching the backend",
        || {
            let n = backend.hits();
            async move { (n >= 2).then_some(()) }
        },
    )
    .await;
    let paths: Vec<String> = backend.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/before", "/after"],
        "the malformed request reached the backend"
    );
    resp
}

#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400() {
    let bad = b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    refused_before_the_backend(bad, 400).await;
}

#[tokio::test]
async fn two_different_content_lengths_get_400() {
    let bad = b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
        Content-Length: 6\r\n\r\nhello!";
    refused_before_the_backend(bad, 400).await;
}

#[tokio::test]
async fn bad_chunk_size_gets_400() {
    let bad = b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        zz\r\nhello\r\n0\r\n\r\n";
    refused_before_the_backend(bad, 400).await;
}

// Host rules of RFC 9112 §3.2 (issue 8, defect 8): a request that could be routed by
// one host and served for another is refused.

#[tokio::test]
async fn two_host_headers_get_400() {
    let bad = b"GET /smuggle HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n";
    let resp = refused_before_the_backend(bad, 400).await;
    assert!(
        resp.text().contains("more than one Host"),
        "{}",
        resp.text()
    );
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.head);
}

#[tokio::test]
async fn two_identical_host_headers_or_a_host_with_userinfo_get_400() {
    for bad in [
        &b"GET /smuggle HTTP/1.1\r\nHost: api.test\r\nHost: api.test\r\n\r\n"[..],
        b"GET /smuggle HTTP/1.1\r\nHost: user@api.test\r\n\r\n",
    ] {
        refused_before_the_backend(bad, 400).await;
    }
}

#[tokio::test]
async fn http_1_1_without_host_gets_400() {
    let resp = refused_before_the_backend(b"GET /smuggle HTTP/1.1\r\n\r\n", 400).await;
    assert!(resp.text().contains("without Host"), "{}", resp.text());
}

#[tokio::test]
async fn authority_form_outside_connect_gets_400() {
    let bad = b"GET api.test:80 HTTP/1.1\r\nHost: api.test\r\n\r\n";
    let resp = refused_before_the_backend(bad, 400).await;
    assert!(resp.text().contains("authority-form"), "{}", resp.text());
}

#[tokio::test]
async fn connect_gets_501_and_what_follows_is_never_read_as_a_request() {
    // A client may send its tunnel bytes right after the CONNECT head; weir closes, so
    // they are never parsed as a next request.
    let bad = b"CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n\
        GET /smuggle HTTP/1.1\r\nHost: api.test\r\n\r\n";
    let resp = refused_before_the_backend(bad, 501).await;
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.head);
    assert!(resp.header("x-request-id").is_some(), "{}", resp.head);
}

#[tokio::test]
async fn headers_over_64_kib_get_431() {
    let mut bad = b"GET /smuggle HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        bad.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(700)).as_bytes());
    }
    bad.extend_from_slice(b"\r\n");
    assert!(bad.len() > 70_000);
    refused_before_the_backend(&bad, 431).await;
}

#[tokio::test]
async fn headers_well_under_the_limit_are_forwarded() {
    let (_weir, addr, backend) = setup().await;
    let mut ok = b"GET /big-but-fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 0..20 {
        ok.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(700)).as_bytes());
    }
    ok.extend_from_slice(b"\r\n");
    let resp = raw::exchange(addr, &ok).await.expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.text(), "a");
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn a_request_head_slower_than_header_read_is_cut_off() {
    let (a, backend) = spawn_backend("a").await;
    let yaml = one_backend_listener(a, "    timeouts: { header_read: 300ms }\n");
    let weir = Weir::start(WEIR, &yaml).await;
    let addr = weir.listener_addr("web");

    // Slowloris: a head that never ends. weir must answer 408 or close, well before
    // raw::read_response gives up (5 s without a byte).
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n",
    )
    .await
    .expect("write partial head");
    match raw::read_response(&mut stream).await {
        Ok(resp) => assert_eq!(resp.status, 408, "{}", resp.head),
        Err(e) => assert!(
            e.to_string().contains("connection closed"),
            "weir neither answered nor closed: {e}"
        ),
    }
    assert_eq!(backend.hits(), 0, "a partial head reached the backend");
    // The listener still serves others.
    assert_eq!(client::get(addr, "/").await.text(), "a");
}
