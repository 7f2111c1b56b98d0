//! Graceful shutdown, quick version (the full drain suite is issue 3): SIGTERM lets the
//! request in flight finish with 200, `/healthz` says 503 while draining, and weir exits 0.

use std::time::Duration;

use weir_e2e::client;
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let (mut weir, ha) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");
    let health = weir.healthz().await.expect("admin answers");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.text().trim(), "ok");

    let slow = tokio::spawn(async move { client::get(addr, "/hold").await });
    ha.wait_in_progress(1, "the slow request reaching the backend")
        .await;

    let mark = weir.log_mark();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", Duration::from_secs(5))
        .await;
    let draining = weir.healthz().await.expect("admin answers while draining");
    assert_eq!(draining.status, 503, "{}", draining.text());
    assert_eq!(draining.text().trim(), "draining");
    assert!(
        !weir.has_exited(),
        "weir must wait for the request in flight"
    );

    ha.release(1);
    let resp = slow.await.expect("slow request task");
    assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
    let status = weir.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        weir.log_tail(20)
    );
    weir.wait_for_log_after(mark, "shutdown complete", Duration::from_secs(1))
        .await;
}
