//! Header handling through the proxy (RFC 9110 §7.6.1, DESIGN.md §4): hop-by-hop headers
//! removed both ways, `Host` preserved, `X-Forwarded-For` appended, `-Proto`/`-Host` set;
//! the `Host` a backend gets is the one weir routed by, without userinfo (RFC 9112 §3.2).

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weir_e2e::client::{raw, H1Client, H2Client, Response};
use weir_e2e::config::{backends, WEB_HEAD};
use weir_e2e::{spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Sends a bodiless `GET path` with `headers` (in order) on `client` and returns the
/// answer, which must come.
async fn get(client: &mut H1Client, path: &str, headers: &[(&str, &str)]) -> Response {
    let req = headers
        .iter()
        .fold(Request::get(path), |req, (name, value)| {
            req.header(*name, *value)
        })
        .body(Full::new(Bytes::new()))
        .expect("request");
    client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("GET {path} through weir: {e}"))
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed_and_end_to_end_ones_kept() {
    let (_weir, ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    let resp = get(
        &mut client,
        "/hop-request",
        &[
            ("host", "example.test"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "must not pass"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip, chunked"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let seen = ha.requests().pop().expect("the backend got the request");
    for hop in ["x-custom-hop", "keep-alive", "proxy-connection", "te"] {
        assert!(
            seen.header(hop).is_none(),
            "hop-by-hop header {hop} reached the backend: {:?}",
            seen.headers
        );
    }
    if let Some(conn) = seen.header("connection") {
        assert!(
            !conn.to_ascii_lowercase().contains("x-custom-hop"),
            "the client's Connection header was forwarded: {conn}"
        );
    }
    assert_eq!(
        seen.header("x-end-to-end"),
        Some("kept"),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let (_weir, _ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    // The backend answers /hop with `Connection: x-backend-hop`, `x-backend-hop`, `Keep-Alive`.
    let resp = client.get("/hop").await.expect("request through weir");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("x-backend-hop").is_none(), "{:?}", resp.headers);
    assert!(resp.header("keep-alive").is_none(), "{:?}", resp.headers);
    assert_eq!(
        resp.header("x-backend-end-to-end"),
        Some("kept"),
        "{:?}",
        resp.headers
    );
    assert_eq!(resp.header("x-backend"), Some("a"));
    // The client connection stays usable: weir did not act on the backend's Connection.
    let again = client
        .get("/")
        .await
        .expect("second request on the same connection");
    assert_eq!(again.text(), "a");
}

#[tokio::test]
async fn forwarding_headers_append_client_and_preserve_host() {
    let (_weir, ha, mut client) = Weir::one_backend_h1(WEIR, "a").await;

    let sent = [
        ("host", "example.test:8443"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    assert_eq!(get(&mut client, "/first?q=1", &sent).await.status, 200);
    let sent = [("host", "other.test")];
    assert_eq!(get(&mut client, "/second", &sent).await.status, 200);

    let seen = ha.requests();
    assert_eq!(seen.len(), 2);
    let (first, second) = (&seen[0], &seen[1]);
    assert_eq!(first.path, "/first?q=1", "path and query unchanged");
    assert_eq!(
        first.header("host"),
        Some("example.test:8443"),
        "Host preserved"
    );
    assert_eq!(
        first.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1"),
        "client address appended to X-Forwarded-For"
    );
    assert_eq!(first.header("x-forwarded-proto"), Some("http"));
    assert_eq!(first.header("x-forwarded-host"), Some("example.test:8443"));
    assert_eq!(second.header("host"), Some("other.test"));
    assert_eq!(second.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(second.header("x-forwarded-host"), Some("other.test"));
}

/// Pools `a` and `b`, routed by host `a.test` and `b.test`.
fn two_hosts(a: std::net::SocketAddr, b: std::net::SocketAddr) -> String {
    format!(
        "\
{WEB_HEAD}    routes:
      - match: {{ host: a.test }}
        pool: a
      - match: {{ host: b.test }}
        pool: b
pools:
  a:
    backends:
{}  b:
    backends:
{}",
        backends(&[a]),
        backends(&[b])
    )
}

#[tokio::test]
async fn userinfo_in_an_absolute_form_target_never_reaches_the_backend() {
    let (weir, ha) = Weir::one_backend(WEIR, "a").await;
    let req = b"GET http://user:pw@api.test:8080/ui HTTP/1.1\r\nHost: api.test:8080\r\n\
        Connection: close\r\n\r\n";
    let resp = raw::exchange(weir.listener_addr("web"), req)
        .await
        .expect("answer");
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = ha.requests().pop().expect("the backend got the request");
    assert_eq!(seen.path, "/ui");
    assert_eq!(
        seen.header("host"),
        Some("api.test:8080"),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-forwarded-host"), Some("api.test:8080"));
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains("pw"), "{name}: {value} reached the backend");
    }
}

#[tokio::test]
async fn userinfo_in_http2_authority_never_reaches_the_backend() {
    let (weir, ha) = Weir::one_backend(WEIR, "a").await;
    let mut client = H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2c");
    let resp = client.get("user:pw@api.test", "/h2").await.expect("GET");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = ha.requests().pop().expect("the backend got the request");
    assert_eq!(seen.header("host"), Some("api.test"), "{:?}", seen.headers);
}

#[tokio::test]
async fn an_absolute_form_authority_wins_over_host_for_routing_and_forwarding() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let weir = Weir::start(WEIR, &two_hosts(a, b)).await;
    // RFC 9112 §3.2.2: the target's authority, not Host, names the resource.
    let req = b"GET http://a.test/abs HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let resp = raw::exchange(weir.listener_addr("web"), req)
        .await
        .expect("answer");
    assert_eq!(
        (resp.status, resp.text()),
        (200, "a".to_owned()),
        "{}",
        resp.head
    );
    assert_eq!(hb.hits(), 0, "routed by Host");
    let seen = ha.requests().pop().expect("a got the request");
    assert_eq!(seen.header("host"), Some("a.test"), "{:?}", seen.headers);
    assert_eq!(seen.header("x-forwarded-host"), Some("a.test"));
}
