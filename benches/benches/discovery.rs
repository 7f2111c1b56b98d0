//! A discovery update of a 1,000-backend pool, applied as the server applies one: the
//! discovered set merged into the file's config, the table built (the same `Backend`
//! for every address that stays), and the registry pruned. DESIGN.md §6 asks for
//! < 50 ms.
//!
//! - `churn_10pct`: 1,000 discovered backends, 100 leave and 100 others join (the
//!   iterations alternate between two such sets, so each one is a real change).
//! - `all_new`: 1,000 backends discovered into a pool that had none, each iteration
//!   from a fresh registry (every backend and its metrics created).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weir_balance::BackendRegistry;
use weir_benches::config;
use weir_config::{Config, DiscoveryConfig, DnsDiscoveryConfig, DnsRecordType, StrategyKind};
use weir_discovery::{effective_config, Discovered};

/// Backends `from..from + n` on distinct private addresses, weights 1..=4.
fn set(from: u32, n: u32) -> Vec<Discovered> {
    (from..from + n)
        .map(|i| Discovered {
            addr: SocketAddr::from((Ipv4Addr::from(0x0A00_0000 | i), 80)),
            weight: NonZeroU32::new(i % 4 + 1).unwrap_or(NonZeroU32::MIN),
            backup: false,
            announced: i % 4 + 1,
            endpoint: weir_config::EndpointState::Ready,
        })
        .collect()
}

/// Pool `app` with no static backends and an SRV discovery block.
fn base(strategy: StrategyKind) -> Config {
    let mut c = Config::clone(&config(strategy, 0, 1));
    c.pools[0].discovery = Some(DiscoveryConfig::Dns(DnsDiscoveryConfig {
        name: "_http._tcp.app.example".into(),
        record_type: DnsRecordType::Srv,
        port: None,
        resolver: None,
        refresh: Duration::from_secs(30),
    }));
    c
}

fn apply(
    registry: &BackendRegistry,
    base: &Config,
    sets: &HashMap<String, Vec<Discovered>>,
    generation: u64,
) {
    let table = registry.build(Arc::new(effective_config(base, sets)), generation);
    registry.retain(&table);
    black_box(table);
}

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("discovery_update");
    for kind in [StrategyKind::RoundRobin, StrategyKind::Weighted] {
        let base = base(kind);
        let one = HashMap::from([("app".to_owned(), set(0, 1_000))]);
        let other = HashMap::from([("app".to_owned(), set(100, 1_000))]);
        let registry = BackendRegistry::new();
        apply(&registry, &base, &one, 1);
        let mut flip = false;
        group.bench_function(BenchmarkId::new("churn_10pct", kind.as_str()), |b| {
            b.iter(|| {
                flip = !flip;
                apply(&registry, &base, if flip { &other } else { &one }, 2);
            });
        });
        group.bench_function(BenchmarkId::new("all_new", kind.as_str()), |b| {
            b.iter(|| apply(&BackendRegistry::new(), &base, &one, 1));
        });
    }
    group.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
