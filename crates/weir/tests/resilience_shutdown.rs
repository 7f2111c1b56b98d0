//! Issue 3 (d): graceful shutdown. SIGTERM with several 2-second requests in flight:
//! `/healthz` turns 503 at once, the listener stops accepting, every request in flight is
//! answered 200 (a keep-alive client's with `Connection: close`), idle keep-alive
//! connections are closed, and weir exits 0 well within `shutdown_timeout`.

use std::time::Duration;

use tokio::time::Instant;
use weir_e2e::client::{self, raw, H1Client};
use weir_e2e::{eventually, until, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// What `one_pool` configures.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const SLOW: Duration = Duration::from_secs(2);
const FRESH_CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_2s_requests_in_flight_answers_all_refuses_new_and_exits_0() {
    let (mut weir, ha) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");

    // Two keep-alive clients that already used their connection: one will have a slow
    // request in flight, the other will sit idle.
    let mut busy = H1Client::connect(addr).await.expect("connect busy client");
    let mut idle = H1Client::connect(addr).await.expect("connect idle client");
    for c in [&mut busy, &mut idle] {
        let resp = c.get("/").await.expect("warm-up request");
        assert_eq!(resp.status, 200);
    }

    ha.set_delay(SLOW);
    let busy_task = tokio::spawn(async move {
        let resp = busy.get("/").await;
        (resp, busy)
    });
    let fresh: Vec<_> = (0..FRESH_CLIENTS)
        .map(|_| tokio::spawn(async move { client::get(addr, "/").await }))
        .collect();
    ha.wait_in_progress(FRESH_CLIENTS + 1, "every slow request reaching the backend")
        .await;

    let mark = weir.log_mark();
    let term_at = Instant::now();
    weir.sigterm().await;
    weir.wait_for_log_after(mark, "shutting down", Duration::from_secs(5))
        .await;
    let health = weir.healthz().await.expect("admin answers while draining");
    assert_eq!(health.status, 503, "{}", health.text());
    eventually("the listener refusing new connections", || async {
        raw::is_refused(addr).await.then_some(())
    })
    .await;
    let refused_after = term_at.elapsed();
    assert!(
        ha.in_progress() > 0 && !weir.has_exited(),
        "the listener kept accepting new connections until {refused_after:?} after SIGTERM, \
         when the slow requests had finished; it should refuse as soon as draining starts"
    );
    until("the idle keep-alive connection being closed", || {
        idle.is_closed()
    })
    .await;

    for (i, t) in fresh.into_iter().enumerate() {
        let resp = t.await.expect("fresh client task");
        assert_eq!(
            (resp.status.as_u16(), resp.text()),
            (200, "a".to_owned()),
            "in-flight request {i}"
        );
    }
    let (resp, busy) = busy_task.await.expect("busy client task");
    let resp = resp.expect("the keep-alive client's in-flight request is answered");
    assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
    assert_eq!(
        resp.header("connection").map(str::to_ascii_lowercase),
        Some("close".to_owned()),
        "a response sent while draining should carry `Connection: close`: {:?}",
        resp.headers
    );
    until("the busy keep-alive connection being closed", || {
        busy.is_closed()
    })
    .await;

    let exit = weir
        .wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(2))
        .await;
    let took = term_at.elapsed();
    assert!(exit.success(), "exit status {exit}\n{}", weir.log_tail(20));
    assert!(
        took < SHUTDOWN_TIMEOUT,
        "exit {took:?} after SIGTERM; shutdown_timeout is {SHUTDOWN_TIMEOUT:?}"
    );
    let done = weir
        .wait_for_log_after(mark, "shutdown complete", Duration::from_secs(1))
        .await;
    assert_eq!(
        done["forced"], 0,
        "nothing should be closed by force: {done}"
    );
}
