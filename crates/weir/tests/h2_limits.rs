//! A listener's HTTP/2 limits reach the wire, follow a reload for new connections, and
//! `max_requests_per_connection` ends HTTP/1 (`Connection: close`) and HTTP/2 (GOAWAY)
//! connections after N requests. The HTTP/2 client is `tests/h2attack/h2attack.py`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_e2e::config::one_backend_listener;
use weir_e2e::{h2attack, spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn settings(report: &Value) -> &Value {
    &report["settings"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertises_weirs_limits_and_a_reload_changes_them_for_new_connections() {
    let (a, _ha) = spawn_backend("a").await;
    let mut weir = Weir::start(WEIR, &one_backend_listener(a, "")).await;
    let report = h2attack::run("settings", weir.listener_addr("web"), 0).await;
    eprintln!("defaults advertised: {report}");
    assert_eq!(
        *settings(&report),
        json!({
            "MAX_CONCURRENT_STREAMS": 100,
            "INITIAL_WINDOW_SIZE": 65536,
            "MAX_FRAME_SIZE": 16384,
            "MAX_HEADER_LIST_SIZE": 65536,
        }),
        "{report}"
    );
    assert_eq!(report["connection_window"], 1_048_576, "{report}");

    weir.reload(&one_backend_listener(
        a,
        "    http2:\n      max_concurrent_streams: 7\n      max_header_list_size: 16KiB\n      initial_stream_window: 128KiB\n      initial_connection_window: 2MiB\n",
    ), Duration::from_secs(10)).await;
    let report = h2attack::run("settings", weir.listener_addr("web"), 0).await;
    let s = settings(&report);
    assert_eq!(s["MAX_CONCURRENT_STREAMS"], 7, "{report}");
    assert_eq!(s["MAX_HEADER_LIST_SIZE"], 16_384, "{report}");
    assert_eq!(s["INITIAL_WINDOW_SIZE"], 131_072, "{report}");
    assert_eq!(report["connection_window"], 2_097_152, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_connection_closes_after_max_requests() {
    let (weir, ha) =
        Weir::one_backend_with(WEIR, "a", "    max_requests_per_connection: 3\n").await;
    let mut stream = weir.connect("web").await;
    // Five pipelined requests: weir answers three, the third saying it closes.
    let one = "GET / HTTP/1.1\r\nHost: h1.test\r\n\r\n";
    stream
        .write_all(one.repeat(5).as_bytes())
        .await
        .expect("send requests");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("weir closes the connection")
        .expect("read responses");
    let text = String::from_utf8_lossy(&all);
    let heads: Vec<&str> = text.split("HTTP/1.1 ").filter(|h| !h.is_empty()).collect();
    assert_eq!(heads.len(), 3, "{text}");
    assert!(heads.iter().all(|h| h.starts_with("200")), "{text}");
    let last = heads[2].to_ascii_lowercase();
    assert!(last.contains("connection: close"), "{text}");
    assert!(
        !heads[0].to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(ha.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connection_gets_goaway_after_max_requests() {
    let (weir, ha) =
        Weir::one_backend_with(WEIR, "a", "    max_requests_per_connection: 3\n").await;
    let report = h2attack::run("requests", weir.listener_addr("web"), 10).await;
    eprintln!("max_requests_per_connection 3 over h2: {report}");
    assert_eq!(report["responses"], 3, "{report}");
    assert_eq!(report["goaway"], true, "{report}");
    assert_eq!(report["error_code"], 0, "graceful: NO_ERROR\n{report}");
    assert_eq!(report["last_stream_id"], 5, "the third stream\n{report}");
    assert_eq!(report["closed"], true, "{report}");
    assert_eq!(ha.hits(), 3);

    // 0 lifts the limit.
    let (weir, hb) =
        Weir::one_backend_with(WEIR, "b", "    max_requests_per_connection: 0\n").await;
    let addr = weir.listener_addr("web");
    let report = h2attack::run("requests", addr, 1200).await;
    assert_eq!(report["responses"], 1200, "{report}");
    assert_eq!(hb.hits(), 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_http1_head_is_counted_as_a_protocol_error() {
    refused_heads_are_counted(
        "the protocol error",
        &[b"GET / HTTP/1.1\r\nHost: h1.test\r\nno colon here\r\n\r\n"],
    )
    .await;
}

/// hyper parses these heads and weir refuses them with a closing 400, so the connection
/// ends without a hyper error: they are counted where they are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_http1_head_is_counted_as_a_protocol_error() {
    refused_heads_are_counted(
        "both protocol errors",
        &[
            b"POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ],
    )
    .await;
}

/// Each of `heads` is answered 400 without reaching the backend, and counted once in
/// `weir_http_protocol_errors_total` (`what` names them in a failure).
async fn refused_heads_are_counted(what: &str, heads: &[&[u8]]) {
    let (a, ha) = spawn_backend("a").await;
    let weir = Weir::start(WEIR, &one_backend_listener(a, "")).await;
    for head in heads {
        let resp = weir_e2e::client::raw::exchange(weir.listener_addr("web"), head)
            .await
            .expect("an answer");
        assert_eq!(resp.status, 400, "{}", resp.head);
    }
    assert_eq!(ha.hits(), 0);
    let want = heads.len() as f64;
    let errors = weir_e2e::eventually(&format!("{what} counted"), || async {
        weir.metrics()
            .await
            .value("weir_http_protocol_errors_total", &[("listener", "web")])
            .filter(|n| *n >= want)
    })
    .await;
    assert_eq!(errors, want);
}

/// `weir check` of one listener (to a backend never connected to) with `listener_extra`,
/// asserted to exit with `code`.
async fn checked(listener_extra: &str, code: i32) -> weir_e2e::CheckOutput {
    let backend: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let out = weir_e2e::check_config(WEIR, &one_backend_listener(backend, listener_extra)).await;
    assert_eq!(out.code, Some(code), "{out:?}");
    out
}

#[tokio::test]
async fn weir_check_accepts_the_limits_and_names_each_bad_one() {
    checked(
        "    max_requests_per_connection: 1000\n    http2: { max_concurrent_streams: 100, max_header_list_size: 64KiB, max_pending_reset_streams: 20, max_stream_errors: 100, initial_stream_window: 65536, initial_connection_window: 1MiB, keepalive_interval: 30s, keepalive_timeout: 60s }\n",
        0,
    )
    .await;

    let out = checked(
        "    max_requests_per_connection: many\n    http2:\n      max_concurrent_streams: 5000\n      initial_stream_window: 64kb\n",
        1,
    )
    .await;
    let lines = out.stderr_lines();
    // serde stops at the first structural error (a word where a number belongs).
    assert!(
        lines.iter().any(|l| l.starts_with("weir.yaml:8:5: ")
            && l.contains("listeners[0].max_requests_per_connection")),
        "{lines:#?}"
    );
    let out = checked(
        "    http2:\n      max_concurrent_streams: 5000\n      initial_stream_window: 64kb\n",
        1,
    )
    .await;
    let lines = out.stderr_lines();
    assert!(
        lines.contains(&"weir.yaml:9:7: listeners[0].http2.max_concurrent_streams: max_concurrent_streams must be between 1 and 1000, got 5000"),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"weir.yaml:10:7: listeners[0].http2.initial_stream_window: invalid size \"64kb\" (expected bytes or a number and a unit: 65536, 64KiB, 1MiB)"),
        "{lines:#?}"
    );
}
