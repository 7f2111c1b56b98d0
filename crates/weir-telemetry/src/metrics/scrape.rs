//! The one collector: walks the live handles and writes every family of DESIGN.md §5.
//!
//! The lock on the live set is held only to take strong pointers to what is alive; the
//! values are read and formatted after it is released, so a scrape never holds up a
//! table build for longer than a few pointer copies.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::backend::BackendInner;
use super::exposition::{Family, FamilyWriter, Kind};
use super::listener::{ListenerInner, PoolInner, StickyResult};
use super::route::{RequestCounters, RouteInner};
use super::value::Counter;
use super::{Metrics, MetricsError, NO_BACKEND};

/// Declares each family as a `static` [`Family`], one line each, like DESIGN.md's table.
macro_rules! families {
    ($($id:ident = $kind:ident $name:literal $help:literal;)*) => {
        $(static $id: Family = Family { name: $name, help: $help, kind: Kind::$kind };)*
    };
}

// Names, types, help texts and label names are the product's contract with dashboards
// and alert rules (`configs/prometheus/weir-rules.yml`): change them only with those.
families! {
    HTTP_REQUESTS = Counter "weir_http_requests_total"
        "HTTP requests answered, by the backend that answered (\"none\" when weir answered itself) and status code.";
    REQUEST_DURATION = Histogram "weir_http_request_duration_seconds"
        "Time from request received to response headers sent, retries included.";
    BACKEND_RESPONSE_DURATION = Histogram "weir_backend_response_duration_seconds"
        "Time from request sent to a backend to its response headers.";
    BACKEND_UP = Gauge "weir_backend_up"
        "1 if the backend is in rotation, 0 if it is down.";
    POOL_BACKENDS_UP = Gauge "weir_pool_backends_up"
        "Backends of the pool (primaries and backups) that are up.";
    BACKEND_DOWNTIME = Counter "weir_backend_downtime_seconds_total"
        "Seconds the backend has spent down (grows while it is down).";
    BACKEND_IN_FLIGHT = Gauge "weir_backend_in_flight"
        "Requests (HTTP) or connections (TCP) being served by the backend.";
    BACKEND_TRANSITIONS = Counter "weir_backend_transitions_total"
        "Backend state changes, by the state entered.";
    HEALTH_CHECKS = Counter "weir_health_checks_total"
        "Active health probes, by result.";
    UPSTREAM_ERRORS = Counter "weir_upstream_errors_total"
        "Failures talking to a backend seen by live traffic, by kind.";
    RETRIES = Counter "weir_retries_total"
        "Further attempts made on another backend after a failed one.";
    POOL_QUEUE_DEPTH = Gauge "weir_pool_queue_depth"
        "Requests (or TCP connections) waiting for a backend below its max_in_flight.";
    POOL_QUEUE_WAIT = Histogram "weir_pool_queue_wait_seconds"
        "Time requests waited in the pool's queue before a backend took them.";
    POOL_QUEUE_REFUSED = Counter "weir_pool_queue_refused_total"
        "Requests answered 503 (TCP connections closed) by the pool's queue: full, or waited its timeout.";
    STICKY = Counter "weir_sticky_total"
        "Backend responses of pools with a sticky cookie: hit (served by the cookie's backend), new (no cookie), rebalanced (served by another: the cookie's was down, drained, gone or failed), invalid (an unknown or tampered id).";
    CONNECTIONS_ACTIVE = Gauge "weir_listener_connections_active"
        "Client connections currently open.";
    CONNECTIONS_TOTAL = Counter "weir_listener_connections_total"
        "Client connections accepted.";
    TCP_BYTES = Counter "weir_tcp_bytes_total"
        "Bytes relayed by TCP listeners: rx from clients, tx to clients.";
    HTTP_PROTOCOL_ERRORS = Counter "weir_http_protocol_errors_total"
        "Client connections weir closed for breaking the protocol: a malformed HTTP/1 head, or an HTTP/2 GOAWAY with an error (flood and reset limits included).";
    RATE_LIMITED = Counter "weir_rate_limited_total"
        "Requests refused with 429 by a rate limit; route is the route's position, \"\" for the listener's limit.";
    ACCESS_DENIED = Counter "weir_access_denied_total"
        "Refused by an access list: connections (route \"\", the listener's lists) or requests (403, the route at that position).";
    DISCOVERY_LOOKUPS = Counter "weir_discovery_lookups_total"
        "Backend discovery lookups of pools with `discovery`, by result (empty and failure keep the last good answer serving).";
    DISCOVERY_BACKENDS = Gauge "weir_discovery_backends"
        "Backends the pool's discovery serves now (from the last good answer).";
    CONFIG_RELOADS = Counter "weir_config_reloads_total"
        "Configuration reloads, by outcome.";
    CONFIG_LAST_RELOAD_SUCCESSFUL = Gauge "weir_config_last_reload_successful"
        "1 if the last configuration load or reload succeeded.";
    CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP = Gauge "weir_config_last_reload_success_timestamp_seconds"
        "Unix time of the last successful configuration load or reload.";
    ADMIN_CHANGES = Counter "weir_admin_changes_total"
        "Runtime API writes (POST /pools/{pool}/backends/{address}): applied, or refused for a missing or wrong token.";
    CONFIG_INFO = Gauge "weir_config_info"
        "Always 1; the hash label identifies the configuration being served.";
    BUILD_INFO = Gauge "weir_build_info"
        "Always 1; the version label is weir's version.";
}

