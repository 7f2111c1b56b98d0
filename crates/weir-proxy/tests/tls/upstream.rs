//! TLS and HTTP/2 to backends: verification with the pool's CA, name mismatch and
//! untrusted CA as 502, `verify: false`, unusable CA files, h2 over TLS and h2c.

use weir_config::Protocol;

use crate::support::*;
use weir_e2e::tls::{Ca, Dir};

/// A proxy whose TLS listener serves `a.test` (a leaf of `ca`) in front of `pool`.
async fn front(ca: &Ca, dir: &Dir, pool: weir_config::PoolConfig) -> Proxy {
    let front = ca.leaf(&["a.test"]);
    Proxy::start(listener(Protocol::Http, tls_config(dir, &[&front])), pool).await
}

/// A TLS connection to `proxy` for `a.test`, trusting `ca` and offering `alpn`.
async fn client(
    proxy: &Proxy,
    ca: &Ca,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    connect(proxy.addr, ca.client(alpn), "a.test")
        .await
        .expect("handshake")
}

/// A GET through a TLS front to a TLS backend (`backend.test`, a leaf of `ca`) that weir
/// verifies against `trusted` for `server_name`.
async fn via_upstream_tls(ca: &Ca, dir: &Dir, trusted: &Ca, server_name: &str) -> (u16, String) {
    let back = ca.leaf(&["backend.test"]);
    let be = backend("secure", Some(&back)).await;
    let tls = upstream_tls(dir, trusted, server_name);
    let proxy = front(ca, dir, pool(be, Some(tls))).await;
    get_h1(client(&proxy, ca, &[]).await).await
}

#[tokio::test]
async fn upstream_tls_verified_with_the_pool_ca_reaches_the_backend() {
    let (ca, dir) = (Ca::new(), Dir::new());
    assert_eq!(
        via_upstream_tls(&ca, &dir, &ca, "backend.test").await,
        (200, "secure proto=https".to_owned())
    );
}

#[tokio::test]
async fn upstream_tls_with_a_name_the_backend_certificate_lacks_is_502() {
    let (ca, dir) = (Ca::new(), Dir::new());
    assert_eq!(via_upstream_tls(&ca, &dir, &ca, "other.test").await.0, 502);

    // An untrusted CA fails the same way.
    let stranger = Ca::new();
    assert_eq!(
        via_upstream_tls(&ca, &dir, &stranger, "backend.test")
            .await
            .0,
        502
    );
}

#[tokio::test]
async fn h2_upstream_over_tls_negotiates_h2_and_shares_one_connection() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let back = ca.leaf(&["backend.test"]);
    let (be, accepted) = h2_backend("grpc", Some(&back)).await;
    let mut pool = pool(be, Some(upstream_tls(&dir, &ca, "backend.test")));
    pool.upstream_protocol = weir_config::UpstreamProtocol::H2;
    let proxy = front(&ca, &dir, pool).await;
    for _ in 0..3 {
        let s = client(&proxy, &ca, &[b"http/1.1"]).await;
        assert_eq!(
            get_h1(s).await,
            (200, "grpc version=HTTP/2.0 authority=a.test".to_owned())
        );
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one multiplexed connection per backend"
    );
}

#[tokio::test]
async fn h2_upstream_over_plain_tcp_uses_prior_knowledge() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (be, _) = h2_backend("h2c", None).await;
    let mut pool = pool(be, None);
    pool.upstream_protocol = weir_config::UpstreamProtocol::H2;
    let proxy = front(&ca, &dir, pool).await;
    let s = client(&proxy, &ca, &[b"h2"]).await;
    assert_eq!(
        get_h2(s).await,
        (200, "h2c version=HTTP/2.0 authority=a.test".to_owned())
    );
}

#[tokio::test]
async fn upstream_verify_false_accepts_an_untrusted_backend_certificate() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let stranger = Ca::new().leaf(&["whatever.test"]);
    let be = backend("lax", Some(&stranger)).await;
    let mut tls = upstream_tls(&dir, &ca, "backend.test");
    tls.verify = false;
    tls.ca = None;
    let proxy = front(&ca, &dir, pool(be, Some(tls))).await;
    let s = client(&proxy, &ca, &[]).await;
    assert_eq!(get_h1(s).await, (200, "lax proto=https".to_owned()));
}

#[tokio::test]
async fn unusable_ca_file_is_an_error_at_the_pool_tls_entry() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let mut tls = upstream_tls(&dir, &ca, "backend.test");
    tls.ca = Some(dir.write("junk-ca.pem", "no certificates here\n"));
    tls.origin = weir_config::Origin {
        file: "weir.yaml".into(),
        line: 12,
        column: 5,
        path: "pools.web.tls".into(),
    };
    let err = weir_upstream::UpstreamTls::load(&tls, false).expect_err("junk CA refused");
    let text = err.config_error().to_string();
    assert!(
        text.starts_with("weir.yaml:12:5: pools.web.tls: cannot read the CA certificates "),
        "{text}"
    );
}
