//! Metrics as a scraper sees them: every test encodes to text and parses it back with
//! the end-to-end tests' Prometheus reader (`weir_e2e::Scrape`), against the same table
//! of families (`weir_e2e::metrics::FAMILIES`).

use std::time::Duration;

use weir_e2e::metrics::FAMILIES as DESIGN;
use weir_e2e::Scrape as Exposition;

use super::*;

pub(super) const B1: &str = "10.0.0.11:80";
pub(super) const B2: &str = "10.0.0.12:80";

pub(super) fn scrape(m: &Metrics) -> Exposition {
    Exposition::parse(&m.encode().expect("encode"))
}

/// Handles for one listener → pool route with one backend, each used once.
pub(super) struct World {
    pub(super) listener: ListenerMetrics,
    pub(super) route: RouteMetrics,
    pub(super) pool: PoolMetrics,
    pub(super) backend: BackendMetrics,
}

pub(super) fn world(m: &Metrics) -> World {
    let listener = ListenerMetrics::new(m, "web");
    let pool = PoolMetrics::new(m, "api");
    let backend = BackendMetrics::new(m, "api", B1);
    let route = listener.route("api", [&backend]);
    World {
        listener,
        route,
        pool,
        backend,
    }
}

/// A fresh registry and its [`world`].
pub(super) fn fresh_world() -> (Metrics, World) {
    let m = Metrics::new().expect("metrics");
    let w = world(&m);
    (m, w)
}

/// [`fresh_world`] whose route has counted one 200 from `B1`.
pub(super) fn world_with_a_200() -> (Metrics, World) {
    let (m, w) = fresh_world();
    w.route.count(&w.backend, 200);
    (m, w)
}

/// `w` with its route rebuilt to know `b2` as well, as the next table would be.
pub(super) fn with_both(w: World, b2: &BackendMetrics) -> World {
    World {
        route: w.listener.route("api", [&w.backend, b2]),
        ..w
    }
}

/// [`world`] with a second backend `B2` in pool `api`, known to the route.
pub(super) fn world_of_two(m: &Metrics) -> (World, BackendMetrics) {
    let w = world(m);
    let b2 = BackendMetrics::new(m, "api", B2);
    (with_both(w, &b2), b2)
}

#[test]
fn every_design_metric_is_exposed_with_exactly_its_labels() {
    let (m, w) = world_with_a_200();
    m.config().loaded("abc123");
    let discovery = DiscoveryMetrics::new(&m, "api");
    discovery.lookup(LookupResult::Empty);
    let exp = scrape(&m);
    for (name, kind, labels) in DESIGN {
        assert_eq!(
            exp.types.get(*name).map(String::as_str),
            Some(*kind),
            "{name}"
        );
        let series = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            (*name).to_owned()
        };
        let sample = exp
            .samples
            .iter()
            .find(|s| s.name == series)
            .unwrap_or_else(|| panic!("{series} missing"));
        let got: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        let mut want = labels.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{name} labels");
    }
    let buckets = exp
        .find("weir_http_request_duration_seconds_bucket", &[])
        .count();
    assert_eq!(buckets, LATENCY_BUCKETS.len() + 1, "buckets plus +Inf");
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    exp.assert_value("weir_build_info", &version, 1.0);
    exp.assert_value("weir_config_info", &[("hash", "abc123")], 1.0);
    if cfg!(target_os = "linux") {
        assert!(exp.types.contains_key("process_resident_memory_bytes"));
    }
    drop(w);
}

