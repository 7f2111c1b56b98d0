//! Shared fixtures for weir's benchmarks.
//!
//! Configs are built by hand rather than parsed, so a benchmark measures only the code
//! it names (not YAML parsing or address resolution).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use weir_config::{test_util, BackendConfig, Config, StrategyKind};

/// Every strategy, with the name benchmarks report it under.
pub const STRATEGIES: [StrategyKind; 4] = [
    StrategyKind::RoundRobin,
    StrategyKind::Weighted,
    StrategyKind::Random,
    StrategyKind::LeastConnections,
];

/// `n` backends on distinct private addresses, weights cycling `1..=max_weight` so that
/// the weighted strategies have real work to do.
pub fn backends(n: usize, max_weight: u32) -> Vec<BackendConfig> {
    let max_weight = max_weight.max(1);
    (0..n)
        .map(|i| {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let ip = Ipv4Addr::from(0x0A00_0000 | i);
            let addr = SocketAddr::from((ip, 80));
            test_util::weighted_backend(&addr.to_string(), addr, i % max_weight + 1)
        })
        .collect()
}

/// One HTTP listener routing everything to pool `app`, which has `n` backends of
/// weights `1..=max_weight`.
pub fn config(strategy: StrategyKind, n: usize, max_weight: u32) -> Arc<Config> {
    let mut pool = test_util::pool("app", backends(n, max_weight));
    pool.strategy = strategy;
    if strategy == StrategyKind::ConsistentHash {
        pool.consistent_hash = Some(weir_config::ConsistentHashConfig::default());
    }
    let mut config = test_util::config(vec![test_util::http_listener("web", "app")], vec![pool]);
    config.source = PathBuf::from("<bench>");
    Arc::new(config)
}