impl Metrics {
    /// Every metric in the Prometheus text format (serve with
    /// [`TEXT_CONTENT_TYPE`](super::TEXT_CONTENT_TYPE)).
    ///
    /// # Errors
    ///
    /// Only if the `process_*` metrics cannot be encoded.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = String::with_capacity(16 * 1024);
        self.write_live(&mut out);
        self.write_config(&mut out);
        #[cfg(target_os = "linux")]
        {
            use prometheus::core::Collector;
            let process = self.shared.process.collect();
            prometheus::TextEncoder::new().encode_utf8(&process, &mut out)?;
        }
        Ok(out)
    }

    /// Takes every live handle (and sweeps the dead), then writes them unlocked.
    fn write_live(&self, out: &mut String) {
        let mut live = self.shared.live();
        let mut listeners = live.listeners.alive();
        let mut routes = live.routes.alive();
        let mut pools = live.pools.alive();
        let mut backends = live.backends.alive();
        let requests = live.requests.alive();
        let mut discovery = live.discovery.alive();
        let mut policies = live.policies.alive();
        live.ordinals
            .retain(|_, slots| slots.iter().any(|w| w.strong_count() > 0));
        drop(live);
        listeners.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        routes.sort_unstable_by(|a, b| (&a.listener, &a.pool).cmp(&(&b.listener, &b.pool)));
        pools.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        discovery.sort_unstable_by(|a, b| a.pool.cmp(&b.pool));
        policies.sort_unstable_by(|a, b| (&a.listener, &a.route).cmp(&(&b.listener, &b.route)));
        backends.sort_unstable_by(|a, b| (&a.pool, &a.backend).cmp(&(&b.pool, &b.backend)));
        write_requests(out, requests, &routes);
        each(out, &REQUEST_DURATION, &routes, |f, r| {
            let labels = [("listener", r.listener.as_str()), ("pool", &r.pool)];
            f.histogram(&labels, &r.duration.snapshot());
        });
        write_backends(out, &backends);
        write_pools(out, &pools, &backends);
        write_listeners(out, &listeners);
        each(out, &RATE_LIMITED, &policies, |f, p| {
            let labels = [("listener", p.listener.as_str()), ("route", &p.route)];
            f.sample(&labels, p.rate_limited.get() as f64);
        });
        each(out, &ACCESS_DENIED, &policies, |f, p| {
            let labels = [("listener", p.listener.as_str()), ("route", &p.route)];
            f.sample(&labels, p.access_denied.get() as f64);
        });
        each(out, &DISCOVERY_LOOKUPS, &discovery, |f, d| {
            for (result, n) in d.lookups() {
                f.sample(&[("pool", &d.pool), ("result", result)], n as f64);
            }
        });
        each(out, &DISCOVERY_BACKENDS, &discovery, |f, d| {
            f.sample(&[("pool", &d.pool)], d.backends.get() as f64);
        });
    }

    fn write_config(&self, out: &mut String) {
        let c = &self.shared.config;
        let mut f = FamilyWriter::new(out, &CONFIG_RELOADS);
        for (result, n) in c.reloads.by_label(["success", "failure"]) {
            f.sample(&[("result", result)], n.get() as f64);
        }
        let ok = c.last_successful.load(Ordering::Relaxed);
        FamilyWriter::new(out, &CONFIG_LAST_RELOAD_SUCCESSFUL).sample(&[], f64::from(u8::from(ok)));
        let ts = f64::from_bits(c.last_success_timestamp.load(Ordering::Relaxed));
        FamilyWriter::new(out, &CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP).sample(&[], ts);
        let mut f = FamilyWriter::new(out, &ADMIN_CHANGES);
        for (result, n) in c.admin_changes.by_label(["applied", "unauthorized"]) {
            f.sample(&[("result", result)], n.get() as f64);
        }
        if let Some(hash) = c.hash().as_deref() {
            FamilyWriter::new(out, &CONFIG_INFO).sample(&[("hash", hash)], 1.0);
        }
        let version = [("version", env!("CARGO_PKG_VERSION"))];
        FamilyWriter::new(out, &BUILD_INFO).sample(&version, 1.0);
    }
}

