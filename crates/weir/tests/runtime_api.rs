//! The runtime API against a real weir (DESIGN.md §7): every status code, a drain under
//! steady load with zero failed requests, maintenance stopping the probes, a weight
//! change reaching the distribution, runtime state across SIGHUP, and the token file's
//! permission check at start, on reload and in `weir check`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use weir_e2e::client::{self, H1Client};
use weir_e2e::config::{backend, backend_with, health_check, one_pool};
use weir_e2e::{check_config, eventually, spawn_backends, status, until, Load, Weir};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(5);
const TOKEN: &str = "t0ken-for-tests";

/// A token file of its own per test, `mode`, holding `TOKEN` and a newline.
fn token_file(mode: u32) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtime-api");
    std::fs::create_dir_all(&dir).expect("token dir");
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let path = dir.join(format!("token-{}-{n}", std::process::id()));
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write token");
    chmod(&path, mode);
    path
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `yaml` (from [`one_pool`]) with `admin.api` reading `token`.
fn with_api(yaml: &str, token: &Path) -> String {
    yaml.replacen(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  api: {{ token_file: {} }}\n",
            token.display()
        ),
        1,
    )
}

/// `POST path` to the admin server with `body`, and `Authorization: Bearer token`
/// unless `None`: the status and the body as text.
async fn post(weir: &Weir, path: &str, token: Option<&str>, body: &str) -> (StatusCode, String) {
    send(weir.admin_addr(), Method::POST, path, token, body).await
}

async fn send(
    admin: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request");
    let resp = client::request(admin, req)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (resp.status, resp.text())
}

