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
    routes:
      - pool: web
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
    upstream_protocol: h2
";
    assert_eq!(
        errors(yaml),
        [
            "weir.yaml:10:5: pools.web.upstream_protocol: HTTP/2 to backends (`upstream_protocol: h2`) is not supported by this build yet",
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
    upstream_protocol: http1
";
    parse(yaml, Path::new("weir.yaml")).expect("valid");
}
