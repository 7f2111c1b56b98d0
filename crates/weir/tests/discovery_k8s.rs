//! Issue 11, item 2: Kubernetes EndpointSlice discovery against a stand-in API server
//! on loopback (`weir_e2e::k8s`: the real list + watch protocol, slices built from the
//! v1-shaped JSON in `tests/fixtures/k8s/`), weir pointed at it by a `KUBECONFIG`
//! the test writes. No cluster can run here.
//!
//! - The initial list is served; watch events add and remove endpoints under load with
//!   zero failed requests.
//! - Not ready → down (no traffic); terminating → drains (its in-flight request
//!   finishes, no new ones); the same for HTTP/2 clients and TCP connections.
//! - The API server gone: the last set keeps serving, the failures are counted and shown;
//!   back, the watch resumes.
//! - An expired resourceVersion (410 Gone) makes the watcher list again.
//! - Port by number; namespace from the kubeconfig context; a runtime API drain
//!   survives discovery updates; `weir check` reports a bad block at its path.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use weir_e2e::config::{web_pool, ADMIN, FAST_HEALTH_CHECK};
use weir_e2e::discovery;
use weir_e2e::k8s::{not_ready, ready, slice, terminating, ApiServer, Endpoint};
use weir_e2e::{
    check_config, client, eventually_within, log_str, spawn_backends, until, Load, Weir,
};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(20);

/// One HTTP listener `web` to pool `web`, discovered by `kubernetes` (a flow mapping's
/// body), with `pool_extra` lines.
fn config(kubernetes: &str, pool_extra: &str) -> String {
    weir_e2e::config::discovered_web("kubernetes", kubernetes, pool_extra)
}

const WEB_HTTP: &str = "namespace: shop, service: web, port: http";

/// weir running `yaml` with `KUBECONFIG` naming `api` (default namespace `shop`).
async fn start(api: &ApiServer, yaml: &str) -> Weir {
    Weir::start_with_env(WEIR, yaml, |dir| {
        let path = api.kubeconfig(dir, "shop");
        vec![("KUBECONFIG".to_owned(), path.display().to_string())]
    })
    .await
}

