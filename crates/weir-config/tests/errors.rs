//! Error reports: exact `FILE:LINE:COLUMN: path: message` text, every validation error in
//! one pass, structural errors from serde with their parent path.

mod support;

use support::errors;

use std::path::Path;

use weir_config::{load, ConfigErrors};

/// The errors of a config that must be invalid, one display line each.
fn load_errors(file: &str) -> Vec<String> {
    // cargo runs integration tests from the package root.
    match load(Path::new(file)) {
        Ok(config) => panic!("expected errors in {file}, got {config:?}"),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// A valid config with `extra` appended to the single pool `web`'s mapping.
fn with_pool_fields(extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\npools:\n  web:\n    backends:\n      - {{ address: 127.0.0.1:8081 }}\n{extra}"
    )
}

#[test]
fn invalid_duration_names_file_line_column_and_path() {
    assert_eq!(
        load_errors("tests/data/bad_timeout.yaml"),
        ["tests/data/bad_timeout.yaml:19:7: pools.web.health_check.timeout: invalid duration \"fast\" (expected a number and a unit: 250ms, 2s, 1m, 1h)"]
    );
}

#[test]
fn every_validation_error_is_reported_in_file_order() {
    assert_eq!(
        load_errors("tests/data/four_errors.yaml"),
        [
            "tests/data/four_errors.yaml:6:9: listeners[0].routes[0].pool: route names missing pool \"api\" (defined pools: web)",
            "tests/data/four_errors.yaml:11:9: pools.web.backends[0].weight: weight must be between 1 and 256, got 0",
            "tests/data/four_errors.yaml:13:7: pools.web.health_check.interval: invalid duration \"soon\" (expected a number and a unit: 250ms, 2s, 1m, 1h)",
            "tests/data/four_errors.yaml:15:7: pools.web.timeouts.connect: must be greater than zero",
        ]
    );
}

#[test]
fn unknown_field_reports_parent_path_and_key() {
    assert_eq!(
        load_errors("tests/data/unknown_field.yaml"),
        ["tests/data/unknown_field.yaml:9:5: pools.web: unknown field `wieght`, expected one of `strategy`, `hash_on`, `balance_factor`, `backends`, `health_check`, `passive`, `fail_open`, `slow_start`, `timeouts`, `retries`, `retry_on`, `retry_budget`, `tls`, `upstream_protocol`, `discovery`, `max_in_flight`, `queue`, `sticky`"]
    );
}

#[test]
fn unknown_field_in_a_flow_mapping_points_at_the_key() {
    let yaml = with_pool_fields("").replace("8081 }", "8081, wieght: 3 }");
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:9:36: pools.web.backends[0]: unknown field `wieght`, expected one of `address`, `weight`, `backup`, `max_in_flight`"]
    );
}

#[test]
fn unreadable_file_is_one_error_without_position() {
    let errors = load_errors("tests/data/does-not-exist.yaml");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "tests/data/does-not-exist.yaml:0:0: cannot read the configuration file: "
        ),
        "{errors:?}"
    );
}

#[test]
fn yaml_syntax_error_has_a_position_and_no_path() {
    assert_eq!(
        errors("listeners:\n  - name: web\n   bad: indent\n"),
        ["weir.yaml:3:7: while parsing a block collection, did not find expected '-' indicator"]
    );
}

#[test]
fn wrong_type_is_placed_at_the_field() {
    assert_eq!(
        errors("listeners:\n  - name: web\n    max_connections: lots\n"),
        ["weir.yaml:3:5: listeners[0].max_connections: invalid type: string \"lots\", expected a whole number"]
    );
}

#[test]
fn missing_required_fields_point_at_the_parent_mapping() {
    assert_eq!(
        errors("listeners:\n  - name: web\n    routes:\n      - match: { host: a.example.com }\npools:\n  web:\n    backends:\n      - weight: 2\n"),
        [
            "weir.yaml:2:5: listeners[0]: missing field `listen` (the address to bind, e.g. 127.0.0.1:8080)",
            "weir.yaml:4:9: listeners[0].routes[0]: missing field `pool` (or `redirect`)",
            "weir.yaml:8:9: pools.web.backends[0]: missing field `address` (host:port of the backend)",
        ]
    );
}

#[test]
fn empty_file_asks_for_a_listener() {
    assert_eq!(
        errors("# nothing yet\n"),
        ["weir.yaml:1:1: missing field `listeners` (at least one listener is required)"]
    );
}

#[test]
fn route_after_a_catch_all_is_unreachable() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\n      - match: { path_prefix: /api/ }\n        pool: web\npools:\n  web:\n    backends:\n      - { address: 127.0.0.1:8081 }\n";
    assert_eq!(
        errors(yaml),
        ["weir.yaml:6:9: listeners[0].routes[1]: route is unreachable: routes[0] has no match and takes every request"]
    );
}

