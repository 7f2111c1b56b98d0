//! YAML limits end to end: an alias bomb or over-deep nesting is refused with its
//! position by `weir check`, by `weir run`, and by a SIGHUP reload, which keeps the old
//! configuration serving. Before the limits, the alias bomb below (400 KB) took 137 s
//! and 3 GB in `weir check`, and the nesting overflowed the stack (an abort).

use std::time::Duration;

use weir_e2e::client;
use weir_e2e::Weir;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// Generous: a refusal takes milliseconds; the old code took minutes or crashed.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// One listener whose 20,000 routes are replayed by 300 aliases: 18 million nodes once
/// expanded. Line 9 holds the first route, the aliases start on line 20,009.
fn alias_bomb() -> String {
    let routes = "      - {pool: web}\n".repeat(20_000);
    let aliases = "  - *l\n".repeat(300);
    format!(
        "pools:\n  web:\n    backends: [{{address: 127.0.0.1:1}}]\nlisteners:\n  - &l\n    name: x\n    listen: 127.0.0.1:0\n    routes:\n{routes}{aliases}"
    )
}

/// Block lists nested 100,000 deep, in 200 KB.
fn deep() -> String {
    format!("{}x\n", "- ".repeat(100_000))
}

#[tokio::test]
async fn check_refuses_an_alias_bomb_and_deep_nesting_with_their_position() {
    for (yaml, error) in [
        // 60,007 nodes per expansion (keys count): the 17th alias crosses 1,000,000.
        (
            alias_bomb(),
            "weir.yaml:20025:5: aliases expand to more than 1000000 nodes",
        ),
        (deep(), "weir.yaml:1:129: nesting deeper than 64 levels"),
    ] {
        weir_e2e::assert_check_errors(WEIR, &yaml, &[error, "weir.yaml: 1 error"]).await;
    }
}

#[tokio::test]
async fn run_refuses_deep_nesting_at_start() {
    let mut weir = Weir::spawn_run(WEIR, &deep(), "info");
    let status = weir.wait_exit(LOG_WAIT).await;
    assert_eq!(status.code(), Some(1), "{}", weir.log_tail(20));
    let tail = weir.log_tail(20);
    assert!(
        tail.contains("weir.yaml:1:129: nesting deeper than 64 levels"),
        "{tail}"
    );
}

#[tokio::test]
async fn a_reload_past_the_limits_is_rejected_and_the_old_config_keeps_serving() {
    let (mut weir, _ha) = Weir::one_backend(WEIR, "a").await;
    let addr = weir.listener_addr("web");
    for (yaml, error) in [
        (
            alias_bomb(),
            "weir.yaml:20025:5: aliases expand to more than 1000000 nodes",
        ),
        (deep(), "weir.yaml:1:129: nesting deeper than 64 levels"),
    ] {
        let line = weir.reload_rejected(&yaml, LOG_WAIT).await;
        let text = line["error"].as_str().unwrap_or_default();
        assert!(text.contains(error), "{line}");
        let resp = client::get(addr, "/").await;
        assert_eq!((resp.status.as_u16(), resp.text()), (200, "a".to_owned()));
    }
    assert!(!weir.has_exited(), "{}", weir.log_tail(20));
    assert_eq!(weir.status().await["generation"], 1);
}
