//! Every example in `configs/` must load: the examples are documentation, and this keeps
//! them from rotting as the format moves.

use std::path::PathBuf;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_is_valid() {
    let files = examples();
    assert!(
        files.iter().any(|f| f.ends_with("quickstart.yaml")),
        "configs/quickstart.yaml is missing: {files:?}"
    );
    // `cargo test -p weir-config` alone builds without the `kubernetes` feature (the
    // workspace's tests have it, through weir): its one refusal is expected there.
    let expected = |e: &weir_config::ConfigError| {
        !cfg!(feature = "kubernetes") && e.message.contains("built without Kubernetes discovery")
    };
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| weir_config::load(f).err())
        .flat_map(|e| e.0)
        .filter(|e| !expected(e))
        .map(|e| e.to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "invalid examples:\n{}",
        failures.join("\n")
    );
}

#[test]
fn examples_use_only_loopback_addresses() {
    for file in examples() {
        let Ok(config) = weir_config::load(&file) else {
            continue; // reported by every_example_config_is_valid
        };
        let listens = config.listeners.iter().map(|l| l.listen);
        let backends = config
            .pools
            .iter()
            .flat_map(|p| p.backends.iter().map(|b| b.addr));
        for addr in listens.chain(backends).chain([config.admin.listen]) {
            assert!(
                addr.ip().is_loopback(),
                "{}: {addr} is not loopback",
                file.display()
            );
        }
    }
}

#[test]
fn there_is_an_example_per_strategy() {
    let mut strategies: Vec<&str> = Vec::new();
    let configs: Vec<_> = examples()
        .iter()
        .filter_map(|f| weir_config::load(f).ok())
        .collect();
    for config in &configs {
        strategies.extend(config.pools.iter().map(|p| p.strategy.as_str()));
    }
    for expected in ["round_robin", "weighted", "random", "least_connections"] {
        assert!(strategies.contains(&expected), "no example uses {expected}");
    }
}
