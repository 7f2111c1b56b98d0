//! Validation of `pools`: strategy, backends (resolved now; none needed with
//! `discovery`, see `discovery.rs`), health checks, timeouts,
//! retries and their budget, passive checks, fail-open, slow start, upstream TLS and
//! protocol.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use super::{field, value, Validator};
use crate::model::{
    BackendConfig, HealthCheckConfig, HealthCheckKind, PassiveConfig, PoolConfig, PoolTimeouts,
    QueueConfig, RetryBudgetConfig, RetryOn, StrategyKind, UpstreamProtocol,
};
use crate::position::{index, join};
use crate::raw::{
    Int, Ordered, RawBackend, RawHealthCheck, RawPassive, RawPool, RawQueue, RawRetryBudget, Text,
};

/// The largest `max_in_flight` (on a pool or a backend) and `queue.max` accepted.
const MAX_LIMIT: i64 = 1_000_000;

pub(super) fn pools(v: &mut Validator<'_>, raw: Option<&Ordered<RawPool>>) -> Vec<PoolConfig> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut pools: Vec<PoolConfig> = Vec::with_capacity(raw.0.len());
    for (name, p) in &raw.0 {
        let path = join("pools", name);
        let nth = pools.iter().filter(|q| &q.name == name).count();
        if name.trim().is_empty() {
            v.error_at_key(&path, nth, "pool name must not be empty");
        } else if nth > 0 {
            let line = v.line_of(&path);
            v.error_at_key(
                &path,
                nth,
                format!("duplicate pool name {name:?} (first defined at line {line})"),
            );
            // Its fields share their paths with the first pool's, so any error in them
            // would point into the wrong pool. The duplicate name is error enough.
            continue;
        }
        pools.push(pool(v, name, p, &path));
    }
    pools
}

fn pool(v: &mut Validator<'_>, name: &str, p: &RawPool, path: &str) -> PoolConfig {
    let strategy = v.keyword(
        p.strategy.as_ref(),
        &field(path, "strategy"),
        "strategy",
        ("round_robin", StrategyKind::RoundRobin),
        &[
            ("weighted", StrategyKind::Weighted),
            ("random", StrategyKind::Random),
            ("least_connections", StrategyKind::LeastConnections),
            ("consistent_hash", StrategyKind::ConsistentHash),
        ],
    );
    let consistent_hash =
        super::affinity::consistent_hash(v, p, path, strategy == StrategyKind::ConsistentHash);
    let discovery = p
        .discovery
        .as_ref()
        .and_then(|d| super::discovery::discovery(v, d, &field(path, "discovery")));
    let backends = backends(v, p.backends.as_deref(), path, p.discovery.is_some());
    let health_check = p
        .health_check
        .as_ref()
        .map(|h| health_check(v, h, &field(path, "health_check")));
    let timeouts = p.timeouts.as_ref().map_or_else(PoolTimeouts::default, |t| {
        let (path, default) = (field(path, "timeouts"), PoolTimeouts::default());
        PoolTimeouts {
            connect: check_field!(v.duration(t.connect.as_ref() at &path) or default),
            response: check_field!(v.duration(t.response.as_ref() at &path) or default),
        }
    });
    let retries = v.integer(p.retries, &field(path, "retries"), 0..=7, 2);
    let passive = p
        .passive
        .as_ref()
        .map_or_else(PassiveConfig::default, |raw| {
            passive(v, raw, &field(path, "passive"))
        });
    let slow_start = p
        .slow_start
        .as_ref()
        .map(|d| v.duration(Some(d), &field(path, "slow_start"), Duration::from_secs(30)));
    let retry_on = p.retry_on.as_deref().map_or_else(RetryOn::default, |list| {
        retry_on(v, list, &field(path, "retry_on"))
    });
    let retry_budget = p
        .retry_budget
        .as_ref()
        .map_or_else(RetryBudgetConfig::default, |raw| {
            retry_budget(v, raw, &field(path, "retry_budget"))
        });
    let upstream_protocol = upstream_protocol(v, p, path);
    let tls = p
        .tls
        .as_ref()
        .map(|t| super::tls::upstream(v, t, &field(path, "tls")));
    let max_in_flight = max_in_flight(v, p.max_in_flight, &field(path, "max_in_flight"));
    let limited = max_in_flight.is_some() || backends.iter().any(|b| b.max_in_flight.is_some());
    let queue = p.queue.as_ref().map_or_else(QueueConfig::default, |raw| {
        queue(v, raw, &field(path, "queue"), limited)
    });
    let sticky = p
        .sticky
        .as_ref()
        .and_then(|raw| super::affinity::sticky(v, raw, &field(path, "sticky")));
    PoolConfig {
        name: name.to_owned(),
        strategy,
        consistent_hash,
        backends,
        health_check,
        timeouts,
        retries,
        passive,
        fail_open: p.fail_open.unwrap_or(false),
        slow_start,
        retry_on,
        retry_budget,
        tls,
        upstream_protocol,
        discovery,
        max_in_flight,
        queue,
        sticky,
    }
}

