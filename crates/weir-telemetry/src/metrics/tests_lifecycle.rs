//! Handle lifetimes: state changes, downtime, scrape-time gauges, series removal, reloads.

use std::time::Duration;

use weir_e2e::Scrape as Exposition;

use super::tests::{fresh_world, scrape, world, world_of_two, world_with_a_200, World, B1, B2};
use super::*;

#[test]
fn set_up_counts_transitions_only_on_change() {
    let (m, w) = fresh_world();
    assert!(
        w.backend.is_up(),
        "a new backend starts up, like weir_balance::Backend"
    );
    assert!(!w.backend.set_up(true));
    assert!(w.backend.set_up(false));
    assert!(!w.backend.set_up(false));
    assert!(w.backend.set_up(true));
    assert!(w.backend.set_up(false));
    let exp = scrape(&m);
    let to = |state| [("pool", "api"), ("backend", B1), ("to", state)];
    exp.assert_value("weir_backend_transitions_total", &to("down"), 2.0);
    exp.assert_value("weir_backend_transitions_total", &to("up"), 1.0);
    let be = [("pool", "api"), ("backend", B1)];
    exp.assert_value("weir_backend_up", &be, 0.0);
}

#[tokio::test(start_paused = true)]
async fn downtime_grows_while_down_and_stops_when_up() {
    let (m, w) = fresh_world();
    let be = [("pool", "api"), ("backend", B1)];
    let downtime = |m: &Metrics| {
        scrape(m)
            .value("weir_backend_downtime_seconds_total", &be)
            .expect("downtime series")
    };
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(downtime(&m), 0.0, "up time is not downtime");
    w.backend.set_up(false);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(downtime(&m), 5.0, "a scrape sees an outage in progress");
    tokio::time::advance(Duration::from_secs(2)).await;
    w.backend.set_up(true);
    assert_eq!(w.backend.downtime_seconds(), 7.0);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(downtime(&m), 7.0);
}

#[test]
fn pool_backends_up_counts_the_pools_up_backends_at_scrape() {
    let (m, w) = fresh_world();
    let b2 = BackendMetrics::new(&m, "api", B2);
    let _other = BackendMetrics::new(&m, "other", B1);
    let _other_pool = PoolMetrics::new(&m, "other");
    let up = |m: &Metrics, pool| scrape(m).value("weir_pool_backends_up", &[("pool", pool)]);
    assert_eq!(up(&m, "api"), Some(2.0));
    b2.set_up(false);
    assert_eq!(up(&m, "api"), Some(1.0));
    w.backend.set_up(false);
    assert_eq!(up(&m, "api"), Some(0.0));
    assert_eq!(up(&m, "other"), Some(1.0));
}

#[test]
fn dropping_a_backend_removes_every_series_of_it_and_only_those() {
    let m = Metrics::new().expect("metrics");
    let (w, b2) = world_of_two(&m);
    w.route.count(&w.backend, 200);
    w.route.count(&b2, 200);
    w.route.count(&b2, 418);
    let clone = b2.clone();
    drop(b2);
    let still = |exp: &Exposition| {
        exp.samples
            .iter()
            .any(|s| s.labels.get("backend").map(String::as_str) == Some(B2))
    };
    assert!(still(&scrape(&m)), "a clone keeps the series");
    drop(clone);
    let exp = scrape(&m);
    assert!(!still(&exp), "no series names the removed backend");
    let b1 = [("pool", "api"), ("backend", B1)];
    exp.assert_value("weir_backend_up", &b1, 1.0);
    exp.assert_value("weir_http_requests_total", &[("backend", B1)], 1.0);
    drop(w);
}

#[test]
fn dropping_a_route_listener_or_pool_removes_their_series() {
    let (m, w) = world_with_a_200();
    w.route.count_without_backend(503);
    let World {
        listener,
        route,
        pool,
        backend,
    } = w;
    drop(route);
    let exp = scrape(&m);
    assert_eq!(exp.find("weir_http_requests_total", &[]).count(), 0);
    assert_eq!(
        exp.find("weir_http_request_duration_seconds_count", &[])
            .count(),
        0
    );
    assert!(exp
        .value("weir_listener_connections_total", &[("listener", "web")])
        .is_some());
    drop((listener, pool));
    let exp = scrape(&m);
    for family in [
        "weir_listener_connections_total",
        "weir_tcp_bytes_total",
        "weir_http_protocol_errors_total",
        "weir_retries_total",
        "weir_pool_backends_up",
    ] {
        assert_eq!(exp.find(family, &[]).count(), 0, "{family}");
    }
    exp.assert_value("weir_backend_up", &[("backend", B1)], 1.0);
    drop(backend);
}