/// The pool's backends in `/status` as `address endpoint_state`, sorted.
fn backends(status: &Value) -> Vec<String> {
    let mut v: Vec<String> = weir_e2e::status::backends(status, "web")
        .iter()
        .map(|b| {
            format!(
                "{} {}",
                b["address"].as_str().unwrap_or_default(),
                b["endpoint_state"].as_str().unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v
}

fn shown(entries: &[(SocketAddr, &str)]) -> Vec<String> {
    let mut v: Vec<String> = entries.iter().map(|(a, s)| format!("{a} {s}")).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_endpoints_serve_and_watch_events_join_and_leave_under_load_with_zero_failed_requests(
) {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let api = ApiServer::with_slices(&[("web-a", ready(a)), ("web-b", ready(b))]).await;
    let weir = start(&api, &config(WEB_HTTP, FAST_HEALTH_CHECK)).await;
    let status = weir.status().await;
    assert_eq!(
        backends(&status),
        shown(&[(a, "ready"), (b, "ready")]),
        "the first table has the listed endpoints"
    );
    let d = &weir_e2e::status::pool(&status, "web")["discovery"];
    assert_eq!(d["source"], "kubernetes shop/web:http", "{d}");
    assert_eq!(api.lists(), 1, "one list at start");
    let b_since = weir_e2e::status::backend(&status, "web", b)["since_unix_ms"].clone();

    let load = Load::start(weir.listener_addr("web"), 8);
    load.wait_for_more(200, "before any change").await;

    // c's pod is added: an ADDED event on the watch.
    discovery::join(&weir, &hc, async {
        api.apply(slice("web-c", "http", &[ready(c)]));
    })
    .await;

    // a's slice is deleted while a has requests in flight: they finish on it.
    discovery::leave(&weir, &ha, async {
        api.delete("web-a");
    })
    .await;
    let status = weir.status().await;
    assert_eq!(backends(&status), shown(&[(b, "ready"), (c, "ready")]));
    discovery::assert_left_cleanly(&weir, &status, (b, &b_since), load, [&ha, &hb, &hc]).await;
    assert_eq!(weir.discovery_lookups("web", "failure").await, 0.0);
    assert_eq!(api.lists(), 1, "watch events, no re-list");
    assert!(api.bookmarks() >= 1, "the watcher asks for bookmarks");
}

/// Applies slice `web-b` holding endpoint `endpoint(b)` alone and checks that the update
/// it causes logs `b` in `state`.
async fn apply_and_see_state(
    weir: &Weir,
    api: &ApiServer,
    (b, endpoint): (SocketAddr, fn(SocketAddr) -> Endpoint),
    state: &str,
) {
    let want = format!("{b}={state}");
    let line = weir
        .discovery_updated(async {
            api.apply(slice("web-b", "http", &[endpoint(b)]));
        })
        .await;
    assert_eq!(log_str(&line, "endpoint_state"), want, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_is_down_and_terminating_drains_with_its_request_in_flight_finishing() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let api = ApiServer::with_slices(&[("web-a", ready(a)), ("web-b", not_ready(b))]).await;
    let weir = start(&api, &config(WEB_HTTP, "")).await;
    let status = weir.status().await;
    assert_eq!(backends(&status), shown(&[(a, "ready"), (b, "not_ready")]));
    assert_eq!(
        weir_e2e::status::backend(&status, "web", b)["routable"],
        false
    );
    let mut client = weir.h1_client("web").await;
    client.assert_gets(10, "/", "a").await;
    assert_eq!(hb.hits(), 0, "a not-ready endpoint gets no traffic");

    // Ready now: b takes its share.
    apply_and_see_state(&weir, &api, (b, ready), "ready").await;
    for _ in 0..10 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    assert!(hb.hits() >= 4, "b is in rotation: {} hits", hb.hits());

    // A slow request on b, then b's pod terminates (still serving): the request
    // finishes on b, no new one goes there.
    hb.set_delay(Duration::from_millis(3000));
    let web = weir.listener_addr("web");
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(tokio::spawn(client::get(web, "/")));
    }
    until("a request in flight on b", || hb.in_progress() == 1).await;
    apply_and_see_state(&weir, &api, (b, terminating), "terminating").await;
    let status = weir.status().await;
    let entry = weir_e2e::status::backend(&status, "web", b);
    assert_eq!(entry["endpoint_state"], "terminating", "{entry}");
    assert_eq!(entry["in_flight"], 1, "{entry}");
    let b_hits = hb.hits();
    client.assert_gets(10, "/", "a").await;
    assert_eq!(
        hb.hits(),
        b_hits,
        "a terminating endpoint takes no new request"
    );
    let mut bodies = Vec::new();
    for task in slow {
        let resp = task.await.expect("the request task");
        assert_eq!(resp.status, 200);
        bodies.push(resp.text());
    }
    bodies.sort();
    assert_eq!(
        bodies,
        ["a", "b"],
        "the in-flight request on b finished on b"
    );
    assert_eq!(ha.in_progress() + hb.in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_gone_keeps_the_last_set_serving_and_counts_the_failure() {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let api = ApiServer::with_slices(&[("web-a", ready(a)), ("web-b", ready(b))]).await;
    let weir = start(&api, &config(WEB_HTTP, "")).await;
    let load = Load::start(weir.listener_addr("web"), 4);
    load.wait_for_more(100, "before the API server stops").await;

    api.stop();
    eventually_within("a failure counted", LOG_WAIT, || async {
        (weir.discovery_lookups("web", "failure").await >= 1.0).then_some(())
    })
    .await;
    let status = weir.status().await;
    let d = &weir_e2e::status::pool(&status, "web")["discovery"];
    assert!(d["last_error"].is_string(), "the error is shown: {d}");
    assert!(d["last_success_unix_ms"].as_u64() > Some(0), "{d}");
    assert_eq!(d["backends"], 2, "{d}");
    assert_eq!(backends(&status), shown(&[(a, "ready"), (b, "ready")]));
    discovery::assert_still_served(&load, "while the API server is down", &[&ha, &hb]).await;

    // Back, with a change made meanwhile: the watcher recovers and applies it.
    api.apply(slice("web-c", "http", &[ready(c)]));
    let line = weir
        .discovery_updated(async {
            api.start_again().await;
        })
        .await;
    assert_eq!(log_str(&line, "added"), c.to_string(), "{line}");
    let status = weir.status().await;
    assert!(
        weir_e2e::status::pool(&status, "web")["discovery"]["last_error"].is_null(),
        "a good answer clears the error"
    );
    let hits = hc.hits();
    until("c taking traffic", || hc.hits() > hits).await;
    load.stop()
        .await
        .assert_no_failures("the API server down and back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_resource_version_makes_the_watcher_list_again() {
    let ([a, b], [_ha, hb]) = spawn_backends(["a", "b"]).await;
    let api = ApiServer::with_slices(&[("web-a", ready(a))]).await;
    let weir = start(&api, &config(WEB_HTTP, "")).await;
    assert_eq!(backends(&weir.status().await), shown(&[(a, "ready")]));
    until("the watch started", || api.watches() >= 1).await;
    assert_eq!(api.lists(), 1);

    // etcd compacted past weir's version, and b joined meanwhile: only a re-list
    // can see it.
    let line = weir
        .discovery_updated(async {
            api.expire(vec![
                slice("web-a", "http", &[ready(a)]),
                slice("web-b", "http", &[ready(b)]),
            ]);
        })
        .await;
    assert_eq!(log_str(&line, "added"), b.to_string(), "{line}");
    assert_eq!(api.gone(), 1, "the resumed watch was answered 410 Gone");
    assert_eq!(api.lists(), 2, "then the watcher listed again");
    assert!(
        weir.discovery_lookups("web", "failure").await >= 1.0,
        "the 410 is counted"
    );
    let mut client = weir.h1_client("web").await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    assert!(hb.hits() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_by_number_and_the_kubeconfig_namespace() {
    let ([a], [ha]) = spawn_backends(["a"]).await;
    let api = ApiServer::start().await;
    // The slice names port `http` 9 (discard): a number ignores the slice's ports.
    let mut s = slice("web-a", "http", &[ready(a)]);
    s["ports"][0]["port"] = 9.into();
    api.apply(s);
    let weir = start(
        &api,
        &config(&format!("service: web, port: {}", a.port()), ""),
    )
    .await;
    let status = weir.status().await;
    assert_eq!(backends(&status), shown(&[(a, "ready")]));
    assert_eq!(
        weir_e2e::status::pool(&status, "web")["discovery"]["source"],
        "kubernetes (default namespace)/web:".to_owned() + &a.port().to_string()
    );
    weir.h1_client("web").await.assert_gets(3, "/", "a").await;
    assert_eq!(ha.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_api_drain_survives_discovery_updates() {
    let ([a, b, c], [ha, _hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let api = ApiServer::with_slices(&[("web-a", ready(a)), ("web-b", ready(b))]).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("discovery-k8s");
    std::fs::create_dir_all(&dir).expect("token dir");
    let token = dir.join(format!("token-{}", std::process::id()));
    std::fs::write(&token, "k8s-t0ken\n").expect("write token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let yaml = config(WEB_HTTP, "").replacen(
        ADMIN,
        &format!("{ADMIN}  api: {{ token_file: {} }}\n", token.display()),
        1,
    );
    let weir = start(&api, &yaml).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/pools/web/backends/{a}"))
        .header("authorization", "Bearer k8s-t0ken")
        .body(Full::new(Bytes::from_static(br#"{"state":"drain"}"#)))
        .expect("request");
    let resp = client::request(weir.admin_addr(), req).await.expect("POST");
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());

    weir.discovery_updated(async {
        api.apply(slice("web-c", "http", &[ready(c)]));
    })
    .await;
    let status = weir.status().await;
    let entry = weir_e2e::status::backend(&status, "web", a);
    assert_eq!(entry["admin_state"], "drain", "the drain survived: {entry}");
    let a_hits = ha.hits();
    let mut client = weir.h1_client("web").await;
    for _ in 0..12 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    assert_eq!(ha.hits(), a_hits, "a drained backend takes nothing");
    assert!(hc.hits() >= 1, "the new endpoint does");
}

#[tokio::test]
async fn weir_check_reports_a_bad_kubernetes_block_at_its_path() {
    let yaml = web_pool(
        "    discovery:
      kubernetes:
        namespace: Shop
        service: web_1
        port: -http-
",
    );
    weir_e2e::assert_check_errors(
        WEIR,
        &yaml,
        &[
            "weir.yaml:10:9: pools.web.discovery.kubernetes.namespace: invalid Kubernetes namespace name \"Shop\" (only lower-case letters, digits and '-' are allowed)",
            "weir.yaml:11:9: pools.web.discovery.kubernetes.service: invalid Kubernetes Service name \"web_1\" (only lower-case letters, digits and '-' are allowed)",
            "weir.yaml:12:9: pools.web.discovery.kubernetes.port: invalid port \"-http-\": a number 1..=65535 or a Service port name (no '-' at either end or twice in a row)",
            "weir.yaml: 3 errors",
        ],
    )
    .await;
    let both = web_pool(
        "    discovery:
      kubernetes: { service: web, port: 80 }
      dns: { name: web.test, port: 80 }
",
    );
    let out = check_config(WEIR, &both).await;
    assert_eq!(
        out.stderr_lines()[0],
        "weir.yaml:8:5: pools.web.discovery: one discovery source per pool: `dns` or `kubernetes`, not both",
        "{out:?}"
    );
    let missing = web_pool("    discovery:\n      kubernetes: { namespace: shop }\n");
    weir_e2e::assert_check_errors(
        WEIR,
        &missing,
        &[
            "weir.yaml:9:7: pools.web.discovery.kubernetes: missing field `service` (the Service whose EndpointSlices are watched)",
            "weir.yaml:9:7: pools.web.discovery.kubernetes: missing field `port` (a Service port name, or the endpoints' port number)",
            "weir.yaml: 2 errors",
        ],
    )
    .await;
}

/// The endpoint states hold on every path: HTTP/2 clients and TCP connections pick
/// among the same routable backends as HTTP/1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_clients_and_tcp_connections_skip_not_ready_and_terminating_endpoints() {
    let ([a, b, c], [ha, hb, hc]) = spawn_backends(["a", "b", "c"]).await;
    let api = ApiServer::with_slices(&[
        ("web-a", ready(a)),
        ("web-b", not_ready(b)),
        ("web-c", terminating(c)),
    ])
    .await;
    let discovery = format!("    discovery:\n      kubernetes: {{ {WEB_HTTP} }}\n");
    let yaml = format!(
        "{ADMIN}{}{}pools:\n  web:\n{discovery}  db:\n{discovery}",
        weir_e2e::config::WEB_LISTENER,
        weir_e2e::config::tcp_listener("pg", "db"),
    );
    let weir = start(&api, &yaml).await;
    let mut h2 = weir_e2e::H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2 connect");
    for _ in 0..6 {
        let resp = h2.get("web.test", "/").await.expect("h2 request");
        assert_eq!((resp.status, resp.text()), (StatusCode::OK, "a".to_owned()));
    }
    let pg = weir.listener_addr("pg");
    for _ in 0..6 {
        assert_eq!(client::get(pg, "/").await.text(), "a", "over the TCP relay");
    }
    assert_eq!(
        (hb.hits(), hc.hits()),
        (0, 0),
        "neither not-ready nor terminating"
    );
    assert_eq!(ha.hits(), 12);
}
