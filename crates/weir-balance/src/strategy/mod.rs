//! Load-balancing strategies.
//!
//! Each strategy is built once per pool (when a table is built, off the data path) from
//! the backends' weights, and then `pick` chooses among the backends that are up. The
//! contract every strategy keeps:
//!
//! - `pick` never returns a backend that is not pickable (down, drained or in
//!   maintenance, or at its `max_in_flight`: [`Backend::is_pickable`], one atomic load
//!   more than [`Backend::is_routable`] when it has no limit), and returns `None`
//!   exactly when no backend in the slice is pickable;
//! - `pick` does not allocate, lock or format: it runs once per request;
//! - `pick` is called with the same slice the strategy was built from (a different slice
//!   never panics, but the weights then no longer line up).
//!
//! | strategy | `pick` | built in `new` |
//! |---|---|---|
//! | round robin | one `fetch_add`; a down backend's turn is re-drawn (`turns`) | nothing |
//! | weighted | one `fetch_add`, index into the cycle | one period of nginx's smooth WRR |
//! | random | one `fetch_add` (RNG), binary search | cumulative weights |
//! | least connections | exact scan (≤ 32) or best of 2 weighted samples | cumulative weights, tie order |
//! | consistent hash | one index into the Maglev table (`pick_keyed`); round robin without a key | the Maglev table |
//!
//! Weights (the weight in force: a runtime override, else the configured one) are read
//! from the backends when the strategy is built, so a table keeps
//! picking consistently even after a reload re-weights a backend it shares with a newer
//! table. They are clamped to `1..=`[`MAX_WEIGHT`], the range the config validates.

use std::sync::Arc;

use weir_config::StrategyKind;

use crate::Backend;

mod least_connections;
pub mod maglev;
mod random;
mod round_robin;
pub(crate) mod sample;
mod smooth;
mod turns;
mod weighted;

#[cfg(test)]
mod tests;

pub use least_connections::{LeastConn, CHOICES, EXACT_SCAN_MAX, SAMPLE_DRAWS};
pub use maglev::Maglev;
pub use random::{Random, REDRAWS};
pub use round_robin::RoundRobin;
pub use turns::SKIP_LIMIT;
pub use weighted::Weighted;

/// The largest weight a strategy honours; the config rejects larger ones.
pub const MAX_WEIGHT: u32 = 256;

/// A backend's weight as the strategies use it: within `1..=MAX_WEIGHT`.
#[inline]
fn weight_of(backend: &Backend) -> u32 {
    backend.weight().clamp(1, MAX_WEIGHT)
}

/// A pool's strategy, with whatever it precomputed from the weights.
#[derive(Debug)]
pub enum Strategy {
    /// Each backend in turn, weights ignored.
    RoundRobin(RoundRobin),
    /// Smooth weighted round robin.
    Weighted(Weighted),
    /// Random in proportion to weight.
    Random(Random),
    /// Fewest in-flight divided by weight.
    LeastConn(LeastConn),
    /// Maglev consistent hashing of a key; round robin for requests without one.
    ConsistentHash(Maglev, RoundRobin),
}

// === impl Strategy ===

impl Strategy {
    /// Builds the strategy `kind` for `backends`, reading their current weights.
    /// A consistent-hash strategy bounds load at the default factor; see
    /// [`Strategy::for_pool`].
    pub fn new(kind: StrategyKind, backends: &[Arc<Backend>]) -> Self {
        Self::with_factor(kind, backends, weir_config::DEFAULT_BALANCE_FACTOR)
    }

    /// The strategy of pool `config` for `backends`.
    pub fn for_pool(config: &weir_config::PoolConfig, backends: &[Arc<Backend>]) -> Self {
        let factor = config
            .consistent_hash
            .as_ref()
            .map_or(weir_config::DEFAULT_BALANCE_FACTOR, |h| h.balance_factor);
        Self::with_factor(config.strategy, backends, factor)
    }

    fn with_factor(kind: StrategyKind, backends: &[Arc<Backend>], factor: f64) -> Self {
        match kind {
            StrategyKind::ConsistentHash => {
                Strategy::ConsistentHash(Maglev::new(backends, factor), RoundRobin::new(backends))
            }
            StrategyKind::RoundRobin => Strategy::RoundRobin(RoundRobin::new(backends)),
            StrategyKind::Weighted => Strategy::Weighted(Weighted::new(backends)),
            StrategyKind::Random => Strategy::Random(Random::new(backends)),
            StrategyKind::LeastConnections => Strategy::LeastConn(LeastConn::new(backends)),
        }
    }

    /// Index of the chosen backend among `backends`, or `None` if no backend is up.
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        match self {
            Strategy::RoundRobin(s) => s.pick(backends),
            Strategy::Weighted(s) => s.pick(backends),
            Strategy::Random(s) => s.pick(backends),
            Strategy::LeastConn(s) => s.pick(backends),
            Strategy::ConsistentHash(_, rr) => rr.pick(backends),
        }
    }

    /// Like [`Strategy::pick`] for a request whose affinity key hashed to `key`: a
    /// consistent-hash strategy looks it up, the others ignore it.
    #[inline]
    pub fn pick_keyed(&self, key: u64, backends: &[Arc<Backend>]) -> Option<usize> {
        match self {
            Strategy::ConsistentHash(m, _) => m.pick(key, backends),
            other => other.pick(backends),
        }
    }

    /// The Maglev table, for a consistent-hash strategy.
    pub fn maglev(&self) -> Option<&Maglev> {
        match self {
            Strategy::ConsistentHash(m, _) => Some(m),
            _ => None,
        }
    }
}
