//! Builders shared by the unit tests: backends with given weights, and configs built
//! by hand (the tests do not depend on the YAML parser).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_config::{
    AdminConfig, BackendConfig, Config, ListenerConfig, ListenerTimeouts, PoolConfig, PoolTimeouts,
    Protocol, RouteConfig, StrategyKind,
};

use crate::Backend;

/// `a`, `b`, … `z`, then `n26`, `n27`, …
pub(crate) fn name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{i}"),
    }
}

pub(crate) fn backend_config(i: usize, weight: u32, backup: bool) -> BackendConfig {
    let port = u16::try_from(10_000 + i).expect("test pools are small");
    BackendConfig {
        address: name(i),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        weight: NonZeroU32::new(weight).expect("weights start at 1"),
        backup,
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
        name: name.to_owned(),
        strategy,
        backends,
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
    }
}

pub(crate) fn route(host: Option<&str>, path_prefix: Option<&str>, pool: &str) -> RouteConfig {
    RouteConfig {
        host: host.map(str::to_owned),
        path_prefix: path_prefix.map(str::to_owned),
        pool: pool.to_owned(),
    }
}

pub(crate) fn http_listener(name: &str, routes: Vec<RouteConfig>) -> ListenerConfig {
    ListenerConfig {
        name: name.to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        protocol: Protocol::Http,
        tls: None,
        routes,
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
    }
}

pub(crate) fn config(listeners: Vec<ListenerConfig>, pools: Vec<PoolConfig>) -> Config {
    Config {
        source: PathBuf::from("<test>"),
        admin: AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
        },
        shutdown_timeout: Duration::from_secs(30),
        listeners,
        pools,
    }
}
