//! `upstream_protocol`: `http1` (default) or `h2`; anything else is an error.

use std::path::Path;

use weir_config::{parse, ConfigErrors, UpstreamProtocol};
use weir_e2e::config::MINIMAL;

fn pool_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn http1_is_the_default_and_h2_is_accepted() {
    let config = parse(&pool_with(""), Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.pools[0].upstream_protocol, UpstreamProtocol::Http1);
    let config = parse(
        &pool_with("    upstream_protocol: http1\n"),
        Path::new("weir.yaml"),
    )
    .expect("valid");
    assert_eq!(config.pools[0].upstream_protocol, UpstreamProtocol::Http1);
    let config = parse(
        &pool_with("    upstream_protocol: h2\n"),
        Path::new("weir.yaml"),
    )
    .expect("valid");
    assert_eq!(config.pools[0].upstream_protocol, UpstreamProtocol::H2);
}

#[test]
fn unknown_upstream_protocol_is_an_error_at_its_key() {
    let errors = match parse(
        &pool_with("    upstream_protocol: h3\n"),
        Path::new("weir.yaml"),
    ) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(ConfigErrors(e)) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    assert_eq!(
        errors,
        ["weir.yaml:10:5: pools.web.upstream_protocol: unknown upstream protocol \"h3\" (expected http1 or h2)"]
    );
}

#[test]
fn h2_pool_behind_a_tcp_listener_is_an_error_at_its_upstream_protocol() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - pool: grpc
  - name: raw
    listen: 127.0.0.1:0
    protocol: tcp
    pool: grpc
pools:
  grpc:
    backends:
      - { address: 127.0.0.1:8081 }
    upstream_protocol: h2
";
    let errors = match parse(yaml, Path::new("weir.yaml")) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(ConfigErrors(e)) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    assert_eq!(
        errors,
        [
            "weir.yaml:14:5: pools.grpc.upstream_protocol: h2 is for pools behind http listeners; \
          tcp listener \"raw\" relays raw bytes to this pool (use http1, or another pool)"
        ]
    );
    // The same pool in http1 serves both listeners.
    let http1 = yaml.replace("upstream_protocol: h2", "upstream_protocol: http1");
    parse(&http1, Path::new("weir.yaml")).expect("an http1 pool may serve a tcp listener");
}
