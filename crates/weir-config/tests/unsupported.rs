//! Settings of the format this build does not implement are refused, never ignored.

use std::path::Path;

use weir_config::{parse, ConfigErrors};

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml, Path::new("weir.yaml")) {
        Ok(config) => panic!("expected errors, got a valid config: {config:?}"),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_unsupported_setting_is_an_error() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    tls:
      certificates:
        - { cert: certs/site.pem, key: certs/site.key }
    accept_proxy_protocol: { trusted: [10.0.0.0/8] }
    routes:
      - pool: web
  - name: pg
    listen: 127.0.0.1:0
    protocol: tcp
    pool: web
    proxy_protocol: v2
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
    passive: { consecutive_failures: 3, max_ejected_percent: 50 }
    fail_open: true
    slow_start: 30s
    retry_on: [connect_failure, reset, 502]
    retry_budget: { percent: 20, min_per_second: 10 }
    tls: { server_name: api.internal, ca: certs/internal-ca.pem }
    upstream_protocol: h2
";
    assert_eq!(
        errors(yaml),
        [
            "weir.yaml:4:5: listeners[0].tls: TLS termination (`tls`) is not supported by this build yet",
            "weir.yaml:7:5: listeners[0].accept_proxy_protocol: accepting the PROXY protocol (`accept_proxy_protocol`) is not supported by this build yet",
            "weir.yaml:14:5: listeners[1].proxy_protocol: sending the PROXY protocol (`proxy_protocol`) is not supported by this build yet",
            "weir.yaml:19:5: pools.web.passive: passive health checking (`passive`) is not supported by this build yet",
            "weir.yaml:20:5: pools.web.fail_open: `fail_open: true` is not supported by this build yet",
            "weir.yaml:21:5: pools.web.slow_start: `slow_start` is not supported by this build yet",
            "weir.yaml:22:40: pools.web.retry_on[2]: retrying on 502 (`retry_on`) is not supported by this build yet",
            "weir.yaml:23:5: pools.web.retry_budget: `retry_budget` is not supported by this build yet",
            "weir.yaml:24:5: pools.web.tls: TLS to backends (`tls`) is not supported by this build yet",
            "weir.yaml:25:5: pools.web.upstream_protocol: HTTP/2 to backends (`upstream_protocol: h2`) is not supported by this build yet",
        ]
    );
}

#[test]
fn supported_values_of_partly_supported_settings_are_accepted() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - pool: web
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
    fail_open: false
    retry_on: [connect_failure, reset]
    upstream_protocol: http1
";
    parse(yaml, Path::new("weir.yaml")).expect("valid");
}

#[test]
fn retry_on_that_leaves_out_a_built_in_condition_is_refused() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - pool: web
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
    retry_on: [connect_failure, timeout]
";
    assert_eq!(
        errors(yaml),
        [
            "weir.yaml:10:5: pools.web.retry_on: leaving out reset is not supported by this build yet: it always retries on connect_failure and reset (set `retries: 0` to turn retries off)",
            "weir.yaml:10:33: pools.web.retry_on[1]: unknown retry condition \"timeout\" (expected connect_failure, reset, 502 or 503)",
        ]
    );
}
