//! TLS and HTTP/2 to backends: verification with the pool's CA, name mismatch and
//! untrusted CA as 502, `verify: false`, unusable CA files, h2 over TLS and h2c.

use weir_config::Protocol;

use crate::certs::{Ca, Dir};
use crate::support::*;

#[tokio::test]
async fn upstream_tls_verified_with_the_pool_ca_reaches_the_backend() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (front, back) = (ca.leaf(&["a.test"]), ca.leaf(&["backend.test"]));
    let be = backend("secure", Some(&back)).await;
    let proxy = Proxy::start(
        listener(Protocol::Http, tls_config(&dir, &[&front])),
        pool(be, Some(upstream_tls(&dir, &ca, "backend.test"))),
    )
    .await;
    let s = connect(proxy.addr, client_config(&ca, &[]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(get_h1(s).await, (200, "secure proto=https".to_owned()));
}

#[tokio::test]
async fn upstream_tls_with_a_name_the_backend_certificate_lacks_is_502() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (front, back) = (ca.leaf(&["a.test"]), ca.leaf(&["backend.test"]));
    let be = backend("secure", Some(&back)).await;
    let proxy = Proxy::start(
        listener(Protocol::Http, tls_config(&dir, &[&front])),
        pool(be, Some(upstream_tls(&dir, &ca, "other.test"))),
    )
    .await;
    let s = connect(proxy.addr, client_config(&ca, &[]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(get_h1(s).await.0, 502);

    // An untrusted CA fails the same way.
    let stranger = Ca::new();
    let be2 = backend("secure", Some(&back)).await;
    let proxy = Proxy::start(
        listener(Protocol::Http, tls_config(&dir, &[&front])),
        pool(be2, Some(upstream_tls(&dir, &stranger, "backend.test"))),
    )
    .await;
    let s = connect(proxy.addr, client_config(&ca, &[]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(get_h1(s).await.0, 502);
}

#[tokio::test]
async fn h2_upstream_over_tls_negotiates_h2_and_shares_one_connection() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (front, back) = (ca.leaf(&["a.test"]), ca.leaf(&["backend.test"]));
    let (be, accepted) = h2_backend("grpc", Some(&back)).await;
    let mut pool = pool(be, Some(upstream_tls(&dir, &ca, "backend.test")));
    pool.upstream_protocol = weir_config::UpstreamProtocol::H2;
    let proxy = Proxy::start(listener(Protocol::Http, tls_config(&dir, &[&front])), pool).await;
    for _ in 0..3 {
        let s = connect(proxy.addr, client_config(&ca, &[b"http/1.1"]), "a.test")
            .await
            .expect("handshake");
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
    let front = ca.leaf(&["a.test"]);
    let (be, _) = h2_backend("h2c", None).await;
    let mut pool = pool(be, None);
    pool.upstream_protocol = weir_config::UpstreamProtocol::H2;
    let proxy = Proxy::start(listener(Protocol::Http, tls_config(&dir, &[&front])), pool).await;
    let s = connect(proxy.addr, client_config(&ca, &[b"h2"]), "a.test")
        .await
        .expect("handshake");
    assert_eq!(
        get_h2(s).await,
        (200, "h2c version=HTTP/2.0 authority=a.test".to_owned())
    );
}

#[tokio::test]
async fn upstream_verify_false_accepts_an_untrusted_backend_certificate() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let front = ca.leaf(&["a.test"]);
    let stranger = Ca::new().leaf(&["whatever.test"]);
    let be = backend("lax", Some(&stranger)).await;
    let mut tls = upstream_tls(&dir, &ca, "backend.test");
    tls.verify = false;
    tls.ca = None;
    let proxy = Proxy::start(
        listener(Protocol::Http, tls_config(&dir, &[&front])),
        pool(be, Some(tls)),
    )
    .await;
    let s = connect(proxy.addr, client_config(&ca, &[]), "a.test")
        .await
        .expect("handshake");
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
