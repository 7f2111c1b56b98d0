//! Shared fixtures for weir's benchmarks.
//!
//! Configs are built by hand rather than parsed, so a benchmark measures only the code
//! it names (not YAML parsing or address resolution).

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_config::{
    AdminConfig, BackendConfig, Config, ListenerConfig, ListenerTimeouts, PoolConfig, PoolTimeouts,
    Protocol, RouteConfig, StrategyKind,
};

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
            BackendConfig {
                address: addr.to_string(),
                addr,
                weight: NonZeroU32::new(i % max_weight + 1).unwrap_or(NonZeroU32::MIN),
                backup: false,
            }
        })
        .collect()
}

/// One HTTP listener routing everything to pool `app`, which has `n` backends of
/// weights `1..=max_weight`.
pub fn config(strategy: StrategyKind, n: usize, max_weight: u32) -> Arc<Config> {
    let pool = PoolConfig {
        name: "app".to_owned(),
        strategy,
        backends: backends(n, max_weight),
        health_check: None,
        timeouts: PoolTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(30),
        },
        retries: 2,
        passive: weir_config::PassiveConfig::default(),
        fail_open: false,
        slow_start: None,
        retry_on: weir_config::RetryOn::default(),
        retry_budget: weir_config::RetryBudgetConfig::default(),
        tls: None,
        upstream_protocol: weir_config::UpstreamProtocol::Http1,
    };
    let listener = ListenerConfig {
        name: "web".to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        protocol: Protocol::Http,
        tls: None,
        routes: vec![RouteConfig {
            host: None,
            path_prefix: None,
            pool: "app".to_owned(),
        }],
        pool: None,
        timeouts: ListenerTimeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        },
        max_connections: 10_000,
        access_log: false,
        proxy_protocol: None,
        accept_proxy_protocol: None,
        max_requests_per_connection: 1000,
        http2: weir_config::Http2Config::default(),
    };
    Arc::new(Config {
        source: PathBuf::from("<bench>"),
        admin: AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
        },
        shutdown_timeout: Duration::from_secs(30),
        listeners: vec![listener],
        pools: vec![pool],
    })
}
