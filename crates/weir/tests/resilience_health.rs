//! Issue 3 (b): an active HTTP check whose path turns 503 takes the backend out within
//! `interval × fall + timeout`, and back after `rise` passing probes; both transitions are
//! logged with their reason and shown in `/status`.
//!
//! Bounds are upper bounds only, with generous slack (×3 + 1 s): a slow CI machine may be
//! late, never early, so a lower bound would only make the test flaky.

use std::time::Duration;

use tokio::time::Instant;
use weir_e2e::client;
use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{spawn_backend, spawn_backends, status, until, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const INTERVAL_MS: u64 = 100;
const TIMEOUT_MS: u64 = 200;
const RISE: u32 = 2;
const FALL: u32 = 2;

/// The slack every timing bound here gets: ×3 + 1 s.
fn generous(nominal: Duration) -> Duration {
    nominal * 3 + Duration::from_secs(1)
}

/// Turns `backend`'s health path to `status` and waits for weir's log line `message`
/// about it: the line, and how long it took.
async fn health_turns(
    weir: &Weir,
    backend: &BackendHandle,
    status: u16,
    message: &str,
) -> (serde_json::Value, Duration) {
    let mark = weir.log_mark();
    let started = Instant::now();
    backend.set_health_status(status);
    let line = weir
        .wait_for_backend_log(mark, message, backend.addr(), LOG_WAIT)
        .await;
    (line, started.elapsed())
}

/// `/status`'s entry for backend `addr` of pool `web`, checked to be `up` (or down).
async fn status_entry(weir: &Weir, addr: std::net::SocketAddr, up: bool) -> serde_json::Value {
    let doc = weir.status().await;
    let entry = status::backend(&doc, "web", addr).clone();
    let state = if up { "up" } else { "down" };
    assert_eq!(
        (&entry["up"], &entry["state"]),
        (&up.into(), &state.into()),
        "{entry}"
    );
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_path_turning_503_marks_down_within_interval_times_fall_plus_timeout_and_up_after_rise(
) {
    let ([a, b], [ha, _hb]) = spawn_backends(["a", "b"]).await;
    let yaml = one_pool(
        "round_robin",
        &backends(&[a, b]),
        &health_check(INTERVAL_MS, TIMEOUT_MS, RISE, FALL),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let addr = weir.listener_addr("web");
    // Past the initial state: from here on `fall` failures are needed, not one.
    until("a few probes of a", || ha.health_probes() >= 2).await;

    let interval = Duration::from_millis(INTERVAL_MS);
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let (down, took) = health_turns(&weir, &ha, 503, "backend down").await;
    let bound = generous(interval * FALL + timeout);
    assert!(took <= bound, "down after {took:?}, bound {bound:?}");
    assert_eq!(down["level"], "WARN", "{down}");
    assert!(
        down["reason"].as_str().is_some_and(|r| r.contains("503")),
        "the reason should carry the check's error (status 503): {down}"
    );
    let entry = status_entry(&weir, a, false).await;
    assert_eq!(
        entry["ejected"], false,
        "down by the active check, not ejected: {entry}"
    );
    assert!(
        entry["reason"].as_str().is_some_and(|r| r.contains("503")),
        "/status should say why a is down: {entry}"
    );
    assert!(
        entry["since_unix_ms"].as_u64().is_some_and(|t| t > 0),
        "/status should say since when: {entry}"
    );

    let hits = ha.hits();
    for _ in 0..10 {
        let resp = client::get(addr, "/").await;
        assert_eq!((resp.status.as_u16(), resp.text()), (200, "b".to_owned()));
    }
    assert_eq!(ha.hits(), hits, "a down backend received requests");

    let (up, took) = health_turns(&weir, &ha, 200, "backend up").await;
    let bound = generous(interval * RISE + timeout);
    assert!(took <= bound, "up after {took:?}, bound {bound:?}");
    assert_eq!(up["level"], "INFO", "{up}");
    let entry = status_entry(&weir, a, true).await;
    assert!(
        entry["downtime_seconds"].as_f64().is_some_and(|d| d > 0.0),
        "the down period counts as downtime: {entry}"
    );
    let got: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(client::get(addr, "/").await.text());
        }
        v
    };
    assert!(got.iter().any(|b| b == "a"), "a back in rotation: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_failed_probe_after_start_up_does_not_flap_the_backend() {
    let (a, ha) = spawn_backend("a").await;
    let yaml = one_pool(
        "round_robin",
        &backends(&[a]),
        &health_check(INTERVAL_MS, TIMEOUT_MS, RISE, 3),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    until("a few probes of a", || ha.health_probes() >= 2).await;

    // One failing probe, then healthy again: below `fall`, so no transition at all.
    let mark = weir.log_mark();
    let probes = ha.health_probes();
    ha.set_health_status(503);
    until("one probe seeing 503", || ha.health_probes() > probes).await;
    ha.set_health_status(200);
    let probes = ha.health_probes();
    until("three more passing probes", || {
        ha.health_probes() >= probes + 3
    })
    .await;
    assert!(
        weir.backend_logs_after(mark, "backend down", a).is_empty(),
        "one failure below `fall` marked the backend down\n{}",
        weir.log_tail(20)
    );
    assert!(status::is_up(&weir.status().await, "web", a));
}
