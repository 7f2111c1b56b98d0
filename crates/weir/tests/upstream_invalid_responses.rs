//! Backend responses that break down: a head hyper cannot parse (too large, differing
//! `Content-Length`s) is a `502` counted once against the backend that sent it and never
//! replayed to the others (each would be counted too, and a route with big headers could
//! eject a healthy pool); a body the backend resets halfway is counted as a reset, for
//! the metrics and passive checking, unlike a client that stops reading and leaves.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_e2e::backend::{spawn_raw_backend, RawAction, RawBackend, RawRequest};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{status, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A `200` whose head carries one header of `len` bytes.
fn big_head(len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
        "a".repeat(len)
    )
    .into_bytes()
}

/// `/head/{KiB}`: a head with that large a header; `/cl`: two differing lengths;
/// `/cut`: a head, 1 000 of its 100 000 body bytes, then a reset; `/long`: 50 MB.
async fn backend() -> (SocketAddr, RawBackend) {
    spawn_raw_backend(|r: &RawRequest| {
        let path = r.head.split_whitespace().nth(1).unwrap_or("/");
        if let Some(kib) = path.strip_prefix("/head/") {
            return RawAction::Write(big_head(kib.parse::<usize>().unwrap_or(1) * 1024));
        }
        match path {
            "/cl" => RawAction::Write(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok".to_vec(),
            ),
            "/cut" => {
                let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
                bytes.extend_from_slice(&[b'x'; 1000]);
                RawAction::WriteReset(bytes)
            }
            "/long" => RawAction::Stream {
                head: b"HTTP/1.1 200 OK\r\ncontent-length: 50000000\r\n\r\n".to_vec(),
                len: 50_000_000,
            },
            _ => RawAction::Write(OK.to_vec()),
        }
    })
    .await
}

async fn resets(weir: &Weir) -> f64 {
    weir.metrics()
        .await
        .sum("weir_upstream_errors_total", &[("kind", "reset")])
}

fn hits(backend: &RawBackend, path: &str) -> usize {
    let line = format!("GET {path} ");
    backend
        .requests()
        .iter()
        .filter(|r| r.head.starts_with(&line))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_heads_are_502_counted_once_and_never_replayed() {
    let (a, ba) = backend().await;
    let (b, bb) = backend().await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a, b]), "")).await;
    let mut client = weir.h1_client("web").await;
    // A 12 KiB header is within the 16 KiB response head limit.
    let resp = client.get("/head/12").await.expect("GET");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-big").map(str::len), Some(12 * 1024));
    // Round robin: the four bad answers come two from each backend; passive checking
    // ejects at 3 in a row (the default).
    for path in ["/head/20", "/cl", "/head/20", "/cl"] {
        let mut client = weir.h1_client("web").await;
        let resp = client.get(path).await.expect("GET");
        assert_eq!(resp.status, 502, "{path}: {}", resp.text());
        assert!(
            resp.text().contains("invalid response"),
            "{path}: {}",
            resp.text()
        );
    }
    let sent = |p| hits(&ba, p) + hits(&bb, p);
    assert_eq!(
        (sent("/head/20"), sent("/cl")),
        (2, 2),
        "each bad request reached one backend, once"
    );
    assert_eq!(resets(&weir).await, 4.0, "each counted once");
    let doc = weir.status().await;
    for addr in [a, b] {
        assert!(status::is_up(&doc, "web", addr), "{addr} ejected: {doc}");
        assert_eq!(
            status::backend(&doc, "web", addr)["passive_failures"],
            2,
            "{addr}: {doc}"
        );
    }
    assert_eq!(client.get("/").await.expect("GET").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_backend_resets_is_counted_a_client_leaving_is_not() {
    let (a, backend) = backend().await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a]), "")).await;

    // A client that reads 1 MB of a 50 MB body and leaves: no backend error.
    let mut s = weir.connect("web").await;
    s.write_all(b"GET /long HTTP/1.1\r\nhost: cut.test\r\n\r\n")
        .await
        .expect("write request");
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 1_000_000 {
        let n = s.read(&mut buf).await.expect("read the body");
        assert!(n > 0, "weir closed after {got} bytes");
        got += n;
    }
    drop(s);
    weir_e2e::eventually("the abandoned request ended", || async {
        let in_flight = weir
            .metrics()
            .await
            .sum("weir_backend_in_flight", &[("pool", "web")]);
        (in_flight == 0.0).then_some(())
    })
    .await;
    assert_eq!(resets(&weir).await, 0.0, "the client's leaving is no reset");

    // The backend resets after 1 000 of 100 000 body bytes.
    let mut s = weir.connect("web").await;
    s.write_all(b"GET /cut HTTP/1.1\r\nhost: cut.test\r\n\r\n")
        .await
        .expect("write request");
    let mut received = Vec::new();
    // Bounded: weir closes once the body broke off (100 KB at most otherwise).
    for _ in 0..1000 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");
    assert!(received.len() < 100_000, "the body was cut short");
    let counted = weir_e2e::eventually("the broken body counted", || async {
        Some(resets(&weir).await).filter(|n| *n >= 1.0)
    })
    .await;
    assert_eq!(counted, 1.0);
    assert_eq!(hits(&backend, "/cut"), 1, "not replayed");
    let doc = weir.status().await;
    assert_eq!(
        status::backend(&doc, "web", a)["passive_failures"],
        1,
        "passive checking saw it: {doc}"
    );
}
