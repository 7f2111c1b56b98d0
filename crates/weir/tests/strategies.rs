//! Each strategy's spread, measured through the real proxy (DESIGN.md §4).
//!
//! The deterministic strategies are checked for exact shares; `random` within a wide
//! statistical bound; `least_connections` by holding requests open on two backends and
//! checking every new request goes to the idle third.

use std::collections::HashMap;

use weir_e2e::client;
use weir_e2e::config::{backend, backend_with, one_pool};
use weir_e2e::{eventually, spawn_backend, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Sends `n` sequential GETs on one keep-alive connection; returns the bodies in order.
async fn bodies(weir: &Weir, n: usize, path: &str) -> Vec<String> {
    let mut client = weir.h1_client("web").await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let resp = client
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        out.push(resp.text());
    }
    out
}

fn counts(bodies: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for b in bodies {
        *m.entry(b.as_str()).or_insert(0) += 1;
    }
    m
}

/// weir with `strategy` over backends `a`, `b` and `c`, each entry with its YAML
/// fields from `extra` (`""`: the address alone).
async fn abc(strategy: &str, extra: [&str; 3]) -> (Weir, [BackendHandle; 3]) {
    let mut list = String::new();
    let mut handles = Vec::new();
    for (name, extra) in ["a", "b", "c"].into_iter().zip(extra) {
        let (addr, h) = spawn_backend(name).await;
        list.push_str(&match extra {
            "" => backend(addr),
            extra => backend_with(addr, extra),
        });
        handles.push(h);
    }
    let Ok(handles) = <[BackendHandle; 3]>::try_from(handles) else {
        unreachable!("three backends")
    };
    (
        Weir::start(WEIR, &one_pool(strategy, &list, "")).await,
        handles,
    )
}

#[tokio::test]
async fn round_robin_gives_each_backend_exactly_a_third_of_300_requests() {
    // Weights are ignored by round_robin.
    let (weir, [ha, hb, hc]) = abc("round_robin", ["weight: 5", "", ""]).await;

    let got = bodies(&weir, 300, "/").await;
    let counts = counts(&got);
    assert_eq!(counts.get("a"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&100), "{counts:?}");
    assert_eq!((ha.hits(), hb.hits(), hc.hits()), (100, 100, 100));
    // Each backend in turn: no backend twice in a row.
    for w in got.windows(2) {
        assert_ne!(w[0], w[1], "round robin repeated a backend: {got:?}");
    }
}

#[tokio::test]
async fn weighted_5_1_1_gives_exact_shares_interleaved_over_70_requests() {
    let (weir, _) = abc("weighted", ["weight: 5", "weight: 1", "weight: 1"]).await;

    let got = bodies(&weir, 70, "/").await;
    let counts = counts(&got);
    assert_eq!(counts.get("a"), Some(&50), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&10), "{counts:?}");
    assert_eq!(
        got[..7],
        ["a", "a", "b", "a", "c", "a", "a"],
        "DESIGN.md: weights 5,1,1 give a a b a c a a"
    );
    // Smooth WRR repeats the cycle `a a b a c a a`: any 7 consecutive picks are 5 a, 1 b, 1 c.
    for (i, window) in got.windows(7).enumerate() {
        let w = self::counts(window);
        assert_eq!(
            (w.get("a"), w.get("b"), w.get("c")),
            (Some(&5), Some(&1), Some(&1)),
            "window at {i} is not a rotation of a a b a c a a: {window:?}"
        );
    }
}

#[tokio::test]
async fn random_spreads_in_proportion_to_weight() {
    let (weir, _) = abc("random", ["weight: 1", "weight: 1", "weight: 2"]).await;

    let got = bodies(&weir, 400, "/").await;
    let counts = counts(&got);
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    // Expected 100/100/200; one standard deviation is about 9, so these bounds are > 5σ.
    assert!((50..=150).contains(&n("a")), "a: {counts:?}");
    assert!((50..=150).contains(&n("b")), "b: {counts:?}");
    assert!((140..=260).contains(&n("c")), "c: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_sends_new_requests_to_the_idle_backend() {
    let (weir, handles) = abc("least_connections", ["", "", ""]).await;
    let addr = weir.listener_addr("web");

    // Two slow requests, one after the other: each must land on a backend with nothing
    // in flight, so two different backends end up holding one request each.
    let mut slow = Vec::new();
    for held in 1..=2usize {
        slow.push(tokio::spawn(
            async move { client::get(addr, "/hold").await },
        ));
        eventually(&format!("{held} held request(s) reaching backends"), || {
            let total: usize = handles.iter().map(|h| h.in_progress()).sum();
            async move { (total == held).then_some(()) }
        })
        .await;
    }
    let busy: Vec<_> = handles.iter().map(|h| h.in_progress()).collect();
    assert!(
        busy.iter().all(|&n| n <= 1),
        "two held requests went to the same backend: {busy:?}"
    );
    let idle = handles
        .iter()
        .find(|h| h.in_progress() == 0)
        .expect("one backend is idle");
    let idle_name = idle.name().to_owned();

    // Every fast request now goes to the idle backend: it has 0 in flight, the others 1.
    let got = bodies(&weir, 20, "/").await;
    assert!(
        got.iter().all(|b| *b == idle_name),
        "fast requests did not all go to idle {idle_name}: {got:?}"
    );

    for h in &handles {
        h.release(1);
    }
    for task in slow {
        let resp = task.await.expect("slow request task");
        assert_eq!(resp.status, 200, "held request: {}", resp.text());
    }
}
