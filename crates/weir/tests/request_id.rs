//! `X-Request-Id` end to end, and weir's own error answers (issue 8, defect 2): a client
//! learns the status, a generic reason and the request id, never a backend address or an
//! OS error; the id leads an operator to the log and access-log lines with the detail.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use weir_e2e::config::access_logged;
use weir_e2e::{closed_port, spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const WAIT: Duration = Duration::from_secs(10);

/// Listener `web`, access log on, everything to pool `web`.
fn logged(addrs: &[SocketAddr]) -> String {
    access_logged("pool: web", addrs)
}

fn get(path: &str, id: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::get(path).header("host", "app.test");
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

fn str_field<'a>(line: &'a Value, name: &str) -> &'a str {
    line.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {name:?} in {line}"))
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_is_not_named_to_the_client_but_logged_under_the_request_id() {
    let held = closed_port();
    let dead = held.addr();
    let weir = Weir::start(WEIR, &logged(&[dead])).await;
    let mark = weir.log_mark();
    let mut client = weir.h1_client("web").await;
    let resp = client.send(get("/", None)).await.expect("an answer");
    assert_eq!(resp.status, 502, "{}", resp.text());

    let body = resp.text();
    let port = dead.port().to_string();
    for secret in [
        dead.to_string().as_str(),
        port.as_str(),
        "refused",
        "os error",
    ] {
        assert!(
            !body.to_ascii_lowercase().contains(secret),
            "the client was told {secret:?}: {body}"
        );
    }
    let id = resp
        .header("x-request-id")
        .expect("X-Request-Id")
        .to_owned();
    assert!(is_generated(&id), "{id}");
    assert!(
        body.starts_with("502 Bad Gateway: no backend could be reached"),
        "{body}"
    );
    assert!(body.contains(&id), "the body echoes the id: {body}");

    // The same id finds the detail in the log and in the access log.
    let logged = weir
        .wait_for_log_field(mark, "request failed", "request_id", &id, WAIT)
        .await;
    assert!(str_field(&logged, "error").contains(&port), "{logged}");
    assert!(str_field(&logged, "backend").ends_with(&port), "{logged}");
    let lines = weir.wait_for_access_lines(mark, 1, WAIT).await;
    let line = &lines[0];
    assert_eq!(str_field(line, "request_id"), id, "{line}");
    assert_eq!(line["status"], 502, "{line}");
    let error = str_field(line, "error").to_ascii_lowercase();
    assert!(
        error.contains(&port) && error.contains("refused"),
        "the access log has the detail: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_client_id_is_kept_end_to_end() {
    let (a, ha) = spawn_backend("a").await;
    let weir = Weir::start(WEIR, &logged(&[a])).await;
    let mark = weir.log_mark();
    let mut client = weir.h1_client("web").await;
    let id = "Client-1_2.3:abc";
    let resp = client.send(get("/", Some(id))).await.expect("GET");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-request-id"), Some(id), "{:?}", resp.headers);
    let seen = ha.requests().pop().expect("the backend got the request");
    assert_eq!(seen.header("x-request-id"), Some(id), "{:?}", seen.headers);
    let lines = weir.wait_for_access_lines(mark, 1, WAIT).await;
    assert_eq!(str_field(&lines[0], "request_id"), id, "{}", lines[0]);
    assert_eq!(str_field(&lines[0], "error"), "-", "{}", lines[0]);

    // Without one, weir makes one and both sides see the same.
    let resp = client.send(get("/", None)).await.expect("GET");
    let made = resp.header("x-request-id").expect("X-Request-Id");
    assert!(is_generated(made), "{made}");
    let seen = ha.requests().pop().expect("the backend got the request");
    assert_eq!(seen.header("x-request-id"), Some(made));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_client_id_is_replaced() {
    let (a, ha) = spawn_backend("a").await;
    let weir = Weir::start(WEIR, &logged(&[a])).await;
    let mut client = weir.h1_client("web").await;
    let too_long = "x".repeat(129);
    for bad in [
        too_long.as_str(),
        "has space",
        "semi;colon",
        "quote\"d",
        "ünïcode",
    ] {
        let req = http::Request::get("/")
            .header("host", "app.test")
            .header(
                "x-request-id",
                http::HeaderValue::from_bytes(bad.as_bytes()).expect("header bytes"),
            )
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.send(req).await.expect("GET");
        assert_eq!(resp.status, 200, "{bad}");
        let id = resp.header("x-request-id").expect("X-Request-Id");
        assert!(is_generated(id), "{bad:?} was kept as {id:?}");
        let seen = ha.requests().pop().expect("the backend got the request");
        assert_eq!(seen.header("x-request-id"), Some(id), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weirs_own_answers_carry_the_id() {
    let (a, ha) = spawn_backend("a").await;
    // Route only app.test: other hosts get weir's 404.
    let yaml = logged(&[a]).replace(
        "      - pool: web",
        "      - match: { host: app.test }\n        pool: web",
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let mut client = weir.h1_client("web").await;
    let req = http::Request::get("/")
        .header("host", "nowhere.test")
        .header("x-request-id", "lost-1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.send(req).await.expect("GET");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("x-request-id"), Some("lost-1"));
    assert!(
        resp.text().contains("request id: lost-1"),
        "{}",
        resp.text()
    );
    assert_eq!(ha.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_carry_the_id_both_ways() {
    let (a, ha) = spawn_backend("a").await;
    let weir = Weir::start(WEIR, &logged(&[a])).await;
    let mut client = weir_e2e::H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2c");
    let req = http::Request::get("http://app.test/h2")
        .version(http::Version::HTTP_2)
        .header("x-request-id", "h2-kept")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.send(req).await.expect("GET");
    assert_eq!(resp.header("x-request-id"), Some("h2-kept"));
    let resp = client.get("app.test", "/h2").await.expect("GET");
    let made = resp.header("x-request-id").expect("X-Request-Id");
    assert!(is_generated(made), "{made}");
    let seen: Vec<_> = ha
        .requests()
        .iter()
        .map(|r| r.header("x-request-id").map(str::to_owned))
        .collect();
    assert_eq!(seen, [Some("h2-kept".to_owned()), Some(made.to_owned())]);
}
