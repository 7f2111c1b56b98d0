//! Issue 3 (a): a backend hard-killed under load costs the clients nothing (DESIGN.md §4
//! "Failover without errors"), and once weir has noticed, no request is sent its way.
//!
//! "Receives nothing once detected" cannot be seen on a dead port, so after detection the
//! test restarts a listener on the dead backend's address whose health path still fails:
//! a process that came back but is not healthy. Any request reaching it would mean weir
//! routes to a backend it has marked down. Once its health path passes, the active check
//! brings it back, also after a passive ejection.

use std::time::Duration;

use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{spawn_backends, status, until, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_killed_backend_under_20_clients_costs_zero_requests_and_gets_nothing_once_detected() {
    kill_one_of_three_under_load("").await;
}

/// With passive checking off, only retries hide the dead backend until the active check
/// takes it out (up to `interval × fall + timeout`). A third of the requests then need a
/// retry, more than the default budget's 20%: this passes with the default budget only
/// because a retry after a refused connect is free (it never reached a backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_killed_backend_detected_by_active_checks_alone_costs_zero_requests() {
    kill_one_of_three_under_load("    passive: { consecutive_failures: 0 }\n").await;
}

async fn kill_one_of_three_under_load(pool_extra: &str) {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let yaml = one_pool(
        "round_robin",
        &backends(&[a, b, c]),
        &format!("{}{pool_extra}", health_check(100, 500, 2, 2)),
    );
    let weir = Weir::start(WEIR, &yaml).await;

    let load = Load::start(weir.listener_addr("web"), 20);
    until("load reaching all three backends", || {
        ha.hits() > 0 && hb.hits() > 0 && hc.hits() > 0
    })
    .await;
    load.wait_for_more(200, "before the kill").await;

    let mark = weir.log_mark();
    hc.kill().await;
    let down = weir
        .wait_for_backend_log(mark, "backend down", c, LOG_WAIT)
        .await;
    assert_eq!(down["level"], "WARN", "{down}");
    let reason = down["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "`backend down` should say why: {down}");
    if !pool_extra.is_empty() {
        assert!(
            !reason.starts_with("passive"),
            "passive checking is off: {down}"
        );
    }
    assert!(!status::is_up(&weir.status().await, "web", c));

    // The same address answers again, but its health path fails: it must stay out.
    let restarted = hc.restart_with_health("c again", 503).await;
    let (a_then, b_then) = (ha.hits(), hb.hits());
    load.wait_for_more(500, "after detection").await;
    until("the restarted but unhealthy backend being probed", || {
        restarted.health_probes() >= 2
    })
    .await;
    load.wait_for_more(100, "after the restarted backend was probed")
        .await;
    let restarted_hits = restarted.hits();

    // Healthy again: the active check brings it back, whatever took it out.
    let up_mark = weir.log_mark();
    restarted.set_health_status(200);
    weir.wait_for_backend_log(up_mark, "backend up", c, LOG_WAIT)
        .await;
    until("the recovered backend receiving traffic", || {
        restarted.hits() > 0
    })
    .await;
    let report = load.stop().await;

    eprintln!(
        "kill: {} ok over {} connections; hits a={} b={} c={} restarted={}",
        report.ok,
        report.connections,
        ha.hits(),
        hb.hits(),
        hc.hits(),
        restarted.hits()
    );
    report.assert_no_failures("killing one of three backends");
    assert_eq!(
        restarted_hits, 0,
        "requests reached a backend weir had marked down"
    );
    assert!(
        ha.hits() > a_then && hb.hits() > b_then,
        "the two survivors should share the load after detection"
    );
    assert!(status::is_up(&weir.status().await, "web", c));
    assert!(
        weir.backend_logs_after(mark, "backend up", c).len() == 1,
        "a backend whose health path failed came back up before it passed"
    );
}
