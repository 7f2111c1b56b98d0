//! Route actions and match conditions: what a valid route becomes, and every bad field
//! reported at its line, column and path.

mod support;

use std::path::Path;

use support::errors;
use weir_config::{parse, HeaderEdits, RedirectConfig, RedirectScheme};

const POOLS: &str = "pools:\n  web:\n    backends:\n      - { address: 127.0.0.1:8081 }\n";

fn with_routes(routes: &str) -> String {
    format!("listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n{routes}{POOLS}")
}

#[test]
fn a_valid_route_keeps_every_action_and_condition() {
    let yaml = with_routes(
        "      - match: { path_prefix: /old/ }
        redirect: { scheme: https, host: New.Example.com, port: 8443, path: /new, code: 307 }
      - match:
          path_prefix: /api/
          methods: [GET, HEAD]
          headers: { X-Env: canary }
          query: { v: \"2\" }
        rewrite_path_prefix: /v2/
        request_headers: { remove: [X-Debug], set: { X-A: \"1\" }, add: { X-B: two words } }
        response_headers: { set: { Cache-Control: no-store } }
        pool: web
      - redirect: {}
",
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    let routes = &config.listeners[0].routes;
    assert_eq!(routes[0].pool, None);
    assert_eq!(
        routes[0].redirect,
        Some(RedirectConfig {
            scheme: Some(RedirectScheme::Https),
            host: Some("new.example.com".into()),
            port: Some(8443),
            path: Some("/new".into()),
            code: 307,
        })
    );
    assert_eq!(routes[2].redirect.as_ref().map(|r| r.code), Some(301));
    let api = &routes[1];
    assert_eq!(api.pool.as_deref(), Some("web"));
    assert_eq!(api.methods, ["GET", "HEAD"]);
    assert_eq!(api.headers, [("x-env".to_owned(), "canary".to_owned())]);
    assert_eq!(api.query, [("v".to_owned(), "2".to_owned())]);
    assert_eq!(api.rewrite_path_prefix.as_deref(), Some("/v2/"));
    assert_eq!(
        api.request_headers,
        HeaderEdits {
            remove: vec!["x-debug".into()],
            set: vec![("x-a".into(), "1".into())],
            add: vec![("x-b".into(), "two words".into())],
        }
    );
    assert_eq!(api.response_headers.set.len(), 1);
}

#[test]
fn every_bad_field_is_reported_where_it_is() {
    let yaml = with_routes(
        "      - match: { path_prefix: /a/ }
        pool: web
        redirect: { code: 303 }
      - match: { host: a.test }
        redirect: { scheme: ftp, host: \"*.x.test\", port: 0, path: nope }
        request_headers: { set: { X-A: \"1\" } }
      - rewrite_path_prefix: /v2/
        pool: web
      - match: { path_prefix: /b/, methods: [get, \"B@D\", PUT, PUT] }
        rewrite_path_prefix: v2
        pool: web
      - match: { path_prefix: /c/, headers: { \"Bad Name\": x }, query: { \"\": x } }
        request_headers:
          remove: [Content-Length, Connection]
          set: { Host: other, X-Ok: \" padded\" }
          add: { X-Request-Id: mine, X-Forwarded-For: 1.2.3.4 }
        response_headers: { add: { Transfer-Encoding: chunked } }
        pool: web
      - match: { path_prefix: /d/ }
",
    );
    let got = errors(&yaml);
    let want = [
        "weir.yaml:7:9: listeners[0].routes[0].redirect: a route has either `pool` or `redirect`, not both",
        "weir.yaml:7:21: listeners[0].routes[0].redirect.code: redirect code must be 301, 302, 307 or 308, got 303",
        "weir.yaml:9:21: listeners[0].routes[1].redirect.scheme: unknown scheme \"ftp\" (expected https or http)",
        "weir.yaml:9:34: listeners[0].routes[1].redirect.host: a redirect goes to one host, not a wildcard",
        "weir.yaml:9:52: listeners[0].routes[1].redirect.port: port must be between 1 and 65535, got 0",
        "weir.yaml:9:61: listeners[0].routes[1].redirect.path: invalid path \"nope\" (must start with \"/\"; visible ASCII without spaces, `?` or `#`)",
        "weir.yaml:10:9: listeners[0].routes[1].request_headers: `request_headers` does nothing on a redirect route (weir answers it without a backend)",
        "weir.yaml:11:9: listeners[0].routes[2].rewrite_path_prefix: rewrite_path_prefix replaces the matched `match.path_prefix`; give the route one",
        "weir.yaml:13:46: listeners[0].routes[3].match.methods[0]: methods are case-sensitive: \"get\" is not \"GET\"",
        "weir.yaml:13:51: listeners[0].routes[3].match.methods[1]: invalid method \"B@D\" (a token such as GET)",
        "weir.yaml:13:63: listeners[0].routes[3].match.methods[3]: method PUT is listed twice",
        "weir.yaml:14:9: listeners[0].routes[3].rewrite_path_prefix: invalid path \"v2\" (must start with \"/\"; visible ASCII without spaces, `?` or `#`)",
        "weir.yaml:16:47: listeners[0].routes[4].match.headers.Bad Name: invalid header name \"Bad Name\" (a token such as X-Api-Version)",
        "weir.yaml:16:73: listeners[0].routes[4].match.query.: a query parameter needs a name",
        "weir.yaml:18:20: listeners[0].routes[4].request_headers.remove[0]: header Content-Length cannot be changed: weir frames every message itself",
        "weir.yaml:18:36: listeners[0].routes[4].request_headers.remove[1]: header Connection cannot be changed: a hop-by-hop header describes one connection and weir removes it",
        "weir.yaml:19:18: listeners[0].routes[4].request_headers.set.Host: header Host cannot be changed: weir passes the client's Host on unchanged",
        "weir.yaml:19:31: listeners[0].routes[4].request_headers.set.X-Ok: invalid header value \" padded\" (visible ASCII, no space or tab at either end)",
        "weir.yaml:20:18: listeners[0].routes[4].request_headers.add.X-Request-Id: header X-Request-Id cannot be changed: weir sets this header itself",
        "weir.yaml:20:38: listeners[0].routes[4].request_headers.add.X-Forwarded-For: header X-Forwarded-For cannot be changed: weir sets this header itself",
        "weir.yaml:21:36: listeners[0].routes[4].response_headers.add.Transfer-Encoding: header Transfer-Encoding cannot be changed: weir frames every message itself",
        "weir.yaml:23:9: listeners[0].routes[5]: missing field `pool` (or `redirect`)",
        "weir.yaml:23:9: listeners[0].routes[5]: route is unreachable: routes[2] has no match and takes every request",
    ];
    assert_eq!(got, want, "got:\n{}", got.join("\n"));
}

#[test]
fn routes_with_other_conditions_do_not_shadow_each_other() {
    let yaml = with_routes(
        "      - match: { methods: [POST] }
        pool: web
      - match: { headers: { X-A: \"1\" } }
        pool: web
      - pool: web
",
    );
    parse(&yaml, Path::new("weir.yaml")).expect("conditions make routes distinct");
    let dup = with_routes(
        "      - match: { methods: [POST] }
        pool: web
      - match: { methods: [POST] }
        pool: web
      - pool: web
",
    );
    assert_eq!(
        errors(&dup),
        ["weir.yaml:7:9: listeners[0].routes[1]: route is unreachable: routes[0] has the same match and comes first"]
    );
}
