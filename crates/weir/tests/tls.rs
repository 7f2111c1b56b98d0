//! TLS end to end with the real binary: certificates re-read on SIGHUP while established
//! connections carry on, a bad certificate rejecting the reload, and `weir check`
//! reporting certificate problems at their place in the file; health checks of a pool
//! with `tls` probing over TLS. Certificates are made by the test (rcgen) in a private
//! directory and named by absolute paths.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weir_e2e::config::{tcp_listener, ADMIN, WEB_HEAD, WEB_LISTENER};
use weir_e2e::tls::{Ca, Dir, Leaf};
use weir_e2e::{check_config, eventually, spawn_backend, status, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(10);

fn yaml(dir: &Path, backend: SocketAddr) -> String {
    format!(
        "\
{WEB_HEAD}    tls:
      certificates:
        - {{ cert: {d}/site.pem, key: {d}/site.key }}
    routes:
      - pool: web
pools:
  web:
    backends:
      - {{ address: {backend} }}
",
        d = dir.display()
    )
}

async fn connect(addr: SocketAddr, ca: &Ca) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("a.test").expect("name");
    tokio::time::timeout(
        LOG_WAIT,
        TlsConnector::from(Arc::new(ca.client(&[b"http/1.1"]))).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

fn served(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn http(s: TlsStream<TcpStream>) -> Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut Sender) -> u16 {
    let req = http::Request::get("/")
        .header("host", "a.test")
        .body(Empty::new())
        .expect("request");
    sender
        .send_request(req)
        .await
        .expect("response")
        .status()
        .as_u16()
}

/// weir serving `leaf` (installed in `dir`) in front of backend `a`.
async fn serving(dir: &Dir, leaf: &Leaf) -> (Weir, weir_e2e::BackendHandle) {
    dir.install(leaf);
    let (backend, handle) = spawn_backend("a").await;
    (Weir::start(WEIR, &yaml(dir.path(), backend)).await, handle)
}

#[tokio::test]
async fn replaced_certificate_is_served_after_sighup_while_an_established_connection_keeps_working()
{
    let (ca, dir) = (Ca::new(), Dir::new());
    let (old, new) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let (mut weir, _b) = serving(&dir, &old).await;
    let addr = weir.listener_addr("web");

    let established = connect(addr, &ca).await;
    assert_eq!(served(&established), old.der);
    let mut sender = http(established).await;
    assert_eq!(get(&mut sender).await, 200);

    dir.install(&new);
    weir.sighup_reloaded(LOG_WAIT).await;

    let fresh = connect(addr, &ca).await;
    assert_eq!(
        served(&fresh),
        new.der,
        "new connections get the new certificate"
    );
    assert_eq!(get(&mut http(fresh).await).await, 200);
    assert_eq!(
        get(&mut sender).await,
        200,
        "the connection made before the reload still works"
    );
}

#[tokio::test]
async fn mismatched_key_on_reload_is_rejected_and_the_old_certificate_keeps_serving() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (good, other) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    let (mut weir, _b) = serving(&dir, &good).await;
    let addr = weir.listener_addr("web");

    dir.write("site.key", &other.key_pem);
    let mark = weir.log_mark();
    weir.sighup().await;
    let rejected = weir
        .wait_for_log_after(mark, "config reload rejected", LOG_WAIT)
        .await;
    let error = rejected.to_string();
    assert!(error.contains("does not match the certificate"), "{error}");
    assert!(
        error.contains("listeners[0].tls.certificates[0]"),
        "{error}"
    );
    let failures = weir
        .metrics()
        .await
        .value("weir_config_reloads_total", &[("result", "failure")]);
    assert_eq!(failures, Some(1.0), "the rejected reload is counted");

    let s = connect(addr, &ca).await;
    assert_eq!(served(&s), good.der, "the old certificate is still served");
    assert_eq!(get(&mut http(s).await).await, 200);
}

#[tokio::test]
async fn check_reports_a_missing_certificate_and_a_mismatched_key_at_their_entries() {
    let (ca, dir) = (Ca::new(), Dir::new());
    let (a, other) = (ca.leaf(&["a.test"]), ca.leaf(&["a.test"]));
    dir.write("a.pem", &a.cert_pem);
    dir.write("other.key", &other.key_pem);
    let d = dir.path().display();
    let missing = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    tls:
      certificates:
        - {{ cert: {d}/gone.pem, key: {d}/other.key }}
    routes:
      - pool: web
pools:
  web:
    backends:
      - {{ address: 127.0.0.1:1 }}
"
    );
    let mismatch = missing.replace("gone.pem", "a.pem");
    for (yaml, starts, contains) in [
        (
            &missing,
            "weir.yaml:6:13: listeners[0].tls.certificates[0].cert: cannot read the certificate chain file ",
            "gone.pem",
        ),
        (
            &mismatch,
            "weir.yaml:6:11: listeners[0].tls.certificates[0]: the private key ",
            "does not match the certificate",
        ),
    ] {
        let out = check_config(WEIR, yaml).await;
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        let first = out.stderr_lines()[0];
        assert!(first.starts_with(starts), "{first}");
        assert!(first.contains(contains), "{first}");
    }
}

