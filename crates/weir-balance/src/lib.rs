//! weir's routing snapshot: backends, pools, strategies, the table and the registry.
//!
//! ```text
//! Config --BackendRegistry::build--> Table { listeners -> routes -> Arc<Pool> }
//!                                     Pool { strategy, backends: [Arc<Backend>] }
//! ```
//! The proxy loads the table from an `ArcSwap` per request and calls [`Pool::pick`],
//! which neither allocates nor locks. Health checkers write only through a
//! [`Backend`]'s atomics and never rebuild the table.
//!
//! How a pool's backends are reached is part of the snapshot too: each [`Pool`] holds
//! its `weir_upstream::Transport` (upstream TLS, HTTP version) and each [`Backend`] its
//! idle connections (`weir_upstream::Conns`), both typed, from the crate below this one.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod backend;
mod budget;
pub mod clock;
pub mod policy;
mod pool;
mod registry;
mod route_action;
mod route_match;
pub mod strategy;
mod table;
#[cfg(test)]
mod test_support;

pub use backend::{AdminChange, AdminMode, Backend, InFlight, LastTransition, Transition};
pub use budget::RetryBudget;
pub use policy::{AccessList, Limited, Policy, RateLimiter};
pub use pool::{
    DiscoverySnapshot, DiscoveryStatus, Passive, Pool, PoolQueue, PoolSettings, PoolShared,
    Presented, Refused, Reserved, Sticky, StickyResult, MAX_ATTEMPTS, MAX_EJECTION_MULTIPLIER,
    MIN_SHARE_PERMILLE, REPICKS, RESERVE_TRIES, STICKY_ID_LEN,
};
pub use registry::{BackendRegistry, Changes};
pub use route_action::{HeaderEdits, Redirect, RedirectFrom, Rewrite};
pub use route_match::{query_has, RequestFacts};
pub use table::{ListenerTable, Route, RouteTarget, Table};

/// The live table, swapped whole on reload; the proxy `load()`s it per request.
pub type SharedTable = std::sync::Arc<arc_swap::ArcSwap<Table>>;
