//! A reload storm: SIGHUPs alternating valid and invalid files under load cost no request,
//! every one is counted, and only the valid ones apply.
//!
//! The probe sent 300 SIGHUPs in 3 s; CI sends 100 (`WEIR_SIGHUPS` sets the number). Each
//! SIGHUP waits for `weir_config_reloads_total` to count it before the next file is
//! written, so no two reloads merge and the counts are exact: odd ones rewrite an invalid
//! file (rejected, the running config keeps serving), even ones swap between two valid
//! configs that differ in pool membership and strategy.

use weir_e2e::config::{backends, health_check, one_pool};
use weir_e2e::{eventually, spawn_backends, Load, Weir};

use crate::WEIR;

const DEFAULT_SIGHUPS: u64 = 100;
const CLIENTS: usize = 6;

async fn reload_counts(weir: &Weir) -> (f64, f64) {
    let m = weir.metrics().await;
    let count = |result| {
        m.value("weir_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    };
    (count("success"), count("failure"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighups_alternating_valid_and_invalid_files_under_load_lose_nothing() {
    let sighups: u64 = std::env::var("WEIR_SIGHUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SIGHUPS);
    let ([a, b, c], [_ha, _hb, _hc]) = spawn_backends(["a", "b", "c"]).await;
    let check = health_check(100, 500, 2, 2);
    let valid = [
        one_pool("round_robin", &backends(&[a, b]), &check),
        one_pool("least_connections", &backends(&[b, c]), &check),
    ];
    let invalid = [
        valid[0].replace("round_robin", "fastest"),
        valid[1].replace("    backends:\n", "    backends: [\n"),
    ];
    let mut weir = Weir::start(WEIR, &valid[0]).await;
    let addr = weir.listener_addr("web");

    let load = Load::start(addr, CLIENTS);
    load.wait_for_more(100, "before the first SIGHUP").await;
    let started = tokio::time::Instant::now();
    for i in 1..=sighups {
        let yaml = if i % 2 == 1 {
            &invalid[usize::from(i % 4 == 1)]
        } else {
            &valid[usize::from(i % 4 == 2)]
        };
        weir.rewrite_config(yaml);
        weir.sighup().await;
        eventually(&format!("SIGHUP {i} counted in /metrics"), || async {
            let (ok, failed) = reload_counts(&weir).await;
            (ok + failed >= i as f64).then_some(())
        })
        .await;
    }
    let elapsed = started.elapsed();
    load.wait_for_more(100, "after the last SIGHUP").await;
    let report = load.stop().await;

    let (ok, failed) = reload_counts(&weir).await;
    eprintln!(
        "{sighups} SIGHUPs in {elapsed:?}: {ok} applied, {failed} rejected; {} requests ok",
        report.ok
    );
    report.assert_no_failures("SIGHUP storm");
    let valid_count = (sighups / 2) as f64;
    assert_eq!(
        (ok, failed),
        (valid_count, sighups as f64 - valid_count),
        "each valid file applied, each invalid one rejected"
    );
    assert_eq!(weir.status().await["generation"], sighups / 2 + 1);
    assert_eq!(
        weir.listener_addr("web"),
        addr,
        "the listener kept its port"
    );
}
