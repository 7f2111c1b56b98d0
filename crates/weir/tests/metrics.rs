//! `/metrics` as Prometheus scrapes it (DESIGN.md §5, issue 4): every family with its
//! labels and type, counters equal to the traffic sent, histogram counts equal to request
//! counts, a killed backend's state and growing downtime, reload outcomes, and removed
//! backends' series gone after a reload.

use std::time::Duration;

use weir_e2e::config::{backend, backends, one_pool, web_and_tcp, FAST_HEALTH_CHECK};
use weir_e2e::metrics::{DISCOVERY_FAMILIES, FAMILIES};
use weir_e2e::{
    closed_port, eventually, spawn_backend, spawn_backends, spawn_tcp_sink, H1Client, Scrape, Weir,
};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const LOG_WAIT: Duration = Duration::from_secs(10);

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {:#?}", scrape.samples))
}

/// The reload series of `scrape`: successes, failures, and whether the last one succeeded.
fn assert_reloads(scrape: &Scrape, success: f64, failure: f64, last_successful: f64) {
    for (result, want) in [("success", success), ("failure", failure)] {
        assert_eq!(
            value(scrape, "weir_config_reloads_total", &[("result", result)]),
            want,
            "reloads with result {result}"
        );
    }
    assert_eq!(
        value(scrape, "weir_config_last_reload_successful", &[]),
        last_successful
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_list_every_family_and_count_exactly_the_traffic_sent() {
    let ([a, b, c], [_ha, _hb, _hc]) = spawn_backends(["a", "b", "c"]).await;
    let (db, sink) = spawn_tcp_sink().await;
    let weir = Weir::start(WEIR, &web_and_tcp(&[a, b, c], db)).await;
    let web = weir.listener_addr("web");

    // 30 requests on one keep-alive connection: round robin gives 10 each.
    let mut client = H1Client::connect(web).await.expect("connect to web");
    for _ in 0..30 {
        let resp = client.get("/").await.expect("request through weir");
        assert_eq!(resp.status, 200);
    }
    // 1000 bytes through the TCP listener.
    let mut raw = weir.connect("raw").await;
    tokio::io::AsyncWriteExt::write_all(&mut raw, &[7u8; 1000])
        .await
        .expect("write to raw");
    sink.wait_bytes(1000, "the sink receiving 1000 bytes").await;
    // Every probe series exists once each backend has been probed.
    let scrape = eventually("a health check per backend", || async {
        let s = weir.metrics().await;
        [a, b, c]
            .iter()
            .all(|x| {
                let x = x.to_string();
                s.sum(
                    "weir_health_checks_total",
                    &[("backend", &x), ("result", "success")],
                ) > 0.0
            })
            .then_some(s)
    })
    .await;

    // This config has no `discovery`: those families are checked by tests/discovery_dns.rs.
    let families = FAMILIES
        .iter()
        .filter(|(family, _, _)| !DISCOVERY_FAMILIES.contains(family));
    for (family, kind, labels) in families {
        assert_eq!(
            scrape.types.get(*family).map(String::as_str),
            Some(*kind),
            "type of {family}"
        );
        let series: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.name == *family || (*kind == "histogram" && s.name == format!("{family}_count"))
            })
            .collect();
        assert!(!series.is_empty(), "{family} has no series");
        for s in series {
            let names: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            let mut want: Vec<&str> = labels.to_vec();
            want.sort_unstable();
            assert_eq!(names, want, "labels of {s:?}");
        }
    }
    assert!(
        scrape.has_family("process_cpu_seconds_total")
            && scrape.has_family("process_resident_memory_bytes"),
        "the process collector is registered"
    );

    let route = [("listener", "web"), ("pool", "web")];
    assert_eq!(scrape.sum("weir_http_requests_total", &route), 30.0);
    for x in [a, b, c] {
        let x = x.to_string();
        let per_backend = [
            ("listener", "web"),
            ("pool", "web"),
            ("backend", x.as_str()),
            ("code", "200"),
        ];
        scrape.assert_value("weir_http_requests_total", &per_backend, 10.0);
        let pb = [("pool", "web"), ("backend", x.as_str())];
        scrape.assert_value("weir_backend_response_duration_seconds_count", &pb, 10.0);
        scrape.assert_value("weir_backend_up", &pb, 1.0);
        scrape.assert_value("weir_backend_in_flight", &pb, 0.0);
        scrape.assert_value("weir_backend_downtime_seconds_total", &pb, 0.0);
    }
    scrape.assert_value("weir_http_request_duration_seconds_count", &route, 30.0);
    let inf = [("listener", "web"), ("pool", "web"), ("le", "+Inf")];
    scrape.assert_value("weir_http_request_duration_seconds_bucket", &inf, 30.0);
    assert!(
        scrape
            .find("weir_http_request_duration_seconds_bucket", &route)
            .any(|s| s.label("le") == Some("0.0001")),
        "buckets go below a millisecond"
    );
    scrape.assert_value("weir_pool_backends_up", &[("pool", "web")], 3.0);
    scrape.assert_value("weir_retries_total", &[("pool", "web")], 0.0);
    assert_eq!(
        scrape.sum("weir_upstream_errors_total", &[("pool", "web")]),
        0.0
    );
    let listener = [("listener", "web")];
    scrape.assert_value("weir_listener_connections_total", &listener, 1.0);
    scrape.assert_value("weir_listener_connections_active", &listener, 1.0);
    let rx = [("listener", "raw"), ("direction", "rx")];
    scrape.assert_value("weir_tcp_bytes_total", &rx, 1000.0);
    let db = db.to_string();
    assert_eq!(
        value(
            &scrape,
            "weir_backend_in_flight",
            &[("pool", "db"), ("backend", db.as_str())]
        ),
        1.0,
        "an open TCP connection is in flight"
    );
    assert_reloads(&scrape, 0.0, 0.0, 1.0);
    assert!(
        value(
            &scrape,
            "weir_config_last_reload_success_timestamp_seconds",
            &[]
        ) > 1.6e9
    );
    let info: Vec<_> = scrape.find("weir_config_info", &[]).collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].value, 1.0);
    let status = weir.status().await;
    assert_eq!(
        status["config_hash"].as_str(),
        info[0].label("hash"),
        "/status and /metrics name the same configuration"
    );

    drop(client);
    drop(raw);
    eventually("connections closing", || async {
        let s = weir.metrics().await;
        (s.value("weir_listener_connections_active", &listener) == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_upstream_errors_match_the_dead_backend_s_failures() {
    let held = closed_port();
    let dead = held.addr();
    let (live, _h) = spawn_backend("live").await;
    let weir = Weir::start(WEIR, &one_pool("round_robin", &backends(&[dead, live]), "")).await;
    let mut client = weir.h1_client("web").await;
    for _ in 0..10 {
        let resp = client.get("/").await.expect("request");
        assert_eq!(
            (resp.status.as_u16(), resp.text()),
            (200, "live".to_owned())
        );
    }
    let scrape = weir.metrics().await;
    let (dead, live) = (dead.to_string(), live.to_string());
    let retries = value(&scrape, "weir_retries_total", &[("pool", "web")]);
    assert!(retries >= 1.0, "the dead backend was tried at least once");
    let errors = [
        ("pool", "web"),
        ("backend", dead.as_str()),
        ("kind", "connect"),
    ];
    assert_eq!(
        value(&scrape, "weir_upstream_errors_total", &errors),
        retries
    );
    let route = [("listener", "web"), ("pool", "web")];
    assert_eq!(scrape.sum("weir_http_requests_total", &route), 10.0);
    let on_live = [
        ("listener", "web"),
        ("backend", live.as_str()),
        ("code", "200"),
    ];
    scrape.assert_value("weir_http_requests_total", &on_live, 10.0);
    assert_eq!(
        scrape
            .find("weir_http_requests_total", &[("backend", dead.as_str())])
            .count(),
        0,
        "the dead backend answered nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_reads_down_with_growing_downtime() {
    let ([a, b], [_ha, hb]) = spawn_backends(["a", "b"]).await;
    let weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[a, b]), FAST_HEALTH_CHECK),
    )
    .await;
    let mark = weir.log_mark();
    hb.kill().await;
    weir.wait_for_backend_log(mark, "backend down", b, LOG_WAIT)
        .await;

    let b = b.to_string();
    let pb = [("pool", "web"), ("backend", b.as_str())];
    let first = weir.metrics().await;
    first.assert_value("weir_backend_up", &pb, 0.0);
    first.assert_value("weir_pool_backends_up", &[("pool", "web")], 1.0);
    let to_down = [("pool", "web"), ("backend", b.as_str()), ("to", "down")];
    first.assert_value("weir_backend_transitions_total", &to_down, 1.0);
    let failures = [
        ("pool", "web"),
        ("backend", b.as_str()),
        ("result", "failure"),
    ];
    assert!(value(&first, "weir_health_checks_total", &failures) >= 1.0);
    let down_for = value(&first, "weir_backend_downtime_seconds_total", &pb);
    let later = eventually("downtime growing between scrapes", || async {
        let s = weir.metrics().await;
        let d = s.value("weir_backend_downtime_seconds_total", &pb)?;
        (d > down_for + 0.05).then_some(d)
    })
    .await;
    assert!(later > down_for, "{later} > {down_for}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_and_removed_backends_lose_their_series() {
    let ([a, b], [_ha, _hb]) = spawn_backends(["a", "b"]).await;
    let mut weir = Weir::start(
        WEIR,
        &one_pool("round_robin", &backends(&[a, b]), FAST_HEALTH_CHECK),
    )
    .await;
    let web = weir.listener_addr("web");
    let mut client = H1Client::connect(web).await.expect("connect");
    for _ in 0..4 {
        assert_eq!(client.get("/").await.expect("request").status, 200);
    }
    let before = weir.metrics().await;
    let hash = |s: &Scrape| -> String {
        let info: Vec<_> = s.find("weir_config_info", &[]).collect();
        assert_eq!(info.len(), 1, "exactly one config_info series: {info:?}");
        info[0].label("hash").expect("hash label").to_owned()
    };
    let first_hash = hash(&before);

    // An invalid file is rejected, counted, and the old configuration keeps its hash.
    let mark = weir.log_mark();
    weir.rewrite_config("listeners: [ this is not valid");
    weir.sighup().await;
    weir.wait_for_log_after(mark, "config reload rejected", LOG_WAIT)
        .await;
    let failed = weir.metrics().await;
    assert_reloads(&failed, 0.0, 1.0, 0.0);
    assert_eq!(hash(&failed), first_hash);

    // A valid file without b: applied, counted, and every series naming b goes.
    weir.reload(
        &one_pool("round_robin", &backend(a), FAST_HEALTH_CHECK),
        LOG_WAIT,
    )
    .await;
    assert_eq!(client.get("/").await.expect("request").text(), "a");
    let b = b.to_string();
    let after = eventually("b's series removed", || async {
        let s = weir.metrics().await;
        (s.with_label("backend", &b).count() == 0).then_some(s)
    })
    .await;
    assert_reloads(&after, 1.0, 1.0, 1.0);
    let second_hash = hash(&after);
    assert_ne!(second_hash, first_hash);
    let status = weir.status().await;
    assert_eq!(status["config_hash"], second_hash.as_str(), "{status}");
    assert_eq!(status["generation"], 2, "{status}");
    // The kept backend keeps counting from where it was.
    let a = a.to_string();
    let on_a = [
        ("listener", "web"),
        ("backend", a.as_str()),
        ("code", "200"),
    ];
    after.assert_value("weir_http_requests_total", &on_a, 3.0);
    after.assert_value("weir_pool_backends_up", &[("pool", "web")], 1.0);
}
