//! Issue 3 (c): 100 SIGHUPs alternating two valid configs (different pool membership,
//! active health checks on) under concurrent load: zero failed requests, zero refused
//! connections, and every reload applied (generation 101).
//!
//! Every reload adds a backend the previous one removed, so each one also exercises the
//! health checker's reconcile (a new backend is probed at once and must take traffic
//! without a single failure, whatever its initial state).

use std::time::Duration;

use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{spawn_backends, until, BackendHandle, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const RELOADS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sighups_alternating_pool_membership_under_load_lose_nothing() {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let check = health_check(100, 500, 2, 2);
    let config_ab = one_pool("round_robin", &backends(&[a, b]), &check);
    let config_bc = one_pool("round_robin", &backends(&[b, c]), &check);
    let mut weir = Weir::start(WEIR, &config_ab).await;
    let addr = weir.listener_addr("web");

    let load = Load::start(addr, 10);
    load.wait_for_more(100, "before the first reload").await;

    for i in 1..=RELOADS {
        // Odd reloads swap a out for c, even ones c out for a.
        let (yaml, added): (&str, &BackendHandle) = if i % 2 == 1 {
            (&config_bc, &hc)
        } else {
            (&config_ab, &ha)
        };
        let added_before = added.hits();
        let (line, generation) = weir.reload(yaml, LOG_WAIT).await;
        assert_eq!(generation, i + 1, "reload {i}: {line}");
        until(
            &format!("reload {i}: {} receiving traffic", added.name()),
            || added.hits() > added_before,
        )
        .await;
    }
    load.wait_for_more(100, "after the last reload").await;
    let report = load.stop().await;

    report.log(&format!("{RELOADS} reloads"), &[&ha, &hb, &hc]);
    report.assert_no_failures("100 reloads");
    assert_eq!(
        weir.listener_addr("web"),
        addr,
        "the listener kept its port"
    );
    assert_eq!(weir.status().await["generation"], RELOADS + 1);
    assert!(weir.logs_with("config reload rejected").is_empty());
    assert!(
        weir.logs_with("backend down").is_empty(),
        "no backend was unhealthy, yet one was marked down"
    );
}
