//! Building one period of nginx's smooth weighted round robin, for `weighted.rs`.
//!
//! Kept apart from the strategy because it is the only non-trivial algorithm of the
//! build path; `pick` never runs it.

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Runs nginx's smooth weighted round robin for one full period.
///
/// At step `t` (from 1) nginx's score of backend `i` is `t·wᵢ − W·kᵢ`, where `W` is the
/// total weight and `kᵢ` how often `i` was picked so far; the highest score wins, the
/// first in config order on a tie. Backends of equal weight therefore differ only by
/// `kᵢ`, and among them the least-picked, first in order wins: they take turns in config
/// order. So each group of equal weight offers one candidate, its members in turn, whose
/// score is a line in `t` that drops by `W` each time the whole group has had a turn.
///
/// The highest of those lines at each `t` comes from a kinetic tournament tree: each
/// node keeps the winner of its two children and the step at which the loser's line
/// would overtake; a step recomputes only the nodes whose certificate expired and the
/// path of the group just picked. Worst case (1,000 backends with 256 distinct weights,
/// a 128k-slot cycle) this is a few milliseconds where a scan of every group per step
/// took ~55 ms.
pub(super) fn smooth_cycle(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    // Groups of equal weight, in order of first appearance, members in config order.
    let mut members: Vec<Vec<u32>> = Vec::new();
    let mut slope: Vec<i64> = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        let w = i64::from(w / g);
        let Ok(i) = u32::try_from(i) else { break };
        match slope.iter().position(|&gw| gw == w) {
            Some(gi) => members[gi].push(i),
            None => {
                slope.push(w);
                members.push(vec![i]);
            }
        }
    }
    let total: i64 = slope
        .iter()
        .zip(&members)
        .map(|(w, m)| w * m.len() as i64)
        .sum();
    let mut cycle = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    if slope.is_empty() {
        return cycle;
    }
    let mut tree = Tournament::new(slope, members.iter().map(|m| m[0]).collect());
    let mut pos = vec![0usize; members.len()];
    for t in 1..=total {
        let best = tree.winner(t);
        cycle.push(tree.candidate[best]);
        pos[best] += 1;
        if pos[best] == members[best].len() {
            pos[best] = 0;
            // Every member has now had one more turn: k rises by one.
            tree.offset[best] -= total;
        }
        tree.candidate[best] = members[best][pos[best]];
        tree.invalidate(best);
    }
    cycle
}

/// A kinetic tournament over lines `score(t) = slope·t + offset`, ties to the lower
/// candidate index. Node 1 is the root, node `k` has children `2k` and `2k + 1`, and
/// leaf `size + g` holds group `g`.
struct Tournament {
    slope: Vec<i64>,
    offset: Vec<i64>,
    candidate: Vec<u32>,
    size: usize,
    /// Winning group per node; `NONE` for padding leaves.
    win: Vec<usize>,
    /// Step from which the node's winner may no longer be right.
    expiry: Vec<i64>,
    /// Smallest expiry in the node's subtree.
    due: Vec<i64>,
}

const NONE: usize = usize::MAX;

impl Tournament {
    fn new(slope: Vec<i64>, candidate: Vec<u32>) -> Self {
        let size = slope.len().next_power_of_two();
        let mut win = vec![NONE; 2 * size];
        for (g, w) in win[size..size + slope.len()].iter_mut().enumerate() {
            *w = g;
        }
        let mut due = vec![i64::MAX; 2 * size];
        due[1..size].fill(0);
        Tournament {
            offset: vec![0; slope.len()],
            slope,
            candidate,
            size,
            win,
            expiry: due.clone(),
            due,
        }
    }

    /// Whether group `a` ranks above group `b` at step `t`.
    fn beats(&self, a: usize, b: usize, t: i64) -> bool {
        let (sa, sb) = (
            self.slope[a] * t + self.offset[a],
            self.slope[b] * t + self.offset[b],
        );
        sa > sb || (sa == sb && self.candidate[a] < self.candidate[b])
    }

    /// First step after `t` at which `loser` ranks above `winner`, lines unchanged.
    fn overtaken_at(&self, winner: usize, loser: usize, t: i64) -> i64 {
        // score(winner) − score(loser) = a·s + b, ≥ 0 at s = t.
        let a = self.slope[winner] - self.slope[loser];
        let b = self.offset[winner] - self.offset[loser];
        if a >= 0 {
            return i64::MAX;
        }
        let (q, r) = (b.div_euclid(-a), b.rem_euclid(-a));
        // At s = q the lines tie when r == 0: the lower index keeps it.
        let at = if r == 0 && self.candidate[loser] < self.candidate[winner] {
            q
        } else {
            q + 1
        };
        at.max(t + 1)
    }

    /// The group ranking first at step `t`; steps never go back.
    fn winner(&mut self, t: i64) -> usize {
        self.refresh(1, t);
        self.win[1]
    }

    fn refresh(&mut self, node: usize, t: i64) {
        if node >= self.size || self.due[node] > t {
            return;
        }
        let (l, r) = (2 * node, 2 * node + 1);
        self.refresh(l, t);
        self.refresh(r, t);
        let (a, b) = (self.win[l], self.win[r]);
        let (win, expiry) = match (a, b) {
            (NONE, _) => (b, i64::MAX),
            (_, NONE) => (a, i64::MAX),
            _ if self.beats(a, b, t) => (a, self.overtaken_at(a, b, t)),
            _ => (b, self.overtaken_at(b, a, t)),
        };
        self.win[node] = win;
        self.expiry[node] = expiry;
        self.due[node] = expiry.min(self.due[l]).min(self.due[r]);
    }

    /// Group `g`'s line or candidate changed: its ancestors must be recomputed.
    fn invalidate(&mut self, g: usize) {
        let mut node = (self.size + g) / 2;
        while node >= 1 {
            self.due[node] = 0;
            node /= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx's algorithm verbatim, one step at a time, over every backend.
    fn nginx(weights: &[u32], steps: usize) -> Vec<usize> {
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        (0..steps)
            .map(|_| {
                let mut best = 0;
                for (i, c) in current.iter_mut().enumerate() {
                    *c += i64::from(weights[i]);
                }
                for i in 1..weights.len() {
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                best
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn grouped_cycle_matches_nginx(weights in proptest::collection::vec(1u32..=64, 1..30)) {
            let cycle = smooth_cycle(&weights);
            let want = nginx(&weights, cycle.len());
            let got: Vec<usize> = cycle.iter().map(|&i| i as usize).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
