//! TLS against real sockets on loopback, with certificates made by the test (rcgen):
//! SNI selection, ALPN, protocol versions, handshake timeout, certificate replacement,
//! TCP over TLS; TLS and HTTP/2 to backends (`upstream.rs`); TCP listeners originating
//! TLS to backends (`tcp_upstream.rs`).

#![allow(missing_docs)]

mod support;
mod tcp_upstream;
mod upstream;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_config::Protocol;
use weir_proxy::tls::ListenerTls;

use support::*;
use weir_e2e::tls::{Ca, Dir, Leaf};

/// A TLS handshake with `proxy` for `name`, trusting `ca`, offering no ALPN.
async fn handshake_as(
    proxy: &Proxy,
    ca: &Ca,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    connect(proxy.addr, ca.client(&[]), name).await
}

/// The client refuses what `proxy` presents for `name` (`why` says what it got).
async fn assert_refused(proxy: &Proxy, ca: &Ca, name: &str, why: &str) {
    let err = handshake_as(proxy, ca, name).await;
    assert!(err.is_err(), "{why}");
}

/// A proxy with an HTTP listener terminating TLS with `leaves` (files in `dir`), in
/// front of a plain HTTP backend named `app`.
async fn https_proxy(dir: &Dir, leaves: &[&Leaf]) -> Proxy {
    let be = backend("app", None).await;
    Proxy::start(
        listener(Protocol::Http, tls_config(dir, leaves)),
        pool(be, None),
    )
    .await
}

/// [`https_proxy`] with the one certificate `a.test`, signed by the CA it returns; the
/// directory holds the PEM files while the proxy runs.
async fn a_test_proxy() -> (Ca, Dir, Proxy) {
    let (ca, dir) = (Ca::new(), Dir::new());
    let proxy = https_proxy(&dir, &[&ca.leaf(&["a.test"])]).await;
    (ca, dir, proxy)
}

#[tokio::test]
async fn sni_picks_the_certificate_that_names_it() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test", "www.b.test"]));
    let proxy = https_proxy(&dir, &[&a, &b]).await;
    for (name, want) in [
        ("a.test", &a.der),
        ("b.test", &b.der),
        ("www.b.test", &b.der),
    ] {
        let s = connect(proxy.addr, ca.client(&[]), name)
            .await
            .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
        assert_eq!(&peer_cert(&s), want, "certificate served for {name}");
    }
}

#[tokio::test]
async fn no_sni_or_an_unknown_name_gets_the_first_certificate() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (a, b) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    let proxy = https_proxy(&dir, &[&a, &b]).await;
    let mut no_sni = ca.client(&[]);
    no_sni.enable_sni = false;
    let s = connect(proxy.addr, no_sni, "a.test")
        .await
        .expect("handshake");
    assert_eq!(peer_cert(&s), a.der, "no SNI: the first certificate");

    // An unknown name gets the default too, which the client then refuses for c.test.
    assert_refused(
        &proxy,
        &ca,
        "c.test",
        "c.test gets a.test's certificate, which the client refuses",
    )
    .await;
}

#[tokio::test]
async fn wildcard_certificate_serves_one_level_of_subdomains() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (a, wild) = (ca.leaf(&["a.test"]), ca.leaf(&["*.wild.test"]));
    let proxy = https_proxy(&dir, &[&a, &wild]).await;
    let s = handshake_as(&proxy, &ca, "x.wild.test")
        .await
        .expect("wildcard handshake");
    assert_eq!(peer_cert(&s), wild.der);
    // Two levels below the wildcard: not covered, so the default (a.test) is served.
    assert_refused(
        &proxy,
        &ca,
        "y.x.wild.test",
        "a.test's certificate does not cover y.x.wild.test",
    )
    .await;
}