#[test]
fn counters_and_histograms_equal_what_was_recorded() {
    let m = Metrics::new().expect("metrics");
    let (w, b2) = world_of_two(&m);
    for _ in 0..3 {
        w.route.count(&w.backend, 200);
        w.route.observe_request(Duration::from_micros(80));
    }
    w.route.count(&b2, 200);
    w.route.count(&b2, 418);
    w.route.count(&b2, 418);
    w.route.count_without_backend(503);
    w.route.observe_request(Duration::from_secs(2));
    w.backend.observe_response(Duration::from_micros(40));
    w.backend.health_check(true);
    w.backend.health_check(false);
    w.backend.health_check(false);
    w.backend.upstream_error(UpstreamErrorKind::Connect);
    w.backend.upstream_error(UpstreamErrorKind::Reset);
    w.backend.in_flight_inc();
    w.pool.retry();
    w.listener.add_rx_bytes(100);
    w.listener.add_tx_bytes(7);
    let conn = w.listener.connection_opened();
    let _second = w.listener.connection_opened();
    drop(conn);

    let exp = scrape(&m);
    let req = |backend: &str, code: &str| {
        let labels = [
            ("listener", "web"),
            ("pool", "api"),
            ("backend", backend),
            ("code", code),
        ];
        exp.value("weir_http_requests_total", &labels)
    };
    assert_eq!(req(B1, "200"), Some(3.0));
    assert_eq!(req(B2, "200"), Some(1.0));
    assert_eq!(req(B2, "418"), Some(2.0));
    assert_eq!(req(NO_BACKEND, "503"), Some(1.0));
    assert_eq!(req(B1, "503"), None, "codes never seen have no series");
    let route = [("listener", "web"), ("pool", "api")];
    exp.assert_value("weir_http_request_duration_seconds_count", &route, 4.0);
    let fast = [("listener", "web"), ("pool", "api"), ("le", "0.0001")];
    exp.assert_value("weir_http_request_duration_seconds_bucket", &fast, 3.0);
    let be = [("pool", "api"), ("backend", B1)];
    exp.assert_value("weir_backend_response_duration_seconds_count", &be, 1.0);
    let with = |k: &'static str, v: &'static str| [("pool", "api"), ("backend", B1), (k, v)];
    exp.assert_value("weir_health_checks_total", &with("result", "success"), 1.0);
    exp.assert_value("weir_health_checks_total", &with("result", "failure"), 2.0);
    exp.assert_value("weir_upstream_errors_total", &with("kind", "connect"), 1.0);
    exp.assert_value("weir_upstream_errors_total", &with("kind", "timeout"), 0.0);
    exp.assert_value("weir_upstream_errors_total", &with("kind", "reset"), 1.0);
    exp.assert_value("weir_backend_in_flight", &be, 1.0);
    exp.assert_value("weir_retries_total", &[("pool", "api")], 1.0);
    let web = [("listener", "web")];
    exp.assert_value("weir_listener_connections_total", &web, 2.0);
    exp.assert_value("weir_listener_connections_active", &web, 1.0);
    let dir = |d: &'static str| [("listener", "web"), ("direction", d)];
    exp.assert_value("weir_tcp_bytes_total", &dir("rx"), 100.0);
    exp.assert_value("weir_tcp_bytes_total", &dir("tx"), 7.0);
}

#[test]
fn concurrent_first_requests_on_a_new_route_are_all_counted() {
    let (m, w) = fresh_world();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..1000u16 {
                    w.route
                        .count(&w.backend, if i % 2 == 0 { 200 } else { 599 });
                }
            });
        }
    });
    let exp = scrape(&m);
    let req = |code| [("pool", "api"), ("backend", B1), ("code", code)];
    exp.assert_value("weir_http_requests_total", &req("200"), 2000.0);
    exp.assert_value("weir_http_requests_total", &req("599"), 2000.0);
}

#[test]
fn discovery_series_count_lookups_by_result_while_the_task_holds_them() {
    let m = Metrics::new().expect("metrics");
    let backends = |exp: &Exposition| exp.value("weir_discovery_backends", &[("pool", "web")]);
    assert_eq!(
        backends(&scrape(&m)),
        None,
        "no series without a discovery task"
    );
    let d = DiscoveryMetrics::new(&m, "web");
    d.lookup(LookupResult::Success);
    d.lookup(LookupResult::Success);
    d.lookup(LookupResult::Failure);
    d.set_backends(3);
    // A restarted task (its block changed) asks again and keeps counting.
    let again = DiscoveryMetrics::new(&m, "web");
    again.lookup(LookupResult::Empty);
    let exp = scrape(&m);
    let lookups = |result| {
        exp.value(
            "weir_discovery_lookups_total",
            &[("pool", "web"), ("result", result)],
        )
    };
    assert_eq!(lookups("success"), Some(2.0));
    assert_eq!(lookups("empty"), Some(1.0));
    assert_eq!(lookups("failure"), Some(1.0));
    assert_eq!(backends(&exp), Some(3.0));
    drop((d, again));
    assert_eq!(backends(&scrape(&m)), None, "the series go with the task");
}

#[test]
fn sticky_picks_are_counted_by_result_only_for_sticky_pools() {
    let (m, w) = fresh_world();
    assert_eq!(scrape(&m).find("weir_sticky_total", &[]).count(), 0);
    w.pool.set_sticky(true);
    for (result, n) in [
        (StickyResult::Hit, 3),
        (StickyResult::New, 2),
        (StickyResult::Invalid, 1),
    ] {
        for _ in 0..n {
            w.pool.sticky(result);
        }
    }
    let exp = scrape(&m);
    for (result, want) in [
        ("hit", 3.0),
        ("new", 2.0),
        ("rebalanced", 0.0),
        ("invalid", 1.0),
    ] {
        exp.assert_value(
            "weir_sticky_total",
            &[("pool", "api"), ("result", result)],
            want,
        );
    }
    assert_eq!(
        exp.types.get("weir_sticky_total").map(String::as_str),
        Some("counter")
    );
    // A reload that drops `sticky` drops the series; the counts are kept for a return.
    w.pool.set_sticky(false);
    assert_eq!(scrape(&m).find("weir_sticky_total", &[]).count(), 0);
    drop(w);
}
