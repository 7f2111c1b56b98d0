//! Route actions through a real weir process, on HTTP/1 and HTTP/2 (h2c) clients: a
//! redirect is answered by weir with `Location` (query kept) and never reaches a
//! backend; `rewrite_path_prefix` changes the path the backend sees; request and
//! response header edits; `match.methods`, `match.headers` and `match.query` choose the
//! route.

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use weir_e2e::client::{H1Client, H2Client, Response};
use weir_e2e::config::{backend, WEB_HEAD};
use weir_e2e::{spawn_backends, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// weir with every kind of route action in front of five backends named by their pool.
async fn start() -> (Weir, [BackendHandle; 5]) {
    let (addrs, handles) = spawn_backends(["rw", "posts", "canary", "v2", "web"]).await;
    let [rw, posts, canary, v2, web] = addrs;
    let yaml = format!(
        "\
{WEB_HEAD}    routes:
      - match: {{ path_prefix: /old/ }}
        redirect: {{ path: /new, code: 308 }}
      - match: {{ path_prefix: /secure/ }}
        redirect: {{ scheme: https, port: 8443 }}
      - match: {{ path_prefix: /moved/ }}
        redirect: {{ host: other.test, code: 302 }}
      - match: {{ path_prefix: /temp/ }}
        redirect: {{ path: /elsewhere, code: 307 }}
      - match: {{ path_prefix: /perm/ }}
        redirect: {{ scheme: https }}
      - match: {{ path_prefix: /api/ }}
        rewrite_path_prefix: /v2/
        pool: rw
      - match: {{ path_prefix: /strip }}
        rewrite_path_prefix: /
        pool: rw
      - match: {{ path_prefix: /edit/ }}
        request_headers:
          remove: [X-Secret]
          set: {{ X-Env: prod }}
          add: {{ X-Via: weir }}
        pool: rw
      - match: {{ path_prefix: /hop }}
        response_headers:
          remove: [X-Backend]
          set: {{ x-backend-end-to-end: replaced }}
          add: {{ X-Added: \"1\" }}
        pool: rw
      - match: {{ path_prefix: /m/, methods: [POST, PUT] }}
        pool: posts
      - match: {{ headers: {{ X-Canary: \"yes\" }} }}
        pool: canary
      - match: {{ query: {{ v: \"2\", name: a b }} }}
        pool: v2
      - pool: web
pools:
  rw:
    backends:
{}  posts:
    backends:
{}  canary:
    backends:
{}  v2:
    backends:
{}  web:
    backends:
{}",
        backend(rw),
        backend(posts),
        backend(canary),
        backend(v2),
        backend(web)
    );
    (Weir::start(WEIR, &yaml).await, handles)
}

/// `method path` for `host` with `headers`, over HTTP/2 (h2c) or HTTP/1.1, on a fresh
/// connection; the answer must come.
async fn send(
    weir: &Weir,
    h2: bool,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let addr = weir.listener_addr("web");
    let mut req = if h2 {
        Request::builder()
            .method(method)
            .uri(format!("http://{host}{path}"))
            .version(Version::HTTP_2)
    } else {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
    };
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    let sent = if h2 {
        let mut c = H2Client::connect(addr).await.expect("h2c connect");
        c.send(req).await
    } else {
        let mut c = H1Client::connect(addr).await.expect("connect");
        c.send(req).await
    };
    sent.unwrap_or_else(|e| panic!("{method} {path} (h2: {h2}) through weir: {e}"))
}

fn proto(h2: bool) -> &'static str {
    if h2 {
        "h2"
    } else {
        "http/1.1"
    }
}

async fn redirects_are_answered_by_weir(h2: bool) {
    let (weir, backends) = start().await;
    let cases = [
        ("a.test", "/old/x?k=v&z", 308, "http://a.test/new?k=v&z"),
        (
            "a.test:8080",
            "/secure/p?q=1",
            301,
            "https://a.test:8443/secure/p?q=1",
        ),
        ("a.test:8080", "/perm/p", 301, "https://a.test/perm/p"),
        (
            "a.test:8080",
            "/moved/y?b=2",
            302,
            "http://other.test/moved/y?b=2",
        ),
        (
            "a.test:8080",
            "/temp/z",
            307,
            "http://a.test:8080/elsewhere",
        ),
    ];
    for (host, path, code, location) in cases {
        let resp = send(&weir, h2, "GET", host, path, &[]).await;
        let p = proto(h2);
        assert_eq!(resp.status.as_u16(), code, "{p} {path}: {}", resp.text());
        assert_eq!(resp.header("location"), Some(location), "{p} {path}");
        assert!(resp.body.is_empty(), "{p} {path}: body {:?}", resp.text());
        assert!(resp.header("x-request-id").is_some(), "{p} {path}");
    }
    for b in &backends {
        assert_eq!(b.hits(), 0, "backend {} saw a redirected request", b.name());
    }
}

#[tokio::test]
async fn redirects_are_answered_by_weir_over_http1() {
    redirects_are_answered_by_weir(false).await;
}

#[tokio::test]
async fn redirects_are_answered_by_weir_over_h2() {
    redirects_are_answered_by_weir(true).await;
}

async fn rewrites_and_request_headers_reach_the_backend(h2: bool) {
    let (weir, [rw, ..]) = start().await;
    let p = proto(h2);
    for (path, want) in [
        ("/api/users?id=3", "/v2/users?id=3"),
        ("/strip/a/b", "/a/b"),
        ("/strip", "/"),
    ] {
        let resp = send(&weir, h2, "GET", "a.test", path, &[]).await;
        assert_eq!(resp.status, 200, "{p} {path}: {}", resp.text());
        assert_eq!(resp.text(), "rw", "{p} {path}");
        let seen = rw.requests().pop().expect("the backend got the request");
        assert_eq!(seen.path, want, "{p}: the path the backend saw for {path}");
    }
    let headers = [
        ("x-secret", "s3cret"),
        ("x-env", "dev"),
        ("x-env", "test"),
        ("x-via", "edge"),
        ("x-kept", "yes"),
    ];
    let resp = send(&weir, h2, "GET", "a.test", "/edit/x", &headers).await;
    assert_eq!(resp.status, 200, "{p}: {}", resp.text());
    let seen = rw.requests().pop().expect("the backend got the request");
    assert!(seen.header("x-secret").is_none(), "{p}: {:?}", seen.headers);
    let all = |n: &str| -> Vec<String> {
        seen.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect()
    };
    assert_eq!(all("x-env"), ["prod"], "{p}: set replaces every field");
    assert_eq!(all("x-via"), ["edge", "weir"], "{p}: add appends");
    assert_eq!(seen.header("x-kept"), Some("yes"), "{p}");
    assert_eq!(seen.header("host"), Some("a.test"), "{p}: Host unchanged");
    assert!(seen.header("x-request-id").is_some(), "{p}");
}

#[tokio::test]
async fn rewrites_and_request_headers_reach_the_backend_over_http1() {
    rewrites_and_request_headers_reach_the_backend(false).await;
}

#[tokio::test]
async fn rewrites_and_request_headers_reach_the_backend_over_h2() {
    rewrites_and_request_headers_reach_the_backend(true).await;
}

async fn response_headers_are_edited(h2: bool) {
    let (weir, _backends) = start().await;
    let p = proto(h2);
    // The backend answers /hop with `x-backend: rw` and `x-backend-end-to-end: kept`.
    let resp = send(&weir, h2, "GET", "a.test", "/hop", &[]).await;
    assert_eq!(resp.status, 200, "{p}: {}", resp.text());
    assert!(
        resp.header("x-backend").is_none(),
        "{p}: {:?}",
        resp.headers
    );
    assert_eq!(resp.header("x-backend-end-to-end"), Some("replaced"), "{p}");
    assert_eq!(resp.header("x-added"), Some("1"), "{p}");
    // Another route's response is untouched.
    let resp = send(&weir, h2, "GET", "a.test", "/plain", &[]).await;
    assert_eq!(
        resp.header("x-backend"),
        Some("web"),
        "{p}: {:?}",
        resp.headers
    );
    assert!(resp.header("x-added").is_none(), "{p}");
}

#[tokio::test]
async fn response_headers_are_edited_over_http1() {
    response_headers_are_edited(false).await;
}

#[tokio::test]
async fn response_headers_are_edited_over_h2() {
    response_headers_are_edited(true).await;
}

/// Method, path, request headers, and the backend that must answer.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

async fn methods_headers_and_query_pick_the_route(h2: bool) {
    let (weir, _backends) = start().await;
    let p = proto(h2);
    let cases: [Case<'_>; 9] = [
        ("POST", "/m/x", &[], "posts"),
        ("PUT", "/m/x", &[], "posts"),
        ("GET", "/m/x", &[], "web"),
        ("GET", "/c", &[("x-canary", "yes")], "canary"),
        ("GET", "/c", &[("X-Canary", "no")], "web"),
        ("GET", "/q?v=2&name=a+b", &[], "v2"),
        ("GET", "/q?name=a%20b&x&v=1&v=2", &[], "v2"),
        ("GET", "/q?v=2", &[], "web"),
        ("GET", "/q?v=3&name=a+b", &[], "web"),
    ];
    for (method, path, headers, want) in cases {
        let resp = send(&weir, h2, method, "a.test", path, headers).await;
        assert_eq!(resp.status, 200, "{p} {method} {path}: {}", resp.text());
        assert_eq!(resp.text(), want, "{p} {method} {path} {headers:?}");
    }
}

#[tokio::test]
async fn methods_headers_and_query_pick_the_route_over_http1() {
    methods_headers_and_query_pick_the_route(false).await;
}

#[tokio::test]
async fn methods_headers_and_query_pick_the_route_over_h2() {
    methods_headers_and_query_pick_the_route(true).await;
}

#[tokio::test]
async fn the_tls_example_redirects_its_plain_listener_to_https() {
    // configs/tls.yaml's plain listener answers with the HTTPS listener's port.
    let (addrs, [web]) = spawn_backends(["web"]).await;
    let yaml = format!(
        "\
{WEB_HEAD}    routes:
      - redirect: {{ scheme: https, port: 8443 }}
  - name: app
    listen: 127.0.0.1:0
    routes:
      - pool: web
pools:
  web:
    backends:
{}",
        backend(addrs[0])
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let resp = send(&weir, false, "POST", "localhost:8080", "/form?x=1", &[]).await;
    assert_eq!(resp.status, 301, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some("https://localhost:8443/form?x=1")
    );
    assert_eq!(web.hits(), 0);
}

#[tokio::test]
async fn status_shows_each_routes_conditions_and_actions() {
    let (weir, _backends) = start().await;
    let status = weir.status().await;
    let routes = status["listeners"][0]["routes"]
        .as_array()
        .expect("routes in /status");
    let old = &routes[0];
    assert!(old["pool"].is_null(), "{old}");
    assert_eq!(old["redirect"]["path"], "/new", "{old}");
    assert_eq!(old["redirect"]["code"], 308, "{old}");
    assert!(old["redirect"]["scheme"].is_null(), "{old}");
    let api = &routes[5];
    assert_eq!(api["pool"], "rw", "{api}");
    assert_eq!(api["rewrite_path_prefix"], "/v2/", "{api}");
    let edit = &routes[7];
    assert_eq!(edit["request_headers"]["remove"][0], "x-secret", "{edit}");
    assert_eq!(edit["request_headers"]["set"][0][0], "x-env", "{edit}");
    assert_eq!(edit["request_headers"]["add"][0][1], "weir", "{edit}");
    assert_eq!(routes[9]["methods"][1], "PUT", "{}", routes[9]);
    assert_eq!(routes[10]["headers"][0][0], "x-canary", "{}", routes[10]);
    assert_eq!(routes[11]["query"][0][1], "2", "{}", routes[11]);
    let last = &routes[12];
    assert!(
        last.get("redirect").is_none() && last.get("methods").is_none(),
        "{last}"
    );
}

#[tokio::test]
async fn weir_check_reports_a_bad_route_action_at_its_field() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - match: { path_prefix: /a/ }
        request_headers:
          set: { Content-Length: \"0\" }
        pool: web
      - redirect: { code: 200 }
pools:
  web:
    backends:
      - { address: 127.0.0.1:8081 }
";
    let out = weir_e2e::check_config(WEIR, yaml).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines = out.stderr_lines();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "weir.yaml:7:18: listeners[0].routes[0].request_headers.set.Content-Length: header Content-Length cannot be changed"
        )),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "weir.yaml:9:21: listeners[0].routes[1].redirect.code: redirect code must be 301, 302, 307 or 308"
        )),
        "{lines:?}"
    );
}
