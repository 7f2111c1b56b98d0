//! Builders shared by the unit tests: backends with given weights, named `a`, `b`, …, on
//! top of `weir_config::test_util`'s hand-built configs (the tests do not depend on the
//! YAML parser).

use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) use weir_config::test_util::{config, route, routed_listener as http_listener};
use weir_config::{test_util, BackendConfig, PoolConfig, StrategyKind};

use crate::Backend;

/// `a`, `b`, … `z`, then `n26`, `n27`, …
pub(crate) fn name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{i}"),
    }
}

pub(crate) fn backend_config(i: usize, weight: u32, backup: bool) -> BackendConfig {
    assert!(weight > 0, "weights start at 1");
    let port = u16::try_from(10_000 + i).expect("test pools are small");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    BackendConfig {
        backup,
        ..test_util::weighted_backend(&name(i), addr, weight)
    }
}

/// Backends of pool `p` named `a`, `b`, … with these weights, all up.
pub(crate) fn backends(weights: &[u32]) -> Vec<Arc<Backend>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Arc::new(Backend::new("p", &backend_config(i, w, false))))
        .collect()
}

/// The names of the picked backends joined by spaces, `-` for `None`.
/// How often `pick` chose each backend of a pool of `len` in `picks` picks.
pub(crate) fn counts(
    len: usize,
    picks: usize,
    mut pick: impl FnMut() -> Option<usize>,
) -> Vec<usize> {
    let mut counts = vec![0; len];
    for _ in 0..picks {
        counts[pick().expect("something is up")] += 1;
    }
    counts
}

pub(crate) fn names(pool: &[Arc<Backend>], picks: impl Iterator<Item = Option<usize>>) -> String {
    picks
        .map(|p| p.map_or("-", |i| pool[i].address()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn pool_config(
    name: &str,
    strategy: StrategyKind,
    backends: Vec<BackendConfig>,
) -> PoolConfig {
    PoolConfig {
        strategy,
        ..test_util::pool(name, backends)
    }
}