#[test]
fn a_route_removed_and_added_again_counts_from_zero_through_the_same_backend() {
    let (m, w) = world_with_a_200();
    let listener = w.listener.clone();
    drop(w.route);
    let route = listener.route("api", [&w.backend]);
    route.count(&w.backend, 200);
    route.count(&w.backend, 200);
    let exp = scrape(&m);
    exp.assert_value("weir_http_requests_total", &[("backend", B1)], 2.0);
}

#[test]
fn handles_for_the_same_labels_share_state_across_a_reload() {
    let m = Metrics::new().expect("metrics");
    let old = world(&m);
    old.backend.set_up(false);
    let new = world(&m);
    assert!(!new.backend.is_up(), "same backend, same state");
    old.route.count(&old.backend, 200);
    new.route.count(&new.backend, 200);
    drop(old);
    let exp = scrape(&m);
    exp.assert_value("weir_http_requests_total", &[("backend", B1)], 2.0);
    let be = [("pool", "api"), ("backend", B1)];
    exp.assert_value("weir_backend_up", &be, 0.0);
    exp.assert_value("weir_backend_transitions_total", &[("to", "down")], 1.0);
    drop(new);
}

#[test]
fn reload_outcomes_are_counted_and_config_info_names_only_the_current_hash() {
    let m = Metrics::new().expect("metrics");
    let config = m.config();
    let exp = scrape(&m);
    exp.assert_value("weir_config_reloads_total", &[("result", "failure")], 0.0);
    config.loaded("aaaa");
    config.reload_failed();
    let exp = scrape(&m);
    exp.assert_value("weir_config_reloads_total", &[("result", "failure")], 1.0);
    exp.assert_value("weir_config_last_reload_successful", &[], 0.0);
    exp.assert_value("weir_config_info", &[("hash", "aaaa")], 1.0);
    config.reload_succeeded("bbbb");
    let exp = scrape(&m);
    exp.assert_value("weir_config_reloads_total", &[("result", "success")], 1.0);
    exp.assert_value("weir_config_last_reload_successful", &[], 1.0);
    assert_eq!(exp.find("weir_config_info", &[]).count(), 1);
    exp.assert_value("weir_config_info", &[("hash", "bbbb")], 1.0);
    let ts = exp
        .value("weir_config_last_reload_success_timestamp_seconds", &[])
        .expect("timestamp");
    assert!(ts > 1.6e9, "unix seconds, got {ts}");
}

#[test]
fn config_hash_is_fnv1a_64_in_hex() {
    assert_eq!(config_hash(b""), "cbf29ce484222325");
    assert_eq!(config_hash(b"a"), "af63dc4c8601ec8c");
    assert_ne!(config_hash(b"pools: {}"), config_hash(b"pools: {} "));
}

#[test]
fn a_backend_added_in_place_of_a_removed_one_is_counted_by_the_next_route() {
    let m = Metrics::new().expect("metrics");
    let (w, b2) = world_of_two(&m);
    w.route.count(&b2, 200);
    // A reload removes B2 and adds B3: B3 reuses B2's slot once B2 is gone.
    drop(w.route);
    drop(b2);
    let b3 = BackendMetrics::new(&m, "api", "10.0.0.13:80");
    let route = w.listener.route("api", [&w.backend, &b3]);
    route.count(&b3, 200);
    route.count(&w.backend, 204);
    let exp = scrape(&m);
    let req = |b| exp.value("weir_http_requests_total", &[("backend", b)]);
    assert_eq!(req("10.0.0.13:80"), Some(1.0));
    assert_eq!(req(B1), Some(1.0));
    assert_eq!(req(B2), None);
}

#[test]
fn live_backends_of_one_pool_never_share_a_slot() {
    let m = Metrics::new().expect("metrics");
    let backends: Vec<BackendMetrics> = (0..5)
        .map(|i| BackendMetrics::new(&m, "api", &format!("10.0.0.{i}:80")))
        .collect();
    let again = BackendMetrics::new(&m, "api", "10.0.0.2:80");
    let other = BackendMetrics::new(&m, "other", "10.0.0.9:80");
    let route = ListenerMetrics::new(&m, "web").route("api", &backends);
    for (i, b) in backends.iter().enumerate() {
        for _ in 0..=i {
            route.count(b, 200);
        }
    }
    route.count(&again, 200);
    let exp = scrape(&m);
    for i in 0..5 {
        let b = format!("10.0.0.{i}:80");
        let want = if i == 2 { 4.0 } else { i as f64 + 1.0 };
        let got = exp.value("weir_http_requests_total", &[("backend", b.as_str())]);
        assert_eq!(got, Some(want), "{b}");
    }
    drop(other);
}
