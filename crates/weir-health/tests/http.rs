//! HTTP health checks against a real hyper server on loopback.

mod support;

use std::time::Duration;

use support::{checked, silent_backend, until, until_no_sooner, HttpBackend};

#[tokio::test]
async fn http_check_follows_the_health_endpoint_status() {
    let server = HttpBackend::start().await;
    let check = "{ type: http, path: /healthz, expect_status: 200-399, interval: 100ms, timeout: 1s, rise: 2, fall: 2 }";
    let (_registry, _table, _checker, b) = checked(server.addr, check);
    until("two probes answered", || server.count() >= 2).await;
    assert!(b.is_up());

    server.set_healthy(false);
    // fall = 2 failures at least 90 ms apart.
    until_no_sooner("backend down on 503", Duration::from_millis(90), || {
        !b.is_up()
    })
    .await;
    assert_eq!(b.last_transition().reason, "status 503 not in 200-399");

    server.set_healthy(true);
    until("backend up on 200", || b.is_up()).await;
    assert_eq!(b.transitions(), 2);
    assert_eq!(b.last_transition().reason, "check passed");

    let seen = server.requests();
    assert!(seen.len() >= 6, "{seen:?}");
    for request in &seen {
        assert_eq!(
            request.path, "/healthz",
            "only the configured path is probed"
        );
        assert_eq!(
            request.host.as_deref(),
            Some(server.addr.to_string().as_str())
        );
        assert_eq!(request.user_agent.as_deref(), Some("weir-health"));
        assert_eq!(request.connection.as_deref(), Some("close"));
    }
}

#[tokio::test]
async fn http_check_sends_the_configured_host_and_path() {
    let server = HttpBackend::start().await;
    let check =
        "{ type: http, path: \"/status/ready?full=1\", host: health.example.com, interval: 10s }";
    let (_registry, _table, _checker, b) = checked(server.addr, check);
    until("first probe answered at once", || server.count() >= 1).await;
    let seen = server.requests();
    assert_eq!(seen[0].path, "/status/ready?full=1");
    assert_eq!(seen[0].host.as_deref(), Some("health.example.com"));
    assert!(b.is_up());
}

#[tokio::test]
async fn http_check_fails_a_backend_that_never_answers_within_timeout() {
    let (addr, _server) = silent_backend().await;
    let check = "{ type: http, path: /, interval: 10s, timeout: 200ms }";
    let (_registry, _table, _checker, b) = checked(addr, check);
    until("silent backend down", || !b.is_up()).await;
    assert_eq!(b.last_transition().reason, "timeout after 200ms");
}

#[tokio::test]
async fn http_check_fails_a_backend_that_does_not_speak_http() {
    let mut server = support::TcpBackend::start().await;
    let check = "{ type: http, path: /, interval: 10s, timeout: 1s }";
    let (_registry, _table, _checker, b) = checked(server.addr, check);
    until("backend that closes at once is down", || !b.is_up()).await;
    let reason = b.last_transition().reason;
    assert!(
        reason == "connection closed before the response status"
            || reason.starts_with("read response: ")
            || reason.starts_with("send request: "),
        "{reason}"
    );
    server.stop().await;
}
