//! What a valid reload keeps and changes besides the pool (issue 2, item 5): new listeners
//! are bound, removed ones stop accepting, kept backends keep their health state, and the
//! one-line summary names what changed.

use std::time::Duration;

use weir_e2e::client::{self, raw};
use weir_e2e::config::{backends, one_pool, FAST_HEALTH_CHECK};
use weir_e2e::{eventually, spawn_backend, spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

/// `base` with a second listener `extra` on port 0 routing to the same pool.
fn with_extra_listener(base: &str) -> String {
    base.replace(
        "pools:\n",
        "  - name: extra\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\npools:\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_binds_added_listeners_and_closes_removed_ones() {
    let (a, _ha) = spawn_backend("a").await;
    let base = one_pool("round_robin", &backends(&[a]), "");
    let mut weir = Weir::start(WEIR, &base).await;
    let web = weir.listener_addr("web");

    let mark = weir.log_mark();
    weir.rewrite_config(&with_extra_listener(&base));
    weir.sighup().await;
    weir.wait_for_log_after(mark, "config reloaded", LOG_WAIT)
        .await;
    let bound = weir
        .wait_for_log_field(mark, "listener bound", "listener", "extra", LOG_WAIT)
        .await;
    let extra = weir.listener_addr("extra");
    assert_eq!(bound["addr"], extra.to_string());
    assert_eq!(client::get(extra, "/").await.text(), "a");
    assert_eq!(
        weir.listener_addr("web"),
        web,
        "the kept listener kept its port"
    );
    assert_eq!(client::get(web, "/").await.text(), "a");

    weir.reload(&base, LOG_WAIT).await;
    eventually("the removed listener refusing connections", || async move {
        raw::is_refused(extra).await.then_some(())
    })
    .await;
    assert_eq!(client::get(web, "/").await.text(), "a");
    let status = weir.status().await;
    let listeners = status["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 1, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_health_state_of_kept_backends_and_summarises_changes() {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    ha.set_health_status(500);
    let mut weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[a, b]), FAST_HEALTH_CHECK),
    )
    .await;
    let port_a = format!(":{}", a.port());
    weir.wait_for_log_field(0, "backend down", "backend", &port_a, LOG_WAIT)
        .await;
    let before = weir.status().await;
    let transitions_a = before["pools"][0]["backends"][0]["transitions"].clone();

    let mark = weir.log_mark();
    weir.rewrite_config(&one_pool(
        "round_robin",
        &backends(&[a, b, c]),
        FAST_HEALTH_CHECK,
    ));
    weir.sighup().await;
    let line = weir
        .wait_for_log_after(mark, "config reloaded", LOG_WAIT)
        .await;
    let changes = line["changes"].as_str().unwrap_or_default();
    assert!(
        changes.contains(&c.port().to_string()),
        "the summary names the added backend: {line}"
    );

    // Right after the swap, a is still down: it was kept, not re-created as up.
    let status = weir.status().await;
    let entry = &status["pools"][0]["backends"][0];
    assert_eq!(entry["address"], a.to_string(), "{status}");
    assert_eq!(entry["up"], false, "kept backend lost its state: {status}");
    assert_eq!(entry["transitions"], transitions_a, "{status}");
    for _ in 0..30 {
        let resp = client::get(weir.listener_addr("web"), "/").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(
        ha.hits(),
        0,
        "the down backend got traffic after the reload"
    );
    assert!(hc.hits() > 0, "the added backend gets traffic");
    assert_eq!(hb.hits() + hc.hits(), 30);
}
