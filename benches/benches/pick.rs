//! `pool.pick()` per strategy at 10, 100 and 1,000 backends (all up, idle), and the
//! build of a 1,000-backend table, cold (new registry) and as a reload that keeps every
//! backend (weights 1..=4; plus the smooth weighted cycle's worst case, weights
//! 1..=256). DESIGN.md §6 asks for < 100 ns per pick and < 50 ms per reload at 1,000.
//!
//! `reserve` is what the first attempt of a request does since backend protection:
//! the pick and its in-flight slot (`Pool::try_reserve`, released at once), without a
//! limit (the plain increment of before) and with every backend under a
//! `max_in_flight` it never reaches (the compare-and-swap against the limit).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weir_balance::BackendRegistry;
use weir_benches::{config, STRATEGIES};
use weir_config::StrategyKind;

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for kind in STRATEGIES {
        for n in [10, 100, 1_000] {
            let table = BackendRegistry::new().build(config(kind, n, 4), 1);
            let Some(pool) = table.pool("app") else {
                panic!("the fixture has pool app");
            };
            group.bench_with_input(BenchmarkId::new(kind.as_str(), n), &n, |b, _| {
                b.iter(|| black_box(pool.pick()));
            });
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for kind in [StrategyKind::RoundRobin, StrategyKind::Weighted] {
        let cfg = config(kind, 1_000, 4);
        group.bench_function(BenchmarkId::new("cold", kind.as_str()), |b| {
            b.iter(|| black_box(BackendRegistry::new().build(cfg.clone(), 1)));
        });
        let registry = BackendRegistry::new();
        registry.build(cfg.clone(), 1);
        group.bench_function(BenchmarkId::new("reload", kind.as_str()), |b| {
            b.iter(|| black_box(registry.build(cfg.clone(), 2)));
        });
    }
    // Worst case for the smooth weighted cycle: 256 distinct weights, ~128k slots.
    let cfg = config(StrategyKind::Weighted, 1_000, 256);
    group.bench_function(BenchmarkId::new("cold", "weighted_1_to_256"), |b| {
        b.iter(|| black_box(BackendRegistry::new().build(cfg.clone(), 1)));
    });
    group.finish();
}

fn reserve(c: &mut Criterion) {
    let mut group = c.benchmark_group("reserve");
    for limit in [None, NonZeroU32::new(1_000_000)] {
        let label = if limit.is_some() {
            "limited"
        } else {
            "unlimited"
        };
        for kind in STRATEGIES {
            let mut cfg = (*config(kind, 1_000, 4)).clone();
            cfg.pools[0].max_in_flight = limit;
            let table = BackendRegistry::new().build(Arc::new(cfg), 1);
            let Some(pool) = table.pool("app") else {
                panic!("the fixture has pool app");
            };
            let id = BenchmarkId::new(format!("{label}/{}", kind.as_str()), 1_000);
            group.bench_function(id, |b| {
                b.iter(|| black_box(pool.try_reserve().is_ok()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick, build, reserve);
criterion_main!(benches);
