//! Access lists through a real weir (issue 12, item 5): a listener's `deny` closes the
//! connection without a response, a route's `allow`/`deny` answer `403` (`deny` wins),
//! the PROXY header's address is the one checked (and the rate limit's key), and a TCP
//! listener's list works the same way. 127.0.0.2 is the second client address: loopback
//! is all of 127.0.0.0/8 on Linux, so the client socket binds it before connecting.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use weir_e2e::client::raw::{read_response, RawResponse};
use weir_e2e::config::{backend, tcp_listener, ADMIN, WEB_HEAD};
use weir_e2e::{spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const WAIT: Duration = Duration::from_secs(5);
const GET: &[u8] = b"GET /x HTTP/1.1\r\nhost: web.test\r\n\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A connection to `addr` from `from` (port chosen by the kernel).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(ip(from), 0))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// `bytes` sent from `from`, one response read.
async fn exchange_from(from: &str, addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut s = connect_from(from, addr).await;
    s.write_all(bytes).await.expect("write");
    read_response(&mut s).await.expect("a response")
}

/// Whether the connection, after `bytes` from `from`, ends without a byte of answer.
async fn closed_unanswered(from: &str, addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = connect_from(from, addr).await;
    // The server may already have closed: a failed write is part of the answer sought.
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
        Ok(Ok(0)) => true,
        Ok(Err(e)) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// weir with HTTP listener `web` whose fields after `listen` are `fields` (admin
/// included) and pool `web` over `be`; listener `web`'s address.
async fn start_web(fields: &str, be: SocketAddr) -> (Weir, SocketAddr) {
    let yaml = format!(
        "{WEB_HEAD}{fields}pools:\n  web:\n    backends:\n{}",
        backend(be)
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let web = weir.listener_addr("web");
    (weir, web)
}

async fn denied_total(weir: &Weir, listener: &str, route: &str) -> Option<f64> {
    weir.metrics().await.value(
        "weir_access_denied_total",
        &[("listener", listener), ("route", route)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_deny_closes_the_connection_without_a_response() {
    let (addr, be) = spawn_backend("app").await;
    let (weir, web) = start_web(
        "    deny: [127.0.0.2]\n    routes:\n      - pool: web\n",
        addr,
    )
    .await;
    assert!(closed_unanswered("127.0.0.2", web, GET).await);
    assert_eq!(exchange_from("127.0.0.1", web, GET).await.status, 200);
    assert_eq!(be.hits(), 1, "the refused client reached nothing");
    assert_eq!(denied_total(&weir, "web", "").await, Some(1.0));
    let status = weir.status().await;
    assert_eq!(
        status["listeners"][0]["deny"][0], "127.0.0.2/32",
        "{status}"
    );
    assert_eq!(status["listeners"][0]["allow"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_lists_answer_403_and_deny_wins_over_allow() {
    let (addr, be) = spawn_backend("app").await;
    let fields = "    routes:
      - match: { path_prefix: /admin/ }
        allow: [127.0.0.0/8]
        deny: [127.0.0.2]
        pool: web
      - match: { path_prefix: /office/ }
        allow: [10.0.0.0/8]
        pool: web
      - pool: web
";
    let (weir, web) = start_web(fields, addr).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: web.test\r\n\r\n").into_bytes();
    let cases = [
        ("127.0.0.1", "/admin/", 200),
        ("127.0.0.2", "/admin/", 403),
        ("127.0.0.3", "/admin/", 200),
        ("127.0.0.1", "/office/", 403),
        ("127.0.0.2", "/other", 200),
    ];
    for (from, path, want) in cases {
        let resp = exchange_from(from, web, &get(path)).await;
        assert_eq!(resp.status, want, "{from} {path}: {}", resp.text());
        if want == 403 {
            assert!(
                resp.text().starts_with("403 Forbidden: access denied"),
                "{}",
                resp.text()
            );
        }
    }
    assert_eq!(be.hits(), 3, "403s never reach the backend");
    assert_eq!(denied_total(&weir, "web", "0").await, Some(1.0));
    assert_eq!(denied_total(&weir, "web", "1").await, Some(1.0));
    assert_eq!(
        denied_total(&weir, "web", "2").await,
        None,
        "no lists, no series"
    );
    let status = weir.status().await;
    let admin = &status["listeners"][0]["routes"][0];
    assert_eq!(admin["allow"][0], "127.0.0.0/8", "{status}");
    assert_eq!(admin["deny"][0], "127.0.0.2/32");
}

/// A PROXY v1 header announcing `client` (to the listener's port 80).
fn proxy_v1(client: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 {port} 80\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_header_address_is_checked_and_is_the_rate_limit_key() {
    let (addr, be) = spawn_backend("app").await;
    let fields = "    accept_proxy_protocol: { trusted: [127.0.0.1] }
    deny: [192.0.2.0/24]
    rate_limit: { requests_per_second: 0.001, burst: 1 }
    routes:
      - pool: web
";
    let (weir, web) = start_web(fields, addr).await;
    let with_header = |client: &str| {
        let mut bytes = proxy_v1(client, 40000);
        bytes.extend_from_slice(GET);
        bytes
    };
    // The balancer in front (127.0.0.1, trusted) relays a denied client: closed.
    assert!(closed_unanswered("127.0.0.1", web, &with_header("192.0.2.7")).await);
    assert_eq!(denied_total(&weir, "web", "").await, Some(1.0));
    // Two other clients through the same balancer have a bucket each.
    for client in ["198.51.100.1", "198.51.100.2"] {
        let resp = exchange_from("127.0.0.1", web, &with_header(client)).await;
        assert_eq!(resp.status, 200, "{client}: {}", resp.text());
    }
    let again = exchange_from("127.0.0.1", web, &with_header("198.51.100.1")).await;
    assert_eq!(again.status, 429, "the first client's bucket is empty");
    assert_eq!(be.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_listener_allow_list_closes_other_clients_unread() {
    let (addr, be) = spawn_backend("app").await;
    let yaml = format!(
        "{ADMIN}listeners:\n{}    allow: [127.0.0.1]\npools:\n  db:\n    backends:\n{}",
        tcp_listener("pg", "db"),
        backend(addr)
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let pg = weir.listener_addr("pg");
    // The relay carries HTTP to the HTTP backend: an answer proves the connection went through.
    assert_eq!(exchange_from("127.0.0.1", pg, GET).await.status, 200);
    assert!(closed_unanswered("127.0.0.2", pg, GET).await);
    assert_eq!(
        be.connections(),
        1,
        "the refused client never reached the backend"
    );
    assert_eq!(denied_total(&weir, "pg", "").await, Some(1.0));
}
