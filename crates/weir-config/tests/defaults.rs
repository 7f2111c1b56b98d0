//! A minimal config gets every documented default; hostnames resolve; order is kept.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use weir_config::{parse, HealthCheckKind, Protocol, StrategyKind};

/// The smallest valid config, with a health check of every default.
static MINIMAL: LazyLock<String> =
    LazyLock::new(|| format!("{}    health_check: {{}}\n", weir_e2e::config::MINIMAL));

#[test]
fn minimal_config_gets_every_default() {
    let config = parse(&MINIMAL, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.source, Path::new("weir.yaml"));
    assert_eq!(config.admin.listen, "127.0.0.1:9901".parse().expect("addr"));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(
        config.shutdown_grace,
        Duration::ZERO,
        "no grace unless asked: SIGTERM stops accepting at once"
    );

    let l = &config.listeners[0];
    assert_eq!(l.protocol, Protocol::Http);
    assert_eq!(l.timeouts.header_read, Duration::from_secs(10));
    assert_eq!(l.timeouts.idle, Duration::from_secs(60));
    assert_eq!(l.max_connections, 10_000);
    assert_eq!(l.pool, None);
    assert_eq!(l.routes[0].host, None);
    assert_eq!(l.routes[0].path_prefix, None);

    let p = &config.pools[0];
    assert_eq!(p.strategy, StrategyKind::RoundRobin);
    assert_eq!(p.retries, 2);
    assert_eq!(p.timeouts.connect, Duration::from_secs(2));
    assert_eq!(p.timeouts.response, Duration::from_secs(30));
    let b = &p.backends[0];
    assert_eq!(b.address, "127.0.0.1:8081");
    assert_eq!(b.weight, NonZeroU32::MIN);
    assert!(!b.backup);

    let h = p
        .health_check
        .as_ref()
        .expect("health_check: {} is present");
    assert_eq!(h.kind, HealthCheckKind::Tcp);
    assert_eq!(h.interval, Duration::from_secs(2));
    assert_eq!(h.timeout, Duration::from_secs(1));
    assert_eq!((h.rise, h.fall), (2, 3));
}

#[test]
fn http_health_check_defaults_to_get_slash_expecting_2xx_3xx() {
    let yaml = MINIMAL.replace("health_check: {}", "health_check: { type: http }");
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(
        config.pools[0].health_check.as_ref().map(|h| &h.kind),
        Some(&HealthCheckKind::Http {
            path: "/".to_owned(),
            host: None,
            expect_status: 200..=399,
        })
    );
}

#[test]
fn expect_status_accepts_a_single_status_or_a_quoted_range() {
    for (written, range) in [("200", 200..=200), ("\"200-299\"", 200..=299)] {
        let yaml = MINIMAL.replace(
            "health_check: {}",
            &format!("health_check: {{ type: http, expect_status: {written} }}"),
        );
        let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
        let Some(HealthCheckKind::Http { expect_status, .. }) = config.pools[0]
            .health_check
            .as_ref()
            .map(|h| h.kind.clone())
        else {
            panic!("http check expected");
        };
        assert_eq!(expect_status, range);
    }
}

#[test]
fn pool_without_health_check_has_none() {
    let yaml = MINIMAL.replace("    health_check: {}\n", "");
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.pools[0].health_check, None);
}

#[test]
fn hostname_backend_resolves_and_keeps_its_written_address() {
    let yaml = MINIMAL.replace("127.0.0.1:8081", "localhost:80");
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let b = &config.pools[0].backends[0];
    assert_eq!(b.address, "localhost:80");
    assert!(b.addr.ip().is_loopback(), "{}", b.addr);
    assert_eq!(b.addr.port(), 80);
}

#[test]
fn pools_keep_file_order_and_unused_pools_are_fine() {
    let yaml = format!(
        "{}  zeta:\n    backends: [{{ address: 127.0.0.1:1 }}]\n  alpha:\n    strategy: least_connections\n    backends: [{{ address: '[::1]:2', weight: 256, backup: true }}]\n",
        *MINIMAL
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "zeta", "alpha"]);
    let alpha = config.pool("alpha").expect("alpha");
    assert_eq!(alpha.strategy, StrategyKind::LeastConnections);
    assert_eq!(alpha.backends[0].addr, "[::1]:2".parse().expect("addr"));
    assert_eq!(alpha.backends[0].weight.get(), 256);
    assert!(alpha.backends[0].backup);
}

#[test]
fn routes_are_normalised_and_tcp_listeners_name_their_pool() {
    let yaml = "\
shutdown_timeout: 1.5s
shutdown_grace: 5s
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - match: { host: API.Example.com, path_prefix: /v1/ }
        pool: web
      - match: { host: '*.example.com' }
        pool: web
      - pool: web
    timeouts: { header_read: 250ms, idle: 1m }
    max_connections: 5
  - name: pg
    listen: 127.0.0.1:0
    protocol: tcp
    pool: web
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
    retries: 0
";
    let config = parse(yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.shutdown_timeout, Duration::from_millis(1500));
    assert_eq!(config.shutdown_grace, Duration::from_secs(5));
    let web = &config.listeners[0];
    assert_eq!(web.routes[0].host.as_deref(), Some("api.example.com"));
    assert_eq!(web.routes[0].path_prefix.as_deref(), Some("/v1/"));
    assert_eq!(web.routes[1].host.as_deref(), Some("*.example.com"));
    assert_eq!(web.timeouts.header_read, Duration::from_millis(250));
    assert_eq!(web.timeouts.idle, Duration::from_secs(60));
    assert_eq!(web.max_connections, 5);
    let pg = &config.listeners[1];
    assert_eq!(pg.protocol, Protocol::Tcp);
    assert_eq!(pg.pool.as_deref(), Some("web"));
    assert!(pg.routes.is_empty());
    assert_eq!(config.pools[0].retries, 0);
}

#[test]
fn port_zero_listeners_may_share_an_address() {
    let yaml = MINIMAL.replace(
        "pools:",
        "  - name: other\n    listen: 127.0.0.1:0\n    routes: [{ pool: web }]\npools:",
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.listeners.len(), 2);
}

#[test]
fn a_zero_shutdown_grace_is_the_default_written_out() {
    for zero in ["0s", "0ms", "0"] {
        let yaml = format!("shutdown_grace: {zero}\n{}", weir_e2e::config::MINIMAL);
        let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
        assert_eq!(config.shutdown_grace, Duration::ZERO, "{zero}");
    }
    let yaml = format!("shutdown_grace: 1h\n{}", weir_e2e::config::MINIMAL);
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.shutdown_grace, Duration::from_secs(3600));
}
