//! The traffic policies of both HTTP paths, decided in one place: the listener's rate
//! limit (before routing), then the route's access list (403) and rate limit (429).
//!
//! Each request path hands in the client address (the PROXY header's, when one was
//! accepted) and a way to read one header of its own head, and turns the verdict into
//! its own answer (`h1/refusal.rs`, `http/phases.rs`). A refused request never reaches
//! a backend. The listener's access list acts on the connection instead
//! (`listener.rs`): closed before a byte of it is read.

use std::net::IpAddr;

use weir_balance::{ListenerTable, Route};

/// The reason of a 429.
pub(crate) const LIMITED: &str = "rate limit exceeded";
/// The reason of a 403.
pub(crate) const DENIED: &str = "access denied";

/// What stops a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 429, with `Retry-After` in seconds.
    Limited(u64),
    /// 403.
    Denied,
}

/// The listener's rate limit, checked before the request is routed.
#[inline]
pub(crate) fn listener<'h>(
    listener: &ListenerTable,
    ip: IpAddr,
    header: impl FnOnce(&str) -> Option<&'h [u8]>,
) -> Result<(), Verdict> {
    listener.policy().take_token(ip, header).map_err(|limited| {
        let retry_after = limited.retry_after_secs();
        tracing::debug!(client = %ip, listener = listener.name(), retry_after, "rate limited by the listener");
        Verdict::Limited(retry_after)
    })
}

/// The route's access list, then its rate limit (a refused client takes no token).
#[inline]
pub(crate) fn route<'h>(
    route: &Route,
    ip: IpAddr,
    header: impl FnOnce(&str) -> Option<&'h [u8]>,
) -> Result<(), Verdict> {
    let policy = route.policy();
    if policy.is_empty() {
        return Ok(());
    }
    if !policy.permits(ip) {
        tracing::debug!(client = %ip, pool = route.pool().map_or("none", |p| p.name()), "refused by the route's access list");
        return Err(Verdict::Denied);
    }
    policy.take_token(ip, header).map_err(|limited| {
        let retry_after = limited.retry_after_secs();
        tracing::debug!(client = %ip, pool = route.pool().map_or("none", |p| p.name()), retry_after, "rate limited by the route");
        Verdict::Limited(retry_after)
    })
}
