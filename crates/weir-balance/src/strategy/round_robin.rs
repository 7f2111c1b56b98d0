//! Round robin: each backend that is up in turn, weights ignored.
//!
//! One shared counter advanced with `fetch_add`. A turn that lands on a down backend is
//! re-drawn from a second rotation that skips down backends (see `turns`), so the
//! survivors stay evenly loaded: with one of four down, each of the other three gets a
//! third.

use std::sync::Arc;

use crate::Backend;

use super::turns::Turns;

/// Round-robin state of one pool.
#[derive(Debug, Default)]
pub struct RoundRobin {
    turns: Turns,
}

impl RoundRobin {
    /// A round robin over `backends`, starting at the first.
    pub fn new(_backends: &[Arc<Backend>]) -> Self {
        RoundRobin::default()
    }

    /// Index of the next backend that is up.
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        self.turns.take(backends.len(), |slot| slot, backends)
    }
}
