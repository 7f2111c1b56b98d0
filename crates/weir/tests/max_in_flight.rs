//! Backend protection through a real weir (issue 12, item 2): `max_in_flight` per pool
//! and per backend, counted at the backend; the pool's queue (requests complete once a
//! slot frees, 503 when full or timed out, a client that leaves stops waiting); its
//! metrics and `/status`; every strategy and both HTTP paths respect the limit; a TCP
//! listener's limit counts connections; a reload that raises the limit lets waiters on;
//! and `weir check` catches bad settings with their line and column.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use weir_e2e::client::{self, H2Client, Response};
use weir_e2e::config::{backend, backend_with, one_pool, tcp_listener, ADMIN, WEB_LISTENER};
use weir_e2e::{eventually, spawn_backend, spawn_backends, spawn_tcp_echo, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Longest a test waits for an answer it expects; far under a queue timeout of 30 s.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// A GET of `path` from its own connection, answered (or not) in the background.
fn spawn_get(addr: SocketAddr, path: &'static str) -> JoinHandle<Response> {
    tokio::spawn(async move { client::get(addr, path).await })
}

async fn answered(task: JoinHandle<Response>) -> Response {
    tokio::time::timeout(ANSWER_WAIT, task)
        .await
        .expect("answered in time")
        .expect("client task")
}

/// Waits until the pool's queue holds `n` requests (`weir_pool_queue_depth`).
async fn wait_depth(weir: &Weir, pool: &str, n: f64) {
    eventually(&format!("queue depth {n} in pool {pool}"), || async move {
        let depth = weir
            .metrics()
            .await
            .value("weir_pool_queue_depth", &[("pool", pool)]);
        (depth == Some(n)).then_some(())
    })
    .await;
}

async fn refused(weir: &Weir, reason: &str) -> f64 {
    weir.metric(
        "weir_pool_queue_refused_total",
        &[("pool", "web"), ("reason", reason)],
    )
    .await
}

/// Pool `web` of `strategy` over `backends`, with `extra` pool lines.
async fn start(strategy: &str, backends: &str, extra: &str) -> Weir {
    Weir::start(WEIR, &one_pool(strategy, backends, extra)).await
}

/// Backend `one` limited to one request at a time with the pool's `queue` (a YAML
/// flow mapping), and a first request held at it.
async fn one_held(queue: &str) -> (Weir, BackendHandle, JoinHandle<Response>) {
    let (addr, be) = spawn_backend("one").await;
    let extra = format!("    max_in_flight: 1\n    queue: {queue}\n");
    let weir = start("round_robin", &backend(addr), &extra).await;
    let holding = spawn_get(weir.listener_addr("web"), "/hold");
    be.wait_in_progress(1, "the first request at the backend")
        .await;
    (weir, be, holding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_gets_at_most_its_limit_and_the_queue_drains_as_slots_free() {
    let (addr, be) = spawn_backend("slow").await;
    let extra = "    max_in_flight: 2\n    queue: { max: 100, timeout: 30s }\n";
    let weir = start("round_robin", &backend(addr), extra).await;
    let web = weir.listener_addr("web");
    let clients: Vec<_> = (0..10).map(|_| spawn_get(web, "/hold")).collect();
    be.wait_in_progress(2, "two requests at the backend").await;
    wait_depth(&weir, "web", 8.0).await;
    assert_eq!(be.in_progress(), 2, "the other eight wait in weir");

    let status = weir.status().await;
    let pool = weir_e2e::status::pool(&status, "web");
    assert_eq!(pool["queue"]["depth"], 8, "{pool}");
    assert_eq!(pool["queue"]["max"], 100);
    assert_eq!(pool["queue"]["timeout_ms"], 30_000);
    let b = weir_e2e::status::backend(&status, "web", addr);
    assert_eq!(
        (b["in_flight"].as_u64(), b["max_in_flight"].as_u64()),
        (Some(2), Some(2))
    );

    be.release(10);
    for c in clients {
        let r = answered(c).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "slow".to_owned()));
    }
    assert_eq!(be.hits(), 10);
    assert_eq!(
        be.peak_in_progress(),
        2,
        "never more than max_in_flight at once"
    );
    let scrape = weir.metrics().await;
    scrape.assert_value("weir_pool_queue_depth", &[("pool", "web")], 0.0);
    scrape.assert_value(
        "weir_pool_queue_wait_seconds_count",
        &[("pool", "web")],
        8.0,
    );
    for reason in ["full", "timeout"] {
        let labels = [("pool", "web"), ("reason", reason)];
        scrape.assert_value("weir_pool_queue_refused_total", &labels, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_at_once() {
    let (weir, be, holding) = one_held("{ max: 1, timeout: 30s }").await;
    let web = weir.listener_addr("web");
    let queued = spawn_get(web, "/hold");
    wait_depth(&weir, "web", 1.0).await;

    let over = answered(spawn_get(web, "/")).await;
    assert_eq!(over.status, 503, "{}", over.text());
    assert!(
        over.text().starts_with(
            "503 Service Unavailable: every backend of pool \"web\" is busy (queue full)"
        ),
        "{}",
        over.text()
    );
    assert!(over.header("x-request-id").is_some());
    assert_eq!(refused(&weir, "full").await, 1.0);
    assert_eq!(
        be.hits(),
        1,
        "neither the queued nor the refused request reached it"
    );

    be.release(2);
    for c in [holding, queued] {
        assert_eq!(answered(c).await.status, 200);
    }
    assert_eq!(be.peak_in_progress(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waits_out_the_queue_timeout_gets_503() {
    let (weir, be, holding) = one_held("{ max: 10, timeout: 400ms }").await;
    let web = weir.listener_addr("web");

    let started = tokio::time::Instant::now();
    let late = answered(spawn_get(web, "/")).await;
    let waited = started.elapsed();
    assert_eq!(late.status, 503, "{}", late.text());
    assert!(
        late.text().contains("busy (waited too long in the queue)"),
        "{}",
        late.text()
    );
    assert!(
        waited >= Duration::from_millis(380),
        "answered after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    assert_eq!(refused(&weir, "timeout").await, 1.0);
    assert_eq!(refused(&weir, "full").await, 0.0);

    be.release(1);
    assert_eq!(answered(holding).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_while_queued_leaves_the_queue() {
    let (weir, be, holding) = one_held("{ max: 10, timeout: 30s }").await;

    let mut gone = weir.connect("web").await;
    gone.write_all(b"GET / HTTP/1.1\r\nhost: web\r\n\r\n")
        .await
        .expect("request written");
    wait_depth(&weir, "web", 1.0).await;
    drop(gone);
    // Long before the 30 s timeout: the wait ended with the connection.
    wait_depth(&weir, "web", 0.0).await;
    assert_eq!(refused(&weir, "timeout").await, 0.0);

    be.release(1);
    assert_eq!(answered(holding).await.status, 200);
    assert_eq!(be.hits(), 1, "the abandoned request was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_entry_overrides_the_pools_limit() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let backends = format!("{}{}", backend_with(a, "max_in_flight: 1"), backend(b));
    let extra = "    max_in_flight: 3\n    queue: { max: 10, timeout: 30s }\n";
    let weir = start("round_robin", &backends, extra).await;
    let web = weir.listener_addr("web");
    let clients: Vec<_> = (0..6).map(|_| spawn_get(web, "/hold")).collect();
    ha.wait_in_progress(1, "a at its own limit").await;
    hb.wait_in_progress(3, "b at the pool's limit").await;
    wait_depth(&weir, "web", 2.0).await;
    let status = weir.status().await;
    for (addr, limit) in [(a, 1), (b, 3)] {
        let s = weir_e2e::status::backend(&status, "web", addr);
        assert_eq!(s["max_in_flight"], limit, "{s}");
    }

    ha.release(6);
    hb.release(6);
    for c in clients {
        assert_eq!(answered(c).await.status, 200);
    }
    assert_eq!((ha.peak_in_progress(), hb.peak_in_progress()), (1, 3));
    assert_eq!(ha.hits() + hb.hits(), 6);
}

/// A retry goes only to a backend with room: with the other one full it stops, and the
/// client gets the failed attempt's error at once rather than a wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_never_passes_the_limit_nor_queues() {
    let dead = weir_e2e::closed_port();
    let (live, be) = spawn_backend("live").await;
    let backends = format!("{}{}", backend(dead.addr()), backend(live));
    let extra = "    max_in_flight: 1\n    queue: { max: 10, timeout: 30s }\n";
    let weir = start("round_robin", &backends, extra).await;
    let web = weir.listener_addr("web");
    // The dead backend's turn first: refused, retried on the live one, held there.
    let holding = spawn_get(web, "/hold");
    be.wait_in_progress(1, "the retried request at the live backend")
        .await;
    let started = tokio::time::Instant::now();
    let refused = answered(spawn_get(web, "/")).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no queueing for a retry"
    );
    assert_eq!(be.hits(), 1, "the full backend got no retry");

    be.release(1);
    assert_eq!(answered(holding).await.status, 200);
    assert_eq!(be.peak_in_progress(), 1);
}

/// Six held requests over two backends limited to two each: two at each, two queued,
/// whatever the strategy would prefer (weights 5 and 1 for the weighted ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_respects_the_limit() {
    for strategy in ["least_connections", "weighted", "random", "round_robin"] {
        let ([a, b], handles) = spawn_backends(["a", "b"]).await;
        let backends = format!("{}{}", backend_with(a, "weight: 5"), backend(b));
        let extra = "    max_in_flight: 2\n    queue: { max: 10, timeout: 30s }\n";
        let weir = start(strategy, &backends, extra).await;
        let web = weir.listener_addr("web");
        let clients: Vec<_> = (0..6).map(|_| spawn_get(web, "/hold")).collect();
        for h in &handles {
            h.wait_in_progress(2, &format!("{strategy}: {} at its limit", h.name()))
                .await;
        }
        wait_depth(&weir, "web", 2.0).await;
        for h in &handles {
            h.release(6);
        }
        for c in clients {
            assert_eq!(answered(c).await.status, 200, "{strategy}");
        }
        let peaks: Vec<usize> = handles
            .iter()
            .map(BackendHandle::peak_in_progress)
            .collect();
        assert_eq!(peaks, [2, 2], "{strategy}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_wait_in_the_same_queue() {
    let (weir, be, holding) = one_held("{ max: 10, timeout: 30s }").await;
    let web = weir.listener_addr("web");
    let clients: Vec<JoinHandle<Response>> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let mut h2 = H2Client::connect(web).await.expect("h2c connect");
                h2.get("web.test", "/hold").await.expect("an answer")
            })
        })
        .collect();
    wait_depth(&weir, "web", 2.0).await;
    assert_eq!(
        be.in_progress(),
        1,
        "HTTP/2 requests wait behind the HTTP/1 one"
    );
    be.release(3);
    for c in clients.into_iter().chain([holding]) {
        assert_eq!(answered(c).await.status, 200);
    }
    assert_eq!((be.hits(), be.peak_in_progress()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_raises_the_limit_lets_the_waiters_on() {
    let (addr, be) = spawn_backend("one").await;
    let limited = |n: u32| {
        one_pool(
            "round_robin",
            &backend(addr),
            &format!("    max_in_flight: {n}\n    queue: {{ max: 10, timeout: 30s }}\n"),
        )
    };
    let mut weir = Weir::start(WEIR, &limited(1)).await;
    let web = weir.listener_addr("web");
    let clients: Vec<_> = (0..3).map(|_| spawn_get(web, "/hold")).collect();
    be.wait_in_progress(1, "one request at the backend").await;
    wait_depth(&weir, "web", 2.0).await;

    weir.reload(&limited(3), ANSWER_WAIT).await;
    be.wait_in_progress(3, "the waiters let on by the raised limit")
        .await;
    wait_depth(&weir, "web", 0.0).await;
    be.release(3);
    for c in clients {
        assert_eq!(answered(c).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_the_pool_answers_its_waiters_503() {
    let ([addr, other], [be, _other]) = spawn_backends(["one", "other"]).await;
    let limited = one_pool(
        "round_robin",
        &backend(addr),
        "    max_in_flight: 1\n    queue: { max: 10, timeout: 30s }\n",
    );
    let mut weir = Weir::start(WEIR, &limited).await;
    let web = weir.listener_addr("web");
    let holding = spawn_get(web, "/hold");
    be.wait_in_progress(1, "one request at the backend").await;
    let waiting = spawn_get(web, "/");
    wait_depth(&weir, "web", 1.0).await;

    let moved = one_pool("round_robin", &backend(other), "").replace("web", "moved");
    let moved = moved.replacen("name: moved", "name: web", 1);
    weir.reload(&moved, ANSWER_WAIT).await;
    let late = answered(waiting).await;
    assert_eq!(late.status, 503, "{}", late.text());
    assert!(
        late.text().contains("busy (the pool was removed)"),
        "{}",
        late.text()
    );
    be.release(1);
    assert_eq!(
        answered(holding).await.status,
        200,
        "in flight, it finishes"
    );
}

/// A TCP listener's limit counts open connections: the second connection waits (no
/// connect to the backend) until the first closes; one over a short queue timeout is
/// closed without a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_listeners_limit_counts_connections() {
    let echo = spawn_tcp_echo().await;
    let yaml = format!(
        "{ADMIN}{WEB_LISTENER}{}pools:\n  web:\n    backends:\n{}  db:\n    max_in_flight: 1\n    queue: {{ max: 1, timeout: 30s }}\n    backends:\n{}",
        tcp_listener("db", "db"),
        backend(echo),
        backend(echo),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let mut first = weir.connect("db").await;
    weir_e2e::client::raw::assert_echoed(&mut first, b"one", ANSWER_WAIT).await;

    let mut second = weir.connect("db").await;
    second.write_all(b"two").await.expect("written");
    wait_depth(&weir, "db", 1.0).await;
    // The queue (max 1) is full: a third connection is closed at once.
    let mut third = weir.connect("db").await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(ANSWER_WAIT, third.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    let scrape = weir.metrics().await;
    let labels = [("pool", "db"), ("reason", "full")];
    scrape.assert_value("weir_pool_queue_refused_total", &labels, 1.0);
    scrape.assert_value(
        "weir_backend_in_flight",
        &[("pool", "db"), ("backend", &echo.to_string())],
        1.0,
    );

    drop(first);
    let mut echoed = [0u8; 3];
    tokio::time::timeout(ANSWER_WAIT, second.read_exact(&mut echoed))
        .await
        .expect("the waiting connection goes through once the first closes")
        .expect("echo");
    assert_eq!(&echoed, b"two");
    wait_depth(&weir, "db", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_check_reports_bad_limits_and_queues_with_line_and_column() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes: [{ pool: api, match: { path_prefix: /api/ } }, { pool: web }]
pools:
  web:
    max_in_flight: 0
    queue: { max: -1, timeout: soon }
    backends:
      - { address: 127.0.0.1:9, max_in_flight: 0 }
  api:
    queue: { max: 10 }
    backends: [{ address: 127.0.0.1:10 }]
";
    weir_e2e::assert_check_errors(
        WEIR,
        yaml,
        &[
            "weir.yaml:7:5: pools.web.max_in_flight: max_in_flight must be between 1 and 1000000, got 0",
            "weir.yaml:8:14: pools.web.queue.max: max must be between 0 and 1000000, got -1",
            "weir.yaml:8:23: pools.web.queue.timeout: invalid duration \"soon\" (expected a number and a unit: 250ms, 2s, 1m, 1h)",
            "weir.yaml:10:33: pools.web.backends[0].max_in_flight: max_in_flight must be between 1 and 1000000, got 0",
            "weir.yaml:12:5: pools.api.queue: a queue needs max_in_flight on the pool or on one of its backends",
            "weir.yaml: 5 errors",
        ],
    )
    .await;
}
