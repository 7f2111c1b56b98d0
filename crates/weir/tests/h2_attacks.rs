//! Hostile HTTP/2 clients (`tests/h2attack/h2attack.py`) against the real binary: rapid
//! reset (CVE-2023-44487), a CONTINUATION flood, 1 000 streams at once, a zero-window
//! reader, a PING/SETTINGS flood.
//!
//! For each: weir answers GOAWAY or closes, its resident memory stays flat, another client
//! is served during and after, and the backend never has more requests at once than the
//! stream cap allows. The figures are printed (`--nocapture` shows them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use weir_e2e::client::{self, H2Client};
use weir_e2e::{h2attack, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Growth of weir's RSS an attack may cause: a few buffers and allocator slack, far
/// below what buffering any attack would take (each sends tens of megabytes or more).
const RSS_GROWTH_KIB: u64 = 16 * 1024;
/// The advertised (default) stream cap.
const STREAM_CAP: usize = 100;

struct Figures {
    report: Value,
    rss_before: u64,
    rss_after: u64,
    served_during: usize,
}

/// weir in front of one test backend, `listener_extra` under the listener.
async fn start(listener_extra: &str) -> (Weir, BackendHandle) {
    Weir::one_backend_with(WEIR, "a", listener_extra).await
}

/// [`start`], then [`attack`] with `scenario`: weir, its backend, and what was seen.
async fn attacked(
    listener_extra: &str,
    scenario: &str,
    arg: u64,
) -> (Weir, BackendHandle, Figures) {
    let (weir, ha) = start(listener_extra).await;
    let f = attack(&weir, scenario, arg).await;
    (weir, ha, f)
}

/// Runs `scenario` while a bystander sends requests on fresh connections; checks the
/// bystander was never refused, memory, and that an HTTP/2 client is served after.
async fn attack(weir: &Weir, scenario: &str, arg: u64) -> Figures {
    let addr = weir.listener_addr("web");
    // Warm up (first connections allocate pools and buffers) before the baseline.
    served(addr).await;
    let rss_before = weir.rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let bystander = tokio::spawn({
        let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
        async move {
            // Bounded: the attack itself is bounded to 40 s.
            for _ in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let resp = client::get(addr, "/").await;
                assert_eq!(resp.status, 200, "bystander during {addr}");
                ok.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let report = h2attack::run(scenario, addr, arg).await;
    stop.store(true, Ordering::SeqCst);
    bystander
        .await
        .expect("the bystander was served throughout");
    let rss_after = weir.rss_kib();
    served(addr).await;
    let figures = Figures {
        report,
        rss_before,
        rss_after,
        served_during: ok.load(Ordering::SeqCst),
    };
    eprintln!(
        "h2attack {scenario} {arg}: RSS {} -> {} KiB, bystander served {} requests during; {}",
        figures.rss_before, figures.rss_after, figures.served_during, figures.report
    );
    assert!(
        figures.rss_after <= figures.rss_before + RSS_GROWTH_KIB,
        "RSS grew from {} to {} KiB",
        figures.rss_before,
        figures.rss_after
    );
    figures
}

/// An HTTP/2 client gets an answer.
async fn served(addr: SocketAddr) {
    let mut h2 = H2Client::connect(addr).await.expect("h2 connect");
    let resp = h2.get("after.test", "/").await.expect("h2 request");
    assert_eq!(resp.status, 200);
}

/// `weir_http_protocol_errors_total` of listener `web`.
async fn protocol_errors(weir: &Weir) -> f64 {
    weir.metrics()
        .await
        .value("weir_http_protocol_errors_total", &[("listener", "web")])
        .unwrap_or(0.0)
}

fn goaway_code(f: &Figures) -> u64 {
    assert_eq!(f.report["goaway"], true, "{}", f.report);
    f.report["error_code"].as_u64().expect("GOAWAY has a code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_long_before_the_attack_ends() {
    let (weir, ha, f) = attacked("", "rapid-reset", 100_000).await;
    assert_eq!(goaway_code(&f), 11, "ENHANCE_YOUR_CALM\n{}", f.report);
    let sent = f.report["sent"].as_u64().expect("sent");
    assert!(sent < 100_000, "weir stopped the attack: {}", f.report);
    assert_eq!(protocol_errors(&weir).await, 1.0);
    assert!(
        ha.peak_in_progress() <= STREAM_CAP,
        "{}",
        ha.peak_in_progress()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_gets_goaway_without_buffering() {
    // Up to 20 000 frames of 8 KiB: 160 MiB if weir kept reading them.
    let (weir, ha, f) = attacked("", "continuation", 20_000).await;
    assert_ne!(
        goaway_code(&f),
        0,
        "an error, not a graceful end\n{}",
        f.report
    );
    assert!(
        f.report["sent"].as_u64().expect("sent") < 20_000,
        "{}",
        f.report
    );
    assert_eq!(attack_requests(&ha), 0, "the headers never completed");
    assert_eq!(protocol_errors(&weir).await, 1.0);
}

/// Requests of the attacker (not of the bystander) that reached the backend.
fn attack_requests(ha: &BackendHandle) -> usize {
    ha.requests()
        .iter()
        .filter(|r| r.header("host") == Some("h2attack.test"))
        .count()
}

/// The backend never held more than the stream cap (+ the bystander) at once; then
/// releases what it holds.
fn assert_capped(ha: &BackendHandle, what: &str) {
    let peak = ha.peak_in_progress();
    eprintln!(
        "{what}: backend peak in progress {peak} (hits {})",
        ha.hits()
    );
    assert!(peak <= STREAM_CAP + 1, "backend saw {peak} at once"); // + the bystander
    ha.release(1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_at_once_never_reach_the_backend_past_the_cap() {
    // 150 held streams: 100 reach the backend, 50 are refused, the connection lives.
    let (_weir, ha, f) = attacked("", "streams", 150).await;
    assert_eq!(f.report["refused"], 50, "{}", f.report);
    assert_eq!(f.report["goaway"], false, "{}", f.report);
    assert_capped(&ha, "150 streams");

    let (weir, ha, f) = attacked("", "streams", 1000).await;
    assert!(
        f.report["refused"].as_u64().expect("refused") > 0,
        "streams past the cap are refused\n{}",
        f.report
    );
    assert_eq!(goaway_code(&f), 11, "too many refusals\n{}", f.report);
    assert_eq!(protocol_errors(&weir).await, 1.0);
    assert_capped(&ha, "1000 streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_reader_is_closed_by_keepalive_with_memory_flat() {
    // 30 responses of 1 MB each that the client never lets weir send.
    let (_weir, ha, f) = attacked(
        "    http2: { keepalive_interval: 1s, keepalive_timeout: 1s }\n",
        "zero-window",
        30,
    )
    .await;
    assert_eq!(f.report["heads"], 30, "{}", f.report);
    assert_eq!(f.report["closed"], true, "{}", f.report);
    let after = f.report["seconds_to_close_after_stall"]
        .as_f64()
        .expect("closed");
    assert!(
        after < 5.0,
        "closed {after} s after the client stopped reading"
    );
    assert!(ha.peak_in_progress() <= STREAM_CAP + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_settings_flood_is_closed_as_idle_with_memory_flat() {
    // 50 000 PINGs and as many SETTINGS (1.6 MB), each asking for an answer.
    let (weir, _ha, f) = attacked("    timeouts: { idle: 1s }\n", "ping-flood", 50_000).await;
    assert_eq!(f.report["closed"], true, "{}", f.report);
    let after = f.report["seconds_after_flood"].as_f64().expect("seconds");
    assert!(after < 5.0, "closed {after} s after the flood");
    assert_eq!(
        protocol_errors(&weir).await,
        0.0,
        "an idle close is no error"
    );
}
