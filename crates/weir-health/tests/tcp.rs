//! TCP health checks against real loopback sockets.

mod support;

use std::time::Duration;

use support::{checked, closed_port, until, until_no_sooner, TcpBackend};

const FAST: &str = "{ type: tcp, interval: 100ms, timeout: 500ms, rise: 2, fall: 3 }";

#[tokio::test]
async fn listening_backend_stays_up() {
    let server = TcpBackend::start().await;
    let (_registry, _table, checker, b) = checked(server.addr, FAST);
    until("three probes accepted", || server.count() >= 3).await;
    assert!(b.is_up());
    assert_eq!(b.transitions(), 0);
    assert_eq!(checker.task_count(), 1);
}

#[tokio::test]
async fn dead_new_backend_goes_down_after_its_first_probe() {
    // fall is 3 and the second probe comes after at least 5 s: only the first probe
    // (fragile initial state) can pull the backend within the wait.
    let held = closed_port();
    let addr = held.addr();
    let check = "{ type: tcp, interval: 10s, timeout: 1s, rise: 2, fall: 3 }";
    let (_registry, _table, _checker, b) = checked(addr, check);
    until("backend down", || !b.is_up()).await;
    assert_eq!(b.transitions(), 1);
    let reason = b.last_transition().reason;
    assert!(reason.starts_with("connect: "), "{reason}");
    assert!(!reason.contains("os error"), "{reason}");
}

#[tokio::test]
async fn checked_backend_goes_down_after_fall_failures_and_up_after_rise_successes() {
    let mut server = TcpBackend::start().await;
    let (_registry, _table, _checker, b) = checked(server.addr, FAST);
    // The second probe starts only after the first result was recorded.
    until("two probes accepted", || server.count() >= 2).await;

    server.stop().await;
    // Three failures in a row, at least 90 ms apart: never sooner than 180 ms.
    until_no_sooner("backend down", Duration::from_millis(180), || !b.is_up()).await;
    assert_eq!(b.transitions(), 1);
    assert!(b.last_transition().reason.starts_with("connect: "));

    server.restart().await;
    until_no_sooner("backend up again", Duration::from_millis(90), || b.is_up()).await;
    assert_eq!(b.transitions(), 2);
    assert_eq!(b.last_transition().reason, "check passed");
}
