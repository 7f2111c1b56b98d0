//! Every metric family of DESIGN.md §5, registered once per [`Metrics`](super::Metrics).
//!
//! Names, types and label names here are the product's contract with dashboards and
//! alert rules (`configs/prometheus/weir-rules.yml`): change them only with those.

use prometheus::{
    CounterVec, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Latency buckets in seconds, from 25 µs to 30 s (1–2.5–5 steps).
///
/// Fine enough at the bottom to tell a 40 µs proxy hop from a 400 µs one (Traefik's and
/// the client library's defaults start at 5 ms), coarse enough at the top to stay at
/// 20 series per histogram.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The registered families. Handles are resolved from these once, when a listener,
/// route, pool or backend is created.
pub(super) struct Families {
    pub(super) http_requests: IntCounterVec,
    pub(super) request_duration: HistogramVec,
    pub(super) backend_response_duration: HistogramVec,
    pub(super) backend_up: IntGaugeVec,
    pub(super) pool_backends_up: IntGaugeVec,
    pub(super) backend_downtime: CounterVec,
    pub(super) backend_in_flight: IntGaugeVec,
    pub(super) backend_transitions: IntCounterVec,
    pub(super) health_checks: IntCounterVec,
    pub(super) upstream_errors: IntCounterVec,
    pub(super) retries: IntCounterVec,
    pub(super) connections_active: IntGaugeVec,
    pub(super) connections_total: IntCounterVec,
    pub(super) tcp_bytes: IntCounterVec,
    pub(super) http_protocol_errors: IntCounterVec,
    pub(super) config_reloads: IntCounterVec,
    pub(super) config_last_reload_successful: IntGauge,
    pub(super) config_last_reload_success_timestamp: Gauge,
    pub(super) config_info: IntGaugeVec,
    pub(super) build_info: IntGaugeVec,
}

fn register<C>(registry: &Registry, collector: C) -> prometheus::Result<C>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
}

impl Families {
    pub(super) fn register(r: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(r, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
        };
        Ok(Families {
            http_requests: counter(
                "weir_http_requests_total",
                "HTTP requests answered, by the backend that answered (\"none\" when weir answered itself) and status code.",
                &["listener", "pool", "backend", "code"],
            )?,
            request_duration: register(
                r,
                histogram(
                    "weir_http_request_duration_seconds",
                    "Time from request received to response headers sent, retries included.",
                    &["listener", "pool"],
                )?,
            )?,
            backend_response_duration: register(
                r,
                histogram(
                    "weir_backend_response_duration_seconds",
                    "Time from request sent to a backend to its response headers.",
                    &["pool", "backend"],
                )?,
            )?,
            backend_up: gauge(
                "weir_backend_up",
                "1 if the backend is in rotation, 0 if it is down.",
                &["pool", "backend"],
            )?,
            pool_backends_up: gauge(
                "weir_pool_backends_up",
                "Backends of the pool (primaries and backups) that are up.",
                &["pool"],
            )?,
            backend_downtime: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "weir_backend_downtime_seconds_total",
                        "Seconds the backend has spent down (grows while it is down).",
                    ),
                    &["pool", "backend"],
                )?,
            )?,
            backend_in_flight: gauge(
                "weir_backend_in_flight",
                "Requests (HTTP) or connections (TCP) being served by the backend.",
                &["pool", "backend"],
            )?,
            backend_transitions: counter(
                "weir_backend_transitions_total",
                "Backend state changes, by the state entered.",
                &["pool", "backend", "to"],
            )?,
            health_checks: counter(
                "weir_health_checks_total",
                "Active health probes, by result.",
                &["pool", "backend", "result"],
            )?,
            upstream_errors: counter(
                "weir_upstream_errors_total",
                "Failures talking to a backend seen by live traffic, by kind.",
                &["pool", "backend", "kind"],
            )?,
            retries: counter(
                "weir_retries_total",
                "Further attempts made on another backend after a failed one.",
                &["pool"],
            )?,
            connections_active: gauge(
                "weir_listener_connections_active",
                "Client connections currently open.",
                &["listener"],
            )?,
            connections_total: counter(
                "weir_listener_connections_total",
                "Client connections accepted.",
                &["listener"],
            )?,
            tcp_bytes: counter(
                "weir_tcp_bytes_total",
                "Bytes relayed by TCP listeners: rx from clients, tx to clients.",
                &["listener", "direction"],
            )?,
            http_protocol_errors: counter(
                "weir_http_protocol_errors_total",
                "Client connections weir closed for breaking the protocol: a malformed HTTP/1 head, or an HTTP/2 GOAWAY with an error (flood and reset limits included).",
                &["listener"],
            )?,
            config_reloads: counter(
                "weir_config_reloads_total",
                "Configuration reloads, by outcome.",
                &["result"],
            )?,
            config_last_reload_successful: register(
                r,
                IntGauge::new(
                    "weir_config_last_reload_successful",
                    "1 if the last configuration load or reload succeeded.",
                )?,
            )?,
            config_last_reload_success_timestamp: register(
                r,
                Gauge::new(
                    "weir_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load or reload.",
                )?,
            )?,
            config_info: gauge(
                "weir_config_info",
                "Always 1; the hash label identifies the configuration being served.",
                &["hash"],
            )?,
            build_info: gauge(
                "weir_build_info",
                "Always 1; the version label is weir's version.",
                &["version"],
            )?,
        })
    }
}

/// Removes one series, logging (never failing) if it was already gone: removal runs in
/// `Drop`, and a missing series there means nothing worse than a double delete.
pub(super) fn forget<E: std::fmt::Display>(result: Result<(), E>, family: &str, labels: &[&str]) {
    if let Err(e) = result {
        tracing::debug!(family, ?labels, error = %e, "metric series already removed");
    }
}

/// `(success, failure)` children of a `result`-labelled counter family.
pub(super) fn result_pair(vec: &IntCounterVec, prefix: &[&str]) -> (IntCounter, IntCounter) {
    let with = |result: &str| {
        let mut labels = prefix.to_vec();
        labels.push(result);
        vec.with_label_values(&labels)
    };
    (with("success"), with("failure"))
}
