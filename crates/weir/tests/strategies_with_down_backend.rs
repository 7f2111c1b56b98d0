//! Strategies choose "among the backends that are up" (DESIGN.md §4): when one backend is
//! down, the others keep their relative shares. A down backend's turn must not simply pass
//! to its neighbour in the list, which would then get its own share plus the dead one's.
//!
//! Each test marks the first backend down with a failing health check, then measures the
//! spread over the rest through the real proxy.

use std::collections::HashMap;
use std::time::Duration;

use weir_e2e::config::{backend_with, one_pool, FAST_HEALTH_CHECK};
use weir_e2e::{spawn_backend, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Starts `weights.len()` backends named `b0`, `b1`, ... with those weights under
/// `strategy`, fails `b0`'s health check, and returns the body counts of `n` requests.
async fn spread_with_first_down(
    strategy: &str,
    weights: &[u32],
    n: usize,
) -> HashMap<String, usize> {
    let mut list = String::new();
    let mut handles = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let (addr, h) = spawn_backend(&format!("b{i}")).await;
        list.push_str(&backend_with(addr, &format!("weight: {w}")));
        handles.push(h);
    }
    handles[0].set_health_status(500);
    let weir = Weir::start(WEIR, &one_pool(strategy, &list, FAST_HEALTH_CHECK)).await;
    let port = format!(":{}", handles[0].addr().port());
    weir.wait_for_log_field(0, "backend down", "backend", &port, Duration::from_secs(5))
        .await;

    let mut client = weir.h1_client("web").await;
    let mut counts = HashMap::new();
    for i in 0..n {
        let resp = client
            .get("/")
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        *counts.entry(resp.text()).or_insert(0) += 1;
    }
    assert_eq!(handles[0].hits(), 0, "the down backend got traffic");
    counts
}

/// Each of `names` got a share of `counts` within `range`.
fn assert_shares(
    counts: &HashMap<String, usize>,
    names: &[&str],
    range: std::ops::RangeInclusive<usize>,
) {
    for name in names {
        assert!(range.contains(&share(counts, name)), "{name}: {counts:?}");
    }
}

fn share(counts: &HashMap<String, usize>, name: &str) -> usize {
    counts.get(name).copied().unwrap_or(0)
}

#[tokio::test]
async fn round_robin_spreads_evenly_over_the_backends_that_are_up() {
    let counts = spread_with_first_down("round_robin", &[1, 1, 1, 1], 300).await;
    for name in ["b1", "b2", "b3"] {
        assert_eq!(share(&counts, name), 100, "{name}: {counts:?}");
    }
}

#[tokio::test]
async fn weighted_keeps_the_weight_ratio_among_the_backends_that_are_up() {
    // b1:b2 = 2:3 → 40 and 60 of 100. Handing b0's turns to b1 would make it 50/50.
    let counts = spread_with_first_down("weighted", &[5, 2, 3], 100).await;
    assert!((35..=45).contains(&share(&counts, "b1")), "{counts:?}");
    assert!((55..=65).contains(&share(&counts, "b2")), "{counts:?}");
}

#[tokio::test]
async fn random_spreads_evenly_over_the_backends_that_are_up() {
    // Expected 200 each (σ ≈ 11.5); b0's share going to b1 would make it about 300.
    let counts = spread_with_first_down("random", &[1, 1, 1, 1], 600).await;
    assert_shares(&counts, &["b1", "b2", "b3"], 140..=260);
}

#[tokio::test]
async fn least_connections_spreads_sequential_requests_over_the_backends_that_are_up() {
    // Sequential requests leave every backend idle, so only the tie-break decides; it must
    // not always favour one backend (DESIGN.md §4: ties broken fairly).
    let counts = spread_with_first_down("least_connections", &[1, 1, 1, 1], 300).await;
    assert_shares(&counts, &["b1", "b2", "b3"], 50..=150);
}
