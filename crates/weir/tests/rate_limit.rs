//! Rate limits through a real weir (issue 12, item 3): a burst, then `429` with
//! `Retry-After`, counted, and never forwarded; keys of their own per header value; the
//! listener's limit before the route's; both HTTP paths; buckets kept across a reload
//! that leaves the limit alone and refilled by one that changes it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use weir_e2e::client::{H1Client, H2Client, Response};
use weir_e2e::config::{backend, WEB_HEAD};
use weir_e2e::{spawn_backend, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);

/// A rate so slow that no token comes back during a test: one per 1000 s.
const FROZEN: &str = "0.001";

/// Listener `web` with `listener_extra` (its own `rate_limit`, say), routes `routes`
/// (YAML lines indented for `routes:`), all to pool `web` over `be`.
fn config(listener_extra: &str, routes: &str, be: std::net::SocketAddr) -> String {
    format!(
        "{WEB_HEAD}{listener_extra}    routes:\n{routes}pools:\n  web:\n    backends:\n{}",
        backend(be)
    )
}

async fn get_with(client: &mut H1Client, path: &str, header: Option<(&str, &str)>) -> Response {
    let mut req = http::Request::get(path).header("host", "web.test");
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    client.send(req).await.expect("an answer")
}

async fn h2_get(h2: &mut H2Client, user: &str) -> Result<Response, weir_e2e::client::BoxError> {
    let req = http::Request::get("http://web.test/")
        .version(http::Version::HTTP_2)
        .header("x-user", user)
        .body(Full::new(Bytes::new()))
        .expect("request");
    h2.send(req).await
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status.as_u16()).collect()
}

async fn limited_total(weir: &Weir, route: &str) -> f64 {
    weir.metric(
        "weir_rate_limited_total",
        &[("listener", "web"), ("route", route)],
    )
    .await
}

async fn start(yaml: &str) -> Weir {
    Weir::start(WEIR, yaml).await
}

/// One route to `web` with a frozen rate limit (`rest`: its burst and key).
fn limited_route(rest: &str) -> String {
    format!("      - rate_limit: {{ requests_per_second: {FROZEN}, {rest} }}\n        pool: web\n")
}

