//! Issue 8, defect 9: shutdown has one deadline for every listener. Four TCP listeners
//! with an idle stream each and `shutdown_timeout: 2s` exit after about 2 s, not 8; and
//! a listener a reload removed, still draining, is waited for like the others instead of
//! being cut when the process exits. A second signal cuts what is left at once and
//! logs how many connections that was.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir_e2e::client;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{eventually, spawn_backend, spawn_tcp_sink, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_LISTENERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_busy_tcp_listeners_exit_within_one_shutdown_timeout() {
    let (sink, counts) = spawn_tcp_sink().await;
    let mut yaml = format!(
        "admin:\n  listen: 127.0.0.1:0\nshutdown_timeout: {}s\nlisteners:\n",
        SHUTDOWN_TIMEOUT.as_secs()
    );
    for i in 0..TCP_LISTENERS {
        yaml.push_str(&format!(
            "  - name: t{i}\n    listen: 127.0.0.1:0\n    protocol: tcp\n    pool: sink\n"
        ));
    }
    yaml.push_str(&format!(
        "pools:\n  sink:\n    backends:\n      - {{ address: {sink} }}\n"
    ));
    let mut weir = Weir::start(WEIR, &yaml).await;

    // One open, idle stream per listener, each relayed to the sink.
    let mut streams = Vec::new();
    for i in 0..TCP_LISTENERS {
        let mut s = TcpStream::connect(weir.listener_addr(&format!("t{i}")))
            .await
            .expect("connect to a TCP listener");
        s.write_all(b"x").await.expect("write one byte");
        streams.push(s);
    }
    eventually("every stream reaching the sink", || {
        let ready =
            counts.connections() == TCP_LISTENERS && counts.bytes_received() == TCP_LISTENERS;
        async move { ready.then_some(()) }
    })
    .await;

    let mark = weir.log_mark();
    let term_at = Instant::now();
    weir.sigterm().await;
    let exit = weir
        .wait_exit(SHUTDOWN_TIMEOUT * (TCP_LISTENERS as u32 + 2))
        .await;
    let took = term_at.elapsed();
    assert!(exit.success(), "exit status {exit}\n{}", weir.log_tail(20));
    assert!(
        took >= SHUTDOWN_TIMEOUT && took < 2 * SHUTDOWN_TIMEOUT,
        "{TCP_LISTENERS} busy listeners took {took:?} to shut down; shutdown_timeout is \
         {SHUTDOWN_TIMEOUT:?} for all of them together"
    );
    let done = weir
        .wait_for_log_after(mark, "shutdown complete", LOG_WAIT)
        .await;
    assert_eq!(done["forced"], TCP_LISTENERS, "{done}");
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_listener_a_reload_removed_that_is_still_draining() {
    let (a, ha) = spawn_backend("a").await;
    let base = one_pool("round_robin", &backends(&[a]), "");
    let with_old = base.replace(
        "pools:\n",
        "  - name: old\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\npools:\n",
    );
    let mut weir = Weir::start(WEIR, &with_old).await;
    let old = weir.listener_addr("old");
    let held = tokio::spawn(async move { client::get(old, "/hold").await });
    ha.wait_in_progress(1, "the held request reaching the backend")
        .await;

    let mark = weir.log_mark();
    weir.rewrite_config(&base);
    weir.sighup().await;
    weir.wait_for_log_after(mark, "config reloaded", LOG_WAIT)
        .await;
    weir.wait_for_log_after(mark, "listener removed: draining", LOG_WAIT)
        .await;

    // No running listener has a connection; the removed one still serves its request.
    let mark = weir.log_mark();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", LOG_WAIT)
        .await;
    ha.release(1);
    let resp = held.await.expect("held request task");
    assert_eq!(
        (resp.status.as_u16(), resp.text()),
        (200, "a".to_owned()),
        "the request on the removed listener is answered during shutdown"
    );
    let exit = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}\n{}", weir.log_tail(20));
    let done = weir
        .wait_for_log_after(mark, "shutdown complete", LOG_WAIT)
        .await;
    assert_eq!(done["forced"], 0, "{done}");
}

/// Review: a second signal stops at once and says how many connections it abandons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_counts_the_connections_it_abandons() {
    // shutdown_timeout 10s: the held request would outlast this test.
    let (mut weir, ha) = Weir::one_backend(WEIR, "a").await;
    let web = weir.listener_addr("web");
    let held = tokio::spawn(async move { client::request(web, hold()).await });
    ha.wait_in_progress(1, "the held request reaching the backend")
        .await;

    let mark = weir.log_mark();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", LOG_WAIT)
        .await;
    weir.sigterm().await;
    let exit = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "exit status {exit}\n{}", weir.log_tail(20));
    weir.wait_for_log_after(mark, "second signal: stopping now", LOG_WAIT)
        .await;
    let done = weir
        .wait_for_log_after(mark, "shutdown complete", LOG_WAIT)
        .await;
    assert_eq!(done["forced"], 1, "the held request was cut: {done}");
    let cut = held.await.expect("held request task");
    assert!(cut.is_err(), "the held request was answered: {cut:?}");
}

fn hold() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get("/hold")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("a GET request")
}