#[tokio::test]
async fn alpn_h2_is_negotiated_and_an_h2_request_is_proxied_with_https_proto() {
    let (ca, _dir, proxy) = a_test_proxy().await;
    let s = connect(proxy.addr, ca.client(&[b"h2", b"http/1.1"]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(get_h2(s).await, (200, "app proto=https".to_owned()));

    let s = connect(proxy.addr, ca.client(&[b"http/1.1"]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get_h1(s).await, (200, "app proto=https".to_owned()));
}

#[tokio::test]
async fn tls_1_2_is_accepted_and_tls_1_1_is_refused() {
    let (ca, _dir, proxy) = a_test_proxy().await;
    let mut tls12 = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    tls12.alpn_protocols = vec![b"http/1.1".to_vec()];
    let s = connect(proxy.addr, tls12, "a.test")
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(get_h1(s).await.0, 200);

    // A TLS 1.1 ClientHello: weir answers with an alert (or just closes), never a
    // ServerHello.
    let mut raw = TcpStream::connect(proxy.addr).await.expect("connect");
    raw.write_all(&tls11_client_hello())
        .await
        .expect("send hello");
    let reply = read_to_close(&mut raw).await;
    assert!(
        reply.first() != Some(&0x16),
        "no handshake record in reply to TLS 1.1: {reply:02x?}"
    );
}

#[tokio::test]
async fn plain_http_on_a_tls_port_gets_no_http_answer_and_is_closed() {
    let (_ca, _dir, proxy) = a_test_proxy().await;
    let mut raw = TcpStream::connect(proxy.addr).await.expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("send");
    let reply = read_to_close(&mut raw).await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "got an HTTP answer: {reply:?}"
    );
    for _ in 0..500 {
        if proxy.handle.active_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the connection is still counted as open after 5 s");
}

#[tokio::test]
async fn handshake_not_finished_in_time_is_closed() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let a = ca.leaf(&["a.test"]);
    let be = backend("app", None).await;
    let mut tls = tls_config(&dir, &[&a]);
    tls.handshake_timeout = Duration::from_millis(200);
    let proxy = Proxy::start(listener(Protocol::Http, tls), pool(be, None)).await;
    let mut raw = TcpStream::connect(proxy.addr).await.expect("connect");
    // Send nothing: the server closes after the handshake timeout.
    let reply = read_to_close(&mut raw).await;
    assert!(reply.is_empty(), "nothing sent before closing: {reply:?}");
}

#[tokio::test]
async fn replaced_certificate_serves_new_connections_while_established_ones_keep_working() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (old, new) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let proxy = https_proxy(&dir, &[&old]).await;
    let s = connect(proxy.addr, ca.client(&[b"http/1.1"]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(peer_cert(&s), old.der);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .expect("h1");
    tokio::spawn(conn);

    let replaced = ListenerTls::load(&tls_config(&dir, &[&new]), Protocol::Http).expect("load");
    proxy.handle.set_tls(Some(replaced));
    let s = handshake_as(&proxy, &ca, "a.test")
        .await
        .expect("handshake");
    assert_eq!(
        peer_cert(&s),
        new.der,
        "new connections get the new certificate"
    );

    let req = http::Request::get("/")
        .header("host", "a.test")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender
        .send_request(req)
        .await
        .expect("old connection still works");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn key_that_does_not_match_its_certificate_is_a_config_error_at_its_entry() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (a, other) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let mut tls = tls_config(&dir, &[&a]);
    tls.certificates[0].key = dir.write("other.key", &other.key_pem);
    let err = ListenerTls::load(&tls, Protocol::Http).expect_err("mismatch refused");
    let text = err.config_error().to_string();
    assert!(
        text.starts_with("weir.yaml:5:11: listeners[0].tls.certificates[0]: the private key"),
        "{text}"
    );
    assert!(text.contains("does not match the certificate"), "{text}");

    let mut missing = tls_config(&dir, &[&a]);
    missing.certificates[0].cert = dir.path().join("nope.pem");
    let err = ListenerTls::load(&missing, Protocol::Http).expect_err("missing refused");
    assert!(err.to_string().contains("nope.pem"), "{err}");

    let mut not_pem = tls_config(&dir, &[&a]);
    not_pem.certificates[0].cert = dir.write("junk.pem", "not a certificate\n");
    let err = ListenerTls::load(&not_pem, Protocol::Http).expect_err("junk refused");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

#[tokio::test]
async fn tcp_listener_terminates_tls_without_alpn_and_relays_bytes() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let a = ca.leaf(&["a.test"]);
    let be = echo_backend().await;
    let proxy = Proxy::start(
        listener(Protocol::Tcp, tls_config(&dir, &[&a])),
        pool(be, None),
    )
    .await;
    let mut s = connect(proxy.addr, ca.client(&[b"h2"]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(
        s.get_ref().1.alpn_protocol(),
        None,
        "no ALPN on TCP listeners"
    );
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    weir_e2e::client::raw::assert_echoed(&mut s, &payload, WAIT).await;
}

/// Reads until the peer closes (or resets), bounded by [`WAIT`].
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server closes the connection");
    out
}

/// A minimal ClientHello offering only TLS 1.1 (no extensions).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, 0x00, u8::try_from(body.len()).expect("short")];
    hs.extend_from_slice(&body);
    let mut record = vec![
        0x16,
        0x03,
        0x02,
        0x00,
        u8::try_from(hs.len()).expect("short"),
    ];
    record.extend_from_slice(&hs);
    record
}
