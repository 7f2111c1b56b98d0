//! Configs built by hand, for tests and benchmarks (feature `test-util`).
//!
//! A test of the balancer or the proxy should not depend on the YAML parser, and a
//! benchmark should measure only the code it names; both need a valid [`Config`] without
//! a file. These builders hold the one set of values such a config starts from (the
//! parser's defaults where it has them); a test changes the fields it is about on the
//! value returned, so what it checks stands in the test.
//!
//! ```
//! use weir_config::test_util;
//! let addr = "127.0.0.1:8081".parse().expect("an address");
//! let mut pool = test_util::pool("app", vec![test_util::backend(addr)]);
//! pool.retries = 0;
//! let config = test_util::config(vec![test_util::http_listener("web", "app")], vec![pool]);
//! assert_eq!(config.listeners[0].routes[0].pool.as_deref(), Some("app"));
//! ```

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::{
    AdminConfig, BackendConfig, Config, Http2Config, ListenerConfig, ListenerTimeouts,
    PassiveConfig, PoolConfig, PoolTimeouts, Protocol, QueueConfig, RetryBudgetConfig, RetryOn,
    RouteConfig, StrategyKind, UpstreamProtocol,
};

/// Loopback, port 0: where every hand-built listener and admin server listens.
pub const ANY_LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A primary backend of weight 1 at `addr`, written in the "file" as `addr` itself.
pub fn backend(addr: SocketAddr) -> BackendConfig {
    BackendConfig {
        address: addr.to_string(),
        addr,
        weight: NonZeroU32::MIN,
        backup: false,
        announced_weight: 1,
        max_in_flight: None,
        endpoint: crate::EndpointState::Ready,
    }
}

/// A primary backend at `addr` with `weight` (0 is read as 1) and `address` as written.
pub fn weighted_backend(address: &str, addr: SocketAddr, weight: u32) -> BackendConfig {
    let weight = NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN);
    BackendConfig {
        address: address.to_owned(),
        addr,
        weight,
        backup: false,
        announced_weight: weight.get(),
        max_in_flight: None,
        endpoint: crate::EndpointState::Ready,
    }
}

/// Pool `name`: round robin over `backends`, no health check, connect 2 s, response
/// 30 s, 2 retries, the parser's defaults for the rest.
pub fn pool(name: &str, backends: Vec<BackendConfig>) -> PoolConfig {
    PoolConfig {
        name: name.to_owned(),
        strategy: StrategyKind::RoundRobin,
        consistent_hash: None,
        backends,
        health_check: None,
        timeouts: PoolTimeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(30),
        },
        retries: 2,
        passive: PassiveConfig::default(),
        fail_open: false,
        slow_start: None,
        retry_on: RetryOn::default(),
        retry_budget: RetryBudgetConfig::default(),
        tls: None,
        upstream_protocol: UpstreamProtocol::Http1,
        discovery: None,
        max_in_flight: None,
        queue: QueueConfig::default(),
        sticky: None,
    }
}

/// A route to `pool` matching `host` and `path_prefix` (`None`: any).
pub fn route(host: Option<&str>, path_prefix: Option<&str>, pool: &str) -> RouteConfig {
    RouteConfig {
        host: host.map(str::to_owned),
        path_prefix: path_prefix.map(str::to_owned),
        pool: Some(pool.to_owned()),
        ..RouteConfig::default()
    }
}

/// HTTP listener `name` on [`ANY_LOOPBACK`] sending every request to `pool`: header read
/// 10 s, idle 60 s, 10,000 connections, 1,000 requests a connection, no TLS, no PROXY
/// protocol, no access log.
pub fn http_listener(name: &str, pool: &str) -> ListenerConfig {
    routed_listener(name, vec![route(None, None, pool)])
}

/// As [`http_listener`], with these `routes`.
pub fn routed_listener(name: &str, routes: Vec<RouteConfig>) -> ListenerConfig {
    ListenerConfig {
        name: name.to_owned(),
        listen: ANY_LOOPBACK,
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
        http2: Http2Config::default(),
        rate_limit: None,
        allow: None,
        deny: Vec::new(),
    }
}

/// TCP listener `name` relaying every connection to `pool`; otherwise as [`http_listener`].
pub fn tcp_listener(name: &str, pool: &str) -> ListenerConfig {
    ListenerConfig {
        protocol: Protocol::Tcp,
        pool: Some(pool.to_owned()),
        ..routed_listener(name, Vec::new())
    }
}

/// A config of `listeners` and `pools`, from no file (`<test>`), admin on
/// [`ANY_LOOPBACK`], 30 s to drain at shutdown.
pub fn config(listeners: Vec<ListenerConfig>, pools: Vec<PoolConfig>) -> Config {
    Config {
        source: PathBuf::from("<test>"),
        admin: AdminConfig {
            listen: ANY_LOOPBACK,
            api: None,
        },
        shutdown_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::ZERO,
        listeners,
        pools,
    }
}
