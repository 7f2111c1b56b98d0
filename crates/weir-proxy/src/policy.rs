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

/// Whose policy is checked: the listener's (its rate limit, before routing; its access
/// list already acted on the connection) or the route's (access list, then rate limit).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'t> {
    /// Before routing.
    Listener(&'t ListenerTable),
    /// After routing.
    Route(&'t Route),
}

/// Checks `scope`'s policy for a client at `ip`; `header` reads one header of the
/// request, for a limit keyed by it. A client the access list refuses takes no token.
#[inline]
pub(crate) fn police<'h>(
    scope: Scope<'_>,
    ip: IpAddr,
    header: impl FnOnce(&str) -> Option<&'h [u8]>,
) -> Result<(), Verdict> {
    let (policy, by) = match scope {
        Scope::Listener(l) => (l.policy(), Some(l.name())),
        Scope::Route(r) => (r.policy(), None),
    };
    if policy.is_empty() {
        return Ok(());
    }
    if by.is_none() && !policy.permits(ip) {
        tracing::debug!(client = %ip, pool = pool_of(scope), "refused by the route's access list");
        return Err(Verdict::Denied);
    }
    policy.take_token(ip, header).map_err(|limited| {
        let retry_after = limited.retry_after_secs();
        match by {
            Some(listener) => tracing::debug!(client = %ip, listener, retry_after, "rate limited by the listener"),
            None => tracing::debug!(client = %ip, pool = pool_of(scope), retry_after, "rate limited by the route"),
        }
        Verdict::Limited(retry_after)
    })
}

/// The pool a route's refusal is logged with.
fn pool_of(scope: Scope<'_>) -> &str {
    match scope {
        Scope::Route(r) => r.pool().map_or("none", |p| p.name()),
        Scope::Listener(_) => "none",
    }
}
