//! Issue 3 (f) and passive ejection: in a pool without active checks, connect failures seen
//! by live traffic eject a backend, never more than `max_ejected_percent` of the pool, and
//! an ejected backend returns after `base_ejection_time`.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use weir_e2e::config::{backends, one_pool};
use weir_e2e::{closed_ports, spawn_backend, spawn_backends, status, until, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Enough retries and budget that a client never sees a dead backend while one is alive.
const GENEROUS_RETRIES: &str =
    "    retries: 3\n    retry_budget: { percent: 100, min_per_second: 1000 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ejection_never_takes_more_than_max_ejected_percent_of_the_pool() {
    let (live, hlive) = spawn_backend("live").await;
    let (_held, dead) = closed_ports::<3>();
    let mut all = vec![live];
    all.extend_from_slice(&dead);
    let pool_extra = format!(
        "    passive: {{ consecutive_failures: 2, max_ejected_percent: 50, base_ejection_time: 30s }}\n{GENEROUS_RETRIES}"
    );
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&all), &pool_extra)).await;

    let mut client = weir.h1_client("web").await;
    client.assert_gets(80, "/", "live").await;
    assert_eq!(hlive.hits(), 80);

    let ejected: HashSet<String> = weir
        .logs_with("backend down")
        .iter()
        .map(|l| {
            let reason = l["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("passive"),
                "a passive ejection's reason starts with `passive`: {l}"
            );
            l["backend"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        ejected.len(),
        2,
        "3 of 4 backends refuse, cap 50%: exactly 2 ejected, got {ejected:?}"
    );
    assert!(!ejected.contains(&live.to_string()), "{ejected:?}");
    let doc = weir.status().await;
    assert_eq!(status::down_count(&doc, "web"), 2, "{doc}");
    assert!(status::is_up(&doc, "web", live), "{doc}");
    let flagged: Vec<&serde_json::Value> = status::backends(&doc, "web")
        .iter()
        .filter(|b| b["ejected"] == true)
        .collect();
    assert_eq!(flagged.len(), 2, "two backends shown `ejected`: {doc}");
    for b in flagged {
        assert_eq!(b["state"], "down", "{b}");
        assert!(
            b["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("passive")),
            "/status should say why: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passively_ejected_backend_returns_after_base_ejection_time() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let pool_extra = format!(
        "    passive: {{ consecutive_failures: 2, max_ejected_percent: 50, base_ejection_time: 500ms }}\n{GENEROUS_RETRIES}"
    );
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[a, b]), &pool_extra),
    )
    .await;
    assert!(
        weir.logs_with("health check").is_empty(),
        "a pool without health_check sends no probes"
    );

    let load = Load::start(weir.listener_addr("web"), 2);
    load.wait_for_more(20, "before the kill").await;
    let mark = weir.log_mark();
    hb.kill().await;
    let b_before_kill = hb.hits();
    let down = weir
        .wait_for_backend_log(mark, "backend down", b, LOG_WAIT)
        .await;
    let ejected_at = Instant::now();
    assert!(
        down["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("passive")),
        "{down}"
    );
    assert_eq!(down["level"], "WARN", "{down}");
    let doc = weir.status().await;
    let entry = status::backend(&doc, "web", b);
    assert_eq!(
        (&entry["up"], &entry["ejected"], &entry["ejections"]),
        (&false.into(), &true.into(), &1.into()),
        "{entry}"
    );

    let hb = hb.restart("b again").await;
    weir.wait_for_backend_log(mark, "backend up", b, LOG_WAIT)
        .await;
    let took = ejected_at.elapsed();
    assert!(
        took < Duration::from_millis(500) * 3 + Duration::from_secs(1),
        "back {took:?} after ejection; base_ejection_time is 500ms"
    );
    until("b receiving traffic again", || hb.hits() > 0).await;
    let report = load.stop().await;
    let doc = weir.status().await;
    let entry = status::backend(&doc, "web", b);
    assert_eq!(
        (&entry["up"], &entry["ejected"]),
        (&true.into(), &false.into()),
        "{entry}"
    );
    assert!(
        entry["downtime_seconds"].as_f64().is_some_and(|d| d > 0.0),
        "the ejection counts as downtime: {entry}"
    );
    report.assert_no_failures("passive ejection and return");
    assert_eq!(
        report.ok,
        ha.hits() + b_before_kill + hb.hits(),
        "every request answered by a, b before its death, or the restarted b"
    );
}
