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
    RetryBudgetConfig, RetryOn, StrategyKind, UpstreamProtocol,
};
use crate::position::{index, join};
use crate::raw::{Ordered, RawBackend, RawHealthCheck, RawPassive, RawPool, RawRetryBudget, Text};

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
    let strategy = match p.strategy.as_ref().map(|s| s.as_str()) {
        None | Some("round_robin") => StrategyKind::RoundRobin,
        Some("weighted") => StrategyKind::Weighted,
        Some("random") => StrategyKind::Random,
        Some("least_connections") => StrategyKind::LeastConnections,
        Some(other) => {
            v.error(
                &field(path, "strategy"),
                format!("unknown strategy {other:?} (expected round_robin, weighted, random or least_connections)"),
            );
            StrategyKind::RoundRobin
        }
    };
    let discovery = p
        .discovery
        .as_ref()
        .and_then(|d| super::discovery::discovery(v, d, &field(path, "discovery")));
    let backends = backends(v, p.backends.as_deref(), path, p.discovery.is_some());
    let health_check = p
        .health_check
        .as_ref()
        .map(|h| health_check(v, h, &field(path, "health_check")));
    let timeouts_path = field(path, "timeouts");
    let t = p.timeouts.as_ref();
    let timeouts = PoolTimeouts {
        connect: v.duration(
            t.and_then(|t| t.connect.as_ref()),
            &field(&timeouts_path, "connect"),
            Duration::from_secs(2),
        ),
        response: v.duration(
            t.and_then(|t| t.response.as_ref()),
            &field(&timeouts_path, "response"),
            Duration::from_secs(30),
        ),
    };
    let retries = v.integer(p.retries, &field(path, "retries"), 0..=7, 2);
    let passive = passive(v, p.passive.as_ref(), &field(path, "passive"));
    let slow_start = p
        .slow_start
        .as_ref()
        .map(|d| v.duration(Some(d), &field(path, "slow_start"), Duration::from_secs(30)));
    let retry_on = p.retry_on.as_deref().map_or_else(RetryOn::default, |list| {
        retry_on(v, list, &field(path, "retry_on"))
    });
    let retry_budget = retry_budget(v, p.retry_budget.as_ref(), &field(path, "retry_budget"));
    let upstream_protocol = upstream_protocol(v, p, path);
    let tls = p
        .tls
        .as_ref()
        .map(|t| super::tls::upstream(v, t, &field(path, "tls")));
    PoolConfig {
        name: name.to_owned(),
        strategy,
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
    }
}

fn passive(v: &mut Validator<'_>, raw: Option<&RawPassive>, path: &str) -> PassiveConfig {
    let default = PassiveConfig::default();
    let Some(raw) = raw else {
        return default;
    };
    PassiveConfig {
        consecutive_failures: v.integer(
            raw.consecutive_failures,
            &field(path, "consecutive_failures"),
            0..=1000,
            default.consecutive_failures,
        ),
        max_ejected_percent: v.integer(
            raw.max_ejected_percent,
            &field(path, "max_ejected_percent"),
            0..=100,
            default.max_ejected_percent,
        ),
        base_ejection_time: v.duration(
            raw.base_ejection_time.as_ref(),
            &field(path, "base_ejection_time"),
            default.base_ejection_time,
        ),
    }
}

fn retry_budget(
    v: &mut Validator<'_>,
    raw: Option<&RawRetryBudget>,
    path: &str,
) -> RetryBudgetConfig {
    let default = RetryBudgetConfig::default();
    let Some(raw) = raw else {
        return default;
    };
    RetryBudgetConfig {
        percent: v.integer(
            raw.percent,
            &field(path, "percent"),
            0..=100,
            default.percent,
        ),
        min_per_second: v.integer(
            raw.min_per_second,
            &field(path, "min_per_second"),
            0..=1_000_000,
            default.min_per_second,
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
    match p.upstream_protocol.as_ref().map(|u| u.as_str()) {
        None | Some("http1") => UpstreamProtocol::Http1,
        Some("h2") => UpstreamProtocol::H2,
        Some(other) => {
            v.error(
                &field(path, "upstream_protocol"),
                format!("unknown upstream protocol {other:?} (expected http1 or h2)"),
            );
            UpstreamProtocol::Http1
        }
    }
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
        backends.push(BackendConfig {
            address,
            addr,
            weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
            backup: b.backup.unwrap_or(false),
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
