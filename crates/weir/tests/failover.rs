//! What clients see when backends die, fail checks, refuse or stall (DESIGN.md §4):
//! backup takeover and give-back, 503 with nothing up, 502 when all refuse, 504 on a slow
//! backend, and connect failures retried on another backend.

use std::time::Duration;

use weir_e2e::client;
use weir_e2e::config::{backend, backend_with, backends, one_pool, FAST_HEALTH_CHECK};
use weir_e2e::{closed_port, closed_ports, spawn_backend, spawn_backends, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Waits until weir logged `message` for `backend` after `mark`.
async fn wait_backend_log(weir: &Weir, mark: usize, message: &str, backend: &BackendHandle) {
    let port = format!(":{}", backend.addr().port());
    weir.wait_for_log_field(mark, message, "backend", &port, LOG_WAIT)
        .await;
}

async fn bodies(weir: &Weir, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = client::get(weir.listener_addr("web"), "/").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        out.push(resp.text());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_takes_over_when_primaries_die_and_gives_back_when_one_returns() {
    let ([p1, p2, bk], [hp1, hp2, hbk]) = spawn_backends(["p1", "p2", "backup"]).await;
    let list = format!(
        "{}{}{}",
        backend(p1),
        backend(p2),
        backend_with(bk, "backup: true")
    );
    let weir = Weir::start(WEIR, &one_pool("round_robin", &list, FAST_HEALTH_CHECK)).await;

    let got = bodies(&weir, 20).await;
    assert!(got.iter().all(|b| b == "p1" || b == "p2"), "{got:?}");
    assert_eq!(hbk.hits(), 0, "the backup served while primaries were up");

    let mark = weir.log_mark();
    hp1.kill().await;
    hp2.kill().await;
    wait_backend_log(&weir, mark, "backend down", &hp1).await;
    wait_backend_log(&weir, mark, "backend down", &hp2).await;
    let got = bodies(&weir, 10).await;
    assert!(got.iter().all(|b| b == "backup"), "{got:?}");

    let mark = weir.log_mark();
    let hp1 = hp1.restart("p1").await;
    wait_backend_log(&weir, mark, "backend up", &hp1).await;
    let backup_hits = hbk.hits();
    let got = bodies(&weir, 10).await;
    assert!(got.iter().all(|b| b == "p1"), "{got:?}");
    assert_eq!(
        hbk.hits(),
        backup_hits,
        "the backup kept serving after a primary returned"
    );

    let status = weir.status().await;
    let pool = &status["pools"][0];
    assert_eq!(pool["name"], "web", "{status}");
    assert_eq!(pool["backends_up"], 2, "p1 and the backup are up: {status}");
    let backup = pool["backends"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["address"] == bk.to_string()))
        .unwrap_or_else(|| panic!("backup {bk} missing from /status: {status}"));
    assert_eq!(backup["backup"], true, "{status}");
}

#[tokio::test]
async fn nothing_up_answers_503_at_once_then_recovers() {
    let (a, ha) = spawn_backend("a").await;
    ha.set_health_status(500);
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[a]), FAST_HEALTH_CHECK),
    )
    .await;
    wait_backend_log(&weir, 0, "backend down", &ha).await;

    let resp = client::get(weir.listener_addr("web"), "/").await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        resp.text()
            .starts_with("503 Service Unavailable: no backend available in pool \"web\""),
        "503 body should name the cause: {:?}",
        resp.text()
    );
    assert_eq!(ha.hits(), 0, "a request reached a backend that is down");

    let mark = weir.log_mark();
    ha.set_health_status(200);
    wait_backend_log(&weir, mark, "backend up", &ha).await;
    let resp = client::get(weir.listener_addr("web"), "/").await;
    assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
}

#[tokio::test]
async fn every_backend_refusing_answers_502() {
    let (_held, refused) = closed_ports::<2>();
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&refused), "")).await;

    let resp = client::get(weir.listener_addr("web"), "/").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(!resp.body.is_empty(), "502 should say why");
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_backend() {
    let held = closed_port();
    let dead = held.addr();
    let (live, hlive) = spawn_backend("live").await;
    // No health check: only the retry can hide the dead backend from clients.
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[dead, live]), "    retries: 2\n"),
    )
    .await;

    let mut client = weir.h1_client("web").await;
    for i in 0..20 {
        let resp = client.get("/").await.expect("request");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.text(), "live");
    }
    assert_eq!(hlive.hits(), 20);
}

#[tokio::test]
async fn slow_backend_answers_504_after_the_response_timeout() {
    let (a, ha) = spawn_backend("slow").await;
    ha.set_delay(Duration::from_secs(5));
    let extra = "    timeouts: { connect: 1s, response: 200ms }\n    retries: 0\n";
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[a]), extra)).await;

    let resp = client::get(weir.listener_addr("web"), "/").await;
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(!resp.body.is_empty(), "504 should say why");
}