/// `POST /pools/web/backends/{addr}` with the right token; panics unless 200. The
/// backend's status object.
async fn change(weir: &Weir, addr: SocketAddr, body: &str) -> Value {
    let (code, text) = post(weir, &api_path(addr), Some(TOKEN), body).await;
    assert_eq!(code, StatusCode::OK, "{body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn api_path(addr: SocketAddr) -> String {
    format!("/pools/web/backends/{addr}")
}

#[tokio::test]
async fn every_status_code_of_the_api() {
    let ([a], [_ha]) = spawn_backends(["a"]).await;
    let token = token_file(0o600);
    let yaml = with_api(&one_pool("round_robin", &backend(a), ""), &token);
    let mut weir = Weir::start(WEIR, &yaml).await;
    let path = api_path(a);

    for (token, why) in [(None, "no token"), (Some("wrong"), "wrong token")] {
        let (code, _) = post(&weir, &path, token, r#"{"state":"drain"}"#).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{why}");
    }
    let (code, _) = send(weir.admin_addr(), Method::GET, &path, Some(TOKEN), "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    for (missing, says) in [
        (format!("/pools/nope/backends/{a}"), "no pool \"nope\""),
        (
            "/pools/web/backends/127.0.0.1:1".to_owned(),
            "no backend \"127.0.0.1:1\" in pool \"web\"",
        ),
        ("/pools/web".to_owned(), "not found: POST"),
    ] {
        let (code, body) = post(&weir, &missing, Some(TOKEN), r#"{"state":"drain"}"#).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{missing}");
        assert!(body.starts_with(says), "{missing}: {body}");
    }
    let long = format!(r#"{{"state":"drain"{}}}"#, " ".repeat(4096));
    for bad in [
        "",
        "{}",
        r#"{"state":"off"}"#,
        r#"{"weight":0}"#,
        r#"{"weight":257}"#,
        r#"{"state":"drain","colour":"red"}"#,
        &long,
    ] {
        let (code, text) = post(&weir, &path, Some(TOKEN), bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:.40}: {text}");
    }
    let status = status::backend(&weir.status().await, "web", a).clone();
    assert_eq!(
        status["admin_state"], "ready",
        "refused writes change nothing"
    );

    // Percent-encoded names work too; the answer is the backend's /status object.
    let encoded = path.replace(':', "%3A");
    let (code, text) = post(
        &weir,
        &encoded,
        Some(TOKEN),
        r#"{"state":"drain","weight":4}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["address"], a.to_string());
    assert_eq!(answer["admin_state"], "drain");
    assert_eq!(
        (
            answer["weight"].as_u64(),
            answer["configured_weight"].as_u64()
        ),
        (Some(4), Some(1))
    );
    let line = weir.wait_for_log("admin change", LOG_WAIT).await;
    assert_eq!(line["pool"], "web", "{line}");
    assert_eq!(line["backend"], a.to_string(), "{line}");
    assert_eq!(line["old_state"], "ready", "{line}");
    assert_eq!(line["new_state"], "drain", "{line}");
    assert_eq!(line["old_weight"], 1, "{line}");
    assert_eq!(line["new_weight"], 4, "{line}");
    assert!(
        line["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line}"
    );
    let scrape = weir_e2e::Scrape::parse(&client::get(weir.admin_addr(), "/metrics").await.text());
    scrape.assert_value("weir_admin_changes_total", &[("result", "applied")], 1.0);
    scrape.assert_value(
        "weir_admin_changes_total",
        &[("result", "unauthorized")],
        2.0,
    );

    // A reload without `admin.api` turns writes off: 403.
    let off = one_pool("round_robin", &backend(a), "");
    weir.reload(&off, LOG_WAIT).await;
    let (code, _) = post(&weir, &path, Some(TOKEN), r#"{"state":"ready"}"#).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn drain_under_load_loses_nothing_and_maint_stops_the_probes() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let token = token_file(0o600);
    let pool = format!("{}{}", backend(a), backend(b));
    let yaml = with_api(
        &one_pool("round_robin", &pool, &health_check(50, 500, 1, 3)),
        &token,
    );
    let weir = Weir::start(WEIR, &yaml).await;
    let web = weir.listener_addr("web");

    // One slow request on each backend (round robin), held until released.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { client::get(web, "/hold").await }))
        .collect();
    ha.wait_in_progress(1, "a holds a request").await;
    hb.wait_in_progress(1, "b holds a request").await;

    let load = Load::start(web, 8);
    load.wait_for_more(200, "before the drain").await;
    let drained = change(&weir, a, r#"{"state":"drain"}"#).await;
    assert_eq!(drained["admin_state"], "drain");
    assert_eq!(drained["up"], true, "draining is not a health state");
    // Requests picked before the answer may still be on their way: let them land.
    load.wait_for_more(200, "after the drain").await;
    let (a_hits, a_probes) = (ha.hits(), ha.health_probes());
    load.wait_for_more(500, "while drained").await;
    assert_eq!(
        ha.hits(),
        a_hits,
        "no new request reaches a drained backend"
    );
    until("probes go on while drained", || {
        ha.health_probes() >= a_probes + 3
    })
    .await;
    assert_eq!(
        ha.in_progress(),
        1,
        "the slow request is still being served"
    );
    ha.release(1);
    hb.release(1);
    for h in held {
        let resp = h.await.expect("held request task");
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "the in-flight request finished"
        );
    }
    let report = load.stop().await;
    report.assert_no_failures("drain under load");

    // Maintenance: no probes at all (at most one already under way), while b's go on.
    change(&weir, a, r#"{"state":"maint"}"#).await;
    let (a_probes, b_probes) = (ha.health_probes(), hb.health_probes());
    until("b probed ten more times", || {
        hb.health_probes() >= b_probes + 10
    })
    .await;
    assert!(
        ha.health_probes() <= a_probes + 1,
        "a backend in maint is not probed"
    );

    // Ready again: probed and picked again.
    change(&weir, a, r#"{"state":"ready"}"#).await;
    until("a probed again", || ha.health_probes() > a_probes + 1).await;
    let mut c = H1Client::connect(web).await.expect("connect");
    let before = ha.hits();
    for _ in 0..4 {
        assert_eq!(c.get("/").await.expect("GET").status, StatusCode::OK);
    }
    assert_eq!(ha.hits(), before + 2, "round robin includes a again");
}

#[tokio::test]
async fn weight_change_takes_effect_in_the_distribution() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let token = token_file(0o600);
    let pool = format!("{}{}", backend(a), backend(b));
    let yaml = with_api(&one_pool("weighted", &pool, ""), &token);
    let weir = Weir::start(WEIR, &yaml).await;
    let mut c = H1Client::connect(weir.listener_addr("web"))
        .await
        .expect("connect");

    let answer = change(&weir, a, r#"{"weight":3}"#).await;
    assert_eq!(answer["weight"], 3);
    let (a0, b0) = (ha.hits(), hb.hits());
    for _ in 0..400 {
        assert_eq!(c.get("/").await.expect("GET").status, StatusCode::OK);
    }
    // Smooth weighted round robin is exact over whole cycles (3 + 1).
    assert_eq!((ha.hits() - a0, hb.hits() - b0), (300, 100));
}

#[tokio::test]
async fn runtime_state_survives_sighup_until_the_file_changes_the_weight() {
    let ([a, b], [ha, hb]) = spawn_backends(["a", "b"]).await;
    let token = token_file(0o600);
    let yaml = |b_weight: u32| {
        let pool = format!(
            "{}{}",
            backend(a),
            backend_with(b, &format!("weight: {b_weight}"))
        );
        with_api(&one_pool("weighted", &pool, ""), &token)
    };
    let mut weir = Weir::start(WEIR, &yaml(1)).await;
    change(&weir, a, r#"{"state":"drain"}"#).await;
    change(&weir, b, r#"{"weight":5}"#).await;

    weir.sighup_reloaded(LOG_WAIT).await;
    let doc = weir.status().await;
    assert_eq!(doc["generation"], 2);
    let (sa, sb) = (
        status::backend(&doc, "web", a),
        status::backend(&doc, "web", b),
    );
    assert_eq!(sa["admin_state"], "drain", "{sa}");
    assert_eq!(
        (sb["weight"].as_u64(), sb["configured_weight"].as_u64()),
        (Some(5), Some(1))
    );
    let before = ha.hits();
    let mut c = H1Client::connect(weir.listener_addr("web"))
        .await
        .expect("connect");
    for _ in 0..20 {
        assert_eq!(c.get("/").await.expect("GET").status, StatusCode::OK);
    }
    assert_eq!(ha.hits(), before, "still drained after the reload");
    assert!(hb.hits() >= 20);

    // The file now says something new about b's weight: the file wins.
    weir.reload(&yaml(2), LOG_WAIT).await;
    let doc = weir.status().await;
    let (sa, sb) = (
        status::backend(&doc, "web", a),
        status::backend(&doc, "web", b),
    );
    assert_eq!(
        (sb["weight"].as_u64(), sb["configured_weight"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(sa["admin_state"], "drain", "the mode is kept: {sa}");
    weir.wait_for_log(
        "configured weight changed: runtime weight override cleared",
        LOG_WAIT,
    )
    .await;
}

#[tokio::test]
async fn token_file_readable_by_others_refuses_start_reload_and_check() {
    let ([a], _handles) = spawn_backends(["a"]).await;
    let open = token_file(0o644);
    let yaml = with_api(&one_pool("round_robin", &backend(a), ""), &open);

    let checked = check_config(WEIR, &yaml).await;
    assert_eq!(checked.code, Some(1), "{checked:?}");
    assert!(
        checked
            .stderr
            .contains("admin.api.token_file: the token file"),
        "{}",
        checked.stderr
    );
    assert!(
        checked
            .stderr
            .contains("readable by group or others (mode 0644)"),
        "{}",
        checked.stderr
    );

    let mut refused = Weir::spawn_run(WEIR, &yaml, "info");
    let exit = refused.wait_exit(Duration::from_secs(15)).await;
    assert!(
        !exit.success(),
        "weir must not start with a world-readable token"
    );
    assert!(
        refused.log_tail(20).contains("readable by group or others"),
        "{}",
        refused.log_tail(20)
    );

    // Started with a private token; a reload that finds it opened up is rejected and
    // the old token keeps working.
    let private = token_file(0o600);
    let good = with_api(&one_pool("round_robin", &backend(a), ""), &private);
    let mut weir = Weir::start(WEIR, &good).await;
    chmod(&private, 0o640);
    let line = weir.reload_rejected(&good, LOG_WAIT).await;
    assert!(
        line.to_string().contains("readable by group or others"),
        "{line}"
    );
    change(&weir, a, r#"{"state":"drain"}"#).await;

    // Empty and missing files are refused too.
    chmod(&private, 0o600);
    std::fs::write(&private, "\n").expect("empty token");
    let line = weir.reload_rejected(&good, LOG_WAIT).await;
    assert!(line.to_string().contains("is empty"), "{line}");
    std::fs::remove_file(&private).expect("remove token");
    let line = weir.reload_rejected(&good, LOG_WAIT).await;
    assert!(
        line.to_string().contains("cannot read the token file"),
        "{line}"
    );
    let still = eventually("the old token still accepted", || {
        let weir = &weir;
        async move {
            let (code, _) = post(weir, &api_path(a), Some(TOKEN), r#"{"state":"ready"}"#).await;
            (code == StatusCode::OK).then_some(code)
        }
    })
    .await;
    assert_eq!(still, StatusCode::OK);
}

#[tokio::test]
async fn tcp_listener_respects_drain_open_streams_go_on() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ([web], _handles) = spawn_backends(["w"]).await;
    let db = weir_e2e::spawn_tcp_echo().await;
    let token = token_file(0o600);
    let yaml = with_api(&weir_e2e::config::web_and_tcp(&[web], db), &token);
    let weir = Weir::start(WEIR, &yaml).await;
    let raw = weir.listener_addr("raw");
    let echo = |mut s: tokio::net::TcpStream, what: &'static str| async move {
        s.write_all(what.as_bytes()).await.expect("write");
        let mut got = vec![0; what.len()];
        s.read_exact(&mut got).await.expect("echoed");
        assert_eq!(got, what.as_bytes());
        s
    };
    let open = echo(
        tokio::net::TcpStream::connect(raw).await.expect("connect"),
        "one",
    )
    .await;

    let (code, text) = post(
        &weir,
        &format!("/pools/db/backends/{db}"),
        Some(TOKEN),
        r#"{"state":"drain"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{text}");
    // A new connection finds no backend: weir closes it without relaying a byte.
    let mut fresh = tokio::net::TcpStream::connect(raw).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(LOG_WAIT, fresh.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "no backend for a new connection: {n:?}"
    );
    // The stream opened before the drain is still relayed.
    echo(open, "two").await;
}
