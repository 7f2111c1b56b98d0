//! HTTP proxying: keep-alive, headers, errors, retries, streaming, upgrades, h2c, drain.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn get_is_proxied_over_keep_alive_on_one_backend_connection() {
    let (b, proxy, mut c) = Proxy::http_to_a_with_client().await;
    for _ in 0..3 {
        let (status, _, body) = send(&mut c, get("/hello")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "a");
    }
    assert_eq!(b.hits(), 3);
    assert_eq!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "backend connection reused"
    );
    assert_eq!(proxy.handle.active_connections(), 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_set() {
    let (b, _proxy, mut c) = Proxy::http_to_a_with_client().await;
    let req = get_with(
        "/p?q=1",
        &[
            ("host", "shop.example.com:8443"),
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=9"),
            ("x-private", "secret"),
            ("te", "gzip"),
            ("proxy-authorization", "Basic abc"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-kept", "yes"),
        ],
    );
    let (status, res_headers, _) = send(&mut c, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = b.last_headers();
    for gone in [
        "connection",
        "keep-alive",
        "x-private",
        "te",
        "proxy-authorization",
    ] {
        assert!(!seen.contains_key(gone), "backend got {gone}");
    }
    assert_eq!(seen["host"], "shop.example.com:8443");
    assert_eq!(seen["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.example.com:8443");
    assert_eq!(seen["x-kept"], "yes");
    assert_eq!(b.seen.lock().expect("lock")[0].0, "/p?q=1");
    for gone in ["keep-alive", "x-backend-private"] {
        assert!(!res_headers.contains_key(gone), "client got {gone}");
    }
    assert_eq!(res_headers["x-backend"], "a");
}

#[tokio::test]
async fn te_trailers_is_the_one_te_value_forwarded() {
    let (b, _proxy, mut c) = Proxy::http_to_a_with_client().await;
    let req = get_with("/grpc", &[("host", "example.com"), ("te", "trailers")]);
    let (status, _, _) = send(&mut c, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        b.last_headers()["te"],
        "trailers",
        "gRPC servers require it"
    );
}

#[tokio::test]
async fn nothing_up_answers_503_naming_the_pool() {
    let (b, proxy) = Proxy::http_to_a().await;
    for backend in proxy.table.load().pools()[0].backends() {
        backend.force(false, "test");
    }
    let (status, headers, body) = send(&mut client(proxy.addr).await, get("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let id = headers["x-request-id"].to_str().expect("ascii id");
    assert_eq!(
        body,
        format!(
            "503 Service Unavailable: no backend available in pool \"app\"\nrequest id: {id}\n"
        )
    );
    assert_eq!(b.hits(), 0);
}

/// `GET /` through `proxy`, which weir must answer itself with `status` and a body that
/// begins with `prefix`: the response's headers and its body as text.
async fn own_answer(proxy: &Proxy, status: StatusCode, prefix: &str) -> (HeaderMap, String) {
    let (got, headers, body) = send(&mut client(proxy.addr).await, get("/")).await;
    assert_eq!(got, status);
    assert_starts_with(&body, prefix.as_bytes());
    (headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_backend_refusing_answers_502() {
    let (_held, [x, y]) = closed_ports();
    let proxy = Proxy::http(&[x, y]).await;
    let (headers, body) = own_answer(
        &proxy,
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: no backend could be reached in pool \"app\"\n",
    )
    .await;
    let id = headers["x-request-id"].to_str().expect("ascii id");
    assert!(body.contains(id), "{body}");
    for secret in [
        x.to_string(),
        y.to_string(),
        "refused".into(),
        "connect".into(),
    ] {
        assert!(
            !body.to_ascii_lowercase().contains(&secret),
            "{secret}: {body}"
        );
    }
}

#[tokio::test]
async fn slow_backend_answers_504_after_the_response_timeout() {
    let b = backend(Behaviour::Hang).await;
    let mut p = pool("app", &[b.addr]);
    p.timeouts.response = Duration::from_millis(200);
    let proxy = Proxy::start(config(http_listener("app"), vec![p])).await;
    let (_, body) = own_answer(
        &proxy,
        StatusCode::GATEWAY_TIMEOUT,
        "504 Gateway Timeout: no response in time from pool \"app\"\n",
    )
    .await;
    assert!(!body.contains(&b.addr.to_string()), "{body}");
    assert_eq!(b.hits(), 1, "a timed-out request is not retried");
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_backend() {
    let held = closed_port();
    let dead = held.addr();
    let live = backend(Behaviour::Name("live")).await;
    let proxy = Proxy::http(&[dead, live.addr]).await;
    let mut c = client(proxy.addr).await;
    for _ in 0..4 {
        let req = post(b"payload");
        let (status, _, body) = send(&mut c, req).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "even a POST is retried after a connect failure"
        );
        assert_eq!(body, "live");
    }
    assert_eq!(live.hits(), 4);
}

#[tokio::test]
async fn reload_applies_to_the_next_request_on_a_kept_alive_connection() {
    let (a, b) = (
        backend(Behaviour::Name("a")).await,
        backend(Behaviour::Name("b")).await,
    );
    let proxy = Proxy::http(&[a.addr]).await;
    let mut c = client(proxy.addr).await;
    assert_eq!(send(&mut c, get("/")).await.2, "a");
    proxy.reload(config(http_listener("app"), vec![pool("app", &[b.addr])]));
    assert_eq!(send(&mut c, get("/")).await.2, "b");
}

#[tokio::test]
async fn ten_megabytes_stream_up_and_back_intact() {
    let b = backend(Behaviour::Echo).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let payload: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let req = Request::put("/upload")
        .header("host", "x")
        .body(Full::new(Bytes::from(payload.clone())))
        .expect("request");
    let (status, headers, body) = send(&mut client(proxy.addr).await, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-length"],
        payload.len().to_string().as_str()
    );
    assert!(body == payload, "body differs ({} bytes back)", body.len());
}

#[tokio::test]
async fn upgrade_tunnels_raw_bytes_after_101() {
    let b = backend(Behaviour::Upgrade).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let (mut s, head) = open_tunnel_with_head(&proxy).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    let seen = b.last_headers();
    assert_eq!(seen["upgrade"], "echo");
    assert_eq!(seen["connection"], "upgrade");
    for msg in [&b"ping \x00\x01\xff"[..], b"second message"] {
        weir_e2e::client::raw::assert_echoed(&mut s, msg, WAIT).await;
    }
}

#[tokio::test]
async fn h2c_client_is_proxied_to_http1_backend() {
    let (b, proxy) = Proxy::http_to_a().await;
    let mut c = h2_client::<Full<Bytes>>(proxy.addr).await;
    for _ in 0..2 {
        let req = Request::get("http://h2.example.com/v1?x=1")
            .version(http::Version::HTTP_2)
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Full::default())
            .expect("request");
        let res = tokio::time::timeout(WAIT, c.send_request(req))
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), http::Version::HTTP_2);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "a");
    }
    let seen = b.last_headers();
    assert_eq!(seen["host"], "h2.example.com");
    assert_eq!(seen["cookie"], "a=1; b=2");
    assert_eq!(b.seen.lock().expect("lock")[0].0, "/v1?x=1");
}

/// A raw connection to `proxy` that has sent `GET /`.
async fn sent_get(proxy: &Proxy) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    s
}

#[tokio::test]
async fn drain_finishes_the_in_flight_response_with_connection_close() {
    let b = backend(Behaviour::Gate).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let mut s = sent_get(&proxy).await;
    tokio::time::timeout(WAIT, b.got.notified())
        .await
        .expect("backend got the request");
    proxy.handle.drain();
    b.gate.notify_one();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("closed in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.ends_with("released"), "{text}");
    assert_eq!(proxy.handle.drained(WAIT).await, 0);
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "still accepting after drain"
    );
}

#[tokio::test]
async fn drained_closes_what_is_left_by_force_and_counts_it() {
    let b = backend(Behaviour::Hang).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let mut s = sent_get(&proxy).await;
    weir_e2e::until("the backend receiving the request", || b.hits() >= 1).await;
    assert_eq!(proxy.handle.drained(Duration::from_millis(100)).await, 1);
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("closed in time");
    assert!(
        read.is_err() || out.is_empty(),
        "no response expected: {out:?}"
    );
}

#[tokio::test]
async fn head_keeps_content_length_and_the_backend_connection() {
    let b = backend(Behaviour::Name("abc")).await;
    let proxy = Proxy::http(&[b.addr]).await;
    let mut c = client(proxy.addr).await;
    let head = Request::head("/")
        .header("host", "x")
        .body(Full::default())
        .expect("request");
    let (status, headers, body) = send(&mut c, head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], "3");
    assert!(body.is_empty());
    assert_eq!(send(&mut c, get("/")).await.2, "abc");
    assert_eq!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "connection reused after HEAD"
    );
}

/// Opens a tunnel through `proxy` to the echo-upgrade backend and waits for its 101.
async fn open_tunnel(proxy: &Proxy) -> TcpStream {
    open_tunnel_with_head(proxy).await.0
}

/// [`open_tunnel`], with the 101's head.
async fn open_tunnel_with_head(proxy: &Proxy) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            head.push(s.read_u8().await.expect("read head"));
        }
    })
    .await
    .expect("101 in time");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (s, head)
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_after_timeouts_idle() {
    // Issue 9: tunnels used to escape the idle timeout and lived until a side closed.
    let b = backend(Behaviour::Upgrade).await;
    let mut listener = http_listener("app");
    listener.timeouts.idle = Duration::from_millis(300);
    let proxy = Proxy::start(config(listener, vec![pool("app", &[b.addr])])).await;
    let mut s = open_tunnel(&proxy).await;
    s.write_all(b"still here").await.expect("write");
    let mut back = [0u8; 10];
    s.read_exact(&mut back).await.expect("echo");
    let quiet = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the idle tunnel was closed");
    assert!(n.is_ok(), "{n:?}");
    assert!(
        quiet.elapsed() >= Duration::from_millis(250),
        "closed before it was idle: {:?}",
        quiet.elapsed()
    );
}

