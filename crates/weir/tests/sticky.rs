//! Sticky cookies (`pools.NAME.sticky`, HAProxy's `cookie NAME insert`) through the real
//! binary: the first answer sets `WEIR_B=<id>` with its exact attributes and later
//! requests carrying it reach the same backend, over HTTP/1 and h2c, with an HTTP/2
//! upstream, and on a TLS listener (`Secure`, HTTP/1 and HTTP/2 by ALPN); the id is the
//! backend's `sticky_id` in `/status` and survives a SIGHUP reload; a backend that goes
//! down, is drained or is put in maintenance loses its clients to another backend with a
//! new cookie and gets them back; a tampered id is balanced and replaced; the
//! `weir_sticky_total{pool,result}` counts; a shared `secret_file` gives two processes
//! the same ids and the per-process key different ones; with `max_in_flight` a request
//! waits for its own backend's slot rather than moving (and moves once that backend is
//! drained); and `weir check` reports bad `sticky` blocks with line, column and path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weir_e2e::client::{self, H1Client, H2Client, Response};
use weir_e2e::config::{backends, health_check, one_pool, ADMIN};
use weir_e2e::tls::{Ca, Dir};
use weir_e2e::{eventually, spawn_backends, status, until, BackendHandle, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(10);
/// Longest a test waits for an answer it expects; the queue's timeout is 5 s.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// The pool's `sticky` block: cookie `WEIR_B`, one hour (indented for `one_pool`).
const STICKY: &str = "    sticky:\n      cookie: WEIR_B\n      ttl: 1h\n";
/// A key for `secret_file`: 32 printable characters.
const SECRET: &str = "0123456789abcdef-shared-by-both\n";
/// `weir_sticky_total`'s results, in the order [`tally`] gives them.
const RESULTS: [&str; 4] = ["hit", "new", "rebalanced", "invalid"];

// === requests ===

/// `GET path` with `cookie` as the whole `Cookie` header (none for `None`).
fn get_req(path: &str, cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    req.body(Full::new(Bytes::new())).expect("valid request")
}

/// `GET /` on `client` with `cookie`; asserted to be a 200.
async fn get(client: &mut H1Client, cookie: Option<&str>) -> Response {
    let resp = client
        .send(get_req("/", cookie))
        .await
        .unwrap_or_else(|e| panic!("GET / (cookie {cookie:?}) through weir: {e}"));
    assert_eq!(resp.status, 200, "cookie {cookie:?}: {}", resp.text());
    resp
}

/// `GET /` over h2c with one `cookie` header per entry of `cookies`; asserted a 200.
async fn h2_get(client: &mut H2Client, cookies: &[&str]) -> Response {
    let mut req = Request::get("http://web.test/").version(Version::HTTP_2);
    for c in cookies {
        req = req.header(header::COOKIE, *c);
    }
    let req = req.body(Full::new(Bytes::new())).expect("valid request");
    let resp = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("h2 GET / (cookies {cookies:?}): {e}"));
    assert_eq!(resp.status, 200, "cookies {cookies:?}: {}", resp.text());
    assert_eq!(resp.version, Version::HTTP_2);
    resp
}

/// A GET of `path` with `cookie`, on its own connection, answered in the background.
fn spawn_get(addr: SocketAddr, path: &'static str, cookie: Option<String>) -> JoinHandle<Response> {
    tokio::spawn(async move {
        client::request(addr, get_req(path, cookie.as_deref()))
            .await
            .unwrap_or_else(|e| panic!("GET {path} via {addr}: {e}"))
    })
}

async fn answered(task: JoinHandle<Response>) -> Response {
    tokio::time::timeout(ANSWER_WAIT, task)
        .await
        .expect("answered in time")
        .expect("client task")
}

/// The `Cookie` header naming the backend whose id is `id`.
fn pin(id: &str) -> String {
    format!("WEIR_B={id}")
}

// === what came back ===

fn set_cookies(resp: &Response) -> Vec<String> {
    resp.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
        .collect()
}

