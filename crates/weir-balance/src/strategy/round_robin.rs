//! Round robin: each backend in turn, weights ignored.
//!
//! One shared counter advanced with `fetch_add`; a down backend is skipped by walking
//! forward, so its turn goes to the next backend that is up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::Backend;

/// Round-robin state of one pool.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A round robin over `backends`, starting at the first.
    pub fn new(_backends: &[Arc<Backend>]) -> Self {
        RoundRobin::default()
    }

    /// Index of the next backend that is up.
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start.wrapping_add(i)) % n)
            .find(|&i| backends[i].is_up())
    }
}