#[tokio::test]
async fn a_tunnel_keeps_its_connection_counted_and_its_permit() {
    // Issue 9: a tunnel used to leave its client connection's count and
    // `max_connections` permit behind once the 101 was sent.
    let b = backend(Behaviour::Upgrade).await;
    let mut listener = http_listener("app");
    listener.max_connections = 1;
    let proxy = Proxy::start(config(listener, vec![pool("app", &[b.addr])])).await;
    let mut s = open_tunnel(&proxy).await;
    s.write_all(b"x").await.expect("write");
    let mut one = [0u8; 1];
    s.read_exact(&mut one).await.expect("echo");
    assert_eq!(
        proxy.handle.active_connections(),
        1,
        "the tunnel is not counted"
    );
    // A second client waits in the backlog while the tunnel holds the only permit...
    let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut early = [0u8; 1];
    let answered = tokio::time::timeout(Duration::from_millis(300), second.read(&mut early)).await;
    assert!(
        answered.is_err(),
        "served beyond max_connections: {answered:?}"
    );
    // ...and is served once the tunnel closes.
    drop(s);
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, second.read_to_end(&mut reply))
        .await
        .expect("served after the tunnel closed")
        .expect("read");
    assert_starts_with(&reply, b"HTTP/1.1 ");
}

#[tokio::test]
async fn a_huge_length_on_a_refused_request_never_turns_its_body_into_a_request() {
    // Review of issue 9: head length + Content-Length wrapped around, so the body of a
    // request answered 404 counted as read and its bytes were parsed as a next request.
    let b = backend(Behaviour::Name("a")).await;
    let mut listener = http_listener("app");
    listener.routes[0].host = Some("known.test".to_owned());
    let proxy = Proxy::start(config(listener, vec![pool("app", &[b.addr])])).await;
    let attack =
        b"POST / HTTP/1.1\r\nHost: other.test\r\nContent-Length: 18446744073709551615\r\n\r\n\
        GET /smuggled HTTP/1.1\r\nHost: known.test\r\n\r\n";
    let out = raw(proxy.addr, attack).await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "a second answer: {out}"
    );
    assert_eq!(b.hits(), 0, "the body reached the backend as a request");
}