fn labels(b: &BackendInner) -> [(&'static str, &str); 2] {
    [("pool", &b.pool), ("backend", &b.backend)]
}

/// `weir_http_requests_total`: per backend of every route, then weir's own answers.
fn write_requests(
    out: &mut String,
    requests: Vec<Arc<RequestCounters>>,
    routes: &[Arc<RouteInner>],
) {
    // A backend's request series go with the backend, even while a route holds them.
    let mut requests: Vec<_> = requests
        .into_iter()
        .filter_map(|c| c.backend.upgrade().map(|b| (c, b)))
        .collect();
    requests.sort_unstable_by(|(a, ab), (b, bb)| {
        let a = (&a.route.listener, &a.route.pool, &ab.backend);
        a.cmp(&(&b.route.listener, &b.route.pool, &bb.backend))
    });
    let mut f = FamilyWriter::new(out, &HTTP_REQUESTS);
    let mut count = |l: &str, p: &str, b: &str, codes: Vec<(u16, u64)>| {
        for (code, n) in codes {
            let code = code.to_string();
            let labels = [
                ("listener", l),
                ("pool", p),
                ("backend", b),
                ("code", &code),
            ];
            f.sample(&labels, n as f64);
        }
    };
    for (c, b) in &requests {
        count(
            &c.route.listener,
            &c.route.pool,
            &b.backend,
            c.codes.snapshot(),
        );
    }
    for r in routes {
        count(&r.listener, &r.pool, NO_BACKEND, r.no_backend.snapshot());
    }
}

/// `weir_pool_backends_up` (counted over the live backends now), retries and the queue.
fn write_pools(out: &mut String, pools: &[Arc<PoolInner>], backends: &[Arc<BackendInner>]) {
    let mut up: HashMap<&str, usize> = HashMap::new();
    for b in backends.iter().filter(|b| b.is_up()) {
        *up.entry(b.pool.as_str()).or_default() += 1;
    }
    each(out, &POOL_BACKENDS_UP, pools, |f, p| {
        let n = up.get(p.name.as_str()).copied().unwrap_or(0);
        f.sample(&[("pool", &p.name)], n as f64);
    });
    each(out, &RETRIES, pools, |f, p| {
        f.sample(&[("pool", &p.name)], p.retries.get() as f64);
    });
    each(out, &POOL_QUEUE_DEPTH, pools, |f, p| {
        f.sample(&[("pool", &p.name)], p.queue_depth.get() as f64);
    });
    each(out, &POOL_QUEUE_WAIT, pools, |f, p| {
        f.histogram(&[("pool", &p.name)], &p.queue_wait.snapshot());
    });
    each(out, &POOL_QUEUE_REFUSED, pools, |f, p| {
        for (reason, n) in [("full", &p.refused_full), ("timeout", &p.refused_timeout)] {
            f.sample(&[("pool", &p.name), ("reason", reason)], n.get() as f64);
        }
    });
    let sticky: Vec<Arc<PoolInner>> = pools
        .iter()
        .filter(|p| p.sticky.get() > 0)
        .cloned()
        .collect();
    each(out, &STICKY, &sticky, |f, p| {
        for result in StickyResult::ALL {
            let n = p.sticky_counter(result).get();
            f.sample(&[("pool", &p.name), ("result", result.as_str())], n as f64);
        }
    });
}

fn write_listeners(out: &mut String, listeners: &[Arc<ListenerInner>]) {
    let one = |f: &mut FamilyWriter<'_>, l: &ListenerInner, n: f64| {
        f.sample(&[("listener", &l.name)], n);
    };
    each(out, &CONNECTIONS_ACTIVE, listeners, |f, l| {
        one(f, l, l.active.get() as f64);
    });
    each(out, &CONNECTIONS_TOTAL, listeners, |f, l| {
        one(f, l, l.total.get() as f64);
    });
    each(out, &TCP_BYTES, listeners, |f, l| {
        for (direction, n) in [("rx", &l.rx), ("tx", &l.tx)] {
            f.sample(
                &[("listener", &l.name), ("direction", direction)],
                n.get() as f64,
            );
        }
    });
    each(out, &HTTP_PROTOCOL_ERRORS, listeners, |f, l| {
        one(f, l, l.protocol_errors.get() as f64);
    });
}

