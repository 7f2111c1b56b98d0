//! Invariants every strategy keeps, checked with proptest, and round robin's sequences.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Strategy as PropStrategy;
use weir_config::StrategyKind;

use super::{LeastConn, Random, RoundRobin, Strategy, Weighted};
use crate::test_support::{backends, names};
use crate::{AdminMode, Backend};

const KINDS: [StrategyKind; 4] = [
    StrategyKind::RoundRobin,
    StrategyKind::Weighted,
    StrategyKind::Random,
    StrategyKind::LeastConnections,
];

/// Every strategy, deterministic where it has a seed.
fn every_strategy(pool: &[Arc<Backend>]) -> [Strategy; 4] {
    [
        Strategy::RoundRobin(RoundRobin::new(pool)),
        Strategy::Weighted(Weighted::new(pool)),
        Strategy::Random(Random::with_seed(pool, 11)),
        Strategy::LeastConn(LeastConn::with_seed(pool, 13)),
    ]
}

fn counts(s: &Strategy, pool: &[Arc<Backend>], picks: usize) -> Vec<usize> {
    crate::test_support::counts(pool.len(), picks, || s.pick(pool))
}

#[test]
fn round_robin_takes_turns_ignoring_weights() {
    let pool = backends(&[5, 1, 1]);
    let s = RoundRobin::new(&pool);
    assert_eq!(names(&pool, (0..6).map(|_| s.pick(&pool))), "a b c a b c");
}

#[test]
fn round_robin_skips_down_backend() {
    let pool = backends(&[1, 1, 1]);
    pool[1].force(false, "test");
    let s = RoundRobin::new(&pool);
    assert_eq!(names(&pool, (0..6).map(|_| s.pick(&pool))), "a a c a c c");
}

#[test]
fn every_strategy_is_none_on_empty_pool() {
    for kind in KINDS {
        assert_eq!(Strategy::new(kind, &[]).pick(&[]), None, "{kind:?}");
    }
}

#[test]
fn strategy_new_builds_the_named_kind() {
    let pool = backends(&[1]);
    assert!(matches!(
        Strategy::new(StrategyKind::Weighted, &pool),
        Strategy::Weighted(_)
    ));
    assert!(matches!(
        Strategy::new(StrategyKind::LeastConnections, &pool),
        Strategy::LeastConn(_)
    ));
}

