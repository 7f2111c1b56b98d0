//! The access log (issue 4): one `weir::access` event per request on listeners with
//! `access_log: true`, a JSON object under `--log-format json` with the documented
//! fields; nothing at all when the setting is off (the default).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use weir_e2e::config::{access_logged, backends, one_pool};
use weir_e2e::{spawn_backend, H1Client, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const WAIT: Duration = Duration::from_secs(10);

/// Listener `web` with the access log on: `app.test` goes to pool `web`, other hosts
/// find no route (404).
fn logged(addrs: &[SocketAddr]) -> String {
    access_logged("match: { host: app.test }\n        pool: web", addrs)
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    line.get(name)
        .unwrap_or_else(|| panic!("access line has no {name:?}: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_are_json_with_every_field() {
    let (a, _ha) = spawn_backend("a").await;
    let weir = Weir::start(WEIR, &logged(&[a])).await;
    let web = weir.listener_addr("web");
    let mark = weir.log_mark();

    let mut client = H1Client::connect(web).await.expect("connect");
    let get = http::Request::get("/hello?x=1")
        .header("host", "app.test")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.send(get).await.expect("GET");
    assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
    let get_id = resp
        .header("x-request-id")
        .expect("X-Request-Id")
        .to_owned();
    let post = http::Request::post("/echo")
        .header("host", "app.test:8080")
        .body(Full::new(Bytes::from(vec![b'x'; 1234])))
        .expect("request");
    let resp = client.send(post).await.expect("POST");
    assert_eq!((resp.status.as_u16(), resp.body.len()), (200, 1234));
    let missing = http::Request::get("/nowhere")
        .header("host", "other.test")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(client.send(missing).await.expect("GET").status, 404);

    let lines = weir.wait_for_access_lines(mark, 3, WAIT).await;
    assert_eq!(lines.len(), 3, "one line per request: {lines:#?}");
    for line in &lines {
        assert_eq!(field(line, "level"), "INFO", "{line}");
        let client_addr = field(line, "client").as_str().expect("client is a string");
        let client_addr: SocketAddr = client_addr.parse().expect("client is ip:port");
        assert!(client_addr.ip().is_loopback(), "{line}");
        assert_eq!(field(line, "listener"), "web", "{line}");
        assert_eq!(field(line, "retries"), 0, "{line}");
        let id = field(line, "request_id")
            .as_str()
            .expect("request_id is a string");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "a generated X-Request-Id: {line}"
        );
        assert_eq!(field(line, "error"), "-", "{line}");
        let ms = field(line, "duration_ms")
            .as_f64()
            .expect("duration_ms is a number");
        assert!((0.0..10_000.0).contains(&ms), "{line}");
    }
    let (get, post, missing) = (&lines[0], &lines[1], &lines[2]);
    let a = a.to_string();

    assert_eq!(field(get, "request_id"), get_id.as_str(), "{get}");
    assert_eq!(field(get, "method"), "GET", "{get}");
    assert_eq!(field(get, "host"), "app.test", "{get}");
    assert_eq!(field(get, "path"), "/hello", "{get}");
    assert_eq!(field(get, "status"), 200, "{get}");
    assert_eq!(field(get, "backend"), a.as_str(), "{get}");
    assert_eq!(field(get, "pool"), "web", "{get}");
    assert_eq!(field(get, "bytes_in"), 0, "{get}");
    assert_eq!(field(get, "bytes_out"), 1, "{get}");

    assert_eq!(field(post, "method"), "POST", "{post}");
    assert_eq!(field(post, "host"), "app.test", "{post}");
    assert_eq!(field(post, "path"), "/echo", "{post}");
    assert_eq!(field(post, "bytes_in"), 1234, "{post}");
    assert_eq!(field(post, "bytes_out"), 1234, "{post}");

    assert_eq!(field(missing, "status"), 404, "{missing}");
    assert_eq!(field(missing, "backend"), "-", "{missing}");
    assert_eq!(field(missing, "pool"), "-", "{missing}");
    assert_eq!(field(missing, "host"), "other.test", "{missing}");
    assert!(
        field(missing, "bytes_out").as_u64() > Some(0),
        "weir's own body is counted: {missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_line_names_the_backend_that_answered_after_a_retry() {
    let held = weir_e2e::closed_port();
    let dead = held.addr();
    let (live, _h) = spawn_backend("live").await;
    let weir = Weir::start(WEIR, &logged(&[dead, live])).await;
    let mark = weir.log_mark();
    let mut client = weir.h1_client("web").await;
    // Round robin alternates, so one of two requests first goes to the dead backend and
    // is retried on `live`.
    for _ in 0..2 {
        let get = http::Request::get("/")
            .header("host", "app.test")
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(client.send(get).await.expect("GET").text(), "live");
    }
    let lines = weir.wait_for_access_lines(mark, 2, WAIT).await;
    let live = live.to_string();
    for line in &lines {
        assert_eq!(field(line, "backend"), live.as_str(), "{line}");
        assert_eq!(field(line, "status"), 200, "{line}");
    }
    let retries: Vec<u64> = lines
        .iter()
        .map(|l| field(l, "retries").as_u64().expect("retries is a number"))
        .collect();
    assert!(
        retries.contains(&1) && retries.iter().all(|&r| r <= 1),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_lines_when_the_setting_is_off() {
    let (a, _ha) = spawn_backend("a").await;
    let yaml = one_pool("round_robin", &backends(&[a]), "");
    let mut weir = Weir::start(WEIR, &yaml).await;
    let mark = weir.log_mark();
    let mut client = weir.h1_client("web").await;
    for _ in 0..5 {
        assert_eq!(client.get("/").await.expect("GET").status, 200);
    }
    // A later log event (a reload of the same file) proves the log reader has caught
    // up past those requests.
    let status = weir.status().await;
    assert_eq!(status["listeners"][0]["access_log"], false, "{status}");
    weir.sighup_reloaded(WAIT).await;
    assert!(
        weir.access_log_after(mark).is_empty(),
        "no access lines with access_log off: {:#?}",
        weir.access_log_after(mark)
    );
}
