//! Runs the hostile HTTP/2 clients of `tests/h2attack/h2attack.py` against a weir, and
//! reads weir's resident memory.
//!
//! The clients are Python (the `h2` package's `hpack` and `hyperframe`, pinned in
//! `.ci/run`) because they must break the protocol on purpose, which no Rust client
//! crate lets one do. Each prints one JSON object saying what the server did.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// The longest a scenario may run (each bounds its own waits to 10 s).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(40);

/// The attack script.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("h2attack/h2attack.py")
}

/// Runs `scenario` with `arg` against a fresh weir (`bin`) in front of one backend,
/// listener `web` having `listener_extra` ([`crate::config::one_backend_listener`]).
///
/// # Panics
/// As [`run`] and [`crate::Weir::start`].
pub async fn run_fresh(bin: &str, listener_extra: &str, scenario: &str, arg: u64) -> Value {
    let (backend, _handle) = crate::spawn_backend("a").await;
    let yaml = crate::config::one_backend_listener(backend, listener_extra);
    let weir = crate::Weir::start(bin, &yaml).await;
    run(scenario, weir.listener_addr("web"), arg).await
}

/// Runs `scenario` against `addr` with `arg`; returns the JSON it printed.
///
/// # Panics
/// When python3 cannot run, the script fails or prints no JSON, or takes over 40 s.
pub async fn run(scenario: &str, addr: SocketAddr, arg: u64) -> Value {
    let out = tokio::time::timeout(
        SCENARIO_TIMEOUT,
        Command::new("python3")
            .arg(script())
            .arg(scenario)
            .arg(addr.port().to_string())
            .arg(arg.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("h2attack {scenario} ran over {SCENARIO_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("cannot run python3 for h2attack {scenario}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "h2attack {scenario} failed ({}); is `h2` installed (see .ci/run)?\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("h2attack {scenario} printed no JSON ({e}):\n{stdout}\n{stderr}")
    })
}
