//! `strategy: consistent_hash`: a keyed pick at 10, 100 and 1,000 backends (all up,
//! idle; keys varying so the table is not one hot cache line), and the Maglev table
//! build for 1,000 backends, alone and as part of a cold table build. Issue 12 asks for
//! < 100 ns per pick and < 50 ms per rebuild at 1,000 backends.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weir_balance::strategy::maglev::hash64;
use weir_balance::strategy::Maglev;
use weir_balance::BackendRegistry;
use weir_benches::config;
use weir_config::StrategyKind;

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("consistent_hash_pick");
    let keys: Vec<u64> = (0..4096u32)
        .map(|k| hash64(format!("user-{k}").as_bytes()))
        .collect();
    for n in [10, 100, 1_000] {
        let table = BackendRegistry::new().build(config(StrategyKind::ConsistentHash, n, 4), 1);
        let Some(pool) = table.pool("app") else {
            panic!("the fixture has pool app");
        };
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(pool.pick_keyed(keys.get(i).copied()))
            });
        });
    }
    // The key's hash included: a 16-byte header value.
    let table = BackendRegistry::new().build(config(StrategyKind::ConsistentHash, 1_000, 4), 1);
    if let Some(pool) = table.pool("app") {
        group.bench_function("1000_with_hash", |b| {
            b.iter(|| black_box(pool.pick_keyed(Some(hash64(black_box(b"user-1234567890a"))))));
        });
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("consistent_hash_build");
    let cfg = config(StrategyKind::ConsistentHash, 1_000, 4);
    let table = BackendRegistry::new().build(cfg.clone(), 1);
    if let Some(pool) = table.pool("app") {
        let backends = pool.primaries();
        group.bench_function("maglev_1000", |b| {
            b.iter(|| black_box(Maglev::new(backends, 1.25)));
        });
    }
    group.bench_function("cold_table_1000", |b| {
        b.iter(|| black_box(BackendRegistry::new().build(cfg.clone(), 1)));
    });
    group.finish();
}

criterion_group!(benches, pick, build);
criterion_main!(benches);