/// A `max_in_flight` (of a pool or a backend entry): `None` when absent.
fn max_in_flight(v: &mut Validator<'_>, raw: Option<Int>, path: &str) -> Option<NonZeroU32> {
    let n = v.integer(Some(raw?), path, 1..=MAX_LIMIT, 1);
    Some(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// A `queue` block; it means something only where a backend has a limit (`limited`).
fn queue(v: &mut Validator<'_>, raw: &RawQueue, path: &str, limited: bool) -> QueueConfig {
    if !limited {
        v.error(
            path,
            "a queue needs max_in_flight on the pool or on one of its backends",
        );
    }
    let default = QueueConfig::default();
    QueueConfig {
        max: check_field!(v.integer(raw.max at path, 0..=MAX_LIMIT) or default),
        timeout: check_field!(v.duration(raw.timeout.as_ref() at path) or default),
    }
}

/// A `passive` block; each absent field takes its default.
fn passive(v: &mut Validator<'_>, raw: &RawPassive, path: &str) -> PassiveConfig {
    let default = PassiveConfig::default();
    PassiveConfig {
        consecutive_failures: check_field!(
            v.integer(raw.consecutive_failures at path, 0..=1000) or default
        ),
        max_ejected_percent: check_field!(
            v.integer(raw.max_ejected_percent at path, 0..=100) or default
        ),
        base_ejection_time: check_field!(
            v.duration(raw.base_ejection_time.as_ref() at path) or default
        ),
    }
}

/// A `retry_budget` block; each absent field takes its default.
fn retry_budget(v: &mut Validator<'_>, raw: &RawRetryBudget, path: &str) -> RetryBudgetConfig {
    let default = RetryBudgetConfig::default();
    RetryBudgetConfig {
        percent: check_field!(v.integer(raw.percent at path, 0..=100) or default),
        min_per_second: check_field!(
            v.integer(raw.min_per_second at path, 0..=1_000_000) or default
        ),
    }
}

/// The listed conditions, exactly: a list without `reset` does not retry resets.
fn retry_on(v: &mut Validator<'_>, list: &[Text], path: &str) -> RetryOn {
    let mut on = RetryOn {
        connect_failure: false,
        reset: false,
        status_502: false,
        status_503: false,
    };
    for (i, condition) in list.iter().enumerate() {
        let flag = match condition.as_str() {
            "connect_failure" => &mut on.connect_failure,
            "reset" => &mut on.reset,
            "502" => &mut on.status_502,
            "503" => &mut on.status_503,
            other => {
                v.error(
                    &index(path, i),
                    format!("unknown retry condition {other:?} (expected connect_failure, reset, 502 or 503)"),
                );
                continue;
            }
        };
        if *flag {
            v.error(
                &index(path, i),
                format!("duplicate retry condition {:?}", condition.as_str()),
            );
        }
        *flag = true;
    }
    on
}

/// `upstream_protocol`: `http1` (default) or `h2`.
fn upstream_protocol(v: &mut Validator<'_>, p: &RawPool, path: &str) -> UpstreamProtocol {
    v.keyword(
        p.upstream_protocol.as_ref(),
        &field(path, "upstream_protocol"),
        "upstream protocol",
        ("http1", UpstreamProtocol::Http1),
        &[("h2", UpstreamProtocol::H2)],
    )
}

/// A pool with `discovery` may have no static backends (`discovered`).
fn backends(
    v: &mut Validator<'_>,
    raw: Option<&[RawBackend]>,
    path: &str,
    discovered: bool,
) -> Vec<BackendConfig> {
    let backends_path = field(path, "backends");
    let raw = match raw {
        None | Some([]) if discovered => return Vec::new(),
        None => {
            v.missing(path, "backends", " (a pool needs at least one backend)");
            return Vec::new();
        }
        Some([]) => {
            v.error(&backends_path, "at least one backend is required");
            return Vec::new();
        }
        Some(raw) => raw,
    };
    let mut seen: Vec<(SocketAddr, usize)> = Vec::with_capacity(raw.len());
    let mut backends = Vec::with_capacity(raw.len());
    for (i, b) in raw.iter().enumerate() {
        let path = index(&backends_path, i);
        let (address, addr) = match &b.address {
            None => {
                v.missing(&path, "address", " (host:port of the backend)");
                (String::new(), super::PLACEHOLDER_ADDR)
            }
            Some(text) => {
                let address_path = field(&path, "address");
                let errors_before = v.errors.len();
                let addr = v.socket_addr(text, &address_path);
                if v.errors.len() == errors_before {
                    if let Some((_, first)) = seen.iter().find(|(a, _)| *a == addr) {
                        v.error(
                            &address_path,
                            format!("duplicate backend {addr} (same as backends[{first}])"),
                        );
                    } else {
                        seen.push((addr, i));
                    }
                }
                (text.as_str().to_owned(), addr)
            }
        };
        let weight = v.integer(b.weight, &field(&path, "weight"), 1..=256, 1);
        let weight = NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN);
        backends.push(BackendConfig {
            address,
            addr,
            weight,
            backup: b.backup.unwrap_or(false),
            announced_weight: weight.get(),
            max_in_flight: max_in_flight(v, b.max_in_flight, &field(&path, "max_in_flight")),
            endpoint: crate::EndpointState::Ready,
        });
    }
    backends
}

fn health_check(v: &mut Validator<'_>, h: &RawHealthCheck, path: &str) -> HealthCheckConfig {
    let http = match h.kind.as_ref().map(|k| k.as_str()) {
        None | Some("tcp") => false,
        Some("http") => true,
        Some(other) => {
            v.error(
                &field(path, "type"),
                format!("unknown health check type {other:?} (expected tcp or http)"),
            );
            // Check the http fields as if for http, so that their errors are not lost.
            true
        }
    };
    let kind = if http {
        let check_path = h.path.as_ref().map_or_else(
            || "/".to_owned(),
            |p| {
                if !p.as_str().starts_with('/') {
                    v.error(
                        &field(path, "path"),
                        format!("invalid path {:?} (must start with \"/\")", p.as_str()),
                    );
                }
                p.as_str().to_owned()
            },
        );
        let host = h.host.as_ref().map(|host| {
            if host.as_str().trim().is_empty() {
                v.error(&field(path, "host"), "host must not be empty");
            }
            host.as_str().to_owned()
        });
        let expect_status = match &h.expect_status {
            None => 200..=399,
            Some(text) => value::status_range(text.as_str()).unwrap_or_else(|message| {
                v.error(&field(path, "expect_status"), message);
                200..=399
            }),
        };
        HealthCheckKind::Http {
            path: check_path,
            host,
            expect_status,
        }
    } else {
        // A tcp check would ignore these: say so instead.
        for (name, present) in [
            ("path", h.path.is_some()),
            ("host", h.host.is_some()),
            ("expect_status", h.expect_status.is_some()),
        ] {
            if present {
                v.error(
                    &field(path, name),
                    format!("`{name}` applies only to http health checks (set `type: http`)"),
                );
            }
        }
        HealthCheckKind::Tcp
    };
    HealthCheckConfig {
        kind,
        interval: v.duration(
            h.interval.as_ref(),
            &field(path, "interval"),
            Duration::from_secs(2),
        ),
        timeout: v.duration(
            h.timeout.as_ref(),
            &field(path, "timeout"),
            Duration::from_secs(1),
        ),
        rise: v.integer(h.rise, &field(path, "rise"), 1..=i64::from(u32::MAX), 2),
        fall: v.integer(h.fall, &field(path, "fall"), 1..=i64::from(u32::MAX), 3),
    }
}
