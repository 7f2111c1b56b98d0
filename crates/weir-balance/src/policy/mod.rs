//! Traffic policies of listeners and routes: rate limits ([`RateLimiter`]) and access
//! lists ([`AccessList`]), with the counters of what they refuse.
//!
//! A [`Policy`] is part of the table snapshot, like a route's pool: the proxy reads it
//! per connection (a listener's access list) or per request (everything else) without
//! a lookup. A limiter's buckets are state, so they are kept across reloads as backends
//! are: [`Limiters`] hands a table being built the limiter the last table had for the
//! same listener and route position *when its settings are unchanged*, and a fresh one
//! (full buckets) when they changed. Limits are per weir process: two balancers behind
//! one address let through up to twice the rate (as HAProxy's stick tables without
//! peers).

mod acl;
mod rate_limit;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use weir_config::RateLimitConfig;
use weir_telemetry::{Metrics, PolicyMetrics};

pub use acl::AccessList;
pub use rate_limit::{Limited, RateLimiter, MAX_KEYS, SHARDS};

use crate::Table;

/// The access list and rate limit of one listener or route, and their counters.
#[derive(Debug, Default)]
pub struct Policy {
    access: Option<AccessList>,
    limiter: Option<Arc<RateLimiter>>,
    metrics: Option<PolicyMetrics>,
}

// === impl Policy ===

impl Policy {
    /// A policy of `access` and `limiter`, counting refusals in `metrics`.
    pub fn new(
        access: Option<AccessList>,
        limiter: Option<Arc<RateLimiter>>,
        metrics: Option<PolicyMetrics>,
    ) -> Self {
        Policy {
            access,
            limiter,
            metrics,
        }
    }

    /// Whether nothing is configured (nothing to check).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.access.is_none() && self.limiter.is_none()
    }

    /// The access list, if any.
    pub fn access_list(&self) -> Option<&AccessList> {
        self.access.as_ref()
    }

    /// The rate limiter, if any.
    pub fn limiter(&self) -> Option<&Arc<RateLimiter>> {
        self.limiter.as_ref()
    }

    /// Whether the access list lets a client at `ip` in; a refusal is counted in
    /// `weir_access_denied_total`.
    #[inline]
    pub fn permits(&self, ip: IpAddr) -> bool {
        let Some(access) = &self.access else {
            return true;
        };
        let ok = access.permits(ip);
        if !ok {
            if let Some(m) = &self.metrics {
                m.access_denied();
            }
        }
        ok
    }

    /// Takes a rate-limit token for a request from `ip`; `header` gives the value of
    /// the header named, for a `header:NAME` key. A refusal is counted in
    /// `weir_rate_limited_total` and says how long to wait.
    #[inline]
    pub fn take_token<'h>(
        &self,
        ip: IpAddr,
        header: impl FnOnce(&str) -> Option<&'h [u8]>,
    ) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let value = limiter.header().and_then(header);
        let taken = limiter.check(ip, value);
        if taken.is_err() {
            if let Some(m) = &self.metrics {
                m.rate_limited();
            }
        }
        taken
    }
}

/// Where a limiter sits: the listener, and the route's position (`None`: the
/// listener's own limit).
type Place = (String, Option<usize>);

/// The live rate limiters by place, so a reload that keeps a limit keeps its buckets.
///
/// The mutex is taken only when a table is built or pruned, never per request.
#[derive(Debug, Default)]
pub(crate) struct Limiters {
    by_place: Mutex<HashMap<Place, Arc<RateLimiter>>>,
}

impl Limiters {
    /// The policy of `listener` (route `None`) or of its route at position `route`.
    pub(crate) fn policy(
        &self,
        metrics: Option<&Metrics>,
        (listener, route): (&str, Option<usize>),
        limit: Option<&RateLimitConfig>,
        access: Option<AccessList>,
    ) -> Policy {
        let limiter = limit.map(|config| {
            let mut map = match self.by_place.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let slot = map
                .entry((listener.to_owned(), route))
                .or_insert_with(|| Arc::new(RateLimiter::new(config)));
            if slot.config() != config {
                *slot = Arc::new(RateLimiter::new(config));
            }
            Arc::clone(slot)
        });
        let metrics = (limiter.is_some() || access.is_some())
            .then(|| metrics.map(|m| PolicyMetrics::new(m, listener, route)))
            .flatten();
        Policy::new(access, limiter, metrics)
    }

    /// Forgets every limiter `table` does not use. Call after `table` is live.
    pub(crate) fn retain(&self, table: &Table) {
        let live: HashSet<*const RateLimiter> = table.limiters().map(Arc::as_ptr).collect();
        let mut map = match self.by_place.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.retain(|_, l| live.contains(&Arc::as_ptr(l)));
    }
}
