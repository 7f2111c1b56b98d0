//! `GET /` on a real admin socket: the dashboard page, with headers that confine it to
//! weir's own endpoints, and nothing in it that could load from elsewhere.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_admin::{serve, AdminState, DASHBOARD_CSP};
use weir_balance::BackendRegistry;
use weir_telemetry::Metrics;

const YAML: &str = "
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ pool: app }] }]
pools:
  app:
    backends: [{ address: 127.0.0.1:9 }]
";

/// Starts the admin server on an ephemeral port and returns its address.
async fn admin() -> std::net::SocketAddr {
    let config = Arc::new(weir_config::parse(YAML, "w.yaml".as_ref()).expect("valid config"));
    let table = BackendRegistry::new().build(config, 1);
    let shared = Arc::new(arc_swap::ArcSwap::from_pointee(table));
    let state = AdminState::new(shared, Box::new(Vec::new), Metrics::new().expect("metrics"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(serve(listener, Arc::new(state)));
    addr
}

/// One request with `Connection: close`; returns (head, body) as text.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("response within 5 s")
    .expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    (head.to_ascii_lowercase(), body.to_owned())
}

/// Standard base64 with padding (the CSP hash-source encoding).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// `method /` on a fresh admin server, checked to be a 200 HTML page: head and body.
async fn dashboard(method: &str) -> (String, String) {
    let addr = admin().await;
    let (head, body) = request(addr, method, "/").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    (head, body)
}

#[tokio::test]
async fn get_root_serves_the_self_contained_dashboard_with_its_csp() {
    let (head, body) = dashboard("GET").await;
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    let csp = header(&head, "content-security-policy").expect("a CSP header");
    assert_eq!(csp, DASHBOARD_CSP.to_ascii_lowercase());
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'unsafe-inline'",
        "connect-src 'self'",
        "img-src data:",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(body.starts_with("<!DOCTYPE html>"), "{}", &body[..80]);
    let script = body
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(script, _)| script)
        .expect("an inline script");
    assert_eq!(body.matches("<script").count(), 1, "one script");
    let hash = format!(
        "'sha256-{}'",
        base64(ring::digest::digest(&ring::digest::SHA256, script.as_bytes()).as_ref())
    );
    assert!(
        DASHBOARD_CSP.contains(&hash),
        "DASHBOARD_CSP must allow the page's script by its hash: set it to {hash}"
    );
    assert!(body.len() < 30 * 1024, "page is {} bytes", body.len());
    assert!(
        body.contains("\"status\"") && body.contains("\"metrics\""),
        "it polls /status and /metrics"
    );
    for external in ["http://", "https://", "//", "src=", "@import", "url("] {
        assert!(
            !body.contains(external),
            "the page must load nothing from elsewhere, found {external:?}"
        );
    }
    assert!(
        !body.contains("innerHTML") && !body.contains("outerHTML"),
        "data reaches the DOM as text only"
    );
}

#[tokio::test]
async fn head_root_answers_the_headers_without_the_page() {
    let (head, body) = dashboard("HEAD").await;
    assert!(header(&head, "content-security-policy").is_some(), "{head}");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
}

#[tokio::test]
async fn other_paths_still_404_and_status_is_unchanged() {
    let addr = admin().await;
    let (head, body) = request(addr, "GET", "/index.html").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(body.contains("try /,"), "{body}");
    let (head, _) = request(addr, "GET", "/status").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(header(&head, "content-security-policy").is_none(), "{head}");
}