/// Weights and an up mask of the same length; up to 80 backends so that least
/// connections' sampling path (above 32) is covered.
fn pool_with_mask() -> impl PropStrategy<Value = (Vec<u32>, Vec<bool>)> {
    (0usize..80).prop_flat_map(|n| (vec(1u32..=256, n), vec(any::<bool>(), n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_picks_down_and_none_only_when_all_down((weights, up) in pool_with_mask()) {
        let pool = backends(&weights);
        for (b, &up) in pool.iter().zip(&up) {
            b.force(up, "test");
        }
        let any_up = up.iter().any(|&u| u);
        for s in every_strategy(&pool) {
            for _ in 0..50 {
                match s.pick(&pool) {
                    Some(i) => prop_assert!(up[i], "{s:?} picked down backend {i}"),
                    None => prop_assert!(!any_up, "{s:?} gave None with a backend up"),
                }
            }
        }
    }

    #[test]
    fn all_up_shares_follow_the_strategy(weights in vec(1u32..=8, 1..40)) {
        let pool = backends(&weights);
        let total: u32 = weights.iter().sum();
        let n = pool.len();

        let rr = Strategy::new(StrategyKind::RoundRobin, &pool);
        prop_assert!(counts(&rr, &pool, n * 10).iter().all(|&c| c == 10));

        // Weighted is exact over whole cycles.
        let Strategy::Weighted(w) = Strategy::new(StrategyKind::Weighted, &pool) else {
            unreachable!()
        };
        let len = w.cycle_len();
        let w = Strategy::Weighted(w);
        let got = counts(&w, &pool, len * 3);
        for (c, &wt) in got.iter().zip(&weights) {
            prop_assert_eq!(*c as u64 * u64::from(total), 3 * len as u64 * u64::from(wt));
        }

        // Random: within a loose statistical bound.
        let picks = 20_000usize;
        let r = Strategy::Random(Random::with_seed(&pool, u64::from(total)));
        for (c, &wt) in counts(&r, &pool, picks).iter().zip(&weights) {
            let want = picks as f64 * f64::from(wt) / f64::from(total);
            prop_assert!((*c as f64 - want).abs() < 6.0 * want.sqrt() + 10.0, "{c} vs {want}");
        }
    }
}

#[test]
fn round_robin_with_one_of_four_down_gives_each_survivor_a_third() {
    let pool = backends(&[1, 1, 1, 1]);
    pool[0].force(false, "test");
    let s = Strategy::new(StrategyKind::RoundRobin, &pool);
    assert_eq!(counts(&s, &pool, 300), vec![0, 100, 100, 100]);
}

#[test]
fn weighted_with_heaviest_down_keeps_the_ratio_among_survivors() {
    let pool = backends(&[5, 2, 3]);
    pool[0].force(false, "test");
    let s = Strategy::new(StrategyKind::Weighted, &pool);
    assert_eq!(counts(&s, &pool, 100), vec![0, 40, 60]);
}

/// Per backend: up or down, and the operator's mode.
fn pool_with_modes() -> impl PropStrategy<Value = (Vec<u32>, Vec<(bool, u8)>)> {
    (0usize..80).prop_flat_map(|n| (vec(1u32..=256, n), vec((any::<bool>(), 0u8..3), n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_picks_drained_or_maint((weights, state) in pool_with_modes()) {
        let pool = backends(&weights);
        let mode = |m: u8| match m {
            0 => AdminMode::Ready,
            1 => AdminMode::Drain,
            _ => AdminMode::Maint,
        };
        for (b, &(up, m)) in pool.iter().zip(&state) {
            b.force(up, "test");
            b.set_admin(Some(mode(m)), None);
        }
        let routable = |i: usize| state[i].0 && state[i].1 == 0;
        let any = (0..pool.len()).any(routable);
        for s in every_strategy(&pool) {
            for _ in 0..50 {
                match s.pick(&pool) {
                    Some(i) => prop_assert!(routable(i), "{s:?} picked {i}: {:?}", state[i]),
                    None => prop_assert!(!any, "{s:?} gave None with a backend routable"),
                }
            }
        }
    }
}

#[test]
fn drain_then_ready_and_health_combine() {
    let pool = backends(&[1, 1]);
    let s = Strategy::new(StrategyKind::RoundRobin, &pool);
    pool[0].set_admin(Some(AdminMode::Drain), None);
    assert_eq!(counts(&s, &pool, 10), vec![0, 10]);
    // A health flap while drained does not bring it back...
    pool[0].force(false, "test");
    pool[0].force(true, "test");
    assert_eq!(counts(&s, &pool, 10), vec![0, 10]);
    // ...and `ready` does, while a down backend stays out whatever its mode.
    pool[0].set_admin(Some(AdminMode::Ready), None);
    assert_eq!(counts(&s, &pool, 10), vec![5, 5]);
    pool[1].force(false, "test");
    pool[1].set_admin(Some(AdminMode::Ready), None);
    assert_eq!(counts(&s, &pool, 10), vec![10, 0]);
}

#[test]
fn weight_override_reaches_strategies_built_after_it() {
    for kind in [StrategyKind::Weighted, StrategyKind::Random] {
        let pool = backends(&[1, 1]);
        let before = Strategy::new(kind, &pool);
        let change = pool[0].set_admin(None, Some(3));
        assert!(change.reweighted() && change.new_weight == 3);
        // A table built earlier keeps its weights; a new one has the override.
        let old = counts(&before, &pool, 4_000);
        assert!(old[0].abs_diff(2_000) < 300, "{kind:?} {old:?}");
        let after = Strategy::new(kind, &pool);
        let new = counts(&after, &pool, 4_000);
        assert!(new[0].abs_diff(3_000) < 300, "{kind:?} {new:?}");
    }
}
