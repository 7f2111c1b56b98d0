//! The admin server operators' tooling reads (DESIGN.md §4, §5): `/healthz` and `/status`
//! with listeners (configured and bound address), pools and per-backend state.

use serde_json::Value;
use weir_e2e::client;
use weir_e2e::config::{backend, backend_with, one_pool, FAST_HEALTH_CHECK};
use weir_e2e::{spawn_backend, spawn_backends, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn backend_entry<'a>(status: &'a Value, address: &str) -> &'a Value {
    status["pools"][0]["backends"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["address"] == address))
        .unwrap_or_else(|| panic!("{address} missing from /status: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_listeners_pools_and_live_backend_state() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let list = format!(
        "{}{}",
        backend_with(a, "weight: 3"),
        backend_with(b, "backup: true")
    );
    let weir = Weir::start(
        WEIR,
        &one_pool("least_connections", &list, FAST_HEALTH_CHECK),
    )
    .await;
    let addr = weir.listener_addr("web");

    let health = weir.healthz().await.expect("admin answers");
    assert_eq!((health.status.as_u16(), health.text().trim()), (200, "ok"));

    let status = weir.status().await;
    assert_eq!(status["generation"], 1, "{status}");
    assert_eq!(status["draining"], false, "{status}");
    let listener = &status["listeners"][0];
    assert_eq!(listener["name"], "web", "{status}");
    assert_eq!(listener["protocol"], "http", "{status}");
    assert_eq!(listener["listen"], "127.0.0.1:0", "{status}");
    assert_eq!(listener["bound"], addr.to_string(), "{status}");
    let pool = &status["pools"][0];
    assert_eq!(pool["name"], "web", "{status}");
    assert_eq!(pool["strategy"], "least_connections", "{status}");
    assert_eq!(pool["backends_up"], 2, "{status}");
    let ba = backend_entry(&status, &a.to_string());
    assert_eq!(
        (ba["weight"].as_u64(), ba["backup"].as_bool()),
        (Some(3), Some(false))
    );
    assert_eq!(
        (ba["up"].as_bool(), ba["in_flight"].as_u64()),
        (Some(true), Some(0))
    );
    let bb = backend_entry(&status, &b.to_string());
    assert_eq!(bb["backup"], true, "{status}");

    // A held request shows as in flight on its backend and as an active connection.
    let slow = tokio::spawn(async move { client::get(addr, "/hold").await });
    ha.wait_in_progress(1, "the held request reaching a").await;
    let status = weir.status().await;
    assert_eq!(
        backend_entry(&status, &a.to_string())["in_flight"],
        1,
        "{status}"
    );
    assert_eq!(status["listeners"][0]["active_connections"], 1, "{status}");
    ha.release(1);
    assert_eq!(slow.await.expect("task").status, 200);

    // A failed health check shows up with its reason.
    let mark = weir.log_mark();
    hb.set_health_status(503);
    let port = format!(":{}", b.port());
    weir.wait_for_log_field(
        mark,
        "backend down",
        "backend",
        &port,
        std::time::Duration::from_secs(5),
    )
    .await;
    let status = weir.status().await;
    let bb = backend_entry(&status, &b.to_string());
    assert_eq!(bb["up"], false, "{status}");
    assert!(bb["transitions"].as_u64() >= Some(1), "{status}");
    assert!(
        bb["last_transition"]["at_unix_ms"].as_u64() > Some(0),
        "{status}"
    );
    assert!(
        bb["last_transition"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("503")),
        "the reason names the failed check: {status}"
    );
    assert_eq!(status["pools"][0]["backends_up"], 1, "{status}");
}

#[tokio::test]
async fn status_names_backends_exactly_as_written() {
    let (a, _ha) = spawn_backend("a").await;
    let written = format!("localhost:{}", a.port());
    let list = backend(a).replace(&a.to_string(), &written);
    let weir = Weir::start(WEIR, &one_pool("round_robin", &list, "")).await;
    let resp = client::get(weir.listener_addr("web"), "/").await;
    assert_eq!(resp.text(), "a");
    let status = weir.status().await;
    backend_entry(&status, &written);
}
