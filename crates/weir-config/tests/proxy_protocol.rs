//! `proxy_protocol` and `accept_proxy_protocol`: accepted values and the errors for the rest.

mod support;

use support::errors;

use std::path::Path;

use weir_config::{parse, Cidr, ProxyProtocolVersion};
use weir_e2e::config::{tcp_listener, DB_POOL};

#[test]
fn proxy_protocol_settings_are_parsed() {
    let pg = tcp_listener("pg", "db");
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    accept_proxy_protocol: {{ trusted: [10.1.2.3/8, 127.0.0.1, '::1/128'] }}
    routes:
      - pool: db
{pg}    proxy_protocol: v2
{DB_POOL}"
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let accept = config.listeners[0]
        .accept_proxy_protocol
        .as_ref()
        .expect("accept set");
    let blocks: Vec<String> = accept.trusted.iter().map(Cidr::to_string).collect();
    assert_eq!(blocks, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    assert!(accept.is_trusted("10.9.9.9".parse().expect("ip")));
    assert!(!accept.is_trusted("11.0.0.1".parse().expect("ip")));
    assert_eq!(config.listeners[0].proxy_protocol, None);
    assert_eq!(
        config.listeners[1].proxy_protocol,
        Some(ProxyProtocolVersion::V2)
    );
}

#[test]
fn bad_proxy_protocol_settings_are_errors_with_positions() {
    let (pg, pg2) = (tcp_listener("pg", "db"), tcp_listener("pg2", "db"));
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    proxy_protocol: v1
    accept_proxy_protocol: {{ trusted: [10.0.0.0/33, nonsense, 127.0.0.1] }}
    routes:
      - pool: db
{pg}    proxy_protocol: v3
    accept_proxy_protocol: {{ trusted: [] }}
{pg2}    accept_proxy_protocol: {{}}
{DB_POOL}"
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:4:5: listeners[0].proxy_protocol: the PROXY protocol is sent on tcp listeners only (an http listener adds X-Forwarded-For)",
            "weir.yaml:5:40: listeners[0].accept_proxy_protocol.trusted[0]: invalid prefix length in \"10.0.0.0/33\" (0 to 32)",
            "weir.yaml:5:53: listeners[0].accept_proxy_protocol.trusted[1]: invalid CIDR \"nonsense\" (expected e.g. 10.0.0.0/8 or 127.0.0.1)",
            "weir.yaml:12:5: listeners[1].proxy_protocol: unknown PROXY protocol version \"v3\" (expected v1 or v2)",
            "weir.yaml:13:30: listeners[1].accept_proxy_protocol.trusted: at least one trusted address block is required",
            "weir.yaml:18:5: listeners[2].accept_proxy_protocol: missing field `trusted` (the addresses allowed to send a PROXY header, e.g. [10.0.0.0/8])",
        ]
    );
}
