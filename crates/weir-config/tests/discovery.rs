//! `pools.NAME.discovery.dns` and `.kubernetes` (issue 11): defaults, a pool with no
//! static backends, and every error at its field path, line and column.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use weir_config::{
    parse, ConfigErrors, DiscoveryConfig, DnsDiscoveryConfig, DnsRecordType, KubernetesPort,
};

const HEAD: &str = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - pool: web
pools:
  web:
";

fn errors(yaml: &str) -> Vec<String> {
    match parse(&format!("{HEAD}{yaml}"), Path::new("weir.yaml")) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(ConfigErrors(e)) => e.iter().map(ToString::to_string).collect(),
    }
}

fn dns(yaml: &str) -> DnsDiscoveryConfig {
    let config = parse(&format!("{HEAD}{yaml}"), Path::new("weir.yaml")).expect("valid");
    match config.pools[0].discovery.clone() {
        Some(DiscoveryConfig::Dns(d)) => d,
        other => panic!("no DNS discovery in {other:?}"),
    }
}

#[test]
fn a_pool_with_discovery_needs_no_static_backends_and_gets_defaults() {
    let d = dns("    discovery:\n      dns: { name: web.example, port: 8080 }\n");
    assert_eq!(d.name, "web.example");
    assert_eq!(d.record_type, DnsRecordType::A);
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.resolver, None);
    assert_eq!(d.refresh, Duration::from_secs(30));
    assert_eq!(d.source(), "dns a web.example");
}

#[test]
fn srv_with_resolver_and_refresh_beside_static_backends() {
    let yaml = "    backends: [{ address: 127.0.0.1:9 }]
    discovery:
      dns:
        name: _http._tcp.web.service.consul
        type: srv
        resolver: 127.0.0.1:8600
        refresh: 5s
";
    let config = parse(&format!("{HEAD}{yaml}"), Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.pools[0].backends.len(), 1);
    let Some(DiscoveryConfig::Dns(d)) = &config.pools[0].discovery else {
        panic!("no discovery");
    };
    assert_eq!(d.record_type, DnsRecordType::Srv);
    assert_eq!(d.port, None);
    assert_eq!(d.resolver, Some(SocketAddr::from(([127, 0, 0, 1], 8600))));
    assert_eq!(d.refresh, Duration::from_secs(5));
    assert_eq!(
        dns("    discovery: { dns: { name: v6.example, type: aaaa, port: 80 } }\n").record_type,
        DnsRecordType::Aaaa
    );
}

#[test]
fn a_pool_without_discovery_still_needs_backends() {
    assert_eq!(
        errors("    strategy: random\n"),
        ["weir.yaml:7:3: pools.web: missing field `backends` (a pool needs at least one backend)"]
    );
}

#[test]
fn every_bad_field_is_reported_at_its_path() {
    let yaml = "    discovery:
      dns:
        name: bad name
        type: mx
        port: 80
        resolver: localhost
        refresh: 500ms
";
    assert_eq!(
        errors(yaml),
        [
            "weir.yaml:10:9: pools.web.discovery.dns.name: invalid DNS name \"bad name\" (only letters, digits, '-', '_' and '.' are allowed)",
            "weir.yaml:11:9: pools.web.discovery.dns.type: unknown DNS record type \"mx\" (expected a, aaaa or srv)",
            "weir.yaml:13:9: pools.web.discovery.dns.resolver: invalid resolver address \"localhost\" (expected ip:port, e.g. 127.0.0.1:53 or [::1]:53)",
            "weir.yaml:14:9: pools.web.discovery.dns.refresh: refresh must be at least 1s, got \"500ms\"",
        ]
    );
}

#[test]
fn port_is_required_for_a_and_refused_for_srv() {
    assert_eq!(
        errors("    discovery:\n      dns: { name: web.example }\n"),
        ["weir.yaml:9:7: pools.web.discovery.dns: missing field `port` (the backends' port, required for a and aaaa lookups)"]
    );
    assert_eq!(
        errors("    discovery:\n      dns: { name: _x._tcp.web, type: srv, port: 80 }\n"),
        ["weir.yaml:9:44: pools.web.discovery.dns.port: `port` applies only to a and aaaa lookups (srv answers carry their ports)"]
    );
    assert_eq!(
        errors("    discovery:\n      dns: { name: web.example, port: 0 }\n"),
        ["weir.yaml:9:33: pools.web.discovery.dns.port: port must be between 1 and 65535, got 0"]
    );
}

#[test]
fn missing_source_name_and_unknown_fields_are_errors() {
    assert_eq!(
        errors("    discovery: {}\n"),
        ["weir.yaml:8:5: pools.web.discovery: missing field `dns` or `kubernetes` (the discovery source)"]
    );
    assert_eq!(
        errors("    discovery:\n      dns: { port: 80 }\n"),
        ["weir.yaml:9:7: pools.web.discovery.dns: missing field `name` (the DNS name to look up)"]
    );
    let unknown = errors("    discovery:\n      dns: { name: a.b, port: 80, ttl: 5s }\n");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("weir.yaml:9:")
            && unknown[0].contains("pools.web.discovery.dns: unknown field `ttl`"),
        "{unknown:?}"
    );
}

/// A `kubernetes` block: parsed whatever the build, accepted only by one with the
/// `kubernetes` feature (this crate's, which weir-discovery's turns on). `cargo test -p
/// weir-config` alone builds it without; the workspace's tests with.
#[test]
fn a_kubernetes_block_takes_a_port_by_name_or_number_and_needs_the_feature() {
    let by_name =
        "    discovery:\n      kubernetes: { namespace: shop, service: web, port: http }\n";
    let by_number = "    discovery:\n      kubernetes: { service: web, port: 8080 }\n";
    if cfg!(feature = "kubernetes") {
        let config = parse(&format!("{HEAD}{by_name}"), Path::new("weir.yaml")).expect("valid");
        let Some(DiscoveryConfig::Kubernetes(k)) = &config.pools[0].discovery else {
            panic!("no kubernetes discovery in {config:?}");
        };
        assert_eq!(
            (k.namespace.as_deref(), k.service.as_str(), &k.port),
            (Some("shop"), "web", &KubernetesPort::Name("http".into()))
        );
        assert_eq!(k.source(), "kubernetes shop/web:http");
        let config = parse(&format!("{HEAD}{by_number}"), Path::new("weir.yaml")).expect("valid");
        let Some(DiscoveryConfig::Kubernetes(k)) = &config.pools[0].discovery else {
            panic!("no kubernetes discovery");
        };
        assert_eq!(
            (k.namespace.as_deref(), &k.port),
            (None, &KubernetesPort::Number(8080))
        );
        assert_eq!(
            errors("    discovery:\n      kubernetes: { service: web, port: 70000 }\n"),
            ["weir.yaml:9:35: pools.web.discovery.kubernetes.port: port must be 1..=65535, got 70000"]
        );
        assert_eq!(
            errors("    discovery:\n      kubernetes: { service: web, port: a-very-long-port-name }\n"),
            ["weir.yaml:9:35: pools.web.discovery.kubernetes.port: invalid port \"a-very-long-port-name\": a number 1..=65535 or a Service port name (a port name is at most 15 characters)"]
        );
    } else {
        assert_eq!(
            errors(by_name),
            ["weir.yaml:9:7: pools.web.discovery.kubernetes: this weir was built without Kubernetes discovery (cargo feature `kubernetes`, on by default)"]
        );
    }
}
