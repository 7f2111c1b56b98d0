//! Values of a listener's or route's traffic policy: `weir_rate_limited_total` and
//! `weir_access_denied_total`, both `{listener, route}`.
//!
//! `route` is the route's position in the listener's `routes` (`"0"`, `"1"`, as in
//! `/status` and config errors: routes have no names); `""` for the listener's own
//! limit and lists, which act before a request is routed (its access list before a
//! connection is served at all). Series exist only where a policy is configured.

use super::value::Counter;
use super::Metrics;

handle!(
    /// Refusal counters of one listener's or route's policy.
    PolicyMetrics => PolicyInner { "listener" => listener, "route" => route }
    values {
        rate_limited: Counter,
        access_denied: Counter,
    }
);

impl PolicyMetrics {
    /// The values of `listener`'s policy (`route: None`) or of its route at position
    /// `route`; the same ones while a holder lives, so a reload keeps counting.
    pub fn new(metrics: &Metrics, listener: &str, route: Option<usize>) -> Self {
        let route = route.map_or_else(String::new, |i| i.to_string());
        let key = (listener.to_owned(), route.clone());
        let inner = metrics.intern(
            |l| &mut l.policies,
            key,
            || PolicyInner::zero(listener, &route),
        );
        PolicyMetrics { inner }
    }

    /// Counts a request refused with 429.
    #[inline]
    pub fn rate_limited(&self) {
        self.inner.rate_limited.inc();
    }

    /// Counts a connection (listener lists) or request (route lists) refused by an
    /// access list.
    #[inline]
    pub fn access_denied(&self) {
        self.inner.access_denied.inc();
    }
}