/// Every per-backend family; downtime is brought up to the scrape's instant first.
fn write_backends(out: &mut String, backends: &[Arc<BackendInner>]) {
    let now = Instant::now();
    each(out, &BACKEND_RESPONSE_DURATION, backends, |f, b| {
        f.histogram(&labels(b), &b.response.snapshot());
    });
    each(out, &BACKEND_UP, backends, |f, b| {
        f.sample(&labels(b), f64::from(u8::from(b.is_up())));
    });
    each(out, &BACKEND_DOWNTIME, backends, |f, b| {
        f.sample(&labels(b), b.downtime(now).as_secs_f64());
    });
    each(out, &BACKEND_IN_FLIGHT, backends, |f, b| {
        f.sample(&labels(b), b.in_flight.get() as f64);
    });
    let by = |f: &mut FamilyWriter<'_>, b: &BackendInner, name, values: &[(&str, &Counter)]| {
        for &(value, n) in values {
            let [pool, backend] = labels(b);
            f.sample(&[pool, backend, (name, value)], n.get() as f64);
        }
    };
    each(out, &BACKEND_TRANSITIONS, backends, |f, b| {
        by(f, b, "to", &[("up", &b.to_up), ("down", &b.to_down)]);
    });
    each(out, &HEALTH_CHECKS, backends, |f, b| {
        let results = [("success", &b.check_success), ("failure", &b.check_failure)];
        by(f, b, "result", &results);
    });
    each(out, &UPSTREAM_ERRORS, backends, |f, b| {
        let kinds = [
            ("connect", &b.err_connect),
            ("timeout", &b.err_timeout),
            ("reset", &b.err_reset),
        ];
        by(f, b, "kind", &kinds);
    });
}

/// Writes `family` with the series `write` gives for each of `items`.
fn each<T>(
    out: &mut String,
    family: &'static Family,
    items: &[Arc<T>],
    mut write: impl FnMut(&mut FamilyWriter<'_>, &T),
) {
    let mut f = FamilyWriter::new(out, family);
    for item in items {
        write(&mut f, item);
    }
}
