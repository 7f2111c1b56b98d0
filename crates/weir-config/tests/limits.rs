//! YAML limits: size, nesting and alias expansion are refused with the place they were
//! crossed, before serde expands or recurses into anything; documents just inside them
//! still load.

mod support;

use support::errors;

use std::path::Path;

use weir_config::parse;

const POOL: &str = "pools:\n  web:\n    backends: [{ address: 127.0.0.1:8081 }]\n";

/// The defect: 50,000 nested flow mappings (200 KB) took serde_yaml_ng's parser over
/// half a minute. Refused where yaml-rust2 gives up (the 256th level) now.
#[test]
fn nested_flow_mappings_stop_at_the_nesting_limit() {
    let yaml = format!("{}{}", "{a: ".repeat(50_000), "}".repeat(50_000));
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:1:1021: nesting deeper than 64 levels"]
    );
}

/// Block nesting has no flow level for yaml-rust2 to cap: `- - - …` overflowed the stack
/// (an abort, at `weir check` and at reload). Refused at the 65th level now.
#[test]
fn nested_block_lists_stop_at_the_nesting_limit() {
    let yaml = format!("{}x\n", "- ".repeat(100_000));
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:1:129: nesting deeper than 64 levels"]
    );
}

#[test]
fn nesting_64_deep_is_within_the_limit() {
    // 63 lists inside the root mapping: serde then finds the wrong shape, no limit.
    let inside = format!("pools: {}{}", "[".repeat(63), "]".repeat(63));
    assert!(
        !errors(&inside)[0].contains("nesting"),
        "{:?}",
        errors(&inside)
    );
    let over = format!("pools: {}{}", "[".repeat(64), "]".repeat(64));
    assert_eq!(
        errors(&over),
        ["weir.yaml:1:71: nesting deeper than 64 levels"]
    );
}

/// Billion laughs in a shape the config accepts: levels of ten aliases each, each level's
/// anchor inside the first listener's routes. Refused at the alias that crosses 10,000.
#[test]
fn an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() {
    let mut yaml = String::from(POOL);
    yaml.push_str("listeners:\n  - name: a\n    listen: 127.0.0.1:0\n    routes:\n");
    yaml.push_str("      - &r0 { pool: web }\n");
    for level in 1..=5 {
        let prev = level - 1;
        yaml.push_str(&format!(
            "      - &r{level} [{}]\n",
            vec![format!("*r{prev}"); 10].join(", ")
        ));
    }
    // Levels 1-3 expand 10 + 110 + 1,110 times; each `*r3` 1,111 times more: the 8th
    // on line 12 crosses 10,000.
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:12:49: more than 10000 alias expansions (aliases inside aliases count once per expansion)"]
    );
}

/// Few aliases to one large node: each expansion is one, but together they would make
/// serde build millions of nodes.
#[test]
fn aliases_to_a_large_node_are_refused_past_a_million_nodes() {
    let big = vec!["1"; 100_000].join(", ");
    let aliases = ["*big"; 11].join(", ");
    let yaml = format!("{POOL}listeners: [&big [{big}], {aliases}]\n");
    let message = errors(&yaml);
    assert_eq!(message.len(), 1, "{message:?}");
    assert!(
        message[0].ends_with("aliases expand to more than 1000000 nodes"),
        "{message:?}"
    );
}

#[test]
fn aliases_within_the_limits_still_load() {
    let yaml = format!(
        "{POOL}listeners:\n  - name: a\n    listen: 127.0.0.1:0\n    routes: &routes\n      - pool: web\n  - name: b\n    listen: 127.0.0.1:0\n    routes: *routes\n"
    );
    let config = parse(&yaml, Path::new("weir.yaml")).expect("valid");
    assert_eq!(config.listeners.len(), 2);
}

#[test]
fn a_file_over_16_mib_is_refused_whole() {
    let yaml = format!("{POOL}#{}\n", "x".repeat(16 << 20));
    assert_eq!(
        errors(&yaml),
        ["weir.yaml:0:0: the configuration file is larger than 16 MiB"]
    );
    let dir = std::env::temp_dir().join(format!("weir-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("big.yaml");
    std::fs::write(&file, &yaml).expect("write");
    let read = weir_config::read_source(&file).expect_err("too large");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(
        read.errors()[0].message,
        "the configuration file is larger than 16 MiB"
    );
}
