//! `rate_limit`, `allow` and `deny` on listeners and routes: defaults, accepted values and
//! the errors for the rest, each with its position and field path.

mod support;

use support::errors;

use std::path::Path;

use weir_config::{parse, Cidr, RateLimitKey};
use weir_e2e::config::{tcp_listener, DB_POOL};

#[test]
fn policies_are_parsed_with_defaults() {
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    rate_limit: {{ requests_per_second: 2.5 }}
    allow: [10.1.2.3/8, '::1']
    deny: [10.9.0.0/16]
    routes:
      - match: {{ path_prefix: /api/ }}
        rate_limit: {{ requests_per_second: 100, burst: 200, key: 'header:X-Api-Key' }}
        deny: [192.0.2.1]
        pool: db
      - rate_limit: {{ requests_per_second: 1, key: none }}
        pool: db
{}    deny: ['::ffff:0:0/96']
{DB_POOL}",
        tcp_listener("pg", "db")
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let web = &config.listeners[0];
    let listener_limit = web.rate_limit.as_ref().expect("listener limit");
    assert_eq!(listener_limit.millirequests_per_second, 2500);
    assert_eq!(
        listener_limit.burst, 3,
        "default: one second's worth, rounded up"
    );
    assert_eq!(listener_limit.key, RateLimitKey::SourceIp);
    let blocks = |list: &[Cidr]| list.iter().map(Cidr::to_string).collect::<Vec<_>>();
    assert_eq!(
        blocks(web.allow.as_deref().expect("allow")),
        ["10.0.0.0/8", "::1/128"],
        "host bits are cleared, as HAProxy and nginx do"
    );
    assert_eq!(blocks(&web.deny), ["10.9.0.0/16"]);
    let api = &web.routes[0];
    let limit = api.rate_limit.as_ref().expect("route limit");
    assert_eq!(
        (limit.millirequests_per_second, limit.burst),
        (100_000, 200)
    );
    assert_eq!(limit.key, RateLimitKey::Header("x-api-key".to_owned()));
    assert_eq!(api.allow, None);
    assert_eq!(blocks(&api.deny), ["192.0.2.1/32"]);
    let global = web.routes[1].rate_limit.as_ref().expect("route limit");
    assert_eq!((global.burst, &global.key), (1, &RateLimitKey::None));
    assert_eq!(blocks(&config.listeners[1].deny), ["::ffff:0.0.0.0/96"]);
    assert_eq!(config.listeners[1].rate_limit, None);
}

#[test]
fn bad_policies_are_errors_with_positions() {
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    rate_limit: {{ requests_per_second: 0, burst: 0, key: ip }}
    allow: []
    routes:
      - match: {{ path_prefix: /x/ }}
        rate_limit: {{ requests_per_second: fast }}
        pool: db
      - rate_limit: {{ burst: 5, key: 'header:a b' }}
        deny: [10.0.0.0/33, nope]
        pool: db
{}    rate_limit: {{ requests_per_second: 5 }}
    deny: []
{DB_POOL}",
        tcp_listener("pg", "db")
    );
    assert_eq!(
        errors(&yaml),
        [
            "weir.yaml:4:19: listeners[0].rate_limit.requests_per_second: requests_per_second must be greater than zero",
            "weir.yaml:4:43: listeners[0].rate_limit.burst: burst must be between 1 and 1000000, got 0",
            "weir.yaml:4:53: listeners[0].rate_limit.key: unknown rate limit key \"ip\" (expected source_ip, none or header:NAME)",
            "weir.yaml:5:5: listeners[0].allow: `allow` must list at least one address block (to refuse every client, deny: [0.0.0.0/0, ::/0])",
            "weir.yaml:8:23: listeners[0].routes[0].rate_limit.requests_per_second: invalid rate \"fast\" (expected requests per second, e.g. 100 or 0.5, with at most three decimals)",
            "weir.yaml:10:9: listeners[0].routes[1].rate_limit: missing field `requests_per_second` (the rate tokens come back at, e.g. 100)",
            "weir.yaml:10:33: listeners[0].routes[1].rate_limit.key: invalid header name \"a b\" in rate limit key (expected source_ip, none or header:NAME; a name is letters, digits and !#$%&'*+-.^_`|~)",
            "weir.yaml:11:16: listeners[0].routes[1].deny[0]: invalid prefix length in \"10.0.0.0/33\" (0 to 32)",
            "weir.yaml:11:29: listeners[0].routes[1].deny[1]: invalid CIDR \"nope\" (expected e.g. 10.0.0.0/8 or 127.0.0.1)",
            "weir.yaml:17:5: listeners[1].rate_limit: a rate limit counts HTTP requests; a tcp listener has none (use allow/deny, or max_connections)",
            "weir.yaml:18:5: listeners[1].deny: `deny` must list at least one address block (or leave `deny` out)",
        ]
    );
}

#[test]
fn an_unknown_rate_limit_field_names_its_parent() {
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - rate_limit: {{ requests_per_second: 1, per: minute }}
        pool: db
{DB_POOL}"
    );
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("listeners[0].routes[0].rate_limit") && errors[0].contains("`per`"),
        "{errors:?}"
    );
}