fn hits(be: &BackendHandle) -> usize {
    be.hits()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_passes_then_429_with_retry_after_is_counted_and_never_forwarded() {
    let (addr, be) = spawn_backend("app").await;
    let weir = start(&config("", &limited_route("burst: 3"), addr)).await;
    let mut client = weir.h1_client("web").await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(get_with(&mut client, "/", None).await);
    }
    assert_eq!(statuses(&answers), [200, 200, 200, 429, 429]);
    let refused = &answers[3];
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!((990..=1000).contains(&retry), "Retry-After {retry}");
    assert!(
        refused
            .text()
            .starts_with("429 Too Many Requests: rate limit exceeded"),
        "{}",
        refused.text()
    );
    assert!(refused.header("x-request-id").is_some());
    assert!(!client.is_closed(), "a 429 keeps the connection");
    assert_eq!(hits(&be), 3, "refused requests never reach the backend");
    assert_eq!(limited_total(&weir, "0").await, 2.0);
    let scrape = weir.metrics().await;
    assert_eq!(
        scrape.value(
            "weir_http_requests_total",
            &[
                ("listener", "web"),
                ("pool", "web"),
                ("backend", "none"),
                ("code", "429")
            ]
        ),
        Some(2.0)
    );
    let status = weir.status().await;
    let limit = &status["listeners"][0]["routes"][0]["rate_limit"];
    assert_eq!(limit["burst"], 3, "{status}");
    assert_eq!(limit["key"], "source_ip");
    assert_eq!(limit["requests_per_second"], 0.001);
    assert_eq!(limit["tracked_keys"], 1);
    assert_eq!(
        status["listeners"][0]["rate_limit"],
        serde_json::Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_header_value_has_its_own_bucket_on_both_http_paths() {
    let (addr, be) = spawn_backend("app").await;
    let weir = start(&config(
        "",
        &limited_route("burst: 2, key: 'header:X-User'"),
        addr,
    ))
    .await;
    let mut h1 = weir.h1_client("web").await;
    let mut answers = Vec::new();
    for user in ["alice", "alice", "alice", "bob", "bob", "bob"] {
        answers.push(get_with(&mut h1, "/", Some(("x-user", user))).await);
    }
    assert_eq!(statuses(&answers), [200, 200, 429, 200, 200, 429]);

    // HTTP/2 (hyper's path) draws on the same buckets.
    let mut h2 = H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2c connect");
    let alice = h2_get(&mut h2, "alice").await.expect("answer");
    assert_eq!(alice.status, 429, "alice's bucket is empty on any path");
    assert!(alice.header("retry-after").is_some());
    let carol = h2_get(&mut h2, "carol").await.expect("answer");
    assert_eq!(carol.status, 200);
    let carol = h2_get(&mut h2, "carol").await.expect("answer");
    assert_eq!(carol.status, 200);
    let carol = h2_get(&mut h2, "carol").await.expect("answer");
    assert_eq!(carol.status, 429);
    assert_eq!(hits(&be), 6);
    assert_eq!(limited_total(&weir, "0").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_limit_is_checked_before_the_route_limit() {
    let (addr, be) = spawn_backend("app").await;
    let listener = format!("    rate_limit: {{ requests_per_second: {FROZEN}, burst: 4 }}\n");
    let routes = format!(
        "      - match: {{ path_prefix: /tight/ }}\n        rate_limit: {{ requests_per_second: {FROZEN}, burst: 1 }}\n        pool: web\n      - pool: web\n"
    );
    let weir = start(&config(&listener, &routes, addr)).await;
    let mut client = weir.h1_client("web").await;
    let mut answers = Vec::new();
    for path in ["/tight/a", "/tight/b", "/x", "/x", "/x", "/tight/c"] {
        answers.push(get_with(&mut client, path, None).await);
    }
    // The route's bucket refuses the second /tight/ request; the listener's (which that
    // refused request drew on too) lets two more through, then refuses everything.
    assert_eq!(statuses(&answers), [200, 429, 200, 200, 429, 429]);
    assert_eq!(hits(&be), 3);
    assert_eq!(limited_total(&weir, "0").await, 1.0, "the route's refusal");
    assert_eq!(
        limited_total(&weir, "").await,
        2.0,
        "the listener's refusals"
    );
    let scrape = weir.metrics().await;
    assert_eq!(
        scrape.value(
            "weir_rate_limited_total",
            &[("listener", "web"), ("route", "1")]
        ),
        None,
        "series only where a limit is configured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_survive_a_reload_that_keeps_the_limit_and_refill_when_it_changes() {
    let (addr, be) = spawn_backend("app").await;
    let routes = |burst: u32| limited_route(&format!("burst: {burst}"));
    let mut weir = start(&config("", &routes(2), addr)).await;
    let web = weir.listener_addr("web");
    let mut client = H1Client::connect(web).await.expect("connect");
    for want in [200, 200, 429] {
        assert_eq!(get_with(&mut client, "/", None).await.status, want);
    }

    // Another change to the file (the access log), the same limit: the bucket stays empty.
    let same_limit = config("    access_log: true\n", &routes(2), addr);
    weir.reload(&same_limit, LOG_WAIT).await;
    let mut client = H1Client::connect(web).await.expect("connect");
    assert_eq!(
        get_with(&mut client, "/", None).await.status,
        429,
        "the limiter kept its state across the reload"
    );
    assert_eq!(limited_total(&weir, "0").await, 2.0, "the counter too");

    // A changed limit starts from a full bucket.
    weir.reload(&config("", &routes(3), addr), LOG_WAIT).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get_with(&mut client, "/", None).await);
    }
    assert_eq!(statuses(&answers), [200, 200, 200, 429]);
    assert_eq!(hits(&be), 5);
}

#[tokio::test]
async fn weir_check_places_bad_limits_and_lists() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - rate_limit: { requests_per_second: 10, burst: 0 }
        allow: [10.0.0.0/40]
        pool: web
pools:
  web:
    backends: [{ address: 127.0.0.1:9 }]
";
    weir_e2e::assert_check_errors(
        WEIR,
        yaml,
        &[
            "weir.yaml:5:48: listeners[0].routes[0].rate_limit.burst: burst must be between 1 and 1000000, got 0",
            "weir.yaml:6:17: listeners[0].routes[0].allow[0]: invalid prefix length in \"10.0.0.0/40\" (0 to 32)",
            "weir.yaml: 2 errors",
        ],
    )
    .await;
}
