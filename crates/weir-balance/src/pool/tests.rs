//! Pool behaviour: backups, retries' picks, slow start, fail-open and passive ejection.

use proptest::collection::vec;
use proptest::prelude::*;
use weir_config::StrategyKind;

use super::*;
use crate::test_support::{backend_config, pool_config};
use crate::AdminMode;

const KINDS: [StrategyKind; 4] = [
    StrategyKind::RoundRobin,
    StrategyKind::Weighted,
    StrategyKind::Random,
    StrategyKind::LeastConnections,
];

/// Backends `a`, `b`, … with `(weight, backup)`.
fn pool(kind: StrategyKind, spec: &[(u32, bool)]) -> Pool {
    let configs: Vec<_> = spec
        .iter()
        .enumerate()
        .map(|(i, &(w, backup))| backend_config(i, w, backup))
        .collect();
    let backends = configs
        .iter()
        .map(|c| Arc::new(Backend::new("p", c)))
        .collect();
    Pool::new(&pool_config("p", kind, configs), backends)
}

fn picks(pool: &Pool, n: usize) -> String {
    (0..n)
        .map(|_| pool.pick().map_or("-", |b| b.address()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set(pool: &Pool, name: &str, up: bool) {
    let b = pool.backends().find(|b| b.address() == name);
    b.expect("backend exists").force(up, "test");
}

#[test]
fn pool_splits_primaries_and_backups_in_config_order() {
    let p = pool(
        StrategyKind::RoundRobin,
        &[(1, true), (1, false), (1, false)],
    );
    fn names(bs: &[Arc<Backend>]) -> Vec<&str> {
        bs.iter().map(|b| b.address()).collect()
    }
    assert_eq!(names(p.primaries()), ["b", "c"]);
    assert_eq!(names(p.backups()), ["a"]);
    assert_eq!(p.up_count(), 3);
    assert_eq!(p.settings().retries, 2);
}

#[test]
fn backups_idle_while_a_primary_is_up() {
    for kind in KINDS {
        let p = pool(kind, &[(1, false), (1, false), (1, true)]);
        set(&p, "a", false);
        assert_eq!(picks(&p, 6), "b b b b b b", "{kind:?}");
    }
}

#[test]
fn backups_take_over_when_all_primaries_are_down_and_give_back() {
    let p = pool(
        StrategyKind::RoundRobin,
        &[(1, false), (1, false), (1, true), (1, true)],
    );
    set(&p, "a", false);
    set(&p, "b", false);
    assert_eq!(picks(&p, 4), "c d c d");
    set(&p, "b", true);
    assert_eq!(
        picks(&p, 3),
        "b b b",
        "a recovered primary takes all traffic back"
    );
    set(&p, "b", false);
    set(&p, "c", false);
    set(&p, "d", false);
    assert_eq!(p.pick().map(|b| b.address()), None);
}

#[test]
fn pick_excluding_prefers_untried_primaries_then_backups() {
    let p = pool(
        StrategyKind::RoundRobin,
        &[(1, false), (1, false), (1, true)],
    );
    let (a, b, c) = (&p.primaries()[0], &p.primaries()[1], &p.backups()[0]);
    for _ in 0..4 {
        assert!(Arc::ptr_eq(p.pick_excluding(&[a]).expect("b is up"), b));
    }
    assert!(Arc::ptr_eq(p.pick_excluding(&[a, b]).expect("backup"), c));
    assert!(p.pick_excluding(&[a, b, c]).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pick_excluding_never_returns_a_tried_or_down_backend(
        spec in vec((1u32..=4, any::<bool>(), any::<bool>(), any::<bool>()), 0..12),
    ) {
        for kind in KINDS {
            let p = pool(kind, &spec.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
            // Backends are partitioned, so look them up by name for the mask.
            let all: Vec<&Arc<Backend>> = p.backends().collect();
            let mut tried = Vec::new();
            for b in &all {
                let i: usize = (b.addr().port() - 10_000).into();
                b.force(spec[i].2, "test");
                if spec[i].3 {
                    tried.push(*b);
                }
            }
            let eligible = all.iter().any(|b| b.is_up() && !tried.iter().any(|t| Arc::ptr_eq(t, b)));
            for _ in 0..10 {
                match p.pick_excluding(&tried) {
                    Some(b) => {
                        prop_assert!(b.is_up());
                        prop_assert!(!tried.iter().any(|t| Arc::ptr_eq(t, b)));
                    }
                    None => prop_assert!(!eligible, "{kind:?}: None with an eligible backend"),
                }
            }
        }
    }
}

mod resilience {
    use std::time::Duration;

    use weir_config::{HealthCheckConfig, HealthCheckKind, PassiveConfig, StrategyKind};

    use super::*;

    fn with(kind: StrategyKind, n: usize, edit: impl FnOnce(&mut weir_config::PoolConfig)) -> Pool {
        let configs: Vec<_> = (0..n).map(|i| backend_config(i, 1, false)).collect();
        let mut config = pool_config("p", kind, configs);
        edit(&mut config);
        let backends = config
            .backends
            .iter()
            .map(|c| Arc::new(Backend::new("p", c)))
            .collect();
        Pool::new(&config, backends)
    }

    fn fail(pool: &Pool, b: &Arc<Backend>, times: u32) -> Passive {
        let mut last = Passive::Counted;
        for _ in 0..times {
            last = pool.report_failure(b, &"connect to a failed: refused");
        }
        last
    }

    #[test]
    fn third_consecutive_failure_ejects_with_its_reason() {
        let p = with(StrategyKind::RoundRobin, 4, |_| {});
        let a = &p.primaries()[0];
        assert_eq!(fail(&p, a, 2), Passive::Counted);
        assert!(a.is_up());
        let Passive::Ejected {
            reason,
            ejection,
            return_after,
        } = fail(&p, a, 1)
        else {
            panic!("third failure ejects");
        };
        assert_eq!(
            reason,
            "passive: 3 consecutive failures (last: connect to a failed: refused)"
        );
        assert_eq!(ejection, 1);
        assert_eq!(return_after, Some(Duration::from_secs(30)));
        assert!(!a.is_up() && a.is_ejected());
        assert_eq!(a.last_transition().reason, reason);
    }

    #[test]
    fn a_success_restarts_the_count() {
        let p = with(StrategyKind::RoundRobin, 4, |_| {});
        let a = &p.primaries()[0];
        fail(&p, a, 2);
        p.report_success(a);
        assert_eq!(fail(&p, a, 2), Passive::Counted);
        assert!(a.is_up());
    }

    #[test]
    fn zero_consecutive_failures_never_ejects() {
        let p = with(StrategyKind::RoundRobin, 4, |c| {
            c.passive.consecutive_failures = 0
        });
        assert_eq!(fail(&p, &p.primaries()[0], 100), Passive::Counted);
        assert!(p.primaries()[0].is_up());
    }

    #[test]
    fn cap_keeps_the_second_of_two_backends_in_rotation() {
        let p = with(StrategyKind::RoundRobin, 2, |_| {});
        let (a, b) = (&p.primaries()[0], &p.primaries()[1]);
        assert!(matches!(fail(&p, a, 3), Passive::Ejected { .. }));
        assert_eq!(
            fail(&p, b, 10),
            Passive::Capped {
                failures: 10,
                down: 1,
                allowed: 1
            }
        );
        assert!(b.is_up());
    }

    #[test]
    fn cap_counts_backends_down_for_any_reason() {
        let p = with(StrategyKind::RoundRobin, 4, |_| {});
        p.primaries()[0].force(false, "probe failed");
        p.primaries()[1].force(false, "probe failed");
        assert!(matches!(
            fail(&p, &p.primaries()[2], 5),
            Passive::Capped { .. }
        ));
    }

    #[test]
    fn cap_counts_drained_and_maintained_backends_as_out() {
        for mode in [AdminMode::Drain, AdminMode::Maint] {
            let p = with(StrategyKind::RoundRobin, 2, |_| {});
            let (a, b) = (&p.primaries()[0], &p.primaries()[1]);
            a.set_admin(Some(mode), None);
            assert_eq!(
                fail(&p, b, 5),
                Passive::Capped {
                    failures: 5,
                    down: 1,
                    allowed: 1
                },
                "{mode:?}"
            );
            assert!(b.is_routable(), "{mode:?}: the last routable backend stays");
        }
    }

    #[test]
    fn lone_backend_is_never_ejected_at_the_default_cap() {
        let p = with(StrategyKind::RoundRobin, 1, |_| {});
        assert!(matches!(
            fail(&p, &p.primaries()[0], 5),
            Passive::Capped { .. }
        ));
        let p = with(StrategyKind::RoundRobin, 1, |c| {
            c.passive.max_ejected_percent = 100
        });
        assert!(matches!(
            fail(&p, &p.primaries()[0], 3),
            Passive::Ejected { .. }
        ));
    }

    #[test]
    fn concurrent_failures_never_pass_the_cap() {
        for _ in 0..20 {
            let p = with(StrategyKind::RoundRobin, 10, |c| {
                c.passive = PassiveConfig {
                    consecutive_failures: 1,
                    max_ejected_percent: 30,
                    base_ejection_time: Duration::from_secs(1),
                };
            });
            let ejected = std::thread::scope(|s| {
                let handles: Vec<_> = (0..10)
                    .map(|i| {
                        let p = &p;
                        s.spawn(move || {
                            let b = &p.primaries()[i];
                            (0..3)
                                .filter(|_| {
                                    matches!(p.report_failure(b, &"x"), Passive::Ejected { .. })
                                })
                                .count()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("join"))
                    .sum::<usize>()
            });
            assert_eq!(ejected, 3);
            assert_eq!(p.up_count(), 7);
        }
    }

    #[test]
    fn ejection_time_grows_with_repeated_ejections_up_to_ten_times() {
        let p = with(StrategyKind::RoundRobin, 4, |_| {});
        let a = &p.primaries()[0];
        for n in 1..=12u32 {
            let Passive::Ejected {
                ejection,
                return_after,
                ..
            } = fail(&p, a, 3)
            else {
                panic!("ejected");
            };
            assert_eq!(ejection, n);
            let expected = Duration::from_secs(30) * n.min(10);
            assert_eq!(return_after, Some(expected));
            assert_eq!(
                a.end_ejection(ejection, "over"),
                Some(crate::Transition::Up)
            );
        }
    }

    #[test]
    fn pool_with_active_checks_leaves_the_return_to_them() {
        let p = with(StrategyKind::RoundRobin, 4, |c| {
            c.health_check = Some(HealthCheckConfig {
                kind: HealthCheckKind::Tcp,
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                rise: 2,
                fall: 3,
            });
        });
        let a = &p.primaries()[0];
        assert!(matches!(
            fail(&p, a, 3),
            Passive::Ejected {
                return_after: None,
                ..
            }
        ));
        assert_eq!(a.observe(true, 2, 3, "check passed"), None);
        assert_eq!(
            a.observe(true, 2, 3, "check passed"),
            Some(crate::Transition::Up)
        );
        assert!(!a.is_ejected());
    }

    #[test]
    fn all_down_gives_none_or_with_fail_open_spreads_over_all() {
        for kind in KINDS {
            let closed = with(kind, 3, |_| {});
            let open = with(kind, 3, |c| {
                c.fail_open = true;
                c.backends[2].backup = true;
            });
            for p in [&closed, &open] {
                p.backends().for_each(|b| {
                    b.force(false, "probe failed");
                });
            }
            assert!(closed.pick().is_none(), "{kind:?}");
            let mut seen = [0usize; 3];
            for _ in 0..30 {
                let b = open.pick().expect("fail open");
                seen[usize::from(b.addr().port() - 10_000)] += 1;
            }
            assert_eq!(seen, [10, 10, 10], "{kind:?}: backups included");
            assert_eq!(open.shared().fail_open_picks(), 30);
            let tried: Vec<&Arc<Backend>> = open.primaries().iter().collect();
            let next = open.pick_excluding(&tried).expect("the backup");
            assert!(Arc::ptr_eq(next, &open.backups()[0]));
        }
    }

    #[test]
    fn fail_open_is_off_while_any_backend_is_up() {
        let p = with(StrategyKind::RoundRobin, 3, |c| c.fail_open = true);
        p.primaries()[0].force(false, "x");
        p.primaries()[1].force(false, "x");
        assert_eq!(picks(&p, 4), "c c c c");
        assert_eq!(p.shared().fail_open_picks(), 0);
    }

    /// Share of `a` in 4000 picks after `a` came back `elapsed` ago under `ramp`.
    fn share_of_a(p: &Pool) -> f64 {
        let n = 4000;
        let hits = (0..n)
            .filter(|_| p.pick().map(|b| b.address()) == Some("a"))
            .count();
        hits as f64 / f64::from(n)
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_ramps_the_share_for_every_strategy() {
        for kind in KINDS {
            let p = with(kind, 2, |c| c.slow_start = Some(Duration::from_secs(30)));
            let a = &p.primaries()[0];
            a.force(false, "down");
            a.force(true, "check passed");
            assert!(p.in_slow_start(a));
            let early = share_of_a(&p);
            tokio::time::advance(Duration::from_secs(15)).await;
            let middle = share_of_a(&p);
            tokio::time::advance(Duration::from_secs(16)).await;
            let late = share_of_a(&p);
            assert!(early < 0.15, "{kind:?}: early share {early}");
            assert!(middle > early && middle < 0.45, "{kind:?}: middle {middle}");
            assert!((0.4..=0.6).contains(&late), "{kind:?}: late share {late}");
            assert!(
                !a.is_ramping() && !p.in_slow_start(a),
                "{kind:?}: ramp over"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ramping_backend_alone_still_takes_every_request() {
        let p = with(StrategyKind::LeastConnections, 2, |c| {
            c.slow_start = Some(Duration::from_secs(30));
        });
        p.primaries()[1].force(false, "down");
        let a = &p.primaries()[0];
        a.force(false, "down");
        a.force(true, "up");
        assert_eq!(picks(&p, 5), "a a a a a");
    }

    #[test]
    fn without_slow_start_a_recovered_backend_takes_its_full_share_at_once() {
        let p = with(StrategyKind::RoundRobin, 2, |_| {});
        let a = &p.primaries()[0];
        a.force(false, "down");
        a.force(true, "up");
        assert!(!p.in_slow_start(a));
        assert_eq!(picks(&p, 4), "a b a b");
    }
}

#[test]
fn drained_primaries_hand_over_to_backups_and_fail_open_skips_them() {
    for kind in KINDS {
        let p = pool(kind, &[(1, false), (1, false), (1, true)]);
        let [a, b, _c] = [0, 1, 2].map(|i| Arc::clone(p.backends().nth(i).expect("three")));
        a.set_admin(Some(AdminMode::Drain), None);
        assert_eq!(picks(&p, 4), "b b b b", "{kind:?}");
        b.set_admin(Some(AdminMode::Maint), None);
        assert_eq!(
            picks(&p, 3),
            "c c c",
            "{kind:?}: backups when no primary is routable"
        );
        assert_eq!(
            p.pick_excluding(&[p.backups().first().expect("c")])
                .map(|b| b.address()),
            None
        );
    }
    let mut config = pool_config(
        "p",
        StrategyKind::RoundRobin,
        (0..3).map(|i| backend_config(i, 1, false)).collect(),
    );
    config.fail_open = true;
    let backends: Vec<_> = config
        .backends
        .iter()
        .map(|c| Arc::new(Backend::new("p", c)))
        .collect();
    let p = Pool::new(&config, backends);
    set(&p, "a", false);
    set(&p, "b", false);
    set(&p, "c", false);
    p.backends()
        .nth(1)
        .expect("b")
        .set_admin(Some(AdminMode::Maint), None);
    assert_eq!(
        picks(&p, 4),
        "a c a c",
        "failing open, never to a backend in maint"
    );
}