/// An HTTP/1.1 backend over TLS with `leaf`, answering 200 `secure`; counts the health
/// probes (`/healthz`) it answered inside TLS.
async fn tls_backend(leaf: &Leaf) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let key =
        <rustls_pki_types::PrivateKeyDer<'_> as rustls_pki_types::pem::PemObject>::from_pem_slice(
            leaf.key_pem.as_bytes(),
        )
        .expect("key PEM");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der.clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let probes = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&probes);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        if req.uri().path() == "/healthz" {
                            counted.fetch_add(1, Ordering::SeqCst);
                        }
                        async {
                            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                                Bytes::from("secure"),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, probes)
}

#[tokio::test]
async fn health_checks_of_a_tls_pool_probe_over_tls_with_its_verification() {
    let (ca, stranger, dir) = (Ca::new(), Ca::new(), Dir::new());
    let (secure, probes) = tls_backend(&ca.leaf(&["backend.test"])).await;
    let (untrusted, _) = tls_backend(&stranger.leaf(&["backend.test"])).await;
    let ca_path = dir.write("ca.pem", &ca.pem());
    let yaml = format!(
        "\
{ADMIN}{WEB_LISTENER}{raw}pools:
  web:
    backends:
      - {{ address: {secure} }}
    tls: {{ server_name: backend.test, ca: {ca} }}
    health_check: {{ type: http, path: /healthz, interval: 100ms, timeout: 2s, rise: 1, fall: 1 }}
  strict:
    backends:
      - {{ address: {untrusted} }}
    tls: {{ server_name: backend.test, ca: {ca} }}
    health_check: {{ type: tcp, interval: 100ms, timeout: 2s, rise: 1, fall: 1 }}
",
        ca = ca_path.display(),
        raw = tcp_listener("raw", "strict"),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let checks = |result: &'static str| {
        let weir = &weir;
        async move {
            weir.metrics().await.sum(
                "weir_health_checks_total",
                &[("pool", "web"), ("result", result)],
            )
        }
    };
    eventually("three http probes of the TLS pool", || async {
        (checks("success").await + checks("failure").await >= 3.0).then_some(())
    })
    .await;
    assert_eq!(checks("failure").await, 0.0, "no probe failed");
    assert!(
        probes.load(Ordering::SeqCst) >= 3,
        "the probes arrived inside TLS"
    );
    let resp = weir_e2e::client::get(weir.listener_addr("web"), "/").await;
    assert_eq!(resp.status, 200, "the pool serves: {}", resp.text());
    assert_eq!(resp.text(), "secure");

    // A tcp check on a TLS pool completes the handshake: a certificate weir refuses
    // takes the backend down, with the reason in /status.
    let reason = eventually("the untrusted backend down", || async {
        let s = weir.status().await;
        let b = status::backend(&s, "strict", untrusted);
        (b["up"] == false).then(|| b["reason"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert!(reason.starts_with("TLS handshake: "), "{reason}");
}