#[test]
fn listener_and_pool_consistency_errors_are_all_reported() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:8080
    pool: web
    routes:
      - match: { host: 'bad host', path_prefix: api }
        pool: web
  - name: web
    listen: 127.0.0.1:8080
    protocol: tcp
    routes: []
  - name: db
    listen: localhost:5433
    protocol: udp
pools:
  web:
    strategy: fastest
    retries: 8
    backends:
      - { address: 127.0.0.1:8081 }
      - { address: '127.0.0.1:8081', weight: 300 }
      - { address: no-such-host.invalid:80 }
";
    let errors = errors(yaml);
    let expected = [
        "weir.yaml:4:5: listeners[0].pool: an http listener sends requests to pools through `routes`; `pool` is for tcp listeners",
        "weir.yaml:6:18: listeners[0].routes[0].match.host: invalid host \"bad host\" (expected a host name without port, like api.example.com or *.example.com)",
        "weir.yaml:6:36: listeners[0].routes[0].match.path_prefix: invalid path prefix \"api\" (must start with \"/\")",
        "weir.yaml:8:5: listeners[1]: missing field `pool` (a tcp listener relays every connection to one pool)",
        "weir.yaml:8:5: listeners[1].name: duplicate listener name \"web\" (first defined at line 2)",
        "weir.yaml:9:5: listeners[1].listen: address 127.0.0.1:8080 is already used by listener \"web\"",
        "weir.yaml:11:5: listeners[1].routes: a tcp listener cannot route (it sees no hosts or paths); give it a `pool`",
        "weir.yaml:12:5: listeners[2]: missing field `routes` (an http listener needs at least one route)",
        "weir.yaml:14:5: listeners[2].protocol: unknown protocol \"udp\" (expected http or tcp)",
        "weir.yaml:17:5: pools.web.strategy: unknown strategy \"fastest\" (expected round_robin, weighted, random, least_connections or consistent_hash)",
        "weir.yaml:18:5: pools.web.retries: retries must be between 0 and 7, got 8",
        "weir.yaml:21:11: pools.web.backends[1].address: duplicate backend 127.0.0.1:8081 (same as backends[0])",
        "weir.yaml:21:38: pools.web.backends[1].weight: weight must be between 1 and 256, got 300",
    ];
    assert_eq!(errors[..expected.len()], expected, "{errors:#?}");
    assert_eq!(errors.len(), expected.len() + 1, "{errors:#?}");
    let last = &errors[expected.len()];
    assert!(
        last.starts_with("weir.yaml:22:11: pools.web.backends[2].address: cannot resolve host \"no-such-host.invalid\": "),
        "{last}"
    );
}

#[test]
fn zero_durations_and_bad_health_check_values_are_rejected() {
    let yaml = with_pool_fields(
        "    health_check:\n      type: tcp\n      path: /healthz\n      interval: 0ms\n      rise: 0\n",
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:12:7: pools.web.health_check.path: `path` applies only to http health checks (set `type: http`)",
            "weir.yaml:13:7: pools.web.health_check.interval: must be greater than zero",
            "weir.yaml:14:7: pools.web.health_check.rise: rise must be at least 1, got 0",
        ]
    );
    let yaml = with_pool_fields(
        "    health_check:\n      type: http\n      path: healthz\n      expect_status: 200-600\n",
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:12:7: pools.web.health_check.path: invalid path \"healthz\" (must start with \"/\")",
            "weir.yaml:13:7: pools.web.health_check.expect_status: status 600 is not an HTTP status (100 to 599)",
        ]
    );
}

#[test]
fn unknown_top_level_field_has_an_empty_path() {
    assert_eq!(
        errors("listners: []\n"),
        ["weir.yaml:1:1: unknown field `listners`, expected one of `admin`, `shutdown_timeout`, `shutdown_grace`, `listeners`, `pools`"]
    );
}

#[test]
fn listener_cannot_take_the_admin_address_and_addresses_need_a_port() {
    let yaml = "\
admin:
  listen: 127.0.0.1:9000
listeners:
  - name: a
    listen: 0.0.0.0:9000
    routes: [{ pool: web }]
  - name: b
    listen: 8080
    routes: [{ pool: web }]
pools:
  web:
    backends: [{ address: 127.0.0.1:8081 }]
";
    assert_eq!(
        errors(yaml),
        [
            "weir.yaml:5:5: listeners[0].listen: address 0.0.0.0:9000 is already used by the admin server (admin.listen)",
            "weir.yaml:8:5: listeners[1].listen: invalid address \"8080\" (no port; expected host:port, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080)",
        ]
    );
}

#[test]
fn a_shutdown_grace_above_an_hour_is_reported_at_its_path() {
    let yaml = format!("shutdown_grace: 61m\n{}", weir_e2e::config::MINIMAL);
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:1:1: shutdown_grace: must be at most 1h, got 61m"]
    );
}
