//! Issue 8, defect 11 (admin part): a 405 from the admin server says which methods it
//! accepts (`Allow: GET, HEAD`), and an admin server on a non-loopback address is warned
//! about in the log at start-up and on every reload, since `/status` shows the topology
//! to whoever can reach it. Requests go to 127.0.0.1 only, even when weir binds 0.0.0.0.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use weir_e2e::client::{self, raw};
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const EXPOSED: &str = "admin listening on a non-loopback address";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_names_the_allowed_methods_and_loopback_gets_no_warning() {
    let (mut weir, _ha) = Weir::one_backend(WEIR, "a").await;
    let admin = weir.admin_addr();
    for (method, path) in [
        ("POST", "/status"),
        ("DELETE", "/metrics"),
        ("PUT", "/healthz"),
    ] {
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n");
        let resp = raw::exchange(admin, request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(resp.status, 405, "{method} {path}: {}", resp.head);
        assert_eq!(
            resp.header("allow"),
            Some("GET, HEAD"),
            "{method} {path}: {}",
            resp.head
        );
    }
    // What `Allow` names is what works.
    let head = http::Request::head("/healthz")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let resp = client::request(admin, head).await.expect("HEAD /healthz");
    assert_eq!(resp.status, 200);
    assert_eq!(client::get(admin, "/healthz").await.status, 200);

    weir.sighup_reloaded(LOG_WAIT).await;
    assert!(
        weir.logs_with(EXPOSED).is_empty(),
        "a loopback admin server is not worth a warning:\n{}",
        weir.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_server_on_a_non_loopback_address_is_warned_about_at_start_and_reload() {
    let (a, _ha) = spawn_backend("a").await;
    let yaml = one_pool("round_robin", &backends(&[a]), "").replacen(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 0.0.0.0:0\n",
        1,
    );
    assert!(yaml.contains("0.0.0.0:0"), "{yaml}");
    let mut weir = Weir::start(WEIR, &yaml).await;
    let line = weir.wait_for_log(EXPOSED, LOG_WAIT).await;
    assert_eq!(line["level"], "WARN", "{line}");
    let bound: SocketAddr = line["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"));
    assert!(bound.ip().is_unspecified(), "{line}");
    assert_eq!(
        bound,
        weir.admin_addr(),
        "the warning names the admin address"
    );
    let loopback = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    assert_eq!(client::get(loopback, "/healthz").await.status, 200);

    let mark = weir.log_mark();
    weir.sighup().await;
    weir.wait_for_log_after(mark, "config reloaded", LOG_WAIT)
        .await;
    let again = weir.wait_for_log_after(mark, EXPOSED, LOG_WAIT).await;
    assert_eq!(again["addr"], line["addr"], "{again}");
}

/// Review: the admin socket is bound before any listener accepts, so a start-up that
/// fails on it has served nobody: no listener task ever started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_address_in_use_fails_start_up_before_any_listener_accepts() {
    let (a, ha) = spawn_backend("a").await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let busy_addr = busy.local_addr().expect("occupied address");
    let yaml = one_pool("round_robin", &backends(&[a]), "").replacen(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!("admin:\n  listen: {busy_addr}\n"),
        1,
    );
    assert!(yaml.contains(&busy_addr.to_string()), "{yaml}");
    let mut weir = Weir::spawn_run(WEIR, &yaml, "info");
    let exit = weir.wait_exit(LOG_WAIT).await;
    assert!(!exit.success(), "weir started with its admin address taken");
    let stopped = weir.wait_for_log("weir stopped", LOG_WAIT).await;
    let error = stopped["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("admin: bind") && error.contains(&busy_addr.to_string()),
        "the error names the admin address: {stopped}"
    );
    assert!(
        weir.logs_with("listener bound").is_empty(),
        "a listener accepted before the admin bind failed:\n{}",
        weir.log_tail(20)
    );
    assert_eq!(ha.hits(), 0);
    drop(busy);
}