/// The id of the one `Set-Cookie` of `resp`, checked to be exactly that of a one-hour
/// cookie (with `Secure` when `secure`).
#[track_caller]
fn set_id(resp: &Response, secure: bool) -> String {
    let all = set_cookies(resp);
    assert_eq!(all.len(), 1, "one Set-Cookie expected: {all:?}");
    let line = &all[0];
    let id = line
        .strip_prefix("WEIR_B=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("not a WEIR_B cookie: {line:?}"));
    assert_id(id);
    let tail = if secure { "; Secure" } else { "" };
    assert_eq!(
        line,
        &format!("WEIR_B={id}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax{tail}")
    );
    id.to_owned()
}

#[track_caller]
fn no_set_cookie(resp: &Response, what: &str) {
    let all = set_cookies(resp);
    assert!(
        all.is_empty(),
        "{what}: no Set-Cookie expected, got {all:?}"
    );
}

/// An id is 32 lowercase hex digits.
#[track_caller]
fn assert_id(id: &str) {
    assert!(
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not 32 lowercase hex digits: {id:?}"
    );
}

/// The address of the backend named `name`.
fn addr_of(handles: &[BackendHandle], name: &str) -> SocketAddr {
    handles
        .iter()
        .find(|h| h.name() == name)
        .unwrap_or_else(|| panic!("no backend named {name:?}"))
        .addr()
}

/// Every backend's `sticky_id` in pool `web` of `/status`, by address.
async fn sticky_ids(weir: &Weir) -> HashMap<SocketAddr, String> {
    let doc = weir.status().await;
    let ids: HashMap<SocketAddr, String> = status::backends(&doc, "web")
        .iter()
        .map(|b| {
            let addr = b["address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("backend without an address: {b}"));
            let id = b["sticky_id"]
                .as_str()
                .unwrap_or_else(|| panic!("backend without a sticky_id: {b}"));
            assert_id(id);
            (addr, id.to_owned())
        })
        .collect();
    let mut distinct: Vec<&String> = ids.values().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids are distinct: {ids:?}");
    ids
}

/// `weir_sticky_total{pool="web"}` for hit, new, rebalanced and invalid.
async fn tally(weir: &Weir) -> [f64; 4] {
    let scrape = weir.metrics().await;
    RESULTS.map(|r| {
        scrape
            .value("weir_sticky_total", &[("pool", "web"), ("result", r)])
            .unwrap_or_else(|| panic!("no weir_sticky_total series for pool web, result {r}"))
    })
}

/// Waits until the pool's queue holds `n` requests (`weir_pool_queue_depth`).
async fn wait_depth(weir: &Weir, n: f64) {
    eventually(&format!("queue depth {n} in pool web"), || async move {
        let depth = weir
            .metrics()
            .await
            .value("weir_pool_queue_depth", &[("pool", "web")]);
        (depth == Some(n)).then_some(())
    })
    .await;
}

/// Pool `web`, round robin over `addrs`, sticky, with `extra` pool lines.
fn sticky_pool(addrs: &[SocketAddr], extra: &str) -> String {
    one_pool("round_robin", &backends(addrs), &format!("{STICKY}{extra}"))
}

// === files ===

/// A file of its own per call under the test target's tmp dir, holding `text`, `mode`.
fn private_file(what: &str, text: &str, mode: u32) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sticky");
    std::fs::create_dir_all(&dir).expect("sticky test dir");
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let path = dir.join(format!("{what}-{}-{n}", std::process::id()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(&path, mode);
    path
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_the_first_answer_sets_the_cookie_and_requests_carrying_it_stick() {
    let (addrs, handles) = spawn_backends(["a", "b", "c"]).await;
    let weir = Weir::start(WEIR, &sticky_pool(&addrs, "")).await;
    let mut client = weir.h1_client("web").await;

    let first = get(&mut client, None).await;
    let home = first.text();
    let id = set_id(&first, false);
    for addr in addrs {
        assert!(!id.contains(&addr.to_string()), "the id is no address");
    }

    let doc = weir.status().await;
    assert_eq!(
        status::pool(&doc, "web")["sticky"],
        json!({ "cookie": "WEIR_B", "ttl_s": 3600, "key": "process" }),
        "{doc}"
    );
    let ids = sticky_ids(&weir).await;
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids[&addr_of(&handles, &home)],
        id,
        "the cookie is its sticky_id"
    );

    for i in 0..50 {
        // Alone, and among other cookies.
        let cookie = if i % 2 == 0 {
            pin(&id)
        } else {
            format!("theme=dark; {}; lang=en", pin(&id))
        };
        let resp = get(&mut client, Some(&cookie)).await;
        assert_eq!(resp.text(), home, "request #{i} with {cookie:?}");
        no_set_cookie(&resp, &format!("request #{i}, its cookie names {home}"));
    }

    // Without the cookie: round robin over all three, each answer naming its backend.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let resp = get(&mut client, None).await;
        let name = resp.text();
        assert_eq!(
            set_id(&resp, false),
            ids[&addr_of(&handles, &name)],
            "{name}"
        );
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    assert_eq!(tally(&weir).await, [50.0, 31.0, 0.0, 0.0], "{RESULTS:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_the_same_cookie_and_stick_the_same_way() {
    let (addrs, handles) = spawn_backends(["a", "b", "c"]).await;
    let weir = Weir::start(WEIR, &sticky_pool(&addrs, "")).await;
    let ids = sticky_ids(&weir).await;
    let mut h2 = H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2c handshake with weir");

    let first = h2_get(&mut h2, &[]).await;
    let home = first.text();
    let id = set_id(&first, false);
    assert_eq!(ids[&addr_of(&handles, &home)], id);

    for i in 0..20 {
        let resp = h2_get(&mut h2, &[&pin(&id)]).await;
        assert_eq!(resp.text(), home, "h2 request #{i}");
        no_set_cookie(&resp, "h2 request carrying the cookie");
    }
    // HTTP/2 clients may send each cookie in a header of its own.
    for i in 0..10 {
        let resp = h2_get(&mut h2, &["theme=dark", &pin(&id), "lang=en"]).await;
        assert_eq!(resp.text(), home, "h2 request #{i} with split cookies");
        no_set_cookie(&resp, "h2 request with split cookies");
    }
    // The cookie an HTTP/2 client got works for HTTP/1 too.
    let mut h1 = weir.h1_client("web").await;
    let resp = get(&mut h1, Some(&pin(&id))).await;
    assert_eq!(resp.text(), home);
    no_set_cookie(&resp, "HTTP/1 with the h2 client's cookie");
    assert_eq!(tally(&weir).await, [31.0, 1.0, 0.0, 0.0], "{RESULTS:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_survives_a_reload_that_adds_a_backend_and_is_invalid_once_its_backend_is_removed(
) {
    let ([a, b, c, d], handles) = spawn_backends(["a", "b", "c", "d"]).await;
    let mut weir = Weir::start(WEIR, &sticky_pool(&[a, b, c], "")).await;
    let mut client = weir.h1_client("web").await;
    let first = get(&mut client, None).await;
    let home = first.text();
    let home_addr = addr_of(&handles, &home);
    let id = set_id(&first, false);
    let before = sticky_ids(&weir).await;

    weir.reload(&sticky_pool(&[a, b, c, d], ""), LOG_WAIT).await;
    let after = sticky_ids(&weir).await;
    assert_eq!(after.len(), 4, "{after:?}");
    for addr in [a, b, c] {
        assert_eq!(after[&addr], before[&addr], "a reload keeps {addr}'s id");
    }
    let mut client = weir.h1_client("web").await;
    for i in 0..20 {
        let resp = get(&mut client, Some(&pin(&id))).await;
        assert_eq!(resp.text(), home, "request #{i} after the reload");
        no_set_cookie(&resp, "after the reload");
    }
    // The added backend's id, as /status shows it, reaches it.
    let resp = get(&mut client, Some(&pin(&after[&d]))).await;
    assert_eq!(resp.text(), "d");
    no_set_cookie(&resp, "the new backend's cookie");

    // A reload without the cookie's backend: the id names nothing now.
    let rest: Vec<SocketAddr> = [a, b, c, d]
        .into_iter()
        .filter(|x| *x != home_addr)
        .collect();
    weir.reload(&sticky_pool(&rest, ""), LOG_WAIT).await;
    let mut client = weir.h1_client("web").await;
    let resp = get(&mut client, Some(&pin(&id))).await;
    assert_ne!(resp.text(), home, "the removed backend got a request");
    let new_id = set_id(&resp, false);
    assert_eq!(new_id, after[&addr_of(&handles, &resp.text())]);
    assert_eq!(tally(&weir).await, [21.0, 1.0, 0.0, 1.0], "{RESULTS:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_goes_down_loses_its_clients_with_a_new_cookie_and_gets_them_back() {
    let (addrs, handles) = spawn_backends(["a", "b", "c"]).await;
    let weir = Weir::start(WEIR, &sticky_pool(&addrs, &health_check(50, 500, 1, 1))).await;
    eventually("every backend up", || async {
        (status::down_count(&weir.status().await, "web") == 0).then_some(())
    })
    .await;
    let ids = sticky_ids(&weir).await;
    let mut client = weir.h1_client("web").await;
    let first = get(&mut client, None).await;
    let home = first.text();
    let id = set_id(&first, false);
    let home_handle = handles.iter().find(|h| h.name() == home).expect("home");
    // Past the initial state, as in resilience_health.rs.
    until("a few probes of the home backend", || {
        home_handle.health_probes() >= 2
    })
    .await;

    let mark = weir.log_mark();
    home_handle.set_health_status(503);
    weir.wait_for_backend_log(mark, "backend down", home_handle.addr(), LOG_WAIT)
        .await;
    let moved = get(&mut client, Some(&pin(&id))).await;
    let there = moved.text();
    assert_ne!(there, home, "the cookie reached its down backend");
    let new_id = set_id(&moved, false);
    assert_ne!(new_id, id, "a new cookie for the new backend");
    assert_eq!(new_id, ids[&addr_of(&handles, &there)]);
    assert_eq!(tally(&weir).await, [0.0, 1.0, 1.0, 0.0], "{RESULTS:?}");
    // The new cookie sticks to the new backend.
    let resp = get(&mut client, Some(&pin(&new_id))).await;
    assert_eq!(resp.text(), there);
    no_set_cookie(&resp, "the replaced cookie");

    let mark = weir.log_mark();
    home_handle.set_health_status(200);
    weir.wait_for_backend_log(mark, "backend up", home_handle.addr(), LOG_WAIT)
        .await;
    let back = get(&mut client, Some(&pin(&id))).await;
    assert_eq!(
        back.text(),
        home,
        "the old cookie reaches its backend again"
    );
    no_set_cookie(&back, "the old cookie, its backend up again");
    assert_eq!(tally(&weir).await, [2.0, 1.0, 1.0, 0.0], "{RESULTS:?}");
}

const TOKEN: &str = "t0ken-for-sticky-tests";

/// `yaml` with `admin.api` reading a fresh token file.
fn with_api(yaml: &str) -> String {
    let token = private_file("token", &format!("{TOKEN}\n"), 0o600);
    yaml.replacen(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  api: {{ token_file: {} }}\n",
            token.display()
        ),
        1,
    )
}

/// `POST /pools/web/backends/{addr}` with `{"state": state}`; asserted a 200.
async fn set_state(weir: &Weir, addr: SocketAddr, state: &str) {
    let req = Request::post(format!("/pools/web/backends/{addr}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(format!(r#"{{"state":"{state}"}}"#))))
        .expect("valid request");
    let resp = client::request(weir.admin_addr(), req)
        .await
        .unwrap_or_else(|e| panic!("POST state {state} for {addr}: {e}"));
    assert_eq!(resp.status, StatusCode::OK, "{state}: {}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_or_maintained_backend_loses_its_clients_and_gets_them_back_when_ready() {
    let (addrs, handles) = spawn_backends(["a", "b", "c"]).await;
    let weir = Weir::start(WEIR, &with_api(&sticky_pool(&addrs, ""))).await;
    let ids = sticky_ids(&weir).await;
    let mut client = weir.h1_client("web").await;
    let first = get(&mut client, None).await;
    let home = first.text();
    let home_addr = addr_of(&handles, &home);
    let id = set_id(&first, false);

    for (n, state) in [(1.0, "drain"), (2.0, "maint")] {
        set_state(&weir, home_addr, state).await;
        let moved = get(&mut client, Some(&pin(&id))).await;
        assert_ne!(moved.text(), home, "the cookie reached its {state} backend");
        let new_id = set_id(&moved, false);
        assert_eq!(new_id, ids[&addr_of(&handles, &moved.text())], "{state}");
        assert_eq!(tally(&weir).await[2], n, "rebalanced after {state}");

        set_state(&weir, home_addr, "ready").await;
        let back = get(&mut client, Some(&pin(&id))).await;
        assert_eq!(back.text(), home, "back after {state}");
        no_set_cookie(
            &back,
            &format!("the old cookie, its backend ready after {state}"),
        );
    }
    assert_eq!(tally(&weir).await, [2.0, 1.0, 2.0, 0.0], "{RESULTS:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_cookie_is_balanced_and_replaced_and_every_result_is_counted() {
    let (addrs, handles) = spawn_backends(["a", "b", "plain"]).await;
    // Pool `plain` (no sticky) for /plain/, pool `web` (sticky) for the rest.
    let yaml = format!(
        "{ADMIN}listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - {{ pool: plain, match: {{ path_prefix: /plain/ }} }}\n      - pool: web\npools:\n  web:\n    strategy: round_robin\n    backends:\n{}{STICKY}  plain:\n    backends:\n{}",
        backends(&addrs[..2]),
        backends(&addrs[2..]),
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let ids = sticky_ids(&weir).await;
    let mut client = weir.h1_client("web").await;
    let first = get(&mut client, None).await;
    let id = set_id(&first, false);
    for _ in 0..3 {
        no_set_cookie(&get(&mut client, Some(&pin(&id))).await, "a valid cookie");
    }

    let last = id.as_bytes()[31];
    let flipped = format!("{}{}", &id[..31], if last == b'0' { '1' } else { '0' });
    for bad in [flipped, "not-a-backend-id".to_owned(), format!("{id}0")] {
        let resp = get(&mut client, Some(&pin(&bad))).await;
        let replaced = set_id(&resp, false);
        assert_eq!(
            replaced,
            ids[&addr_of(&handles, &resp.text())],
            "cookie {bad:?}: a valid cookie for the backend that answered"
        );
    }
    // Another cookie's name carrying a valid id is no sticky cookie at all.
    let resp = get(&mut client, Some(&format!("WEIR_BX={id}"))).await;
    set_id(&resp, false);
    assert_eq!(tally(&weir).await, [3.0, 2.0, 0.0, 3.0], "{RESULTS:?}");

    // A pool without `sticky` sets no cookie and has no series.
    let plain = get_req("/plain/x", Some(&pin(&id)));
    let resp = client.send(plain).await.expect("GET /plain/x");
    assert_eq!(resp.text(), "plain");
    no_set_cookie(&resp, "a pool without sticky");
    let scrape = weir.metrics().await;
    let series: Vec<_> = scrape
        .find("weir_sticky_total", &[("pool", "plain")])
        .collect();
    assert!(series.is_empty(), "{series:?}");
    assert_eq!(scrape.find("weir_sticky_total", &[]).count(), 4);
    assert!(
        status::pool(&weir.status().await, "plain")
            .get("sticky")
            .is_none(),
        "no sticky object for pool plain"
    );
}

// === TLS ===

async fn tls_connect(addr: SocketAddr, ca: &Ca, alpn: &[u8]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("a.test").expect("name");
    let stream = tokio::time::timeout(
        ANSWER_WAIT,
        TlsConnector::from(Arc::new(ca.client(&[alpn]))).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn), "ALPN");
    stream
}

async fn read_whole(resp: http::Response<Incoming>) -> Response {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(ANSWER_WAIT, body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    Response {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    }
}

/// `GET /` over TLS, HTTP/1.1 or (`h2`) HTTP/2 by ALPN, with `cookie`.
async fn tls_get(addr: SocketAddr, ca: &Ca, h2: bool, cookie: Option<&str>) -> Response {
    let resp = if h2 {
        let stream = tls_connect(addr, ca, b"h2").await;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let mut req = get_req("https://a.test/", cookie);
        *req.version_mut() = Version::HTTP_2;
        tokio::time::timeout(ANSWER_WAIT, sender.send_request(req)).await
    } else {
        let stream = tls_connect(addr, ca, b"http/1.1").await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let mut req = get_req("/", cookie);
        req.headers_mut()
            .insert(header::HOST, "a.test".parse().expect("host"));
        tokio::time::timeout(ANSWER_WAIT, sender.send_request(req)).await
    };
    let resp = read_whole(resp.expect("answer in time").expect("answer")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_adds_secure_over_http1_and_http2() {
    let (ca, dir) = (Ca::new(), Dir::new());
    dir.install(&ca.leaf(&["a.test"]));
    let (addrs, handles) = spawn_backends(["a", "b"]).await;
    let yaml = format!(
        "{ADMIN}listeners:\n  - name: tls\n    listen: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{ cert: {d}/site.pem, key: {d}/site.key }}\n    routes:\n      - pool: web\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n      - pool: web\npools:\n  web:\n    strategy: round_robin\n    backends:\n{}{STICKY}",
        backends(&addrs),
        d = dir.path().display()
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let ids = sticky_ids(&weir).await;
    let tls = weir.listener_addr("tls");

    for h2 in [false, true] {
        let resp = tls_get(tls, &ca, h2, None).await;
        let id = set_id(&resp, true);
        let home = resp.text();
        assert_eq!(id, ids[&addr_of(&handles, &home)], "h2: {h2}");
        let again = tls_get(tls, &ca, h2, Some(&pin(&id))).await;
        assert_eq!(again.text(), home, "h2: {h2}");
        no_set_cookie(&again, &format!("TLS (h2: {h2}) with the cookie"));
    }
    // The same pool behind a plain listener: no `Secure`.
    let mut plain = weir.h1_client("web").await;
    set_id(&get(&mut plain, None).await, false);
}

// === keys ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_secret_file_agree_and_process_keys_differ() {
    let (addrs, handles) = spawn_backends(["a", "b"]).await;
    let secret = private_file("secret", SECRET, 0o600);
    let with_secret = |file: &str| sticky_pool(&addrs, &format!("      secret_file: {file}\n"));
    let one = Weir::start(WEIR, &with_secret(&secret.display().to_string())).await;
    // The other names it relative to its config's directory.
    let other = Weir::start_with_env(WEIR, &with_secret("key.txt"), |dir| {
        let key = dir.join("key.txt");
        std::fs::write(&key, SECRET).expect("write key.txt");
        chmod(&key, 0o600);
        Vec::new()
    })
    .await;
    for weir in [&one, &other] {
        let doc = weir.status().await;
        assert_eq!(
            status::pool(&doc, "web")["sticky"]["key"],
            "secret_file",
            "{doc}"
        );
    }
    let shared = sticky_ids(&one).await;
    assert_eq!(
        shared,
        sticky_ids(&other).await,
        "one key, one id per backend"
    );

    // A cookie set by one is a hit at the other.
    let first = get(&mut one.h1_client("web").await, None).await;
    let id = set_id(&first, false);
    let resp = get(&mut other.h1_client("web").await, Some(&pin(&id))).await;
    assert_eq!(resp.text(), first.text());
    no_set_cookie(&resp, "the other balancer's cookie");
    assert_eq!(tally(&other).await, [1.0, 0.0, 0.0, 0.0], "{RESULTS:?}");

    // Without a secret file each process has its own key, as a restart would.
    let plain = sticky_pool(&addrs, "");
    let (before, after) = (
        Weir::start(WEIR, &plain).await,
        Weir::start(WEIR, &plain).await,
    );
    let (ids_before, ids_after) = (sticky_ids(&before).await, sticky_ids(&after).await);
    for addr in addrs {
        assert_ne!(ids_before[&addr], ids_after[&addr], "{addr}");
        assert_ne!(ids_before[&addr], shared[&addr], "{addr}");
    }
    let doc = before.status().await;
    assert_eq!(status::pool(&doc, "web")["sticky"]["key"], "process");
    // The old process's cookie is invalid at the new one: balanced and replaced.
    let stale = &ids_before[&addrs[0]];
    let resp = get(&mut after.h1_client("web").await, Some(&pin(stale))).await;
    assert_eq!(
        set_id(&resp, false),
        ids_after[&addr_of(&handles, &resp.text())]
    );
    assert_eq!(tally(&after).await, [0.0, 0.0, 0.0, 1.0], "{RESULTS:?}");
}

// === queue ===

const QUEUED: &str = "    max_in_flight: 1\n    queue: { max: 10, timeout: 5s }\n";

/// Fills backend `held` (limit 1) with a request it holds, then sends a second request
/// pinned to it by `id` and waits until that one is queued: (the held one, the queued).
async fn fill_then_queue(
    weir: &Weir,
    held: &BackendHandle,
    id: &str,
) -> (JoinHandle<Response>, JoinHandle<Response>) {
    let web = weir.listener_addr("web");
    let holding = spawn_get(web, "/hold", Some(pin(id)));
    held.wait_in_progress(1, "the first request held at its backend")
        .await;
    let waiting = spawn_get(web, "/", Some(pin(id)));
    wait_depth(weir, 1.0).await;
    (holding, waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_backend_is_full_waits_for_it_rather_than_moving() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let weir = Weir::start(WEIR, &sticky_pool(&[a, b], QUEUED)).await;
    let ids = sticky_ids(&weir).await;
    let web = weir.listener_addr("web");

    let (holding, waiting) = fill_then_queue(&weir, &ha, &ids[&a]).await;

    // b is free: a request without a cookie passes the pinned waiter and gets b.
    let free = answered(spawn_get(web, "/", None)).await;
    assert_eq!(free.text(), "b");
    assert_eq!(set_id(&free, false), ids[&b]);
    assert_eq!(
        weir.metric("weir_pool_queue_depth", &[("pool", "web")])
            .await,
        1.0,
        "a's request still waits for a"
    );
    assert_eq!((ha.hits(), hb.hits()), (1, 1));

    ha.release(1);
    let first = answered(holding).await;
    assert_eq!((first.status.as_u16(), first.text()), (200, "a".to_owned()));
    let second = answered(waiting).await;
    assert_eq!(
        (second.status.as_u16(), second.text()),
        (200, "a".to_owned()),
        "the waiting request is served by its own backend"
    );
    no_set_cookie(&second, "the request that waited for a");
    assert_eq!((ha.hits(), hb.hits()), (2, 1));
    assert_eq!(ha.peak_in_progress(), 1, "never over max_in_flight");
    wait_depth(&weir, 0.0).await;
    assert_eq!(tally(&weir).await, [2.0, 1.0, 0.0, 0.0], "{RESULTS:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_its_backend_moves_once_that_backend_is_drained() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let weir = Weir::start(WEIR, &with_api(&sticky_pool(&[a, b], QUEUED))).await;
    let ids = sticky_ids(&weir).await;

    let (holding, waiting) = fill_then_queue(&weir, &ha, &ids[&a]).await;

    set_state(&weir, a, "drain").await;
    let moved = answered(waiting).await;
    assert_eq!(
        (moved.status.as_u16(), moved.text()),
        (200, "b".to_owned()),
        "the waiter goes to b once a is drained, before a's slot frees"
    );
    assert_eq!(set_id(&moved, false), ids[&b]);
    assert_eq!(ha.hits(), 1);
    assert_eq!(hb.hits(), 1);

    ha.release(1);
    assert_eq!(
        answered(holding).await.text(),
        "a",
        "in flight, it finishes"
    );
    assert_eq!(tally(&weir).await, [1.0, 0.0, 1.0, 0.0], "{RESULTS:?}");
}

// === HTTP/2 upstream ===

/// An h2c backend answering every request with `name`.
async fn h2_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(name))))
                });
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    eprintln!("h2 backend {name}: {e}");
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_an_http2_upstream_sticks_too() {
    let (x, y) = (h2_backend("x").await, h2_backend("y").await);
    let extra = "    upstream_protocol: h2\n";
    let weir = Weir::start(WEIR, &sticky_pool(&[x, y], extra)).await;
    let ids = sticky_ids(&weir).await;
    let mut h1 = weir.h1_client("web").await;
    let first = get(&mut h1, None).await;
    let home = first.text();
    let home_addr = if home == "x" { x } else { y };
    assert_eq!(set_id(&first, false), ids[&home_addr]);
    for i in 0..10 {
        let resp = get(&mut h1, Some(&pin(&ids[&home_addr]))).await;
        assert_eq!(resp.text(), home, "request #{i}");
        no_set_cookie(&resp, "h2 upstream, cookie carried");
    }
    let mut h2 = H2Client::connect(weir.listener_addr("web"))
        .await
        .expect("h2c handshake with weir");
    let resp = h2_get(&mut h2, &[&pin(&ids[&home_addr])]).await;
    assert_eq!(resp.text(), home);
    no_set_cookie(&resp, "h2 client, h2 upstream");
    // Both backends are reached without the cookie.
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        let resp = get(&mut h1, None).await;
        set_id(&resp, false);
        seen.push(resp.text());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["x", "y"]);
}

// === weir check ===

#[tokio::test]
async fn weir_check_reports_bad_sticky_blocks_with_line_column_and_path() {
    let open = private_file("open", SECRET, 0o644);
    let short = private_file("short", "too-short\n", 0o600);
    let yaml = format!(
        "\
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes: [{{ pool: web }}]
  - name: raw
    listen: 127.0.0.1:0
    protocol: tcp
    pool: db
pools:
  web:
    sticky: {{ ttl: 1h }}
    backends: [{{ address: 127.0.0.1:9 }}]
  named:
    sticky: {{ cookie: \"my cookie\" }}
    backends: [{{ address: 127.0.0.1:10 }}]
  open:
    sticky: {{ cookie: WEIR_B, secret_file: {open} }}
    backends: [{{ address: 127.0.0.1:11 }}]
  short:
    sticky: {{ cookie: WEIR_B, secret_file: {short} }}
    backends: [{{ address: 127.0.0.1:12 }}]
  db:
    sticky: {{ cookie: WEIR_B }}
    backends: [{{ address: 127.0.0.1:13 }}]
",
        open = open.display(),
        short = short.display(),
    );
    let (open, short) = (open.display(), short.display());
    weir_e2e::assert_check_errors(
        WEIR,
        &yaml,
        &[
            "weir.yaml:11:5: pools.web.sticky: missing field `cookie` (the cookie's name, e.g. cookie: WEIR_B)",
            "weir.yaml:14:15: pools.named.sticky.cookie: invalid cookie name \"my cookie\" in sticky (e.g. WEIR_B; a name is letters, digits and !#$%&'*+-.^_`|~)",
            &format!("weir.yaml:17:31: pools.open.sticky.secret_file: the secret file {open} is readable by group or others (mode 0644); make it readable by its owner only: chmod 600 {open}"),
            &format!("weir.yaml:20:31: pools.short.sticky.secret_file: the secret in {short} is 9 characters; use at least 16 (openssl rand -hex 32)"),
            "weir.yaml:23:5: pools.db.sticky: sticky cookies need HTTP responses; tcp listener \"raw\" relays raw bytes to this pool (use strategy: consistent_hash with hash_on: source_ip)",
            "weir.yaml: 5 errors",
        ],
    )
    .await;
}

/// A valid sticky block passes `weir check`, so the errors above are the blocks' own.
#[tokio::test]
async fn weir_check_accepts_a_valid_sticky_block() {
    let secret = private_file("valid", SECRET, 0o600);
    let yaml = format!(
        "{}      secret_file: {}\n",
        sticky_pool(&["127.0.0.1:9".parse().expect("addr")], ""),
        secret.display()
    );
    let out = weir_e2e::check_config(WEIR, &yaml).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}
